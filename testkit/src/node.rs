//! [`SimNode`]: one simulated machine — its durable [`MemState`], and while it runs, a
//! [`raft_core::Node`] with its volatile state machine.

use raft_core::{Checkpoint, Index, MemState, Node};

use crate::kv::KvStore;

/// A running incarnation: the protocol machine and the state machine it feeds.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) node: Node,
    pub(crate) machine: KvStore,
    /// The last index applied to `machine`.
    pub(crate) applied: Index,
}

/// One simulated machine.
#[derive(Debug)]
pub(crate) struct SimNode {
    pub(crate) storage: MemState,
    /// `None` while crashed.
    pub(crate) running: Option<Running>,
    /// How many times it has started.
    pub(crate) incarnation: u64,
    /// Its clock runs this far ahead of the simulation's (see `Simulator::timeout`).
    pub(crate) clock_offset: u64,
    /// A crash armed to land inside a coming Ready.
    pub(crate) crash_at: Option<Checkpoint>,
}

impl SimNode {
    pub(crate) fn new(storage: MemState) -> Self {
        SimNode { storage, running: None, incarnation: 0, clock_offset: 0, crash_at: None }
    }
}
