//! [`ClusterOptions`]: what a simulated cluster is made of.

use raft_core::{Config, Membership, NodeId};

use crate::network::LinkFaults;

/// How to build a simulated cluster.
///
/// ```
/// use testkit::{ClusterOptions, Simulator};
/// let options = ClusterOptions { spares: vec![4], seed: 7, ..ClusterOptions::new([1, 2, 3]) };
/// let sim = Simulator::new(options).unwrap();
/// assert_eq!(sim.ids(), [1, 2, 3, 4]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterOptions {
    /// The voters of the initial configuration.
    pub voters: Vec<NodeId>,
    /// The learners of the initial configuration.
    pub learners: Vec<NodeId>,
    /// Nodes that exist but start outside the configuration, waiting to be added.
    pub spares: Vec<NodeId>,
    /// The protocol configuration of every node (its `seed` is replaced per node and run).
    pub config: Config,
    /// The faults of every link.
    pub faults: LinkFaults,
    /// The seed of every random choice.
    pub seed: u64,
}

impl ClusterOptions {
    /// A cluster of these voters with the default [`Config`] and perfect 1 ms links.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        ClusterOptions {
            voters: voters.into_iter().collect(),
            learners: Vec::new(),
            spares: Vec::new(),
            config: Config::default(),
            faults: LinkFaults::default(),
            seed: 0,
        }
    }

    /// The initial configuration.
    pub fn membership(&self) -> Membership {
        Membership {
            voters: self.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            ..Membership::default()
        }
    }
}
