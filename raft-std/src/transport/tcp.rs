//! [`TcpTransport`]: frames over plain TCP, length-delimited, after a handshake carrying the
//! cluster id and node ids; reconnection with backoff; bounded queues and connections.
//!
//! **Plain TCP authenticates nobody.** The acceptor takes the dialer's claimed node id if the
//! cluster id matches and the id is a peer it knows: whoever can reach the port and knows (or
//! guesses) the cluster id can speak as any member. Use it on a network only the cluster's
//! nodes reach, and [`TlsTransport`](crate::TlsTransport) (feature `tls`) anywhere else.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::stream::{Net, Secure, Secured, HELLO_OVERHEAD};
use super::{PeerLink, Transport};

/// Settings for a [`TcpTransport`] (and the TCP side of a `TlsTransport`). Every queue and
/// every connection is bounded; the defaults are below.
///
/// ```
/// use raft_std::TcpConfig;
/// let mut config = TcpConfig::new("my-cluster", "0.0.0.0:7001".parse().unwrap());
/// config.max_connections = 16; // a small cluster: few peers dial in
/// assert_eq!(config.max_handshake_bytes, 4096);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connections from nodes with another cluster id are refused. At most
    /// `max_handshake_bytes` minus a few dozen bytes long.
    pub cluster: String,
    /// Where to accept connections (port 0 picks a free port; see
    /// [`TcpTransport::local_addr`]).
    pub listen: SocketAddr,
    /// Frames above this size are not sent, and close the connection they arrive on (default
    /// 16 MiB; Raft's own messages stay below `max_append_bytes` and `snapshot_chunk_bytes`
    /// plus a little). Applies once a connection is authenticated: it bounds what a peer can
    /// make this node buffer per connection.
    pub max_frame_bytes: usize,
    /// Before a connection is authenticated (the handshake), frames above this size close it;
    /// the length a frame declares is checked before anything is reserved for it (default
    /// 4 KiB). So a stranger can make this node buffer at most this much per connection.
    pub max_handshake_bytes: usize,
    /// Accepted connections open at once at most, handshaking or established; connections
    /// over it are closed at once (default 64). An established connection holds its place
    /// until it closes, and each peer has one at most (a newer one replaces it); a connection
    /// that has not finished its handshake within `handshake_timeout` is closed. This bounds
    /// the file descriptors the port can take.
    pub max_connections: usize,
    /// Frames queued per peer at most; more are dropped (default 1024).
    pub queue_len: usize,
    /// Bytes queued per peer at most; more are dropped (default 64 MiB).
    pub queue_bytes: usize,
    /// Received frames waiting for the node at most; more are dropped (default 4096).
    pub inbox_len: usize,
    /// How long to wait for a TCP connection (default 1 s).
    pub connect_timeout: Duration,
    /// How long either side waits for the handshake, TLS included (default 2 s).
    pub handshake_timeout: Duration,
    /// First delay before reconnecting; doubles after each failure (default 50 ms).
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts (default 2 s).
    pub reconnect_max: Duration,
}

impl TcpConfig {
    /// Defaults for a node of cluster `cluster` listening on `listen`.
    pub fn new(cluster: impl Into<String>, listen: SocketAddr) -> Self {
        TcpConfig {
            cluster: cluster.into(),
            listen,
            max_frame_bytes: 16 << 20,
            max_handshake_bytes: 4 << 10,
            max_connections: 64,
            queue_len: 1024,
            queue_bytes: 64 << 20,
            inbox_len: 4096,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
        }
    }

    /// Whether the settings can work together.
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.cluster.len() + HELLO_OVERHEAD > self.max_handshake_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the cluster id is {} bytes long: more than max_handshake_bytes ({}) allows; use a shorter one",
                    self.cluster.len(),
                    self.max_handshake_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// A [`Transport`] over plain TCP. Frames to a peer whose address is not known yet stay queued
/// (within the queue bounds) until [`Transport::set_peer_address`] names it; connections are
/// accepted only from peers named that way.
///
/// **Plain TCP authenticates nobody.** The acceptor takes the dialer's claimed node id if the
/// cluster id matches and the id is a peer it knows: whoever can reach the port and knows (or
/// guesses) the cluster id can speak as any member. Use it on a network only the cluster's
/// nodes reach, and `TlsTransport` (feature `tls`) anywhere else.
///
/// ```
/// use raft_core::Bytes;
/// use raft_std::{TcpConfig, TcpTransport, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let any_port = "127.0.0.1:0".parse()?;
/// let mut one = TcpTransport::bind(1, TcpConfig::new("demo", any_port)).await?;
/// let mut two = TcpTransport::bind(2, TcpConfig::new("demo", any_port)).await?;
/// one.set_peer_address(2, &two.local_addr().to_string()); // node 1 accepts node 2 …
/// two.set_peer_address(1, &one.local_addr().to_string()); // … and node 2 knows where node 1 listens
///
/// assert!(two.send(1, Bytes::from_static(b"hello")));
/// assert_eq!(one.recv().await, Some((2, Bytes::from_static(b"hello"))));
/// one.shutdown().await;
/// two.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct TcpTransport {
    net: Net<Plain>,
}

/// No security layer: the handshake's claim stands.
pub(crate) struct Plain;

impl Secure for Plain {
    type Stream = TcpStream;

    async fn connect(&self, tcp: TcpStream, _to: NodeId) -> Result<Secured<TcpStream>, String> {
        Ok(Secured { stream: tcp, peer: None, retired: CancellationToken::new() })
    }

    async fn accept(&self, tcp: TcpStream) -> Result<Secured<TcpStream>, String> {
        Ok(Secured { stream: tcp, peer: None, retired: CancellationToken::new() })
    }
}

impl TcpTransport {
    /// Listens on `config.listen` as node `id`. Connections are accepted only from peers named
    /// with [`Transport::set_peer_address`]. Fails if the address cannot be bound, or if the
    /// cluster id does not fit in `max_handshake_bytes`.
    pub async fn bind(id: NodeId, config: TcpConfig) -> io::Result<Self> {
        Ok(TcpTransport { net: Net::bind(id, config, Plain).await? })
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.net.local_addr()
    }
}

impl Transport for TcpTransport {
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

    /// Closes the listener and every connection, and waits for the transport's tasks to end.
    async fn shutdown(&mut self) {
        self.net.shutdown().await;
    }
}
