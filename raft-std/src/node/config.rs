//! [`NodeConfig`]: everything needed to start a [`RaftNode`](crate::RaftNode).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::{Config, Membership, NodeId};

use crate::storage::StorageOptions;
use crate::transport::{Faults, TransportConfig};

/// How to run one node.
///
/// ```
/// use raft_std::NodeConfig;
/// let mut config = NodeConfig::new(1, "127.0.0.1:7001".parse().unwrap(), "./data/1");
/// config.peers.insert(2, "127.0.0.1:7002".into());
/// config.peers.insert(3, "127.0.0.1:7003".into());
/// assert_eq!(config.bootstrap().voters.len(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id, the cluster id, the address to listen on for peers, and transport
    /// limits.
    pub transport: TransportConfig,
    /// The other nodes' addresses (`host:port`). Unless `join` is set, they and this node are
    /// the voters of a new cluster.
    pub peers: BTreeMap<NodeId, String>,
    /// Start with an empty configuration and wait to be added to an existing cluster (see
    /// [`RaftNode::add_member`](crate::RaftNode::add_member)).
    pub join: bool,
    /// Where the log, term, vote and snapshots live.
    pub data_dir: PathBuf,
    /// Timeouts, limits and features of the protocol. `snapshot_every` sets the snapshot
    /// policy.
    pub raft: Config,
    /// Storage tuning (fsync policy, segment size).
    pub storage: StorageOptions,
    /// How long a request may take before it fails with a timeout (default 5 s).
    pub request_timeout: Duration,
    /// Links to cut, for partition tests (default: none).
    pub faults: Faults,
}

impl NodeConfig {
    /// Defaults for node `id` of cluster `"raft"`, listening for peers on `listen` and storing
    /// its state in `data_dir`, with no peers yet.
    pub fn new(id: NodeId, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            transport: TransportConfig::new(id, "raft", listen),
            peers: BTreeMap::new(),
            join: false,
            data_dir: data_dir.into(),
            raft: Config::default(),
            storage: StorageOptions::default(),
            request_timeout: Duration::from_secs(5),
            faults: Faults::default(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.transport.id
    }

    /// The configuration of a new cluster: this node and its peers, or nobody when joining.
    pub fn bootstrap(&self) -> Membership {
        if self.join {
            Membership::default()
        } else {
            Membership::new(std::iter::once(self.id()).chain(self.peers.keys().copied()))
        }
    }
}
