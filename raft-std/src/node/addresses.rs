//! [`Addresses`]: the peer addresses a node learns from its configuration and from the log, on
//! their way to the transport.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use raft_core::NodeId;
use tokio::sync::Notify;

/// Addresses learned but not yet handed to the transport. The state machine (on the storage
/// thread) records them; the node task takes them and calls
/// [`Transport::set_peer_address`](crate::Transport::set_peer_address). Holds one address per
/// node at most, so it is bounded by the number of members.
#[derive(Clone, Debug, Default)]
pub(super) struct Addresses {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<BTreeMap<NodeId, String>>,
    learned: Notify,
}

impl Addresses {
    /// Records where `id` listens, for the node task to pass on.
    pub(super) fn learn(&self, id: NodeId, address: String) {
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, address);
        self.shared.learned.notify_one();
    }

    /// Resolves once an address has been learned since the last [`take`](Addresses::take)
    /// (at once if one is waiting). Cancel-safe.
    pub(super) async fn learned(&self) {
        self.shared.learned.notified().await;
    }

    /// The addresses learned since the last call.
    pub(super) fn take(&self) -> BTreeMap<NodeId, String> {
        std::mem::take(&mut *self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
