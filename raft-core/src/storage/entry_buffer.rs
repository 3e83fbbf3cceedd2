//! [`EntryBuffer`]: the container [`MemState`](crate::MemState) keeps its log entries in.

use alloc::collections::VecDeque;

use crate::types::Entry;

/// A double-ended queue of log entries: grows at the back (appends), shrinks at the back
/// (truncation of a conflicting suffix) and at the front (compaction behind a snapshot).
///
/// `VecDeque<Entry>` grows without bound; a fixed-capacity window (as raft-embassy's
/// `RamState` uses on a microcontroller) refuses entries once full.
pub trait EntryBuffer: Default + Send {
    /// Entries held.
    fn len(&self) -> usize;

    /// Whether no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry at `position` (0 is the oldest).
    fn get(&self, position: usize) -> Option<&Entry>;

    /// How many entries it can hold at most (`None`: as many as memory allows).
    fn capacity(&self) -> Option<usize>;

    /// Appends an entry; hands it back when full.
    fn push_back(&mut self, entry: Entry) -> Result<(), Entry>;

    /// Appends copies of `entries`, in order; hands back the first that did not fit.
    fn extend_from_slice(&mut self, entries: &[Entry]) -> Result<(), Entry> {
        entries.iter().try_for_each(|entry| self.push_back(entry.clone()))
    }

    /// Keeps the first `len` entries.
    fn truncate(&mut self, len: usize);

    /// Drops the first `count` entries.
    fn drop_front(&mut self, count: usize);
}

impl EntryBuffer for VecDeque<Entry> {
    fn len(&self) -> usize {
        VecDeque::len(self)
    }

    fn get(&self, position: usize) -> Option<&Entry> {
        VecDeque::get(self, position)
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    fn push_back(&mut self, entry: Entry) -> Result<(), Entry> {
        VecDeque::push_back(self, entry);
        Ok(())
    }

    fn extend_from_slice(&mut self, entries: &[Entry]) -> Result<(), Entry> {
        self.extend(entries.iter().cloned());
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        VecDeque::truncate(self, len);
    }

    fn drop_front(&mut self, count: usize) {
        self.drain(..count.min(VecDeque::len(self)));
    }
}
