//! [`Watcher`]: the simulator's [`Observer`] of the executor. While a node's `Ready` is carried
//! out by raft-core's own executor, it checks the rules that belong to each step and lands an
//! armed crash at its checkpoint.

use raft_core::{Checkpoint, Entry, HardState, Index, MemState, NodeId, Observer, SnapshotMeta, Step};
use std::ops::ControlFlow;

use crate::error::SimError;
use crate::invariants::Invariants;
use crate::kv::KvStore;
use crate::rule::{Rule, Violation};

/// Why the watcher stopped the work.
#[derive(Debug)]
pub(super) enum Stop {
    /// The armed crash landed here.
    Crash(Checkpoint),
    /// A rule was broken.
    Violation(SimError),
}

/// Watches one node's `Ready` being carried out.
pub(super) struct Watcher<'a> {
    pub(super) id: NodeId,
    pub(super) invariants: &'a mut Invariants,
    /// Where an armed crash lands, if one is armed.
    pub(super) crash_at: Option<Checkpoint>,
    /// The durable hard state before this `Ready`.
    pub(super) hard_state_before: HardState,
    /// The last index applied to the node's state machine.
    pub(super) applied: &'a mut Index,
    /// Snapshots the node installed from a leader, for the trace.
    pub(super) installed: Vec<Index>,
    pub(super) stopped: Option<Stop>,
}

fn contract(detail: String) -> SimError {
    Violation::new(Rule::ReadyContract, detail).into()
}

impl Watcher<'_> {
    fn check(&mut self, step: Step<'_>, log: &MemState, machine: &KvStore) -> Result<(), SimError> {
        let id = self.id;
        match step {
            Step::Checkpoint(Checkpoint::AfterHardState) => {
                self.invariants.hard_state_saved(id, self.hard_state_before, log.hard_state())?;
            }
            Step::Sending { to, message } => self.invariants.sending(id, log, to, message)?,
            Step::Applied(entry) => self.applied_one(entry, machine)?,
            Step::Restored(meta) => self.restored(meta, machine)?,
            Step::Snapshotting(meta) if meta.last.index != *self.applied => {
                let applied = *self.applied;
                return Err(contract(format!(
                    "node {id} asked for a snapshot through {} with its state machine at {applied}",
                    meta.last.index
                )));
            }
            _ => {}
        }
        Ok(())
    }

    fn applied_one(&mut self, entry: &Entry, machine: &KvStore) -> Result<(), SimError> {
        if entry.index != *self.applied + 1 {
            let (id, after) = (self.id, *self.applied);
            return Err(contract(format!(
                "node {id} was handed entry {} to apply after {after}",
                entry.index
            )));
        }
        *self.applied = entry.index;
        Ok(self.invariants.applied(self.id, entry, machine.digest())?)
    }

    fn restored(&mut self, meta: &SnapshotMeta, machine: &KvStore) -> Result<(), SimError> {
        *self.applied = meta.last.index;
        self.installed.push(meta.last.index);
        Ok(self.invariants.snapshot_installed(self.id, meta, machine.digest())?)
    }
}

impl Observer<MemState, KvStore> for Watcher<'_> {
    fn observe(&mut self, step: Step<'_>, log: &MemState, machine: &KvStore) -> ControlFlow<()> {
        let checkpoint = match step {
            Step::Checkpoint(point) => Some(point),
            _ => None,
        };
        if let Err(error) = self.check(step, log, machine) {
            self.stopped = Some(Stop::Violation(error));
            return ControlFlow::Break(());
        }
        if checkpoint.is_some() && checkpoint == self.crash_at {
            self.stopped = checkpoint.map(Stop::Crash);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}
