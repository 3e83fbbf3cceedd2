//! [`MemState`]: an in-memory [`LogStore`], generic over the container of its entries.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use super::entry_buffer::EntryBuffer;
use super::log_store::{LogState, LogStore};
use crate::membership::Membership;
use crate::types::{Entry, HardState, Index, LogId, SnapshotInfo, SnapshotMeta, Term};

/// An in-memory [`LogStore`]: "durable" means "stored in this value", and each operation is
/// atomic. Clone it to model what survives a crash.
///
/// The entries live in any [`EntryBuffer`]: a growable `VecDeque` by default, a fixed window
/// on a microcontroller (raft-embassy's `RamState`). The simulator, the rule tests and the
/// examples all use this one implementation of the log-store contract.
///
/// ```
/// use raft_core::{Command, Entry, HardState, LogStore, MemState, Membership, Payload};
/// use futures::executor::block_on;
///
/// let mut store: MemState = MemState::new(Membership::new([1, 2, 3]));
/// let entry = Entry { term: 1, index: 1, payload: Payload::Command(Command::from_static(b"x")) };
/// block_on(store.save_hard_state(HardState { term: 1, vote: Some(1) })).unwrap();
/// block_on(store.write_log(None, &[entry.clone()])).unwrap();
/// assert_eq!(block_on(store.load()).unwrap().last_index, 1);
/// assert_eq!(block_on(store.read_entries(1, 1)).unwrap(), [entry]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemState<B = VecDeque<Entry>> {
    hard_state: HardState,
    snapshot: Option<(SnapshotMeta, Bytes)>,
    staged: Vec<u8>,
    log: B,
    bootstrap: Membership,
}

/// Why a [`MemState`] operation failed: the caller broke the [`LogStore`] contract, or a
/// fixed-capacity log is full.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemStateError {
    /// `write_log` was handed entries that do not continue the log.
    Gap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// The log holds as many entries as its container can; a snapshot must compact it first.
    Full {
        /// Entries the container holds at most.
        capacity: usize,
    },
    /// A snapshot chunk did not continue the staged snapshot.
    ChunkOutOfOrder {
        /// The offset the next chunk needed.
        expected: u64,
        /// The offset it had.
        got: u64,
    },
    /// A snapshot read with no snapshot stored.
    NoSnapshot,
    /// A read of entries the log does not hold.
    OutOfRange {
        /// First index asked for.
        from: Index,
        /// Last index asked for.
        to: Index,
    },
}

impl fmt::Display for MemStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemStateError::Gap { expected, got } => {
                write!(f, "log write would leave a gap: expected index {expected}, got {got}")
            }
            MemStateError::Full { capacity } => write!(
                f,
                "the log window is full ({capacity} entries); snapshot more often (Config::snapshot_every) or \
                 give the window more room"
            ),
            MemStateError::ChunkOutOfOrder { expected, got } => {
                write!(f, "snapshot chunk at offset {got}, expected {expected}")
            }
            MemStateError::NoSnapshot => f.write_str("no snapshot is stored"),
            MemStateError::OutOfRange { from, to } => write!(f, "the log does not hold entries {from}..={to}"),
        }
    }
}

impl core::error::Error for MemStateError {}

impl MemState {
    /// An empty store for a node whose initial configuration is `bootstrap` (empty for a node
    /// that waits to be added to an existing cluster).
    pub fn new(bootstrap: Membership) -> Self {
        MemState::with_buffer(bootstrap)
    }

    /// A store that already holds a hard state and a log starting at index 1 (to set up a
    /// scenario, such as the follower logs of the Raft paper's Figure 7).
    pub fn with_log(
        bootstrap: Membership,
        hard_state: HardState,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Self, MemStateError> {
        let mut store = MemState { hard_state, ..MemState::new(bootstrap) };
        for entry in entries {
            store.push(entry)?;
        }
        Ok(store)
    }
}

impl<B: EntryBuffer> MemState<B> {
    /// An empty store keeping its entries in a `B`.
    pub fn with_buffer(bootstrap: Membership) -> Self {
        MemState {
            hard_state: HardState::default(),
            snapshot: None,
            staged: Vec::new(),
            log: B::default(),
            bootstrap,
        }
    }

    /// The stored term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The configuration the store was created with.
    pub fn bootstrap(&self) -> &Membership {
        &self.bootstrap
    }

    /// The current snapshot: what it covers, and its bytes.
    pub fn snapshot(&self) -> Option<(&SnapshotMeta, &Bytes)> {
        self.snapshot.as_ref().map(|(meta, data)| (meta, data))
    }

    /// The last entry the snapshot covers, `(0, 0)` without one.
    pub fn snapshot_id(&self) -> LogId {
        self.snapshot.as_ref().map_or(LogId::default(), |(meta, _)| meta.last)
    }

    /// The stored entries after the snapshot, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        (0..self.log.len()).filter_map(|position| self.log.get(position))
    }

    /// The index of the first entry after the snapshot.
    pub fn first_index(&self) -> Index {
        self.snapshot_id().index + 1
    }

    /// The last stored log position (the snapshot's when the log after it is empty).
    pub fn last_log_id(&self) -> LogId {
        match self.log.len().checked_sub(1).and_then(|last| self.log.get(last)) {
            Some(entry) => entry.id(),
            None => self.snapshot_id(),
        }
    }

    /// The stored entry at `index`.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let position = usize::try_from(index.checked_sub(self.first_index())?).ok()?;
        self.log.get(position)
    }

    /// The term of the stored entry at `index` (or of the snapshot point).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        let snapshot = self.snapshot_id();
        if index == snapshot.index {
            return Some(snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    fn push(&mut self, entry: Entry) -> Result<(), MemStateError> {
        let expected = self.last_log_id().index + 1;
        if entry.index != expected {
            return Err(MemStateError::Gap { expected, got: entry.index });
        }
        let capacity = self.log.capacity();
        self.log.push_back(entry).map_err(|_| MemStateError::Full { capacity: capacity.unwrap_or(0) })
    }

    /// Drops the log a snapshot through `through` covers (Raft §7): the entries up to it when
    /// the log holds that entry, otherwise every entry.
    fn discard_for_snapshot(&mut self, through: LogId) {
        if self.term_at(through.index) == Some(through.term) {
            let covered = through.index.saturating_sub(self.snapshot_id().index);
            self.log.drop_front(usize::try_from(covered).unwrap_or(usize::MAX));
        } else {
            self.log.truncate(0);
        }
    }
}

impl<B: EntryBuffer> LogStore for MemState<B> {
    type Error = MemStateError;

    async fn load(&mut self) -> Result<LogState, MemStateError> {
        let snapshot = self
            .snapshot
            .as_ref()
            .map(|(meta, data)| SnapshotInfo { meta: meta.clone(), size: data.len() as u64 });
        Ok(LogState {
            hard_state: self.hard_state,
            snapshot,
            last_index: self.last_log_id().index,
            bootstrap: self.bootstrap.clone(),
        })
    }

    async fn read_entries(&mut self, from: Index, to: Index) -> Result<Vec<Entry>, MemStateError> {
        if from < self.first_index() || to > self.last_log_id().index {
            return Err(MemStateError::OutOfRange { from, to });
        }
        Ok((from..=to).filter_map(|index| self.entry(index).cloned()).collect())
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), MemStateError> {
        self.hard_state = state;
        Ok(())
    }

    /// All or nothing: a write that would leave a gap or overflow the buffer changes nothing.
    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), MemStateError> {
        let kept = match truncate_from {
            Some(from) => usize::try_from(from.saturating_sub(self.first_index())).unwrap_or(usize::MAX),
            None => self.log.len(),
        }
        .min(self.log.len());
        let next = self.first_index() + kept as Index;
        for (expected, entry) in (next..).zip(entries) {
            if entry.index != expected {
                return Err(MemStateError::Gap { expected, got: entry.index });
            }
        }
        if let Some(capacity) = self.log.capacity() {
            if kept + entries.len() > capacity {
                return Err(MemStateError::Full { capacity });
            }
        }
        self.log.truncate(kept);
        let capacity = self.log.capacity().unwrap_or(0);
        self.log.extend_from_slice(entries).map_err(|_| MemStateError::Full { capacity })
    }

    async fn write_snapshot_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), MemStateError> {
        if offset == 0 {
            self.staged.clear();
        }
        let expected = self.staged.len() as u64;
        if offset != expected {
            return Err(MemStateError::ChunkOutOfOrder { expected, got: offset });
        }
        self.staged.extend_from_slice(data);
        Ok(())
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), MemStateError> {
        self.discard_for_snapshot(meta.last);
        let data = Bytes::from(core::mem::take(&mut self.staged));
        self.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn read_snapshot(&mut self, offset: u64, len: usize) -> Result<Bytes, MemStateError> {
        let (_, data) = self.snapshot.as_ref().ok_or(MemStateError::NoSnapshot)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data.slice(start..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;
    use futures::executor::block_on;

    fn entry(term: Term, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Command(crate::Command::from_static(b"c")) }
    }

    fn install(store: &mut MemState, term: Term, index: Index, data: &[u8]) {
        let meta = SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1]) };
        block_on(store.write_snapshot_chunk(0, data)).unwrap();
        block_on(store.install_snapshot(&meta)).unwrap();
    }

    #[test]
    fn installing_a_snapshot_keeps_only_a_log_that_continues_it() {
        let mut store: MemState = MemState::new(Membership::new([1]));
        block_on(store.write_log(None, &[entry(1, 1), entry(1, 2), entry(2, 3)])).unwrap();
        install(&mut store, 1, 2, b"state");
        assert_eq!(
            store.entries().cloned().collect::<Vec<_>>(),
            [entry(2, 3)],
            "the log holds the snapshot's last entry"
        );
        block_on(store.write_log(None, &[entry(2, 4), entry(2, 5)])).unwrap();
        install(&mut store, 3, 4, b"newer");
        assert_eq!(store.entries().count(), 0, "a conflicting suffix never survives (Raft §7)");
        assert_eq!(store.last_log_id(), LogId::new(3, 4));
        assert_eq!(
            block_on(store.write_log(None, &[entry(3, 6)])),
            Err(MemStateError::Gap { expected: 5, got: 6 })
        );
        assert_eq!(block_on(store.read_snapshot(1, 3)).unwrap(), Bytes::from_static(b"ewe"));
    }

    #[test]
    fn a_snapshot_ahead_of_the_log_replaces_it() {
        let mut store: MemState = MemState::new(Membership::new([1]));
        block_on(store.write_log(None, &[entry(1, 1)])).unwrap();
        install(&mut store, 2, 9, b"");
        assert_eq!(store.last_log_id(), LogId::new(2, 9));
        assert_eq!(store.first_index(), 10);
        block_on(store.write_log(None, &[entry(2, 10)])).unwrap();
    }

    #[test]
    fn truncation_then_append_and_range_reads() {
        let mut store: MemState = MemState::new(Membership::new([1]));
        block_on(store.write_log(None, &[entry(1, 1), entry(1, 2), entry(1, 3)])).unwrap();
        block_on(store.write_log(Some(2), &[entry(2, 2)])).unwrap();
        assert_eq!(store.last_log_id(), LogId::new(2, 2));
        assert_eq!(block_on(store.read_entries(1, 2)).unwrap(), [entry(1, 1), entry(2, 2)]);
        assert_eq!(block_on(store.read_entries(2, 3)), Err(MemStateError::OutOfRange { from: 2, to: 3 }));
    }

    #[test]
    fn staged_chunks_must_follow_each_other() {
        let mut store: MemState = MemState::new(Membership::new([1]));
        block_on(store.write_snapshot_chunk(0, b"ab")).unwrap();
        assert_eq!(
            block_on(store.write_snapshot_chunk(3, b"c")),
            Err(MemStateError::ChunkOutOfOrder { expected: 2, got: 3 })
        );
        assert_eq!(block_on(store.read_snapshot(0, 1)), Err(MemStateError::NoSnapshot));
    }
}
