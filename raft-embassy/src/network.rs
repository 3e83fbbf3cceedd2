//! [`LocalNetwork`]: nodes in one firmware exchange postcard frames through embassy-sync
//! channels, over links that can be cut and healed.
//!
//! Every message is encoded into an [`WireMessage`] frame by the sender and decoded by the
//! receiver's [`Inbox`], exactly as it would be on a real wire, so a single-chip cluster tests the
//! wire format too. Delivery is best effort, like any network Raft runs on: a frame for a full
//! inbox or over a cut link is dropped and counted, and Raft retransmits.

use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::{Channel, Receiver};
use futures_core::stream::Stream;
use futures_util::StreamExt;
use raft_core::{Incoming, Message, NodeId};

use crate::wire::WireMessage;

/// Up to `NODES` nodes (at most 32) in one firmware, each with an inbox of `DEPTH` frames.
///
/// `M` is the embassy-sync raw mutex guarding the channels: `CriticalSectionRawMutex` for a
/// `static` shared with interrupts or other executors, `NoopRawMutex` within one executor.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use raft_core::Message;
/// use raft_embassy::{LocalNetwork, Undelivered};
///
/// static NETWORK: LocalNetwork<CriticalSectionRawMutex, 3, 8> = LocalNetwork::new([1, 2, 3]);
///
/// NETWORK.isolate(1);
/// let message = Message::TimeoutNow { term: 1 };
/// assert_eq!(NETWORK.send(1, 2, message.clone()), Err(Undelivered::LinkDown));
/// NETWORK.heal();
/// assert_eq!(NETWORK.send(1, 2, message), Ok(()));
/// assert_eq!(NETWORK.stats().delivered, 1);
/// ```
pub struct LocalNetwork<M: RawMutex, const NODES: usize, const DEPTH: usize> {
    ids: [NodeId; NODES],
    inboxes: [Channel<M, Vec<u8>, DEPTH>; NODES],
    /// `cut[i]` has bit `j` set when the link between slots `i` and `j` is down.
    cut: Mutex<M, Cell<[u32; NODES]>>,
    stats: Mutex<M, Cell<NetworkStats>>,
}

/// Frame counters of a [`LocalNetwork`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Frames put into an inbox.
    pub delivered: u32,
    /// Frames not delivered (see [`Undelivered`]) or not decodable by the receiver.
    pub dropped: u32,
}

impl fmt::Display for NetworkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} frames delivered, {} dropped", self.delivered, self.dropped)
    }
}

/// Why [`LocalNetwork::send`] dropped a frame. Raft tolerates each of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Undelivered {
    /// The sender or the recipient is not on this network.
    UnknownNode(NodeId),
    /// The link between the two nodes is cut.
    LinkDown,
    /// The recipient's inbox is full.
    InboxFull,
    /// The message could not be encoded.
    Encode,
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undelivered::UnknownNode(id) => write!(f, "node {id} is not on this network"),
            Undelivered::LinkDown => f.write_str("the link is cut"),
            Undelivered::InboxFull => f.write_str("the recipient's inbox is full"),
            Undelivered::Encode => f.write_str("the message could not be encoded"),
        }
    }
}

impl core::error::Error for Undelivered {}

impl<M: RawMutex, const NODES: usize, const DEPTH: usize> LocalNetwork<M, NODES, DEPTH> {
    /// A network of the nodes `ids`, all links up.
    pub const fn new(ids: [NodeId; NODES]) -> Self {
        const { assert!(NODES <= 32, "a LocalNetwork holds at most 32 nodes") };
        LocalNetwork {
            ids,
            inboxes: [const { Channel::new() }; NODES],
            cut: Mutex::new(Cell::new([0; NODES])),
            stats: Mutex::new(Cell::new(NetworkStats { delivered: 0, dropped: 0 })),
        }
    }

    fn slot(&self, id: NodeId) -> Result<usize, Undelivered> {
        self.ids.iter().position(|&n| n == id).ok_or(Undelivered::UnknownNode(id))
    }

    /// Node `id`'s incoming messages, decoded, as a stream to merge with its other inputs; `None`
    /// if `id` is not on this network. Take it once per node: frames go to one reader.
    pub fn inbox(&self, id: NodeId) -> Option<Inbox<'_, M, DEPTH>> {
        let slot = self.slot(id).ok()?;
        Some(Inbox { id, frames: self.inboxes[slot].receiver(), stats: &self.stats })
    }

    /// Encodes `message` and puts the frame into `to`'s inbox, unless the link is cut or the
    /// inbox is full. Never waits.
    pub fn send(&self, from: NodeId, to: NodeId, message: Message) -> Result<(), Undelivered> {
        let result = self.try_deliver(from, to, message);
        count(&self.stats, |stats| match result {
            Ok(()) => stats.delivered += 1,
            Err(_) => stats.dropped += 1,
        });
        result
    }

    fn try_deliver(&self, from: NodeId, to: NodeId, message: Message) -> Result<(), Undelivered> {
        let (sender, receiver) = (self.slot(from)?, self.slot(to)?);
        if self.cut.lock(|cut| cut.get()[sender] & (1 << receiver) != 0) {
            return Err(Undelivered::LinkDown);
        }
        let frame = WireMessage { from, to, message }.to_frame().map_err(|_| Undelivered::Encode)?;
        self.inboxes[receiver].try_send(frame).map_err(|_| Undelivered::InboxFull)
    }

    /// Cuts or restores the link between `a` and `b`, in both directions. Unknown ids are
    /// ignored.
    pub fn set_link(&self, a: NodeId, b: NodeId, up: bool) {
        let (Ok(a), Ok(b)) = (self.slot(a), self.slot(b)) else { return };
        self.cut.lock(|cut| {
            let mut links = cut.get();
            for (from, to) in [(a, b), (b, a)] {
                if up {
                    links[from] &= !(1 << to);
                } else {
                    links[from] |= 1 << to;
                }
            }
            cut.set(links);
        });
    }

    /// Cuts every link of node `id`: a network partition with `id` alone on its side.
    pub fn isolate(&self, id: NodeId) {
        for peer in self.ids {
            if peer != id {
                self.set_link(id, peer, false);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock(|cut| cut.set([0; NODES]));
    }

    /// Drops the frames waiting in node `id`'s inbox (a node that restarts has lost them with
    /// its RAM). Unknown ids are ignored.
    pub fn clear_inbox(&self, id: NodeId) {
        if let Ok(slot) = self.slot(id) {
            self.inboxes[slot].clear();
        }
    }

    /// Frames delivered and dropped so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats.lock(Cell::get)
    }
}

/// Updates the counters under their lock.
fn count<M: RawMutex>(stats: &Mutex<M, Cell<NetworkStats>>, update: impl FnOnce(&mut NetworkStats)) {
    stats.lock(|cell| {
        let mut stats = cell.get();
        update(&mut stats);
        cell.set(stats);
    });
}

/// A node's incoming messages from a [`LocalNetwork`]: frames decoded into
/// [`Incoming::Message`]. Frames that do not decode, or are addressed to another node, are
/// dropped and counted. Never ends.
pub struct Inbox<'a, M: RawMutex, const DEPTH: usize> {
    id: NodeId,
    frames: Receiver<'a, M, Vec<u8>, DEPTH>,
    stats: &'a Mutex<M, Cell<NetworkStats>>,
}

impl<M: RawMutex, const DEPTH: usize> Stream for Inbox<'_, M, DEPTH> {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        while let Poll::Ready(Some(frame)) = self.frames.poll_next_unpin(cx) {
            match WireMessage::from_frame(&frame) {
                Ok(wire) if wire.to == self.id => return Poll::Ready(Some(wire.into())),
                _ => count(self.stats, |stats| stats.dropped += 1),
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::NoopRawMutex;
    use futures::executor::block_on;

    fn timeout_now(term: u64) -> Message {
        Message::TimeoutNow { term }
    }

    #[test]
    fn frames_arrive_decoded_until_the_inbox_is_full() {
        let network: LocalNetwork<NoopRawMutex, 2, 2> = LocalNetwork::new([7, 9]);
        assert_eq!(network.send(7, 9, timeout_now(1)), Ok(()));
        assert_eq!(network.send(7, 9, timeout_now(2)), Ok(()));
        assert_eq!(network.send(7, 9, timeout_now(3)), Err(Undelivered::InboxFull));
        assert_eq!(network.send(7, 8, timeout_now(3)), Err(Undelivered::UnknownNode(8)));
        assert!(network.inbox(8).is_none());

        let mut inbox = network.inbox(9).unwrap();
        let first = block_on(inbox.next());
        assert_eq!(first, Some(Incoming::Message { from: 7, message: timeout_now(1) }));
        assert_eq!(network.stats(), NetworkStats { delivered: 2, dropped: 2 });
    }

    #[test]
    fn links_are_cut_in_both_directions_and_healed() {
        let network: LocalNetwork<NoopRawMutex, 3, 4> = LocalNetwork::new([1, 2, 3]);
        network.set_link(1, 2, false);
        assert_eq!(network.send(2, 1, timeout_now(1)), Err(Undelivered::LinkDown));
        assert_eq!(network.send(1, 3, timeout_now(1)), Ok(()));
        network.set_link(2, 1, true);
        assert_eq!(network.send(1, 2, timeout_now(1)), Ok(()));
        network.isolate(3);
        assert_eq!(network.send(1, 3, timeout_now(1)), Err(Undelivered::LinkDown));
        assert_eq!(network.send(3, 2, timeout_now(1)), Err(Undelivered::LinkDown));
        network.heal();
        assert_eq!(network.send(3, 2, timeout_now(1)), Ok(()));
    }
}
