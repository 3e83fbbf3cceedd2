//! The machinery that [`TcpTransport`](super::TcpTransport) and `TlsTransport` share: one
//! outgoing connection per peer fed by a bounded queue, reconnection with backoff, accepted
//! connections bounded in number and in what they may make this node buffer, and the
//! handshake that says who is on each connection.
//!
//! What differs between the two is the [`Secure`] layer a connection goes through before the
//! handshake: nothing (plain TCP, where the handshake's claimed id stands), or mutual TLS
//! (where the peer's certificate names it, and the handshake must agree).
//!
//! Each node dials one outgoing connection per peer for what it sends, and accepts incoming
//! connections for what it receives. The acceptor takes a connection only from a peer it
//! knows (one named by [`Transport::set_peer_address`]); the `from` of every received frame is
//! the peer the connection was authenticated as.

mod book;
mod handshake;
mod inbound;
mod outbound;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use raft_core::{Bytes, NodeId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::book::PeerBook;
use self::handshake::Identity;
pub(crate) use self::handshake::HELLO_OVERHEAD;
use super::{PeerLink, TcpConfig};

/// What a connection goes through before the handshake, on both sides.
pub(crate) trait Secure: Send + Sync + 'static {
    /// The secured byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Secures a connection this node dialed to reach peer `to`; fails unless the other end
    /// proves to be `to` (for layers that authenticate).
    fn connect(
        &self,
        tcp: TcpStream,
        to: NodeId,
    ) -> impl Future<Output = Result<Secured<Self::Stream>, String>> + Send;

    /// Secures a connection this node accepted.
    fn accept(&self, tcp: TcpStream) -> impl Future<Output = Result<Secured<Self::Stream>, String>> + Send;
}

/// A connection through a [`Secure`] layer.
pub(crate) struct Secured<S> {
    pub(crate) stream: S,
    /// The peer as the layer authenticated it (the node its certificate names), or `None` for a
    /// layer that does not authenticate: then the handshake's claim stands.
    pub(crate) peer: Option<NodeId>,
    /// Cancelled once the credentials that secured the connection are replaced: the connection
    /// then closes, and the next one uses the new credentials.
    pub(crate) retired: CancellationToken,
}

/// The shared machinery, generic over the [`Secure`] layer. [`TcpTransport`] and `TlsTransport`
/// wrap it and implement [`Transport`](super::Transport) with it.
///
/// [`TcpTransport`]: super::TcpTransport
pub(crate) struct Net<S> {
    shared: Arc<Shared<S>>,
    inbox: mpsc::Receiver<(NodeId, Bytes)>,
}

/// What the transport's tasks share.
struct Shared<S> {
    config: TcpConfig,
    identity: Identity,
    local_addr: SocketAddr,
    book: PeerBook,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// The accepted connection of each peer, by serial number: a newer one replaces it.
    inbound: Mutex<BTreeMap<NodeId, (u64, CancellationToken)>>,
    next_serial: AtomicU64,
    /// One permit per accepted connection, handshaking or established.
    connections: Arc<Semaphore>,
    secure: S,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The sending side of one peer: its queue of frames, drained by its outbound task.
struct Peer {
    queue: mpsc::Sender<Bytes>,
    link: Arc<Link>,
}

/// Counters shared by [`Net::send`] and a peer's outbound task.
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

impl<S: Secure> Shared<S> {
    /// Records `from`'s newly accepted connection; the one it had before is closed (a peer
    /// that reconnects has given up on it). Returns the connection's serial number, for
    /// [`Shared::closed_inbound`], and the token that closes it when replaced.
    fn opened_inbound(&self, from: NodeId) -> (u64, CancellationToken) {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut inbound = self.inbound.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, older)) = inbound.insert(from, (serial, token.clone())) {
            tracing::debug!(peer = from, "a newer connection from the peer replaces the older one");
            older.cancel();
        }
        (serial, token)
    }

    /// Forgets `from`'s connection `serial`, unless a newer one replaced it.
    fn closed_inbound(&self, from: NodeId, serial: u64) {
        let mut inbound = self.inbound.lock().unwrap_or_else(PoisonError::into_inner);
        if inbound.get(&from).is_some_and(|(current, _)| *current == serial) {
            inbound.remove(&from);
        }
    }
}

impl<S: Secure> Net<S> {
    /// Listens on `config.listen` as node `id`, securing connections with `secure`.
    pub(crate) async fn bind(id: NodeId, config: TcpConfig, secure: S) -> io::Result<Self> {
        config.check()?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (inbox_sender, inbox) = mpsc::channel(config.inbox_len.max(1));
        let shared = Arc::new(Shared {
            identity: Identity { cluster: config.cluster.clone(), id },
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config,
            local_addr,
            book: PeerBook::default(),
            peers: Mutex::new(BTreeMap::new()),
            inbound: Mutex::new(BTreeMap::new()),
            next_serial: AtomicU64::new(0),
            secure,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(inbound::accept(Arc::clone(&shared), listener, inbox_sender).in_current_span());
        tracing::info!(node = id, address = %local_addr, "transport listening");
        Ok(Net { shared, inbox })
    }

    /// The address the transport listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Runs `task` beside the transport's own until the transport shuts down.
    #[cfg(feature = "tls")]
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.shared.stop.clone();
        self.shared.tasks.spawn(
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = task => {}
                }
            }
            .in_current_span(),
        );
    }

    /// Queues `frame` for `to`. A peer whose address is unknown keeps its frames queued until
    /// it is learned.
    pub(crate) fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
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

    pub(crate) async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
        self.inbox.recv().await
    }

    pub(crate) fn set_peer_address(&mut self, id: NodeId, address: &str) {
        if id != self.shared.identity.id {
            self.shared.book.insert(id, address);
        }
    }

    /// The state of each peer this node has sent to.
    pub(crate) fn links(&self) -> Vec<PeerLink> {
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
    pub(crate) async fn shutdown(&mut self) {
        self.shared.stop.cancel();
        self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {} // frames still queued are dropped
    }
}
