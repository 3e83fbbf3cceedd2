//! The command line every service shares: how to run a node ([`NodeArgs`], flattened into
//! the service's own parser next to its own options) and the subcommands
//! ([`Command`]: `cluster up|status|down`, `certs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use raft_core::{Config, NodeId};
use raft_std::{FsyncPolicy, NodeConfig, StorageOptions, TcpConfig};

use crate::auth::Role;
use crate::certs::{ClientName, NodeHosts};
use crate::http::Limits;
use crate::tls::TlsFiles;

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
    /// Nodes only talk to nodes with the same cluster id [default: the program's name].
    #[arg(long, value_name = "NAME")]
    pub cluster_id: Option<String>,
    /// Shortest election timeout; the longest is twice this.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub heartbeat_ms: u64,
    /// Snapshot the state and compact the log every N applied entries (0: never).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub snapshot_every: u64,
    /// ...and only once the entries applied since the last snapshot add up to this percentage
    /// of its size (0: count entries only), so a large state is not rewritten every N writes.
    #[arg(long, default_value_t = raft_std::DEFAULT_SNAPSHOT_LOG_PERCENT, value_name = "PERCENT")]
    pub snapshot_log_percent: u64,
    /// How long an HTTP request may wait for the cluster before it fails with 503.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// How long `POST /cluster/members` waits for a new node to catch up before it gives up
    /// (the node then stays a learner, which does not vote).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub catch_up_timeout_ms: u64,
    /// When to fsync. `never` survives process crashes but not power loss: for tests only.
    #[arg(long, value_enum, default_value_t = Fsync::Always)]
    pub fsync: Fsync,
    /// Enable the /debug/partition and /debug/heal endpoints, which cut this node's links
    /// (for partition tests; never in production).
    #[arg(long)]
    pub fault_injection: bool,
    #[command(flatten)]
    pub limits: HttpArgs,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// The HTTP server's bounds.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Close a connection whose TLS handshake, or whose request headers, take longer than this.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_ms: u64,
    /// Answer 408 and close a connection whose request body has not fully arrived this long
    /// after its headers.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_ms: u64,
    /// Close a keep-alive connection that sends no new request for this long.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout_ms: u64,
    /// Serve at most this many connections at once (never more than half the open-file
    /// limit); more wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_max_connections: u64,
    /// Largest request body (413 beyond).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub http_max_body_bytes: usize,
}

/// HTTPS and client authentication, or explicitly none.
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// This node's certificate (PEM) for HTTPS; `certs` or `cluster up` make one.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "roles"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA whose client certificates identify clients (PEM). Without it, clients
    /// authenticate with bearer tokens only.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// Who may do what: a roles file mapping client certificates and token digests to the
    /// roles read, write, worker and admin (see README).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub roles: Option<PathBuf>,
    /// How often to look whether --tls-cert, --tls-key, --tls-ca or --roles changed, and read
    /// them again if so, without a restart: new connections (HTTPS and Raft) use the new
    /// certificates, new requests the new roles. Files that are not valid are not loaded (the
    /// node keeps what it has and logs a warning). 0: never (restart to change them).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub tls_reload_ms: u64,
    /// Serve plain HTTP with no authentication: anyone who reaches --http may read, write and
    /// change the membership. Only for tests or a network you trust; the node warns at start.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "tls_ca", "roles"])]
    pub insecure: bool,
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
        _ => Err("an address is HOST:PORT".into()),
    }
}

/// How the HTTP API is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// `--insecure`: plain HTTP, no authentication.
    Insecure,
    /// HTTPS, and clients authenticated against a roles file.
    Tls {
        /// The server's TLS material.
        files: TlsFiles,
        /// The roles file.
        roles: PathBuf,
        /// How often to look whether the TLS files or the roles file changed, and reload
        /// them (zero: never).
        reload_every: Duration,
    },
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
    pub limits: Limits,
    pub security: Security,
    /// The role a client needs for a proposal, which the leader checks again
    /// ([`Roles::authorizer`](crate::auth::Roles::authorizer)): `write` unless the service
    /// says otherwise from the command's bytes.
    pub proposal_role: fn(&[u8]) -> Role,
}

impl NodeArgs {
    /// Checks the arguments and builds the node's configuration; `program` is the default
    /// cluster id.
    pub fn plan(self, program: &str) -> Result<NodePlan, String> {
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
        let security = self.security.plan()?;
        let tcp = TcpConfig::new(self.cluster_id.unwrap_or_else(|| program.to_string()), listen);
        let mut config = NodeConfig::new(id);
        config.peers = self.peers.into_iter().map(|p| (p.id, p.address)).collect();
        config.join = self.join;
        config.raft = Config {
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms.saturating_mul(2),
            heartbeat_interval: self.heartbeat_ms,
            snapshot_every: self.snapshot_every,
            snapshot_log_percent: self.snapshot_log_percent,
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
        config.catch_up_timeout = Duration::from_millis(self.catch_up_timeout_ms.max(1));
        let limits = Limits {
            header_timeout: Duration::from_millis(self.limits.http_header_timeout_ms),
            body_timeout: Duration::from_millis(self.limits.http_body_timeout_ms),
            idle_timeout: Duration::from_millis(self.limits.http_idle_timeout_ms),
            max_connections: usize::try_from(self.limits.http_max_connections).unwrap_or(usize::MAX),
            max_body_bytes: self.limits.http_max_body_bytes,
        };
        Ok(NodePlan {
            http,
            config,
            data,
            storage,
            tcp,
            fault_injection: self.fault_injection,
            limits,
            security,
            proposal_role: |_| Role::Write,
        })
    }
}

impl SecurityArgs {
    fn plan(self) -> Result<Security, String> {
        if self.insecure {
            return Ok(Security::Insecure);
        }
        match (self.tls_cert, self.tls_key, self.roles) {
            (Some(cert), Some(key), Some(roles)) => Ok(Security::Tls {
                files: TlsFiles { cert, key, client_ca: self.tls_ca },
                roles,
                reload_every: Duration::from_millis(self.tls_reload_ms),
            }),
            _ => Err("no TLS material: give --tls-cert, --tls-key, --roles and usually --tls-ca (make them \
                      with the `certs` subcommand), or --insecure to serve plain HTTP without authentication \
                      on a network you trust"
                .into()),
        }
    }
}

/// The subcommands every service has.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, inspect or stop a local cluster on loopback ports.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Make a CA, node and client certificates and a roles file for a deployment.
    Certs(CertsArgs),
}

/// `cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster in the background (ports on 127.0.0.1, one data directory each),
    /// serving HTTPS with certificates made in DIR/certs.
    Up(ClusterUp),
    /// Show each node's role, term, leader and log positions.
    Status(ClusterDir),
    /// Stop the local cluster (SIGTERM, then SIGKILL after 5 s).
    Down(ClusterDown),
}

#[derive(Debug, Args)]
pub struct ClusterDir {
    /// Where the cluster keeps its data directories, logs, certificates and state
    /// [default: PROGRAM-cluster, e.g. raft-kv-cluster].
    #[arg(long)]
    pub dir: Option<PathBuf>,
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
    /// Serve plain HTTP without authentication instead of HTTPS with client certificates.
    #[arg(long)]
    pub insecure: bool,
    /// More options for every node, after `--` (e.g. `-- --snapshot-every 100`).
    #[arg(last = true, value_name = "NODE OPTIONS")]
    pub node_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ClusterDown {
    #[command(flatten)]
    pub dir: ClusterDir,
    /// Also delete the data directories, logs and certificates.
    #[arg(long)]
    pub purge: bool,
}

/// `certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Where to write the files. A directory that has a CA keeps it, so nodes and clients can
    /// be added later.
    #[arg(long, default_value = "certs", value_name = "DIR")]
    pub dir: PathBuf,
    /// The cluster id the nodes run with (their certificates name it) [default: the
    /// program's name].
    #[arg(long, value_name = "NAME")]
    pub cluster_id: Option<String>,
    /// A node, with the DNS names and IP addresses that clients and peers reach it by
    /// (localhost and 127.0.0.1 are always included). Repeat for each node.
    #[arg(long = "node", value_name = "ID=HOST[,HOST…]")]
    pub nodes: Vec<NodeHosts>,
    /// A client certificate besides the admin's (client.pem), and its role. Repeatable.
    #[arg(long = "client", value_name = "NAME=ROLE")]
    pub clients: Vec<ClientName>,
    /// How long node and client certificates are valid (the CA: 10 years).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

/// A node's arguments after the program name, for services' command-line tests: node 1 of
/// three on loopback, data in `d`, no security options (add `--insecure` or TLS files).
#[cfg(any(test, feature = "test-support"))]
pub const NODE_ARGS: [&str; 10] = [
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
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    struct Cli {
        #[command(subcommand)]
        command: Option<Command>,
        #[command(flatten)]
        node: NodeArgs,
    }

    /// The program name, then [`NODE_ARGS`](super::NODE_ARGS).
    fn node() -> Vec<&'static str> {
        [["svc"].as_slice(), &super::NODE_ARGS].concat()
    }

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
    fn a_node_needs_tls_material_or_an_explicit_insecure() {
        let cli = Cli::try_parse_from(node()).unwrap();
        let refused = cli.node.plan("svc").err().expect("no TLS and no --insecure");
        assert!(refused.contains("--insecure") && refused.contains("certs"), "{refused}");

        let cli = Cli::try_parse_from(node().iter().chain(&["--insecure"])).unwrap();
        let plan = cli.node.plan("svc").unwrap();
        assert_eq!(plan.config.bootstrap().voters.len(), 3);
        assert_eq!((plan.security, plan.tcp.cluster.as_str()), (Security::Insecure, "svc"));
        assert_eq!(plan.limits, Limits::default());

        let tls = ["--tls-cert", "n.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem", "--roles", "roles"];
        let cli = Cli::try_parse_from(node().iter().chain(&tls)).unwrap();
        let reload_every = |security| match security {
            Security::Tls { reload_every, .. } => reload_every,
            Security::Insecure => panic!("TLS expected"),
        };
        assert_eq!(reload_every(cli.node.plan("svc").unwrap().security), Duration::from_secs(5));
        let cli = Cli::try_parse_from(node().iter().chain(&tls).chain(&["--tls-reload-ms", "200"])).unwrap();
        assert_eq!(reload_every(cli.node.plan("svc").unwrap().security), Duration::from_millis(200));
        assert!(Cli::try_parse_from(node().iter().chain(&tls).chain(&["--insecure"])).is_err());
        assert!(
            Cli::try_parse_from(node().iter().chain(&["--tls-cert", "n.pem"])).is_err(),
            "a key and roles too"
        );
        assert!(Cli::try_parse_from(["svc", "--id", "1"]).is_err());
        assert!(Cli::try_parse_from(["svc", "cluster", "status"]).is_ok());
        assert!(Cli::try_parse_from(["svc", "certs", "--node", "1=a.example", "--client", "ro=read"]).is_ok());
    }
}
