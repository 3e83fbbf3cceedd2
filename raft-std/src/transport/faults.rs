//! [`Faults`]: a test hook that cuts links between nodes.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use raft_core::NodeId;

/// Fault injection for partition tests: the set of directed links on which the transport
/// silently drops messages, both when sending and when receiving.
///
/// Share one handle among the transports of an in-process cluster, or give each process its
/// own (the `raft-kv` service exposes it over HTTP when started with `--fault-injection`).
/// A fresh handle blocks nothing, so production code can pass `Faults::default()`.
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

    /// Whether messages from `from` to `to` are dropped.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.read().unwrap_or_else(PoisonError::into_inner).contains(&(from, to))
    }

    /// The blocked directed links, in order.
    pub fn blocked_links(&self) -> Vec<(NodeId, NodeId)> {
        self.blocked.read().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }
}
