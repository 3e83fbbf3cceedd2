//! [`TlsTransport`] (cargo feature `tls`): the TCP transport's machinery — bounded queues and
//! connections, reconnection with backoff, the handshake — over mutual TLS 1.3 (rustls, with
//! the *ring* provider).
//!
//! The rules (who is who, reloading) are on [`TlsTransport`].

mod credentials;
mod identity;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use self::credentials::{Credentials, Files};
pub use self::identity::node_uri;
use self::identity::{certified_node, explain, server_name, uri_safe};
use super::stream::{Net, Secure, Secured};
use super::{PeerLink, TcpConfig, Transport};

/// Settings for a [`TlsTransport`]: the TCP settings underneath (cluster id, listen address,
/// every limit, with [`TcpConfig`]'s defaults), and where the credentials are.
///
/// ```
/// use raft_std::TlsConfig;
/// let mut config = TlsConfig::new(
///     "prod",
///     "0.0.0.0:7001".parse().unwrap(),
///     "/etc/raft/ca.pem",
///     "/etc/raft/node-1.pem",
///     "/etc/raft/node-1.key",
/// );
/// config.tcp.max_connections = 16;
/// assert_eq!(config.tcp.cluster, "prod");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Cluster id, listen address, queue and connection limits, timeouts. The cluster id also
    /// stands in the certificates' node URIs, so it must consist of letters, digits, `-`, `.`,
    /// `_` and `~`.
    pub tcp: TcpConfig,
    /// PEM file of the CA certificates that sign the nodes' certificates (several for a
    /// rotation).
    pub ca: PathBuf,
    /// PEM file of this node's certificate, then any intermediate CA certificates.
    pub cert: PathBuf,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often to look whether the three files changed, and reload them if so (default 5 s;
    /// zero: never, only [`TlsReloader::reload`]).
    pub reload_every: Duration,
}

impl TlsConfig {
    /// Defaults (those of [`TcpConfig::new`], a reload check every 5 s) for a node of cluster
    /// `cluster` listening on `listen`, with the CA, certificate and key in these PEM files.
    pub fn new(
        cluster: impl Into<String>,
        listen: SocketAddr,
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        TlsConfig {
            tcp: TcpConfig::new(cluster, listen),
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            reload_every: Duration::from_secs(5),
        }
    }
}

/// Why a [`TlsTransport`] could not start, or its credentials could not be reloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A credentials file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A credentials file does not hold what it should, or does not fit the others.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The cluster id cannot stand in a node URI.
    #[error("the cluster id {0:?} cannot be used with TLS: use letters, digits, '-', '.', '_' and '~'")]
    Cluster(String),
    /// The listen address cannot be bound, or the TCP settings do not fit together.
    #[error("cannot listen for peers: {0}")]
    Listen(io::Error),
}

/// A [`Transport`] over mutual TLS 1.3: each peer is the node its certificate names.
/// Otherwise it is a [`TcpTransport`](crate::TcpTransport) (the same machinery and limits):
/// frames to a peer whose address is unknown stay queued until
/// [`Transport::set_peer_address`] names it.
///
/// # Who is who
///
/// Every node has a certificate, signed by a CA that every node's CA file holds, that binds
/// it to its cluster and node id with the URI subject alternative name
/// [`node_uri`]`(cluster, id)`, `raft://<cluster>/node/<id>`. DNS and IP SANs for the host
/// may be there too (the same certificate can serve HTTPS); they are not what identifies the
/// node. If the certificate lists extended key usages, it needs both `serverAuth` and
/// `clientAuth`: every node dials and accepts.
///
/// * The **dialer** requires the acceptor's certificate to chain to its CA file, to be valid
///   now, and to name exactly the node it dialed in its cluster.
/// * The **acceptor** requires the same of the dialer's certificate, and takes the peer's id
///   **from the certificate**: a handshake that claims another id is refused. It accepts only
///   peers it knows (named by [`Transport::set_peer_address`]: the configuration's peers and
///   the members the committed log names).
///
/// A plaintext peer, a certificate from another CA, an expired one, one for another node or
/// another cluster are refused during the TLS handshake, before any frame is read; the log
/// line of the refusing node says why, and names no secret.
///
/// # Reloading certificates
///
/// The CA, certificate and key files are read again when they change: the transport looks at
/// their modification times every [`TlsConfig::reload_every`] (5 s by default), and
/// [`TlsReloader::reload`] reloads at once (say, on SIGHUP). New material is checked as at
/// start (this node's certificate must name it and chain to the CA file); if it does not pass,
/// the transport keeps the old material and logs why. Once it passes, new connections use it,
/// and connections made with the old material are closed cleanly — the dialer reconnects with
/// the new material, the acceptor still reads what was sent before, for `handshake_timeout` at
/// most — so no frame is lost to a reload, and a CA removed from the CA file is no longer
/// trusted on any connection.
///
/// To rotate the CA without downtime: add the new CA to every node's CA file; then give each
/// node a certificate from the new CA; then remove the old CA from the CA files. Write the
/// certificate and key files by renaming complete files into place; a reload that catches a
/// certificate with the key of the other is refused, and the next change is picked up.
///
/// ```
/// use raft_std::{TlsConfig, TlsTransport, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let any_port = "127.0.0.1:0".parse().unwrap();
/// let config = TlsConfig::new("prod", any_port, "/etc/raft/ca.pem", "/etc/raft/node-1.pem", "/etc/raft/node-1.key");
/// match TlsTransport::bind(1, config).await {
///     Ok(mut transport) => {
///         let reloader = transport.reloader(); // keep it: RaftNode::start takes the transport
///         transport.set_peer_address(2, "10.0.0.2:7001");
///         reloader.reload().expect("the files are still good");
///         transport.shutdown().await;
///     }
///     // Names the file that is missing or wrong, and what is wrong with it.
///     Err(error) => eprintln!("cannot start: {error}"),
/// }
/// # }
/// ```
pub struct TlsTransport {
    net: Net<Tls>,
    credentials: Arc<Credentials>,
}

/// Reloads a [`TlsTransport`]'s credentials on demand; cheap to clone, and usable after the
/// transport was handed to [`RaftNode::start`](crate::RaftNode::start).
#[derive(Clone)]
pub struct TlsReloader {
    credentials: Arc<Credentials>,
}

impl TlsReloader {
    /// Reads the CA, certificate and key files again now. If they pass the checks made at
    /// start, new connections use them and connections made with the old ones reconnect;
    /// otherwise the transport keeps what it has, and the error says which file is wrong.
    /// Reads files: call it where blocking for a moment is fine (or in `spawn_blocking`).
    pub fn reload(&self) -> Result<(), TlsError> {
        self.credentials.reload()
    }
}

impl TlsTransport {
    /// Loads the credentials, checks that this node's certificate names node `id` of the
    /// cluster and chains to the CA file, and listens on `config.tcp.listen`. Connections are
    /// accepted only from peers named with [`Transport::set_peer_address`].
    pub async fn bind(id: NodeId, config: TlsConfig) -> Result<Self, TlsError> {
        let TlsConfig { tcp, ca, cert, key, reload_every } = config;
        if !uri_safe(&tcp.cluster) {
            return Err(TlsError::Cluster(tcp.cluster));
        }
        let files = Files { ca, cert, key };
        let cluster = tcp.cluster.clone();
        let credentials = tokio::task::spawn_blocking(move || Credentials::load(files, cluster, id))
            .await
            .map_err(|e| TlsError::Listen(io::Error::other(e)))??;
        let credentials = Arc::new(credentials);
        let secure = Tls { credentials: Arc::clone(&credentials) };
        let net = Net::bind(id, tcp, secure).await.map_err(TlsError::Listen)?;
        if !reload_every.is_zero() {
            net.spawn(Arc::clone(&credentials).watch(reload_every));
        }
        Ok(TlsTransport { net, credentials })
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.net.local_addr()
    }

    /// A handle that reloads the credentials on demand.
    pub fn reloader(&self) -> TlsReloader {
        TlsReloader { credentials: Arc::clone(&self.credentials) }
    }
}

impl Transport for TlsTransport {
    /// Queues `frame` for `to`. A peer whose address is unknown keeps its frames queued until
    /// it is learned.
    fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
        self.net.send(to, frame)
    }

    async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
        self.net.recv().await
    }

    fn set_peer_address(&mut self, id: NodeId, address: &str) {
        self.net.set_peer_address(id, address);
    }

    /// The state of each peer this node has sent to.
    fn links(&self) -> Vec<PeerLink> {
        self.net.links()
    }

    /// Closes the listener and every connection, and waits for the transport's tasks (the
    /// reload watcher too) to end.
    async fn shutdown(&mut self) {
        self.net.shutdown().await;
    }
}

/// Mutual TLS with the current credentials.
struct Tls {
    credentials: Arc<Credentials>,
}

impl Secure for Tls {
    type Stream = TlsStream<TcpStream>;

    async fn connect(&self, tcp: TcpStream, to: NodeId) -> Result<Secured<Self::Stream>, String> {
        let material = self.credentials.current();
        let stream = material.connector.connect(server_name(to)?, tcp).await.map_err(|e| explain(&e))?;
        // The verifier checked that the certificate names `to`.
        Ok(Secured { stream: TlsStream::Client(stream), peer: Some(to), retired: material.retired.clone() })
    }

    async fn accept(&self, tcp: TcpStream) -> Result<Secured<Self::Stream>, String> {
        let material = self.credentials.current();
        let stream = material.acceptor.accept(tcp).await.map_err(|e| explain(&e))?;
        let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first());
        let certificate = certificate.ok_or("the peer presented no certificate")?;
        let peer = certified_node(certificate, &self.credentials.cluster).map_err(|e| e.to_string())?;
        Ok(Secured { stream: TlsStream::Server(stream), peer: Some(peer), retired: material.retired.clone() })
    }
}
