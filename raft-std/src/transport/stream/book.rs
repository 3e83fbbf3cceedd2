//! [`PeerBook`]: where to reach each peer, and whom to accept connections from.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use raft_core::NodeId;

/// The address (`host:port`) of each known peer, shared by the transport's tasks: outbound
/// tasks dial these addresses, and the acceptor takes connections only from these peers.
#[derive(Debug, Default)]
pub(super) struct PeerBook {
    addresses: RwLock<BTreeMap<NodeId, String>>,
}

impl PeerBook {
    /// Records (or replaces) the address of `id`.
    pub(super) fn insert(&self, id: NodeId, address: &str) {
        let mut addresses = self.addresses.write().unwrap_or_else(PoisonError::into_inner);
        if addresses.get(&id).map(String::as_str) != Some(address) {
            addresses.insert(id, address.to_string());
        }
    }

    /// The address of `id`, if known.
    pub(super) fn get(&self, id: NodeId) -> Option<String> {
        self.addresses.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Whether the address of `id` is known.
    pub(super) fn contains(&self, id: NodeId) -> bool {
        self.addresses.read().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }
}
