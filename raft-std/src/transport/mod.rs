//! A TCP transport for Raft messages (or any serde type): length-delimited postcard frames, a
//! handshake carrying cluster id and node ids, reconnection with backoff, and bounded per-peer
//! send queues.
//!
//! Each node dials one outgoing connection per peer for what it sends, and accepts incoming
//! connections for what it receives. Raft tolerates loss, duplication and reordering, so the
//! transport never blocks a sender: when a peer's queue is full, or its link is cut by
//! [`Faults`], the message is dropped.

mod book;
mod faults;
mod handshake;
mod inbound;
mod outbound;

use std::collections::BTreeMap;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use self::book::PeerBook;
pub use self::faults::Faults;
use self::handshake::Identity;

/// Messages received from peers, tagged with the sender the handshake authenticated.
pub type Inbox<T> = mpsc::Receiver<(NodeId, T)>;

/// Settings for a [`Transport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// This node.
    pub id: NodeId,
    /// Connections from nodes with another cluster id are refused.
    pub cluster: String,
    /// Where to accept connections (port 0 picks a free port; see [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Frames above this size close the connection (default 16 MiB; Raft's own messages stay
    /// below `max_append_bytes` and `snapshot_chunk_bytes` plus a little).
    pub max_frame_bytes: usize,
    /// Messages queued per peer at most; more are dropped (default 1024).
    pub queue_len: usize,
    /// Encoded bytes queued per peer at most; more are dropped (default 64 MiB).
    pub queue_bytes: usize,
    /// Received messages waiting for the node at most; more are dropped (default 4096).
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

impl TransportConfig {
    /// Defaults for node `id` of cluster `cluster`, listening on `listen`.
    pub fn new(id: NodeId, cluster: impl Into<String>, listen: SocketAddr) -> Self {
        TransportConfig {
            id,
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

/// The state of the link to one peer, as [`Transport::links`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerLink {
    /// The peer.
    pub id: NodeId,
    /// Whether the outgoing connection is up.
    pub connected: bool,
    /// Messages dropped because the peer's queue was full.
    pub dropped: u64,
}

/// Sends and receives messages of type `T` over TCP. Cheap to clone; all clones share the
/// connections. Dropping every clone does not stop it: call [`Transport::shutdown`].
///
/// ```
/// use raft_std::{Faults, PeerBook, Transport, TransportConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let any_port = "127.0.0.1:0".parse()?;
/// let (book_one, book_two) = (PeerBook::new(), PeerBook::new());
/// let (one, mut inbox_one) =
///     Transport::<String>::bind(TransportConfig::new(1, "demo", any_port), book_one.clone(), Faults::default())
///         .await?;
/// let (two, _inbox_two) =
///     Transport::<String>::bind(TransportConfig::new(2, "demo", any_port), book_two.clone(), Faults::default())
///         .await?;
/// book_one.insert(2, two.local_addr().to_string()); // node 1 accepts node 2 …
/// book_two.insert(1, one.local_addr().to_string()); // … and node 2 knows where node 1 listens
///
/// assert!(two.send(1, "hello".to_string()));
/// assert_eq!(inbox_one.recv().await, Some((2, "hello".to_string())));
/// one.shutdown().await;
/// two.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Transport<T> {
    shared: Arc<Shared>,
    messages: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Transport<T> {
    fn clone(&self) -> Self {
        Transport { shared: Arc::clone(&self.shared), messages: PhantomData }
    }
}

/// What the transport's tasks share.
struct Shared {
    config: TransportConfig,
    identity: Identity,
    local_addr: SocketAddr,
    book: PeerBook,
    faults: Faults,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The sending side of one peer: its queue of encoded messages, drained by its outbound task.
struct Peer {
    queue: mpsc::Sender<Bytes>,
    link: Arc<Link>,
}

/// Counters shared by [`Transport::send`] and a peer's outbound task.
#[derive(Debug, Default)]
struct Link {
    connected: AtomicBool,
    dropped: AtomicU64,
    /// Bytes in the queue.
    queued_bytes: AtomicUsize,
    /// Set while the queue overflows, so the overflow is logged once, not per message.
    overflowing: AtomicBool,
}

impl Link {
    fn overflowed(&self, peer: NodeId) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer,
                "send queue full: dropping messages to this peer until it drains (Raft retransmits)"
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

impl<T> Transport<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Listens on `config.listen` and returns the transport and the inbox of received
    /// messages. Connections are accepted only from nodes in `book`; messages on links that
    /// `faults` blocks are dropped.
    pub async fn bind(
        config: TransportConfig,
        book: PeerBook,
        faults: Faults,
    ) -> io::Result<(Self, Inbox<T>)> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (inbox_sender, inbox) = mpsc::channel(config.inbox_len.max(1));
        let shared = Arc::new(Shared {
            identity: Identity { cluster: config.cluster.clone(), id: config.id },
            config,
            local_addr,
            book,
            faults,
            peers: Mutex::new(BTreeMap::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(inbound::accept(Arc::clone(&shared), listener, inbox_sender).in_current_span());
        tracing::info!(node = shared.identity.id, address = %local_addr, "transport listening");
        Ok((Transport { shared, messages: PhantomData }, inbox))
    }

    /// Queues `message` for `to` without waiting. Returns false when it was dropped: the
    /// queue is full, the link is blocked, the peer is this node, or the transport is shut
    /// down. A peer whose address is unknown keeps its messages queued until it is learned.
    pub fn send(&self, to: NodeId, message: T) -> bool {
        let shared = &self.shared;
        if to == shared.identity.id || shared.stop.is_cancelled() {
            return false;
        }
        if shared.faults.is_blocked(shared.identity.id, to) {
            tracing::trace!(peer = to, "link blocked by fault injection: message dropped");
            return false;
        }
        let bytes = match postcard::to_allocvec(&message) {
            Ok(bytes) if bytes.len() <= shared.config.max_frame_bytes => Bytes::from(bytes),
            Ok(bytes) => {
                let (size, limit) = (bytes.len(), shared.config.max_frame_bytes);
                tracing::warn!(peer = to, size, limit, "message exceeds max_frame_bytes; dropped");
                return false;
            }
            Err(error) => {
                tracing::error!(peer = to, %error, "cannot encode a message; dropped");
                return false;
            }
        };
        let mut peers = shared.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let peer = peers.entry(to).or_insert_with(|| {
            let (queue, receiver) = mpsc::channel(shared.config.queue_len.max(1));
            let link = Arc::new(Link::default());
            shared
                .tasks
                .spawn(outbound::run(Arc::clone(shared), to, receiver, Arc::clone(&link)).in_current_span());
            Peer { queue, link }
        });
        let size = bytes.len();
        if peer.link.queued_bytes.load(Ordering::Relaxed) + size > shared.config.queue_bytes {
            peer.link.overflowed(to);
            return false;
        }
        match peer.queue.try_send(bytes) {
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
}

impl<T> Transport<T> {
    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The state of each peer this node has sent to.
    pub fn links(&self) -> Vec<PeerLink> {
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
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}
