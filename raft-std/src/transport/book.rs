//! [`PeerBook`]: where to reach each node.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use raft_core::NodeId;

/// The address (`host:port`) of each known node, shared between the transport, which dials
/// these addresses and accepts connections only from these nodes, and whoever learns new ones
/// ([`RaftNode`](crate::RaftNode) replicates addresses of added members through the log).
///
/// ```
/// use raft_std::PeerBook;
/// let book: PeerBook = [(2, "127.0.0.1:7002".to_string())].into_iter().collect();
/// book.insert(3, "127.0.0.1:7003");
/// assert_eq!(book.get(3).as_deref(), Some("127.0.0.1:7003"));
/// assert!(book.contains(2) && !book.contains(4));
/// ```
#[derive(Clone, Debug, Default)]
pub struct PeerBook {
    addresses: Arc<RwLock<BTreeMap<NodeId, String>>>,
}

impl PeerBook {
    /// An empty book.
    pub fn new() -> Self {
        PeerBook::default()
    }

    /// Records (or replaces) the address of `id`. Returns whether anything changed.
    pub fn insert(&self, id: NodeId, address: impl Into<String>) -> bool {
        let address = address.into();
        let mut addresses = self.addresses.write().unwrap_or_else(PoisonError::into_inner);
        addresses.insert(id, address.clone()).as_ref() != Some(&address)
    }

    /// The address of `id`, if known.
    pub fn get(&self, id: NodeId) -> Option<String> {
        self.addresses.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Whether the address of `id` is known.
    pub fn contains(&self, id: NodeId) -> bool {
        self.addresses.read().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }
}

impl FromIterator<(NodeId, String)> for PeerBook {
    fn from_iter<I: IntoIterator<Item = (NodeId, String)>>(iter: I) -> Self {
        PeerBook { addresses: Arc::new(RwLock::new(iter.into_iter().collect())) }
    }
}
