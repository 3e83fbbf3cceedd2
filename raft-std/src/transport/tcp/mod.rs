//! [`TcpTransport`]: frames over TCP, length-delimited, after a handshake carrying cluster id
//! and node ids; reconnection with backoff; bounded per-peer send queues.
//!
//! Each node dials one outgoing connection per peer for what it sends, and accepts incoming
//! connections for what it receives. The handshake names the dialer, and the acceptor takes
//! that name only from peers it knows: the `from` of every received frame is the dialer's
//! handshake identity. (A TLS variant replaces the handshake's claimed id with the peer
//! certificate's identity; everything else stays the same.)

mod book;
mod handshake;
mod inbound;
mod outbound;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::book::PeerBook;
use self::handshake::Identity;
use super::{PeerLink, Transport};

/// Settings for a [`TcpTransport`]. Every queue is bounded; the defaults are below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connections from nodes with another cluster id are refused (default `"raft"`).
    pub cluster: String,
    /// Where to accept connections (port 0 picks a free port; see
    /// [`TcpTransport::local_addr`]).
    pub listen: SocketAddr,
    /// Frames above this size are not sent, and close the connection they arrive on (default
    /// 16 MiB; Raft's own messages stay below `max_append_bytes` and `snapshot_chunk_bytes`
    /// plus a little).
    pub max_frame_bytes: usize,
    /// Frames queued per peer at most; more are dropped (default 1024).
    pub queue_len: usize,
    /// Bytes queued per peer at most; more are dropped (default 64 MiB).
    pub queue_bytes: usize,
    /// Received frames waiting for the node at most; more are dropped (default 4096).
    pub inbox_len: usize,
    /// How long to wait for a TCP connection (default 1 s).
    pub connect_timeout: Duration,
    /// How long either side waits for the handshake (default 2 s).
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
            queue_len: 1024,
            queue_bytes: 64 << 20,
            inbox_len: 4096,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

/// A [`Transport`] over TCP. Frames to a peer whose address is not known yet stay queued
/// (within the queue bounds) until [`Transport::set_peer_address`] names it.
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
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<(NodeId, Bytes)>,
}

/// What the transport's tasks share.
struct Shared {
    config: TcpConfig,
    identity: Identity,
    local_addr: SocketAddr,
    book: PeerBook,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The sending side of one peer: its queue of frames, drained by its outbound task.
struct Peer {
    queue: mpsc::Sender<Bytes>,
    link: Arc<Link>,
}

/// Counters shared by [`TcpTransport::send`] and a peer's outbound task.
#[derive(Debug, Default)]
struct Link {
    connected: AtomicBool,
    dropped: AtomicU64,
    /// Bytes in the queue.
    queued_bytes: AtomicUsize,
    /// Set while the queue overflows, so the overflow is logged once, not per frame.
    overflowing: AtomicBool,
}

impl Link {
    fn overflowed(&self, peer: NodeId) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer,
                "send queue full: dropping frames to this peer until it drains (Raft retransmits)"
            );
        }
    }

    fn drained(&self, peer: NodeId) {
        if self.overflowing.swap(false, Ordering::Relaxed) {
            let dropped = self.dropped.load(Ordering::Relaxed);
            tracing::info!(peer, dropped_total = dropped, "send queue drained");
        }
    }
}

impl TcpTransport {
    /// Listens on `config.listen` as node `id`. Connections are accepted only from peers named
    /// with [`Transport::set_peer_address`].
    pub async fn bind(id: NodeId, config: TcpConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (inbox_sender, inbox) = mpsc::channel(config.inbox_len.max(1));
        let shared = Arc::new(Shared {
            identity: Identity { cluster: config.cluster.clone(), id },
            config,
            local_addr,
            book: PeerBook::default(),
            peers: Mutex::new(BTreeMap::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(inbound::accept(Arc::clone(&shared), listener, inbox_sender).in_current_span());
        tracing::info!(node = id, address = %local_addr, "transport listening");
        Ok(TcpTransport { shared, inbox })
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }
}

impl Transport for TcpTransport {
    /// Queues `frame` for `to`. A peer whose address is unknown keeps its frames queued until
    /// it is learned.
    fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
        let shared = &self.shared;
        if to == shared.identity.id || shared.stop.is_cancelled() {
            return false;
        }
        let size = frame.len();
        if size > shared.config.max_frame_bytes {
            let limit = shared.config.max_frame_bytes;
            tracing::warn!(peer = to, size, limit, "frame exceeds max_frame_bytes; dropped");
            return false;
        }
        let mut peers = shared.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let peer = peers.entry(to).or_insert_with(|| {
            let (queue, receiver) = mpsc::channel(shared.config.queue_len.max(1));
            let link = Arc::new(Link::default());
            shared
                .tasks
                .spawn(outbound::run(Arc::clone(shared), to, receiver, Arc::clone(&link)).in_current_span());
            Peer { queue, link }
        });
        if peer.link.queued_bytes.load(Ordering::Relaxed) + size > shared.config.queue_bytes {
            peer.link.overflowed(to);
            return false;
        }
        match peer.queue.try_send(frame) {
            Ok(()) => {
                peer.link.queued_bytes.fetch_add(size, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) => {
                peer.link.overflowed(to);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
        self.inbox.recv().await
    }

    fn set_peer_address(&mut self, id: NodeId, address: &str) {
        if id != self.shared.identity.id {
            self.shared.book.insert(id, address);
        }
    }

    /// The state of each peer this node has sent to.
    fn links(&self) -> Vec<PeerLink> {
        let peers = self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers
            .iter()
            .map(|(&id, peer)| PeerLink {
                id,
                connected: peer.link.connected.load(Ordering::Relaxed),
                dropped: peer.link.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Closes the listener and every connection, and waits for the transport's tasks to end.
    async fn shutdown(&mut self) {
        self.shared.stop.cancel();
        self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {} // frames still queued are dropped
    }
}
