//! [`FaultyTransport`]: cuts links of any other [`Transport`], for partition tests of real
//! processes (cargo feature `testing`).

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use raft_core::{Bytes, NodeId};

use super::{PeerLink, Transport};

/// The set of cut directed links, shared between the [`FaultyTransport`]s that honour it and
/// whoever cuts and heals (a test, or raft-kv's `/debug` endpoints). A fresh handle cuts
/// nothing.
///
/// ```
/// use raft_std::Faults;
/// let faults = Faults::default();
/// faults.isolate(1, [2, 3]);
/// assert!(faults.is_blocked(1, 2) && faults.is_blocked(3, 1));
/// assert!(!faults.is_blocked(2, 3));
/// faults.heal();
/// assert!(!faults.is_blocked(1, 2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults {
    blocked: Arc<RwLock<BTreeSet<(NodeId, NodeId)>>>,
}

impl Faults {
    /// Cuts the link between `a` and `b` in both directions.
    pub fn block(&self, a: NodeId, b: NodeId) {
        let mut blocked = self.blocked.write().unwrap_or_else(PoisonError::into_inner);
        blocked.insert((a, b));
        blocked.insert((b, a));
    }

    /// Cuts every link between `node` and `others`.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for other in others {
            self.block(node, other);
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.blocked.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether frames from `from` to `to` are dropped.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.read().unwrap_or_else(PoisonError::into_inner).contains(&(from, to))
    }

    /// The cut directed links, in order.
    pub fn blocked_links(&self) -> Vec<(NodeId, NodeId)> {
        self.blocked.read().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }
}

/// Wraps node `id`'s transport and silently drops the frames that [`Faults`] cuts, both those
/// it would send and those it receives.
///
/// ```
/// use raft_core::Bytes;
/// use raft_std::{ChannelNetwork, Faults, FaultyTransport, Transport};
///
/// let (network, faults) = (ChannelNetwork::new(), Faults::default());
/// let mut one = FaultyTransport::new(1, network.join(1), faults.clone());
/// faults.block(1, 2);
/// assert!(!one.send(2, Bytes::from_static(b"lost")));
/// ```
#[derive(Debug)]
pub struct FaultyTransport<T> {
    id: NodeId,
    inner: T,
    faults: Faults,
}

impl<T> FaultyTransport<T> {
    /// Node `id`'s `inner` transport, with the links that `faults` cuts.
    pub fn new(id: NodeId, inner: T, faults: Faults) -> Self {
        FaultyTransport { id, inner, faults }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
        if self.faults.is_blocked(self.id, to) {
            tracing::trace!(peer = to, "link cut by fault injection: frame dropped");
            return false;
        }
        self.inner.send(to, frame)
    }

    async fn recv(&mut self) -> Option<(NodeId, Bytes)> {
        loop {
            let (from, frame) = self.inner.recv().await?;
            if !self.faults.is_blocked(from, self.id) {
                return Some((from, frame));
            }
        }
    }

    fn set_peer_address(&mut self, id: NodeId, address: &str) {
        self.inner.set_peer_address(id, address);
    }

    fn links(&self) -> Vec<PeerLink> {
        self.inner.links()
    }

    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}
