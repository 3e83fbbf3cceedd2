//! [`SimNode`]: one simulated machine — its durable [`Storage`], and while it runs, a
//! [`raft_core::Node`] with its volatile state machine.

use raft_core::{Index, Node};

use crate::crash::CrashPoint;
use crate::kv::KvStore;
use crate::storage::Storage;

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
    pub(crate) storage: Storage,
    /// `None` while crashed.
    pub(crate) running: Option<Running>,
    /// How many times it has started.
    pub(crate) incarnation: u64,
    /// Its clock runs this far ahead of the simulation's (see `Simulator::timeout`).
    pub(crate) clock_offset: u64,
    /// A crash armed to land inside a coming Ready.
    pub(crate) crash_at: Option<CrashPoint>,
}

impl SimNode {
    pub(crate) fn new(storage: Storage) -> Self {
        SimNode { storage, running: None, incarnation: 0, clock_offset: 0, crash_at: None }
    }
}
