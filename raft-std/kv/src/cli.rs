//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use raft_core::{Config, NodeId};
use raft_std::{FsyncPolicy, NodeConfig, StorageOptions, TcpConfig};

/// A replicated key-value store on Raft, with a JSON HTTP API.
///
/// Run one node with --id/--listen/--http/--peers/--data, or a local cluster with
/// `raft-kv cluster up`.
#[derive(Debug, Parser)]
#[command(name = "raft-kv", version, subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, inspect or stop a local cluster on loopback ports.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// Running one node.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long, required = true)]
    pub id: Option<NodeId>,
    /// Address to listen on for other nodes (the Raft transport).
    #[arg(long, required = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address to serve the HTTP API on.
    #[arg(long, required = true, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The other nodes, as ID=HOST:PORT of their --listen address, comma-separated. Without
    /// --join they and this node form a new cluster; with it, list the current members.
    #[arg(long, value_name = "ID=ADDR,...", value_delimiter = ',')]
    pub peers: Vec<Peer>,
    /// Data directory (log, term and vote, snapshots). Created if missing.
    #[arg(long, required = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Start empty and wait to be added with `POST /cluster/members` on a member.
    #[arg(long)]
    pub join: bool,
    /// Nodes only talk to nodes with the same cluster id.
    #[arg(long, default_value = "raft-kv", value_name = "NAME")]
    pub cluster_id: String,
    /// Shortest election timeout; the longest is twice this.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub heartbeat_ms: u64,
    /// Snapshot the store and compact the log every N applied entries (0: never).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub snapshot_every: u64,
    /// How long an HTTP request may wait for the cluster before it fails with 503.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// When to fsync. `never` survives process crashes but not power loss: for tests only.
    #[arg(long, value_enum, default_value_t = Fsync::Always)]
    pub fsync: Fsync,
    /// Enable the /debug/partition and /debug/heal endpoints, which cut this node's links
    /// (for partition tests; never in production).
    #[arg(long)]
    pub fault_injection: bool,
}

/// `--fsync` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    Always,
    Never,
}

/// One `--peers` item: `ID=HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: NodeId,
    pub address: String,
}

impl FromStr for Peer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (id, address) = text.split_once('=').ok_or_else(|| format!("{text:?} is not ID=HOST:PORT"))?;
        let id = id.trim().parse().map_err(|_| format!("{id:?} is not a node id"))?;
        if id == 0 {
            return Err("node id 0 is reserved".into());
        }
        let address = address.trim();
        check_address(address)?;
        Ok(Peer { id, address: address.to_string() })
    }
}

/// Checks that `address` looks like `HOST:PORT` (it is resolved when dialed).
pub fn check_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{address:?} is not HOST:PORT")),
    }
}

/// A validated node invocation.
pub struct NodePlan {
    pub http: SocketAddr,
    pub config: NodeConfig,
    /// The data directory and how to store in it.
    pub data: PathBuf,
    pub storage: StorageOptions,
    pub tcp: TcpConfig,
    pub fault_injection: bool,
}

impl NodeArgs {
    /// Checks the arguments and builds the node's configuration.
    pub fn plan(self) -> Result<NodePlan, String> {
        let (Some(id), Some(listen), Some(http), Some(data)) = (self.id, self.listen, self.http, self.data)
        else {
            return Err("--id, --listen, --http and --data are required".into());
        };
        if id == 0 {
            return Err("--id must be positive".into());
        }
        if let Some(peer) = self.peers.iter().find(|p| p.id == id) {
            return Err(format!("--peers lists this node's own id {} ({})", id, peer.address));
        }
        let tcp = TcpConfig::new(self.cluster_id, listen);
        let mut config = NodeConfig::new(id);
        config.peers = self.peers.into_iter().map(|p| (p.id, p.address)).collect();
        config.join = self.join;
        config.raft = Config {
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            heartbeat_interval: self.heartbeat_ms,
            snapshot_every: self.snapshot_every,
            ..Config::default()
        };
        config.raft.validate().map_err(|e| format!("invalid timeouts: {e}"))?;
        let storage = StorageOptions {
            fsync: match self.fsync {
                Fsync::Always => FsyncPolicy::Always,
                Fsync::Never => FsyncPolicy::Never,
            },
            ..StorageOptions::default()
        };
        config.request_timeout = Duration::from_millis(self.request_timeout_ms.max(1));
        Ok(NodePlan { http, config, data, storage, tcp, fault_injection: self.fault_injection })
    }
}

/// `raft-kv cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster in the background (ports on 127.0.0.1, one data directory each).
    Up(ClusterUp),
    /// Show each node's role, term, leader and log positions.
    Status(ClusterDir),
    /// Stop the local cluster (SIGTERM, then SIGKILL after 5 s).
    Down(ClusterDown),
}

#[derive(Debug, Args)]
pub struct ClusterDir {
    /// Where the cluster keeps its data directories, logs and state.
    #[arg(long, default_value = "raft-kv-cluster")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ClusterUp {
    #[command(flatten)]
    pub dir: ClusterDir,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Raft port of node 1; node N uses this + N - 1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// HTTP port of node 1; node N uses this + N - 1.
    #[arg(long, default_value_t = 8001)]
    pub http_base_port: u16,
}

#[derive(Debug, Args)]
pub struct ClusterDown {
    #[command(flatten)]
    pub dir: ClusterDir,
    /// Also delete the data directories and logs.
    #[arg(long)]
    pub purge: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn peers_parse_and_explain_mistakes() {
        assert_eq!("2=127.0.0.1:7002".parse(), Ok(Peer { id: 2, address: "127.0.0.1:7002".into() }));
        assert_eq!("2=node-b:7002".parse::<Peer>().map(|p| p.id), Ok(2));
        assert!("2:7002".parse::<Peer>().unwrap_err().contains("ID=HOST:PORT"));
        assert!("0=127.0.0.1:1".parse::<Peer>().is_err());
        assert!("x=127.0.0.1:1".parse::<Peer>().is_err());
        assert!("2=127.0.0.1".parse::<Peer>().is_err());
    }

    #[test]
    fn a_node_invocation_becomes_a_config() {
        let cli = Cli::try_parse_from([
            "raft-kv",
            "--id",
            "1",
            "--listen",
            "127.0.0.1:7001",
            "--http",
            "127.0.0.1:8001",
            "--peers",
            "2=127.0.0.1:7002,3=127.0.0.1:7003",
            "--data",
            "d",
        ])
        .unwrap();
        let plan = cli.node.plan().unwrap();
        assert_eq!(plan.config.bootstrap().voters.len(), 3);
        assert!(Cli::try_parse_from(["raft-kv", "--id", "1"]).is_err());
        assert!(Cli::try_parse_from(["raft-kv", "cluster", "status"]).is_ok());
    }
}
