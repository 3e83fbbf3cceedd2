//! [`UdpTransport`]: Raft messages as UDP datagrams over embassy-net.
//!
//! A datagram carries one frame: a header byte (`1` plain, `2` authenticated), the postcard
//! [`WireMessage`], and with a [`FrameKey`](crate::FrameKey) a 16-byte tag. The node loop hands
//! messages to [`UdpTransport::send`], which frames them into the recipient's bounded queue
//! and never waits; a sender task ([`UdpTransport::run_sender`]) drains the queues into the
//! socket. When a peer's queue is full the new frame is dropped and counted, as raft-std does:
//! Raft retransmits. [`UdpTransport::incoming`] turns received datagrams into the node's
//! [`Incoming`] messages, dropping and counting what is malformed, unauthenticated, from an
//! unknown endpoint or for another node.
//!
//! ```no_run
//! # async fn example(stack: embassy_net::Stack<'static>) {
//! use embassy_net::udp::{PacketMetadata, UdpSocket};
//! use embassy_net::{IpEndpoint, Ipv4Address};
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use futures::{future, StreamExt};
//! use raft_core::{Membership, Outgoing, RaftStreamExt};
//! use raft_embassy::{small_frame_config, Framing, TickExt, UdpTransport, DEFAULT_TICK, SMALL_UDP_FRAME};
//!
//! let endpoint = |last| IpEndpoint::new(Ipv4Address::new(192, 0, 2, last).into(), 7100);
//! let peers = [(1, endpoint(1)), (2, endpoint(2)), (3, endpoint(3))];
//! let framing = Framing::Udp { authenticated: false };
//! let config = small_frame_config(framing, SMALL_UDP_FRAME, 3).unwrap();
//! // 2 peers, 8 frames queued per peer, frames of SMALL_UDP_FRAME bytes.
//! let transport: UdpTransport<CriticalSectionRawMutex, 3, 8, SMALL_UDP_FRAME> =
//!     UdpTransport::new(1, &peers, &config).unwrap();
//!
//! let (mut rx_meta, mut tx_meta) = ([PacketMetadata::EMPTY; 8], [PacketMetadata::EMPTY; 8]);
//! let (mut rx, mut tx) = ([0; 4096], [0; 4096]);
//! let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
//! socket.bind(7100).unwrap();
//!
//! let log = raft_embassy::RamState::<64>::with_buffer(Membership::new([1, 2, 3]));
//! let machine: Vec<raft_core::Bytes> = Vec::new();
//! let inputs = transport.incoming(&socket).with_ticks(DEFAULT_TICK);
//! let node = inputs.into_raft_events_with(1, (log, machine), config).for_each(|output| {
//!     if let Ok(Outgoing::Send { to, message }) = output {
//!         let _counted_when_dropped = transport.send(to, message);
//!     }
//!     future::ready(())
//! });
//! future::join(node, transport.run_sender(&socket)).await;
//! # }
//! ```

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use embassy_net::udp::{RecvError, SendError, UdpSocket};
use embassy_net::IpEndpoint;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use futures_core::stream::Stream;
use heapless::Deque;
use raft_core::{Config, Incoming, Message, NodeId};

use crate::budget::{check_frames, FrameBudgetError, Framing};
use crate::wire::WireMessage;

/// Frame bytes that cross any IPv4 path without fragmentation (576-byte datagrams less the
/// IPv4 and UDP headers): the frame size for [`small_frame_config`](crate::small_frame_config)
/// on networks of unknown MTU, radios (6LoWPAN, Thread) included.
pub const SMALL_UDP_FRAME: usize = 508;

const PLAIN: u8 = 1;
const AUTHENTICATED: u8 = 2;

/// Counters of a [`UdpTransport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Frames handed to the socket.
    pub sent: u32,
    /// Frames dropped because the recipient's queue was full.
    pub queue_full: u32,
    /// Frames the socket refused (no route, or larger than its buffer).
    pub send_failed: u32,
    /// Valid frames delivered to the node.
    pub received: u32,
    /// Datagrams that were truncated, not frames, or did not decode.
    pub malformed: u32,
    /// Frames whose authentication failed, or that lacked (or carried) a tag against this
    /// node's configuration.
    pub rejected_auth: u32,
    /// Frames from an endpoint not in the peer map, or whose sender id is not that endpoint's.
    pub unknown_sender: u32,
    /// Frames addressed to another node.
    pub misaddressed: u32,
}

impl fmt::Display for UdpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent, {} dropped on full queues, {} refused by the socket; {} received, {} malformed, \
             {} failed authentication, {} from unknown senders, {} misaddressed",
            self.sent,
            self.queue_full,
            self.send_failed,
            self.received,
            self.malformed,
            self.rejected_auth,
            self.unknown_sender,
            self.misaddressed
        )
    }
}

/// Why a [`UdpTransport`] cannot be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdpSetupError {
    /// More peers than the transport's `PEERS` capacity.
    TooManyPeers {
        /// The capacity.
        capacity: usize,
    },
    /// A node id appears twice in the peer map.
    DuplicatePeer(NodeId),
    /// The configuration lets raft-core send messages larger than the frames.
    Frames(FrameBudgetError),
    /// The socket's send or receive buffer cannot hold one frame.
    SocketBufferTooSmall {
        /// The socket buffer's payload capacity.
        capacity: usize,
        /// The frame size.
        frame: usize,
    },
}

impl fmt::Display for UdpSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpSetupError::TooManyPeers { capacity } => {
                write!(f, "the peer map holds more than {capacity} peers: raise the PEERS parameter")
            }
            UdpSetupError::DuplicatePeer(id) => write!(f, "node {id} appears twice in the peer map"),
            UdpSetupError::Frames(e) => e.fmt(f),
            UdpSetupError::SocketBufferTooSmall { capacity, frame } => write!(
                f,
                "the UDP socket's buffers hold {capacity} bytes, less than one {frame}-byte frame: enlarge them"
            ),
        }
    }
}

impl core::error::Error for UdpSetupError {}

/// Raft over UDP for node `me`: a node-id → endpoint map of up to `PEERS` nodes (this node's
/// entry may be included), a queue of `DEPTH` frames per peer, frames of at most `FRAME`
/// bytes (use [`SMALL_UDP_FRAME`] where the path MTU is unknown). Its worst-case heap is
/// `PEERS × DEPTH × FRAME` bytes of queued frames; the receive buffer (`FRAME` bytes) lives in
/// the [`incoming`](Self::incoming) stream.
///
/// `M` is the embassy-sync raw mutex shared by the node loop and the sender task
/// (`CriticalSectionRawMutex`, or `NoopRawMutex` within one executor).
pub struct UdpTransport<M: RawMutex, const PEERS: usize, const DEPTH: usize, const FRAME: usize> {
    me: NodeId,
    peers: heapless::Vec<(NodeId, IpEndpoint), PEERS>,
    queues: Mutex<M, RefCell<[Deque<Vec<u8>, DEPTH>; PEERS]>>,
    ready: Signal<M, ()>,
    stats: Mutex<M, Cell<UdpStats>>,
    #[cfg(feature = "auth")]
    key: Option<crate::auth::FrameKey>,
}

impl<M: RawMutex, const PEERS: usize, const DEPTH: usize, const FRAME: usize>
    UdpTransport<M, PEERS, DEPTH, FRAME>
{
    /// A transport for node `me` and the cluster's `peers`, unauthenticated. Fails unless every
    /// message `config` allows fits a `FRAME`-byte frame (see
    /// [`small_frame_config`](crate::small_frame_config)).
    pub fn new(me: NodeId, peers: &[(NodeId, IpEndpoint)], config: &Config) -> Result<Self, UdpSetupError> {
        let mut map = heapless::Vec::new();
        for &(id, endpoint) in peers {
            if map.iter().any(|&(known, _)| known == id) {
                return Err(UdpSetupError::DuplicatePeer(id));
            }
            map.push((id, endpoint)).map_err(|_| UdpSetupError::TooManyPeers { capacity: PEERS })?;
        }
        let transport = UdpTransport {
            me,
            peers: map,
            queues: Mutex::new(RefCell::new([const { Deque::new() }; PEERS])),
            ready: Signal::new(),
            stats: Mutex::new(Cell::new(UdpStats::default())),
            #[cfg(feature = "auth")]
            key: None,
        };
        transport.check(config)?;
        Ok(transport)
    }

    /// Authenticates every frame sent and requires it of every frame received. All nodes of
    /// the cluster must use the same key. Fails if a tagged frame no longer fits `config`.
    #[cfg(feature = "auth")]
    pub fn with_key(mut self, key: crate::auth::FrameKey, config: &Config) -> Result<Self, UdpSetupError> {
        self.key = Some(key);
        self.check(config)?;
        Ok(self)
    }

    fn authenticated(&self) -> bool {
        #[cfg(feature = "auth")]
        return self.key.is_some();
        #[cfg(not(feature = "auth"))]
        return false;
    }

    fn check(&self, config: &Config) -> Result<(), UdpSetupError> {
        let framing = Framing::Udp { authenticated: self.authenticated() };
        let members = self.peers.len().max(1);
        check_frames(config, framing, FRAME, members).map(drop).map_err(UdpSetupError::Frames)
    }

    /// Frames `message` for node `to` and queues it for the sender task. Never waits: when
    /// `to`'s queue is full, or `to` is unknown, the frame is dropped (and counted when the
    /// queue was full) and Raft retransmits.
    pub fn send(&self, to: NodeId, message: Message) -> Result<(), crate::Undelivered> {
        let slot = self.slot(to).ok_or(crate::Undelivered::UnknownNode(to))?;
        let frame =
            self.seal(&WireMessage { from: self.me, to, message }).ok_or(crate::Undelivered::Encode)?;
        let queued = self.queues.lock(|queues| queues.borrow_mut()[slot].push_back(frame).is_ok());
        if queued {
            self.ready.signal(());
            Ok(())
        } else {
            self.count(|stats| stats.queue_full += 1);
            Err(crate::Undelivered::InboxFull)
        }
    }

    /// Sends queued frames through `socket` as they come, one peer after another. Run it in its
    /// own task (or joined with the node loop); it never returns. A frame the socket refuses
    /// is counted and dropped. Fails at once if the socket's buffers cannot hold a frame.
    pub async fn run_sender(&self, socket: &UdpSocket<'_>) -> UdpSetupError {
        let capacity = socket.payload_send_capacity().min(socket.payload_recv_capacity());
        if capacity < FRAME {
            return UdpSetupError::SocketBufferTooSmall { capacity, frame: FRAME };
        }
        let mut next = 0;
        loop {
            let frame = self.queues.lock(|queues| {
                let mut queues = queues.borrow_mut();
                (0..PEERS)
                    .map(|i| (next + i) % PEERS)
                    .find_map(|slot| Some((slot, queues[slot].pop_front()?)))
            });
            let Some((slot, frame)) = frame else {
                self.ready.wait().await;
                continue;
            };
            next = slot + 1;
            let endpoint = self.peers[slot].1;
            match socket.send_to(&frame, endpoint).await {
                Ok(()) => self.count(|stats| stats.sent += 1),
                Err(SendError::NoRoute | SendError::PacketTooLarge | SendError::SocketNotBound) => {
                    self.count(|stats| stats.send_failed += 1)
                }
            }
        }
    }

    /// The messages for this node arriving on `socket`, as a stream to merge into the node's
    /// inputs. Never ends.
    pub fn incoming<'s>(&'s self, socket: &'s UdpSocket<'s>) -> impl Stream<Item = Incoming> + 's {
        futures_util::stream::unfold([0u8; FRAME], move |mut buf| async move {
            loop {
                let received = socket.recv_from(&mut buf).await;
                let outcome = match received {
                    Ok((len, meta)) => self.open(&buf[..len], meta.endpoint),
                    Err(RecvError::Truncated) => Err(Rejected::Malformed),
                };
                match outcome {
                    Ok(wire) => {
                        self.count(|stats| stats.received += 1);
                        return Some((wire.into(), buf));
                    }
                    Err(rejected) => self.count(|stats| match rejected {
                        Rejected::Malformed => stats.malformed += 1,
                        Rejected::Auth => stats.rejected_auth += 1,
                        Rejected::UnknownSender => stats.unknown_sender += 1,
                        Rejected::Misaddressed => stats.misaddressed += 1,
                    }),
                }
            }
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> UdpStats {
        self.stats.lock(Cell::get)
    }

    /// Frames waiting for the sender task, over all peers.
    pub fn queued(&self) -> usize {
        self.queues.lock(|queues| queues.borrow().iter().map(Deque::len).sum())
    }

    fn slot(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|&(peer, _)| peer == id).filter(|_| id != self.me)
    }

    fn count(&self, update: impl FnOnce(&mut UdpStats)) {
        self.stats.lock(|cell| {
            let mut stats = cell.get();
            update(&mut stats);
            cell.set(stats);
        });
    }

    /// Encodes a frame: header, postcard wire, tag. `None` if it does not fit `FRAME`.
    fn seal(&self, wire: &WireMessage) -> Option<Vec<u8>> {
        let header = if self.authenticated() { AUTHENTICATED } else { PLAIN };
        let frame = postcard::to_extend(wire, alloc::vec![header]).ok()?;
        #[cfg(feature = "auth")]
        let frame = match &self.key {
            Some(key) => {
                let tag = key.tag(&frame);
                let mut frame = frame;
                frame.extend_from_slice(&tag);
                frame
            }
            None => frame,
        };
        (frame.len() <= FRAME).then_some(frame)
    }

    /// Checks and decodes a received frame. Untrusted input: never panics.
    fn open(&self, frame: &[u8], source: IpEndpoint) -> Result<WireMessage, Rejected> {
        let (&header, _) = frame.split_first().ok_or(Rejected::Malformed)?;
        let body = match header {
            PLAIN if !self.authenticated() => &frame[1..],
            #[cfg(feature = "auth")]
            AUTHENTICATED => {
                let key = self.key.as_ref().ok_or(Rejected::Auth)?;
                let split = frame
                    .len()
                    .checked_sub(crate::auth::TAG_BYTES)
                    .filter(|&at| at > 1)
                    .ok_or(Rejected::Auth)?;
                let (signed, tag) = frame.split_at(split);
                if !key.verify(signed, tag) {
                    return Err(Rejected::Auth);
                }
                &signed[1..]
            }
            // A plain frame where frames must be authenticated, or the other way round.
            PLAIN => return Err(Rejected::Auth),
            #[cfg(not(feature = "auth"))]
            AUTHENTICATED => return Err(Rejected::Auth),
            _ => return Err(Rejected::Malformed),
        };
        let wire = WireMessage::from_frame(body).map_err(|_| Rejected::Malformed)?;
        let sender = self.peers.iter().find(|&&(id, _)| id == wire.from);
        if sender.is_none_or(|&(_, endpoint)| endpoint != source) {
            return Err(Rejected::UnknownSender);
        }
        if wire.to != self.me {
            return Err(Rejected::Misaddressed);
        }
        Ok(wire)
    }
}

/// Why a received frame was dropped.
enum Rejected {
    Malformed,
    Auth,
    UnknownSender,
    Misaddressed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::small_frame_config;
    use embassy_net::Ipv4Address;
    use embassy_sync::blocking_mutex::raw::NoopRawMutex;

    type Transport = UdpTransport<NoopRawMutex, 3, 2, SMALL_UDP_FRAME>;

    fn endpoint(last: u8) -> IpEndpoint {
        IpEndpoint::new(Ipv4Address::new(192, 0, 2, last).into(), 7100)
    }

    fn peers() -> [(NodeId, IpEndpoint); 3] {
        [(1, endpoint(1)), (2, endpoint(2)), (3, endpoint(3))]
    }

    fn config(authenticated: bool) -> Config {
        small_frame_config(Framing::Udp { authenticated }, SMALL_UDP_FRAME, 3).unwrap()
    }

    #[test]
    fn full_queues_drop_and_count_without_waiting() {
        let transport = Transport::new(1, &peers(), &config(false)).unwrap();
        let message = || Message::TimeoutNow { term: 1 };
        assert_eq!(transport.send(2, message()), Ok(()));
        assert_eq!(transport.send(2, message()), Ok(()));
        assert_eq!(transport.send(2, message()), Err(crate::Undelivered::InboxFull));
        assert_eq!(transport.send(3, message()), Ok(()), "each peer has its own queue");
        assert_eq!(transport.send(1, message()), Err(crate::Undelivered::UnknownNode(1)), "not to itself");
        assert_eq!(transport.send(9, message()), Err(crate::Undelivered::UnknownNode(9)));
        assert_eq!(transport.queued(), 3);
        assert_eq!(transport.stats().queue_full, 1);
    }

    #[test]
    fn setup_errors_name_the_fix() {
        let too_many = [(1, endpoint(1)), (2, endpoint(2)), (3, endpoint(3)), (4, endpoint(4))];
        assert_eq!(
            Transport::new(1, &too_many, &config(false)).err(),
            Some(UdpSetupError::TooManyPeers { capacity: 3 })
        );
        let twice = [(1, endpoint(1)), (2, endpoint(2)), (2, endpoint(3))];
        assert_eq!(Transport::new(1, &twice, &config(false)).err(), Some(UdpSetupError::DuplicatePeer(2)));
        let error = Transport::new(1, &peers(), &Config::default()).err().unwrap();
        assert!(matches!(error, UdpSetupError::Frames(FrameBudgetError::AppendTooLarge { .. })), "{error}");
        assert!(error.to_string().contains("max_append_bytes to at most"), "{error}");
    }

    #[test]
    fn frames_are_checked_before_they_are_believed() {
        let (one, two) = (
            Transport::new(1, &peers(), &config(false)).unwrap(),
            Transport::new(2, &peers(), &config(false)).unwrap(),
        );
        let frame =
            one.seal(&WireMessage { from: 1, to: 2, message: Message::TimeoutNow { term: 4 } }).unwrap();
        assert!(two.open(&frame, endpoint(1)).is_ok());
        assert!(matches!(two.open(&frame, endpoint(3)), Err(Rejected::UnknownSender)), "a spoofed sender");
        assert!(matches!(one.open(&frame, endpoint(1)), Err(Rejected::Misaddressed)));
        for cut in 0..frame.len() {
            assert!(two.open(&frame[..cut], endpoint(1)).is_err(), "cut at {cut}");
        }
        assert!(matches!(two.open(&[9, 1, 2], endpoint(1)), Err(Rejected::Malformed)));
    }

    #[cfg(feature = "auth")]
    #[test]
    fn authenticated_frames_need_the_key() {
        use crate::auth::FrameKey;
        let keyed = |me, key: u8| {
            let config = config(true);
            Transport::new(me, &peers(), &config)
                .unwrap()
                .with_key(FrameKey::new([key; 32]), &config)
                .unwrap()
        };
        let (one, two, stranger) = (keyed(1, 5), keyed(2, 5), keyed(1, 6));
        let plain = Transport::new(1, &peers(), &config(true)).unwrap();
        let wire = WireMessage { from: 1, to: 2, message: Message::TimeoutNow { term: 4 } };
        let frame = one.seal(&wire).unwrap();
        assert_eq!(two.open(&frame, endpoint(1)).ok(), Some(wire.clone()));
        assert!(matches!(two.open(&stranger.seal(&wire).unwrap(), endpoint(1)), Err(Rejected::Auth)));
        assert!(
            matches!(two.open(&plain.seal(&wire).unwrap(), endpoint(1)), Err(Rejected::Auth)),
            "untagged"
        );
        assert!(matches!(plain.open(&frame, endpoint(1)), Err(Rejected::Auth)), "tagged, but no key here");
        for byte in 0..frame.len() {
            let mut flipped = frame.clone();
            flipped[byte] ^= 0x20;
            assert!(two.open(&flipped, endpoint(1)).is_err(), "flip in byte {byte}");
        }
    }
}
