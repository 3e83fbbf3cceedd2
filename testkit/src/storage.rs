//! [`Storage`]: what a simulated node keeps across a crash.
//!
//! It follows the [`PersistentState`](raft_core::PersistentState) contract operation by
//! operation (save the hard state, install a snapshot, write the log, store a snapshot taken
//! locally), and each operation is atomic on its own, as a careful file-based store would be.
//! A crash may land between any two of them (see [`CrashPoint`](crate::CrashPoint)).

use raft_core::{Entry, HardState, Index, InitialState, LogId, Membership, Snapshot, Term};

/// The durable state of one node: term and vote, the snapshot, the log after it, and the
/// configuration the node was created with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    bootstrap: Membership,
}

/// A log write that does not continue the stored log: the node broke the
/// [`Ready`](raft_core::Ready) contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGap {
    /// The index the next entry needed.
    pub expected: Index,
    /// The index it had.
    pub got: Index,
}

impl Storage {
    /// Fresh storage for a node whose initial configuration is `bootstrap` (empty for a node
    /// that waits to be added).
    pub fn new(bootstrap: Membership) -> Self {
        Storage { bootstrap, ..Storage::default() }
    }

    /// Storage that already holds a hard state and a log (to set up a scenario, such as the
    /// follower logs of the Raft paper's Figure 7).
    pub fn with_log(bootstrap: Membership, hard_state: HardState, entries: Vec<Entry>) -> Self {
        Storage { hard_state, snapshot: None, entries, bootstrap }
    }

    /// What a node restarting from this storage starts with. The state machine is volatile, so
    /// it restarts from the snapshot.
    pub fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            applied: self.snapshot_id().index,
            bootstrap: self.bootstrap.clone(),
        }
    }

    /// The stored term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored snapshot.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The stored log entries after the snapshot.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last entry covered by the snapshot, `(0, 0)` without one.
    pub fn snapshot_id(&self) -> LogId {
        self.snapshot.as_ref().map_or(LogId::default(), |s| s.meta.last)
    }

    /// The last stored log position (the snapshot's when the log after it is empty).
    pub fn last_log_id(&self) -> LogId {
        self.entries.last().map_or_else(|| self.snapshot_id(), Entry::id)
    }

    /// The term of the stored entry at `index` (or of the snapshot point).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        let snapshot = self.snapshot_id();
        if index == snapshot.index {
            return Some(snapshot.term);
        }
        let first = self.entries.first()?.index;
        let position = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(position).map(|e| e.term)
    }

    pub(crate) fn save_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// Drops entries from `truncate_from`, then appends `entries`, which must continue the log.
    pub(crate) fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), LogGap> {
        if let Some(from) = truncate_from {
            let keep = self.entries.partition_point(|e| e.index < from);
            self.entries.truncate(keep);
        }
        for (expected, entry) in (self.last_log_id().index + 1..).zip(entries) {
            if entry.index != expected {
                return Err(LogGap { expected, got: entry.index });
            }
        }
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Keeps `snapshot` and drops the log it covers in the same step, as the
    /// [`PersistentState::install_snapshot`](raft_core::PersistentState::install_snapshot)
    /// contract requires (Raft §7): the entries up to its last index when the log holds that
    /// entry, otherwise the entire log. A locally taken snapshot always matches.
    pub(crate) fn store_snapshot(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last;
        if self.entries.iter().any(|e| e.id() == last) {
            let covered = self.entries.partition_point(|e| e.index <= last.index);
            self.entries.drain(..covered);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Payload, SnapshotMeta};

    fn entry(term: Term, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Noop }
    }

    #[test]
    fn log_writes_truncate_then_append_without_gaps() {
        let mut storage = Storage::new(Membership::new([1]));
        storage.write_log(None, &[entry(1, 1), entry(1, 2), entry(1, 3)]).unwrap();
        storage.write_log(Some(2), &[entry(2, 2)]).unwrap();
        assert_eq!(storage.last_log_id(), LogId::new(2, 2));
        assert_eq!(storage.write_log(None, &[entry(2, 4)]), Err(LogGap { expected: 3, got: 4 }));
        assert_eq!(storage.term_at(1), Some(1));
        assert_eq!(storage.term_at(3), None);
    }

    #[test]
    fn snapshots_drop_the_entries_they_cover() {
        let mut storage = Storage::new(Membership::new([1]));
        storage.write_log(None, &[entry(1, 1), entry(1, 2), entry(2, 3)]).unwrap();
        let meta = SnapshotMeta { last: LogId::new(1, 2), membership: Membership::new([1]) };
        storage.store_snapshot(Snapshot { meta, data: Default::default() });
        assert_eq!(storage.entries().len(), 1);
        assert_eq!(storage.term_at(2), Some(1));
        assert_eq!(storage.initial_state().applied, 2);
        assert_eq!(storage.last_log_id(), LogId::new(2, 3));
    }
}
