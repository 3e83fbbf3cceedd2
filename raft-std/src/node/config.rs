//! [`NodeConfig`]: everything needed to start a [`RaftNode`](crate::RaftNode), except the
//! state machine and the transport.

use std::collections::BTreeMap;
use std::time::Duration;

use raft_core::{Config, Membership, NodeId};

use super::access::Authorizer;

/// The snapshot policy [`NodeConfig::new`] sets: a snapshot, and log compaction, after every
/// 10,000 applied entries (raft-core's own default, 0, never compacts).
///
/// It bounds what a node holds (see the crate docs, "Bounded by default"): the in-memory log
/// and the entries replayed at start-up stay below this many committed entries (plus those not
/// yet committed), and the on-disk log below that plus one log segment.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// The second half of the snapshot policy [`NodeConfig::new`] sets
/// ([`Config::snapshot_log_percent`]): past [`DEFAULT_SNAPSHOT_EVERY`] entries, a snapshot
/// also waits until the entries applied since the last one add up to a quarter of its size.
/// A large state is then rewritten at most once per quarter of its size in new log, never
/// every 10,000 small writes; the log since the last snapshot stays within 10,000 entries or
/// a quarter of the state, whichever is more.
pub const DEFAULT_SNAPSHOT_LOG_PERCENT: u64 = 25;

/// How to run one node.
///
/// ```
/// use raft_std::NodeConfig;
/// let mut config = NodeConfig::new(1);
/// config.peers.insert(2, "127.0.0.1:7002".into());
/// config.peers.insert(3, "127.0.0.1:7003".into());
/// assert_eq!(config.bootstrap().voters.len(), 3);
/// assert_eq!(config.raft.snapshot_every, raft_std::DEFAULT_SNAPSHOT_EVERY);
/// ```
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id: positive, unique in the cluster.
    pub id: NodeId,
    /// The other nodes and their transport addresses (`host:port` for TCP; anything for
    /// transports without addresses). Unless `join` is set, they and this node are the voters
    /// of a new cluster.
    pub peers: BTreeMap<NodeId, String>,
    /// Start with an empty configuration and wait to be added to an existing cluster (see
    /// [`RaftNode::add_member`](crate::RaftNode::add_member)).
    pub join: bool,
    /// Timeouts, limits and features of the protocol: raft-core's defaults, except the
    /// snapshot policy: `snapshot_every` is [`DEFAULT_SNAPSHOT_EVERY`] (0 turns automatic
    /// snapshots off: the log then grows until [`RaftNode::compact`] is called) and
    /// `snapshot_log_percent` [`DEFAULT_SNAPSHOT_LOG_PERCENT`].
    ///
    /// [`RaftNode::compact`]: crate::RaftNode::compact
    pub raft: Config,
    /// How long a request may take before it fails with a timeout (default 5 s).
    pub request_timeout: Duration,
    /// How long [`RaftNode::add_member`](crate::RaftNode::add_member) waits for a new learner
    /// to catch up before it gives up (default 30 s).
    pub catch_up_timeout: Duration,
    /// A learner has caught up once its match index is within this many entries of the
    /// leader's last index (default 100).
    pub catch_up_margin: u64,
    /// The application's decision on each write, membership change and leadership transfer,
    /// made on the leader with the client's identity (default none: everything is carried
    /// out). Give every node the same one.
    pub authorizer: Option<Authorizer>,
}

impl NodeConfig {
    /// Defaults for node `id`, with no peers yet.
    pub fn new(id: NodeId) -> Self {
        NodeConfig {
            id,
            peers: BTreeMap::new(),
            join: false,
            raft: Config {
                snapshot_every: DEFAULT_SNAPSHOT_EVERY,
                snapshot_log_percent: DEFAULT_SNAPSHOT_LOG_PERCENT,
                ..Config::default()
            },
            request_timeout: Duration::from_secs(5),
            catch_up_timeout: Duration::from_secs(30),
            catch_up_margin: 100,
            authorizer: None,
        }
    }

    /// The configuration of a new cluster: this node and its peers, or nobody when joining.
    /// Hand it to the log store when it is created (e.g.
    /// [`FileState::open`](crate::FileState::open)); a store keeps the one it was created with.
    pub fn bootstrap(&self) -> Membership {
        if self.join {
            Membership::default()
        } else {
            Membership::new(std::iter::once(self.id).chain(self.peers.keys().copied()))
        }
    }
}
