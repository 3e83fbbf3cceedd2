//! [`ChannelNetwork`] and [`ChannelTransport`]: nodes in one process, connected by bounded
//! channels, with fault injection (cut, heal, delay) for tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use tokio::sync::mpsc;

use super::{PeerLink, Transport};

/// Frames waiting in a node's inbox at most, by default; more are dropped.
pub const DEFAULT_CHANNEL_INBOX_LEN: usize = 4096;

/// An in-process network: every node [`join`](ChannelNetwork::join)s it and gets a
/// [`ChannelTransport`]. Cheap to clone; clones control the same network.
///
/// The sender of every frame is known by construction. Faults apply to frames sent after the
/// call: [`cut`](ChannelNetwork::cut) drops them on a link (both directions),
/// [`heal`](ChannelNetwork::heal) restores every link, [`set_delay`](ChannelNetwork::set_delay)
/// holds every frame back for a while (and drops it if its link is cut by the time it is due).
///
/// ```
/// use raft_core::Bytes;
/// use raft_std::{ChannelNetwork, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let network = ChannelNetwork::new();
/// let (mut one, mut two) = (network.join(1), network.join(2));
/// assert!(one.send(2, Bytes::from_static(b"hello")));
/// assert_eq!(two.recv().await, Some((1, Bytes::from_static(b"hello"))));
///
/// network.cut(1, 2);
/// assert!(!one.send(2, Bytes::from_static(b"lost")));
/// assert_eq!(one.links()[0].dropped, 1);
/// network.heal();
/// assert!(one.send(2, Bytes::from_static(b"again")));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ChannelNetwork {
    shared: Arc<Mutex<Network>>,
}

#[derive(Debug)]
struct Network {
    /// Each running node's inbox.
    inboxes: BTreeMap<NodeId, mpsc::Sender<(NodeId, Bytes)>>,
    /// Cut directed links.
    cut: BTreeSet<(NodeId, NodeId)>,
    delay: Duration,
    inbox_len: usize,
}

impl Default for ChannelNetwork {
    fn default() -> Self {
        ChannelNetwork::new()
    }
}

impl ChannelNetwork {
    /// A network whose inboxes hold [`DEFAULT_CHANNEL_INBOX_LEN`] frames.
    pub fn new() -> Self {
        ChannelNetwork::with_inbox_len(DEFAULT_CHANNEL_INBOX_LEN)
    }

    /// A network whose inboxes hold `inbox_len` frames (at least one); a frame sent to a full
    /// inbox is dropped and counted.
    pub fn with_inbox_len(inbox_len: usize) -> Self {
        let network = Network {
            inboxes: BTreeMap::new(),
            cut: BTreeSet::new(),
            delay: Duration::ZERO,
            inbox_len: inbox_len.max(1),
        };
        ChannelNetwork { shared: Arc::new(Mutex::new(network)) }
    }

    /// Connects node `id` and returns its transport. Joining again (a restarted node) replaces
    /// the earlier transport, whose inbox closes.
    pub fn join(&self, id: NodeId) -> ChannelTransport {
        let mut network = self.lock();
        let (sender, inbox) = mpsc::channel(network.inbox_len);
        network.inboxes.insert(id, sender.clone());
        ChannelTransport {
            id,
            network: Arc::clone(&self.shared),
            own: sender,
            inbox,
            dropped: BTreeMap::new(),
            delayed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut network = self.lock();
        network.cut.insert((a, b));
        network.cut.insert((b, a));
    }

    /// Cuts every link between `node` and `others`.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for other in others {
            self.cut(node, other);
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Delivers every frame sent from now on after `delay` (zero: at once, the default).
    /// Delayed frames need a tokio runtime; at most the inbox length of them wait per sender.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Whether frames from `from` to `to` are dropped.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.lock().cut.contains(&(from, to))
    }

    fn lock(&self) -> MutexGuard<'_, Network> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node's end of a [`ChannelNetwork`]: a [`Transport`] without addresses.
#[derive(Debug)]
pub struct ChannelTransport {
    id: NodeId,
    network: Arc<Mutex<Network>>,
    /// This node's inbox sender, to tell its registration from a later one.
    own: mpsc::Sender<(NodeId, Bytes)>,
    inbox: mpsc::Receiver<(NodeId, Bytes)>,
    dropped: BTreeMap<NodeId, u64>,
    /// Frames this node sent that wait out a delay.
    delayed: Arc<AtomicUsize>,
}

impl ChannelTransport {
    fn drop_frame(&mut self, to: NodeId) -> bool {
        *self.dropped.entry(to).or_default() += 1;
        false
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
        let (target, delay, limit) = {
            let network = self.network.lock().unwrap_or_else(PoisonError::into_inner);
            let target = network.inboxes.get(&to).filter(|_| !network.cut.contains(&(self.id, to))).cloned();
            (target, network.delay, network.inbox_len)
        };
        let Some(target) = target.filter(|_| to != self.id && !self.inbox.is_closed()) else {
            return self.drop_frame(to);
        };
        if delay.is_zero() {
            return target.try_send((self.id, frame)).is_ok() || self.drop_frame(to);
        }
        if self.delayed.load(Ordering::Relaxed) >= limit {
            return self.drop_frame(to);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.drop_frame(to);
        };
        self.delayed.fetch_add(1, Ordering::Relaxed);
        let (from, delayed, network) = (self.id, Arc::clone(&self.delayed), Arc::clone(&self.network));
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let cut = network.lock().unwrap_or_else(PoisonError::into_inner).cut.contains(&(from, to));
            if !cut {
                let _ = target.try_send((from, frame));
            }
            delayed.fetch_sub(1, Ordering::Relaxed);
        });
        true
    }

    async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
        self.inbox.recv().await
    }

    fn set_peer_address(&mut self, _id: NodeId, _address: &str) {}

    /// Every other node that has joined the network, and the frames dropped on the way to it.
    fn links(&self) -> Vec<PeerLink> {
        let network = self.network.lock().unwrap_or_else(PoisonError::into_inner);
        let peers: BTreeSet<NodeId> =
            network.inboxes.keys().chain(self.dropped.keys()).copied().filter(|&id| id != self.id).collect();
        peers
            .into_iter()
            .map(|id| PeerLink {
                id,
                connected: network.inboxes.get(&id).is_some_and(|inbox| !inbox.is_closed())
                    && !network.cut.contains(&(self.id, id)),
                dropped: self.dropped.get(&id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Leaves the network: frames sent to this node are dropped from now on.
    async fn shutdown(&mut self) {
        let mut network = self.network.lock().unwrap_or_else(PoisonError::into_inner);
        if network.inboxes.get(&self.id).is_some_and(|inbox| inbox.same_channel(&self.own)) {
            network.inboxes.remove(&self.id);
        }
        drop(network);
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {} // frames still queued are dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn frames_arrive_late_with_a_delay_and_not_at_all_across_a_cut() {
        let network = ChannelNetwork::with_inbox_len(2);
        let (mut one, mut two) = (network.join(1), network.join(2));
        network.set_delay(Duration::from_millis(100));
        assert!(one.send(2, Bytes::from_static(b"late")));
        let start = tokio::time::Instant::now();
        assert_eq!(two.recv().await, Some((1, Bytes::from_static(b"late"))));
        assert!(start.elapsed() >= Duration::from_millis(100));

        // A frame in flight when the link is cut is lost.
        assert!(one.send(2, Bytes::from_static(b"in flight")));
        network.isolate(2, [1]);
        assert!(network.is_cut(1, 2) && network.is_cut(2, 1));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(two.inbox.try_recv().is_err());

        // Full inboxes drop and count; a node that left is unreachable.
        network.heal();
        network.set_delay(Duration::ZERO);
        let sent = (0..5).filter(|_| one.send(2, Bytes::new())).count();
        assert_eq!(sent, 2);
        assert_eq!(one.links(), [PeerLink { id: 2, connected: true, dropped: 3 }]);
        two.shutdown().await;
        assert!(!one.send(2, Bytes::new()));
        assert_eq!(two.recv().await, None);
        assert!(!one.send(1, Bytes::new()), "a node does not send to itself");
    }

    #[tokio::test]
    async fn a_rejoining_node_replaces_its_old_transport() {
        let network = ChannelNetwork::new();
        let (mut one, mut old) = (network.join(1), network.join(2));
        let mut new = network.join(2);
        old.shutdown().await; // the old transport leaving does not unregister the new one
        assert!(one.send(2, Bytes::from_static(b"x")));
        assert_eq!(new.recv().await, Some((1, Bytes::from_static(b"x"))));
    }
}
