//! How a [`RaftNode`](crate::RaftNode) reaches its peers: the [`Transport`] trait and the
//! implementations that come with raft-std.
//!
//! * [`TcpTransport`]: plain TCP with length-delimited frames, a cluster-id handshake,
//!   reconnection with backoff, bounded per-peer queues and a bounded number of accepted
//!   connections. It authenticates nobody: for networks only the cluster's nodes reach.
//! * `TlsTransport` (cargo feature `tls`): the same machinery over mutual TLS; each peer is
//!   the node its certificate names.
//! * [`ChannelNetwork`] / [`ChannelTransport`]: in-process channels, for tests and clusters in
//!   one binary, with fault injection (cut, heal, delay).
//! * `FaultyTransport` (cargo feature `testing`): cuts links of any other transport, for
//!   partition tests of real processes.

mod channel;
#[cfg(feature = "testing")]
mod faults;
mod stream;
mod tcp;
#[cfg(feature = "tls")]
mod tls;

use std::future::Future;

use raft_core::{Bytes, NodeId};
use serde::Serialize;

pub use self::channel::{ChannelNetwork, ChannelTransport, DEFAULT_CHANNEL_INBOX_LEN};
#[cfg(feature = "testing")]
pub use self::faults::{Faults, FaultyTransport};
pub use self::tcp::{TcpConfig, TcpTransport};
#[cfg(feature = "tls")]
pub use self::tls::{node_uri, TlsConfig, TlsError, TlsReloader, TlsTransport};

/// What a [`RaftNode`](crate::RaftNode) sends through and receives from: opaque frames between
/// nodes.
///
/// Raft tolerates loss, duplication and reordering, and retransmits what matters, so a
/// transport never blocks its caller and never needs to retry: when a peer is slow, down or
/// unknown, frames to it are queued up to a bound and then dropped (and counted in
/// [`links`](Transport::links)).
///
/// **Identity comes from the transport.** The `from` of every received frame is the peer as
/// the transport authenticated it — by a handshake on a connection it accepted from a known
/// peer (TCP), by a client certificate (mutual TLS), or by construction (channels) — never an
/// id claimed inside the frame. A transport that cannot tell who sent a frame must drop it.
///
/// The node calls these methods from one task; nothing here needs to be `Sync`.
///
/// A transport that delivers every frame to an in-process inbox, the shape of most
/// implementations (a gRPC or QUIC transport has the same four parts: a non-blocking bounded
/// send, an authenticated receive, an address book, a shutdown):
///
/// ```
/// use raft_core::{Bytes, NodeId};
/// use raft_std::{PeerLink, Transport};
/// use tokio::sync::mpsc;
///
/// /// Node `me`'s end of a two-node pipe.
/// struct Pipe {
///     me: NodeId,
///     peer: NodeId,
///     out: mpsc::Sender<Bytes>,
///     inbox: mpsc::Receiver<Bytes>,
///     dropped: u64,
/// }
///
/// impl Transport for Pipe {
///     fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
///         let sent = to == self.peer && self.out.try_send(frame).is_ok();
///         self.dropped += u64::from(!sent);
///         sent
///     }
///
///     async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
///         // The pipe's other end is `peer` by construction: that is the authentication.
///         Some((self.peer, self.inbox.recv().await?))
///     }
///
///     fn set_peer_address(&mut self, _id: NodeId, _address: &str) {}
///
///     fn links(&self) -> Vec<PeerLink> {
///         vec![PeerLink { id: self.peer, connected: !self.out.is_closed(), dropped: self.dropped }]
///     }
///
///     async fn shutdown(&mut self) {
///         self.inbox.close();
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (to_two, inbox_two) = mpsc::channel(16);
/// let (to_one, inbox_one) = mpsc::channel(16);
/// let mut one = Pipe { me: 1, peer: 2, out: to_two, inbox: inbox_one, dropped: 0 };
/// let mut two = Pipe { me: 2, peer: 1, out: to_one, inbox: inbox_two, dropped: 0 };
/// assert!(one.send(2, Bytes::from_static(b"hello")));
/// assert_eq!(two.recv().await, Some((1, Bytes::from_static(b"hello"))));
/// assert!(!one.send(3, Bytes::new()), "no link to node 3");
/// assert_eq!(one.links()[0].dropped, 1);
/// # }
/// ```
pub trait Transport: Send + 'static {
    /// Queues `frame` for peer `to` and returns at once: `true` if it was queued, `false` if it
    /// was dropped (the peer's queue is full, the peer is this node or unknown to a transport
    /// that cannot wait for its address, or the transport is shut down). Drops are counted in
    /// [`links`](Transport::links). Never blocks, never waits for the peer.
    fn send(&mut self, to: NodeId, frame: Bytes) -> bool;

    /// The next frame from a peer, with the peer's id **as the transport authenticated it**.
    /// `None` once the transport is shut down.
    ///
    /// Must be cancel-safe: the node polls it in a `select!`, and dropping the future before
    /// it completes must not lose a frame.
    fn recv(&mut self) -> impl Future<Output = Option<(NodeId, Bytes)>> + Send;

    /// Where peer `id` can be reached (`host:port` for TCP and TLS). The node calls it for the
    /// peers in its configuration at start, and for every member whose address it learns from
    /// the replicated log. A transport that accepts connections should accept them only from
    /// peers it was told about. Transports without addresses (channels) ignore it.
    fn set_peer_address(&mut self, id: NodeId, address: &str);

    /// The state of the link to each peer, for [`Status`](crate::Status) and monitoring.
    fn links(&self) -> Vec<PeerLink>;

    /// Closes every connection and waits for the transport's tasks to end. After it,
    /// [`recv`](Transport::recv) returns `None` and [`send`](Transport::send) drops.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// The state of the link to one peer, as [`Transport::links`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerLink {
    /// The peer.
    pub id: NodeId,
    /// Whether the peer is reachable now (for TCP: the outgoing connection is up).
    pub connected: bool,
    /// Frames to this peer dropped so far (queue full, link cut, peer down).
    pub dropped: u64,
}
