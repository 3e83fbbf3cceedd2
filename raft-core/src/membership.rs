//! Cluster configurations: voters, learners and joint consensus (Raft §6).

use core::fmt;
use serde::{Deserialize, Serialize};

use crate::node_set::NodeSet;
use crate::types::NodeId;

/// A cluster configuration.
///
/// In a simple configuration `outgoing` is empty and decisions need a majority of `voters`.
/// During joint consensus (C_old,new) `outgoing` holds the old voters and every decision needs a
/// majority of *both* sets. Learners receive the log but never vote and never count for quorum.
///
/// ```
/// use raft_core::Membership;
/// let m = Membership::new([1, 2, 3]);
/// assert!(m.is_voter(2) && !m.is_joint());
/// assert_eq!(m.to_string(), "voters {1, 2, 3}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Voters of the (new) configuration.
    pub voters: NodeSet,
    /// Voters of the old configuration while a joint change is in progress; empty otherwise.
    pub outgoing: NodeSet,
    /// Non-voting members that replicate the log.
    pub learners: NodeSet,
}

impl Membership {
    /// A simple configuration with these voters and no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership { voters: voters.into_iter().collect(), ..Membership::default() }
    }

    /// Whether a joint change (C_old,new) is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member (voters of both halves and learners), in ascending order.
    pub fn members(&self) -> NodeSet {
        let mut all = self.voters.union(&self.outgoing);
        all.extend(self.learners.iter().copied());
        all
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &NodeSet) -> fmt::Result {
    f.write_str("{")?;
    for (i, id) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{id}")?;
    }
    f.write_str("}")
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("voters ")?;
        write_set(f, &self.voters)?;
        if self.is_joint() {
            f.write_str(" joint with old ")?;
            write_set(f, &self.outgoing)?;
        }
        if !self.learners.is_empty() {
            f.write_str(" learners ")?;
            write_set(f, &self.learners)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_configuration_counts_both_halves() {
        let m = Membership { voters: [2, 3, 4].into(), outgoing: [1, 2, 3].into(), learners: [9].into() };
        assert!(m.is_joint());
        assert!(m.is_voter(1) && m.is_voter(4) && !m.is_voter(9));
        assert!(m.contains(9));
        assert_eq!(m.members().into_iter().collect::<alloc::vec::Vec<_>>(), [1, 2, 3, 4, 9]);
        assert_eq!(alloc::format!("{m}"), "voters {2, 3, 4} joint with old {1, 2, 3} learners {9}");
    }
}
