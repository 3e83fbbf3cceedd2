//! [`RamState`]: raft-core's in-memory log store, [`MemState`], over a fixed-capacity
//! [`Window`] of entries.
//!
//! On a microcontroller the log window must have a known upper bound. `RamState<N>` keeps at
//! most `N` entries after the last snapshot, inline (no per-entry allocation beyond the entry's
//! own payload). The window stays bounded because raft-core snapshots the state machine and
//! compacts the log every [`Config::snapshot_every`](raft_core::Config::snapshot_every) applied
//! entries; a write that would still overflow it fails with [`MemStateError::Full`], which
//! stops the node cleanly instead of panicking. Truncation, gap checks and the snapshot rules
//! are raft-core's one implementation; this module only supplies the container.
//!
//! "Durable" here means "survives as long as the value": a RAM store keeps a node's promises
//! only while the device is powered. Use it for nodes whose crash is a power cycle of the whole
//! cluster (one firmware running every node), for tests, or as a model for a flash store.
//!
//! [`MemStateError::Full`]: raft_core::MemStateError::Full

use heapless::Deque;
use raft_core::{Entry, EntryBuffer, MemState};

/// A log store in RAM with a window of at most `N` entries (see [`MemState`]).
///
/// Set [`Config::snapshot_every`](raft_core::Config::snapshot_every) well below `N` (half is a
/// good start) and keep the number of uncommitted proposals below the rest.
///
/// ```
/// use futures::executor::block_on;
/// use raft_core::{Entry, LogStore, MemStateError, Membership, Payload};
/// use raft_embassy::RamState;
///
/// let mut store = RamState::<2>::with_buffer(Membership::new([1, 2, 3]));
/// let entry = |index| Entry { term: 1, index, payload: Payload::Noop };
/// block_on(store.write_log(None, &[entry(1), entry(2)])).unwrap();
/// let full = block_on(store.write_log(None, &[entry(3)]));
/// assert_eq!(full, Err(MemStateError::Full { capacity: 2 }));
/// assert_eq!(store.entries().count(), 2, "a failed write changes nothing");
/// ```
pub type RamState<const N: usize> = MemState<Window<N>>;

/// A fixed-capacity double-ended queue of at most `N` log entries.
#[derive(Clone, Debug, Default)]
pub struct Window<const N: usize>(Deque<Entry, N>);

impl<const N: usize> EntryBuffer for Window<N> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, position: usize) -> Option<&Entry> {
        self.0.iter().nth(position)
    }

    fn capacity(&self) -> Option<usize> {
        Some(N)
    }

    fn push_back(&mut self, entry: Entry) -> Result<(), Entry> {
        self.0.push_back(entry)
    }

    fn truncate(&mut self, len: usize) {
        while self.0.len() > len {
            self.0.pop_back();
        }
    }

    fn drop_front(&mut self, count: usize) {
        for _ in 0..count {
            if self.0.pop_front().is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use futures::executor::block_on;
    use raft_core::{Bytes, Index, LogId, LogStore, MemStateError, Membership, Payload, SnapshotMeta, Term};

    type Store = RamState<4>;

    fn entry(term: Term, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Command(Bytes::from(alloc::format!("c{index}")).into()) }
    }

    fn indexes(store: &Store) -> Vec<Index> {
        store.entries().map(|e| e.index).collect()
    }

    fn store_with(entries: &[Entry]) -> Store {
        let mut store = Store::with_buffer(Membership::new([1]));
        block_on(store.write_log(None, entries)).unwrap();
        store
    }

    #[test]
    fn truncation_then_append_replaces_the_tail() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3)]);
        block_on(store.write_log(Some(2), &[entry(2, 2)])).unwrap();
        assert_eq!(indexes(&store), [1, 2]);
        assert_eq!(store.last_log_id(), LogId::new(2, 2));
    }

    #[test]
    fn capacity_counts_what_truncation_frees() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 4)]);
        let refill = [entry(2, 3), entry(2, 4)];
        assert_eq!(block_on(store.write_log(Some(3), &refill)), Ok(()));
        let full = Err(MemStateError::Full { capacity: 4 });
        assert_eq!(block_on(store.write_log(None, &[entry(2, 5)])), full);
        assert_eq!(block_on(store.write_log(Some(4), &[entry(3, 4), entry(3, 5)])), full);
        assert_eq!(indexes(&store), [1, 2, 3, 4], "failed writes change nothing");
    }

    #[test]
    fn gaps_are_rejected_before_anything_changes() {
        let mut store = store_with(&[entry(1, 1)]);
        assert_eq!(
            block_on(store.write_log(Some(1), &[entry(1, 2)])),
            Err(MemStateError::Gap { expected: 1, got: 2 })
        );
        assert_eq!(indexes(&store), [1]);
    }

    #[test]
    fn snapshots_free_the_window() {
        let mut store = store_with(&[entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 4)]);
        let meta = SnapshotMeta { last: LogId::new(1, 3), membership: Membership::new([1]) };
        block_on(store.write_snapshot_chunk(0, b"state")).unwrap();
        block_on(store.install_snapshot(&meta)).unwrap();
        assert_eq!(indexes(&store), [4]);
        block_on(store.write_log(None, &[entry(1, 5), entry(1, 6), entry(1, 7)])).unwrap();
        let full = block_on(store.write_log(None, &[entry(1, 8)]));
        assert_eq!(full, Err(MemStateError::Full { capacity: 4 }));
        let loaded = block_on(store.load()).unwrap();
        assert_eq!((loaded.snapshot.map(|s| s.size), loaded.last_index), (Some(5), 7));
    }
}
