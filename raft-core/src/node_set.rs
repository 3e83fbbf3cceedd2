//! [`NodeSet`]: a small, sorted set of node ids.
//!
//! Clusters have a handful of members, so a sorted vector beats a B-tree here: less code
//! (which matters on a microcontroller), fewer allocations, and deterministic order.

use alloc::vec::Vec;
use core::slice;
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// A set of node ids, iterated in ascending order.
///
/// ```
/// use raft_core::NodeSet;
/// let mut set: NodeSet = [3, 1, 2, 3].into_iter().collect();
/// assert!(set.insert(0) && !set.insert(2));
/// assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
/// assert!(set.remove(&1) && set.contains(&3));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "Vec<NodeId>", into = "Vec<NodeId>")]
pub struct NodeSet(Vec<NodeId>);

impl NodeSet {
    /// An empty set.
    pub const fn new() -> Self {
        NodeSet(Vec::new())
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.0.binary_search(id).is_ok()
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: NodeId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(position) => {
                self.0.insert(position, id);
                true
            }
        }
    }

    /// Removes `id`; returns whether it was there.
    pub fn remove(&mut self, id: &NodeId) -> bool {
        match self.0.binary_search(id) {
            Ok(position) => {
                self.0.remove(position);
                true
            }
            Err(_) => false,
        }
    }

    /// Keeps only the ids for which `keep` holds.
    pub fn retain(&mut self, keep: impl FnMut(&NodeId) -> bool) {
        self.0.retain(keep);
    }

    /// Removes every id.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> slice::Iter<'_, NodeId> {
        self.0.iter()
    }

    /// The ids in ascending order, as a slice.
    pub fn as_slice(&self) -> &[NodeId] {
        &self.0
    }

    /// The ids in either set, ascending, each once.
    pub fn union(&self, other: &NodeSet) -> NodeSet {
        let mut union = self.clone();
        union.extend(other.iter().copied());
        union
    }
}

impl Extend<NodeId> for NodeSet {
    fn extend<I: IntoIterator<Item = NodeId>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}

impl FromIterator<NodeId> for NodeSet {
    fn from_iter<I: IntoIterator<Item = NodeId>>(ids: I) -> Self {
        let mut set = NodeSet::new();
        set.extend(ids);
        set
    }
}

impl<const N: usize> From<[NodeId; N]> for NodeSet {
    fn from(ids: [NodeId; N]) -> Self {
        ids.into_iter().collect()
    }
}

impl From<Vec<NodeId>> for NodeSet {
    fn from(ids: Vec<NodeId>) -> Self {
        ids.into_iter().collect()
    }
}

impl From<NodeSet> for Vec<NodeId> {
    fn from(set: NodeSet) -> Self {
        set.0
    }
}

impl IntoIterator for NodeSet {
    type Item = NodeId;
    type IntoIter = alloc::vec::IntoIter<NodeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a NodeSet {
    type Item = &'a NodeId;
    type IntoIter = slice::Iter<'a, NodeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn stays_sorted_and_unique_whatever_the_input() {
        let set: NodeSet = [5, 1, 5, 3].into();
        assert_eq!(set.as_slice(), [1, 3, 5]);
        assert_eq!(set.union(&[2, 3, 9].into()).as_slice(), [1, 2, 3, 5, 9]);
        let decoded: NodeSet =
            postcard::from_bytes(&postcard::to_allocvec(&vec![9u64, 2, 9]).unwrap()).unwrap();
        assert_eq!(decoded.as_slice(), [2, 9], "a decoded set is normalised too");
        assert_eq!(postcard::to_allocvec(&set).unwrap(), postcard::to_allocvec(&vec![1u64, 3, 5]).unwrap());
    }
}
