//! Majority and joint-majority math: commit index and vote tallies (Raft §5.2, §5.4, §6).
//!
//! Pure functions over sets of voters; table-tested here and property-tested against a naive
//! count.

use alloc::vec::Vec;

use crate::membership::Membership;
use crate::node_set::NodeSet;
use crate::types::{Index, NodeId};

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer grant.
    Lost,
    /// Undecided: waiting for more responses.
    Pending,
}

/// The highest index that a majority of `voters` has, given each voter's match index.
///
/// An empty voter set imposes no constraint and yields `Index::MAX` (so a joint configuration
/// whose outgoing half is empty reduces to the incoming half).
pub fn majority_index(voters: &NodeSet, match_index: impl Fn(NodeId) -> Index) -> Index {
    if voters.is_empty() {
        return Index::MAX;
    }
    // With n voters, the (n/2 + 1)-th highest value is held by a majority. Clusters are small:
    // count on the stack when they fit, and sort by insertion (tiny code, fast for small n).
    const INLINE: usize = 16;
    let mut inline = [0; INLINE];
    let mut heap = Vec::new();
    let indexes: &mut [Index] = if voters.len() <= INLINE {
        &mut inline[..voters.len()]
    } else {
        heap.resize(voters.len(), 0);
        &mut heap
    };
    for (slot, &id) in indexes.iter_mut().zip(voters) {
        *slot = match_index(id);
    }
    insertion_sort_descending(indexes);
    indexes[voters.len() / 2]
}

fn insertion_sort_descending(values: &mut [Index]) {
    for i in 1..values.len() {
        let mut j = i;
        while j > 0 && values[j - 1] < values[j] {
            values.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The highest index replicated on a quorum of the configuration (both halves when joint).
pub fn committed_index(membership: &Membership, match_index: impl Fn(NodeId) -> Index) -> Index {
    let incoming = majority_index(&membership.voters, &match_index);
    let outgoing = majority_index(&membership.outgoing, &match_index);
    incoming.min(outgoing)
}

/// The vote result of one voter set. `vote(id)` is `Some(granted)` for those who answered.
pub fn majority_vote(voters: &NodeSet, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut granted, mut missing) = (0, 0);
    for &id in voters {
        match vote(id) {
            Some(true) => granted += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if granted + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// The vote result in a configuration: a joint configuration needs both halves.
pub fn vote_result(membership: &Membership, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
    let incoming = majority_vote(&membership.voters, &vote);
    let outgoing = majority_vote(&membership.outgoing, &vote);
    match (incoming, outgoing) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    fn set(ids: &[NodeId]) -> NodeSet {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_index_table() {
        let cases: &[(&[NodeId], &[Index], Index)] = &[
            (&[1], &[5], 5),
            (&[1, 2], &[5, 3], 3),
            (&[1, 2, 3], &[5, 3, 1], 3),
            (&[1, 2, 3], &[5, 5, 1], 5),
            (&[1, 2, 3, 4], &[9, 8, 2, 1], 2),
            (&[1, 2, 3, 4, 5], &[9, 8, 7, 2, 1], 7),
            (&[1, 2, 3, 4, 5], &[0, 0, 0, 9, 9], 0),
        ];
        for (voters, matches, want) in cases {
            let by_id: BTreeMap<NodeId, Index> =
                voters.iter().copied().zip(matches.iter().copied()).collect();
            assert_eq!(majority_index(&set(voters), |id| by_id[&id]), *want, "{voters:?} {matches:?}");
        }
        assert_eq!(majority_index(&set(&[]), |_| 0), Index::MAX);
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        let m = Membership { voters: set(&[4, 5, 6]), outgoing: set(&[1, 2, 3]), learners: set(&[7]) };
        let matches: BTreeMap<NodeId, Index> =
            [(1, 10), (2, 10), (3, 1), (4, 4), (5, 1), (6, 1), (7, 99)].into();
        assert_eq!(committed_index(&m, |id| matches[&id]), 1);
        let matches: BTreeMap<NodeId, Index> =
            [(1, 10), (2, 10), (3, 1), (4, 4), (5, 6), (6, 1), (7, 99)].into();
        assert_eq!(committed_index(&m, |id| matches[&id]), 4);
    }

    #[test]
    fn vote_table() {
        use VoteResult::*;
        let voters = set(&[1, 2, 3]);
        let cases: &[(&[(NodeId, bool)], VoteResult)] = &[
            (&[], Pending),
            (&[(1, true)], Pending),
            (&[(1, true), (2, true)], Won),
            (&[(1, true), (2, false)], Pending),
            (&[(1, false), (2, false)], Lost),
            (&[(1, true), (2, false), (3, false)], Lost),
        ];
        for (votes, want) in cases {
            let votes: BTreeMap<NodeId, bool> = votes.iter().copied().collect();
            assert_eq!(majority_vote(&voters, |id| votes.get(&id).copied()), *want, "{votes:?}");
        }
        let joint =
            Membership { voters: set(&[1, 2, 3]), outgoing: set(&[3, 4, 5]), learners: NodeSet::new() };
        let votes: BTreeMap<NodeId, bool> = [(1, true), (2, true), (3, true)].into();
        assert_eq!(vote_result(&joint, |id| votes.get(&id).copied()), Pending);
        let votes: BTreeMap<NodeId, bool> = [(1, true), (2, true), (4, false), (5, false)].into();
        assert_eq!(vote_result(&joint, |id| votes.get(&id).copied()), Lost);
    }

    proptest! {
        /// The sort-based majority index equals the naive definition: the largest index that at
        /// least a majority of voters have reached.
        #[test]
        fn majority_index_matches_naive(matches in proptest::collection::vec(0u64..20, 1..9)) {
            let voters: NodeSet = (1..=matches.len() as NodeId).collect();
            let fast = majority_index(&voters, |id| matches[id as usize - 1]);
            let naive = (0..20u64)
                .filter(|&i| matches.iter().filter(|&&m| m >= i).count() > matches.len() / 2)
                .max()
                .unwrap();
            prop_assert_eq!(fast, naive);
        }
    }
}
