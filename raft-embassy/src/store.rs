//! [`RamState`]: a [`PersistentState`] in RAM whose log is a fixed-capacity ring.
//!
//! On a microcontroller the log window must have a known upper bound. `RamState<M, N>` keeps at
//! most `N` entries after the last snapshot, inline (no per-entry allocation beyond the entry's
//! own payload). The window stays bounded because raft-core snapshots the state machine and
//! compacts the log every [`Config::snapshot_every`](raft_core::Config::snapshot_every) applied
//! entries; a write that would still overflow it fails with [`RamStateError::LogFull`], which
//! stops the node cleanly instead of panicking.
//!
//! "Durable" here means "survives as long as the value": a RAM store keeps a node's promises
//! only while the device is powered. Use it for nodes whose crash is a power cycle of the whole
//! cluster (one firmware running every node), for tests, or as a model for a flash store.

use alloc::vec::Vec;
use core::fmt;

use heapless::Deque;
use raft_core::{
    AppliedState, Bytes, Entry, HardState, Index, InitialState, Membership, PersistentState, RestoreError,
    Snapshot, SnapshotMeta, StateMachine,
};

/// A [`PersistentState`] in RAM: hard state, the latest snapshot, the application state machine
/// `M`, and a log window of at most `N` entries.
///
/// Set [`Config::snapshot_every`](raft_core::Config::snapshot_every) well below `N` (half is a
/// good start) and keep the number of uncommitted proposals below the rest.
///
/// ```
/// use futures::executor::block_on;
/// use raft_core::{Bytes, Entry, Membership, Payload, PersistentState};
/// use raft_embassy::{RamState, RamStateError};
///
/// let mut store: RamState<Vec<Bytes>, 2> = RamState::new(Membership::new([1, 2, 3]));
/// let entry = |index| Entry { term: 1, index, payload: Payload::Noop };
/// block_on(store.write_log(None, &[entry(1), entry(2)])).unwrap();
/// let full = block_on(store.write_log(None, &[entry(3)]));
/// assert_eq!(full, Err(RamStateError::LogFull { capacity: 2 }));
/// assert_eq!(store.log_len(), 2, "a failed write changes nothing");
/// ```
#[derive(Debug)]
pub struct RamState<M, const N: usize> {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// Invariant: consecutive indexes, the first one right after the snapshot's last index.
    log: Deque<Entry, N>,
    state: AppliedState<M>,
    bootstrap: Membership,
}

/// Why a [`RamState`] operation failed. Each one stops the node (the stream yields
/// [`raft_core::Error::Storage`] and ends).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RamStateError {
    /// The log window would exceed its capacity.
    LogFull {
        /// The window's capacity, in entries.
        capacity: usize,
    },
    /// `write_log` was handed entries that do not continue the log.
    Gap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// A snapshot could not be restored into the state machine.
    Restore(RestoreError),
}

impl fmt::Display for RamStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamStateError::LogFull { capacity } => write!(
                f,
                "the in-RAM log is full ({capacity} entries): set Config::snapshot_every below the \
                 capacity and limit uncommitted proposals"
            ),
            RamStateError::Gap { expected, got } => {
                write!(f, "log write would leave a gap: expected index {expected}, got {got}")
            }
            RamStateError::Restore(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for RamStateError {}

impl<M: StateMachine + Default, const N: usize> RamState<M, N> {
    /// An empty store for a node whose initial configuration is `bootstrap` (empty for a node
    /// that waits to be added to an existing cluster).
    pub fn new(bootstrap: Membership) -> Self {
        RamState {
            hard_state: HardState::default(),
            snapshot: None,
            log: Deque::new(),
            state: AppliedState::new(M::default()),
            bootstrap,
        }
    }
}

impl<M: StateMachine, const N: usize> RamState<M, N> {
    /// The application state machine.
    pub fn machine(&self) -> &M {
        self.state.machine()
    }

    /// The last applied index.
    pub fn applied_index(&self) -> Index {
        self.state.applied_index()
    }
}

impl<M, const N: usize> RamState<M, N> {
    /// The stored term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored snapshot.
    pub fn stored_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Entries in the log window.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// The first index the log window can hold: right after the snapshot.
    fn first_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1
    }

    /// Drops the entries a snapshot through `index` covers.
    fn discard_through(&mut self, index: Index) {
        while self.log.front().is_some_and(|e| e.index <= index) {
            self.log.pop_front();
        }
    }
}

impl<M: StateMachine, const N: usize> PersistentState for RamState<M, N> {
    type Error = RamStateError;

    async fn load(&mut self) -> Result<InitialState, RamStateError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.log.iter().cloned().collect::<Vec<_>>(),
            applied: self.state.applied_index(),
            bootstrap: self.bootstrap.clone(),
        })
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), RamStateError> {
        self.hard_state = state;
        Ok(())
    }

    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), RamStateError> {
        // Check everything first, so a failed write leaves the store as it was.
        let first = self.first_index();
        let kept = truncate_from.map_or(self.log.len(), |from| {
            usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX).min(self.log.len())
        });
        if kept + entries.len() > N {
            return Err(RamStateError::LogFull { capacity: N });
        }
        for (expected, entry) in (first + kept as Index..).zip(entries) {
            if entry.index != expected {
                return Err(RamStateError::Gap { expected, got: entry.index });
            }
        }
        while self.log.len() > kept {
            self.log.pop_back();
        }
        for entry in entries {
            // Cannot fail: the capacity was checked above.
            let _ = self.log.push_back(entry.clone());
        }
        Ok(())
    }

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RamStateError> {
        Ok(self.state.apply(entry))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, RamStateError> {
        Ok(self.state.query(query))
    }

    async fn snapshot(&mut self, meta: SnapshotMeta) -> Result<Snapshot, RamStateError> {
        let snapshot = self.state.snapshot(meta);
        self.discard_through(snapshot.meta.last.index);
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RamStateError> {
        self.state.restore(snapshot).map_err(RamStateError::Restore)?;
        // Raft §7: keep only a log that continues the snapshot, in the same step.
        let last = snapshot.meta.last;
        if self.log.iter().any(|e| e.id() == last) {
            self.discard_through(last.index);
        } else {
            self.log.clear();
        }
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use raft_core::{LogId, Payload, Term};

    type Store = RamState<Vec<Bytes>, 4>;

    fn entry(term: Term, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Command(Bytes::from(alloc::format!("c{index}"))) }
    }

    fn indexes(store: &Store) -> Vec<Index> {
        store.log.iter().map(|e| e.index).collect()
    }

    fn store_with(entries: &[Entry]) -> Store {
        let mut store = Store::new(Membership::new([1]));
        block_on(store.write_log(None, entries)).unwrap();
        store
    }

    #[test]
    fn truncation_then_append_replaces_the_tail() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3)]);
        block_on(store.write_log(Some(2), &[entry(2, 2)])).unwrap();
        assert_eq!(indexes(&store), [1, 2]);
        assert_eq!(store.log.back().unwrap().term, 2);
    }

    #[test]
    fn capacity_counts_what_truncation_frees() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 4)]);
        let refill = [entry(2, 3), entry(2, 4)];
        assert_eq!(block_on(store.write_log(Some(3), &refill)), Ok(()));
        let full = Err(RamStateError::LogFull { capacity: 4 });
        assert_eq!(block_on(store.write_log(None, &[entry(2, 5)])), full);
        assert_eq!(block_on(store.write_log(Some(4), &[entry(3, 4), entry(3, 5)])), full);
        assert_eq!(indexes(&store), [1, 2, 3, 4], "failed writes change nothing");
    }

    #[test]
    fn gaps_are_rejected_before_anything_changes() {
        let mut store = store_with(&[entry(1, 1)]);
        assert_eq!(
            block_on(store.write_log(Some(1), &[entry(1, 2)])),
            Err(RamStateError::Gap { expected: 1, got: 2 })
        );
        assert_eq!(indexes(&store), [1]);
    }

    #[test]
    fn snapshots_compact_the_window_and_survive_a_reload() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 4)]);
        for index in 1..=3 {
            let applied = store.log.iter().find(|e| e.index == index).unwrap().clone();
            block_on(store.apply(&applied)).unwrap();
        }
        let meta = SnapshotMeta { last: LogId::new(1, 3), membership: Membership::new([1]) };
        let snapshot = block_on(store.snapshot(meta)).unwrap();
        assert_eq!(indexes(&store), [4]);
        block_on(store.write_log(None, &[entry(1, 5), entry(1, 6), entry(1, 7)])).unwrap();
        assert_eq!(
            block_on(store.write_log(None, &[entry(1, 8)])),
            Err(RamStateError::LogFull { capacity: 4 })
        );

        let loaded = block_on(store.load()).unwrap();
        assert_eq!(loaded.snapshot, Some(snapshot));
        assert_eq!(loaded.applied, 3);
        assert_eq!(loaded.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [4, 5, 6, 7]);
        assert_eq!(store.machine().len(), 3);
    }

    #[test]
    fn installing_a_snapshot_past_the_log_empties_it() {
        let mut leader = store_with(&[entry(1, 1), entry(1, 2)]);
        for index in 1..=2 {
            block_on(leader.apply(&entry(1, index))).unwrap();
        }
        let meta = SnapshotMeta { last: LogId::new(1, 2), membership: Membership::new([1]) };
        let snapshot = block_on(leader.snapshot(meta)).unwrap();

        let mut follower = store_with(&[entry(1, 1)]);
        block_on(follower.install_snapshot(&snapshot)).unwrap();
        assert_eq!(follower.log_len(), 0);
        assert_eq!(follower.applied_index(), 2);
        assert_eq!(follower.machine(), leader.machine());
        block_on(follower.write_log(None, &[entry(1, 3)])).unwrap();
        assert_eq!(indexes(&follower), [3]);
    }

    #[test]
    fn installing_a_snapshot_the_log_contradicts_discards_the_whole_log() {
        // Raft §7: entries 2 and 3 of term 1 follow a history the snapshot (2@2) replaced.
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3)]);
        let meta = SnapshotMeta { last: LogId::new(2, 2), membership: Membership::new([1]) };
        block_on(store.install_snapshot(&Snapshot { meta, data: Bytes::new() })).unwrap();
        assert_eq!(store.log_len(), 0, "no conflicting suffix survives behind the snapshot");
    }

    #[test]
    fn a_corrupt_snapshot_is_an_error() {
        let mut store = store_with(&[]);
        let snapshot = Snapshot { meta: SnapshotMeta::default(), data: Bytes::from_static(&[1, 0]) };
        assert!(matches!(block_on(store.install_snapshot(&snapshot)), Err(RamStateError::Restore(_))));
    }
}
