//! The log window: entries after the last snapshot, held in memory, and what of them still has
//! to reach storage.
//!
//! Invariant: `entries[i].index == snapshot.index + 1 + i`, and terms never decrease along the
//! log. Everything at or below `snapshot.index` lives only in the state-machine snapshot.
//! Entries never lie past [`MAX_INDEX`] (a snapshot restored from storage may, and then the
//! window stays empty), so `last_index() + 1` never overflows.

use alloc::vec::Vec;

use crate::membership::Membership;
use crate::types::{Entry, Index, LogId, Payload, Term, MAX_INDEX};

#[derive(Clone, Debug)]
pub(crate) struct Log {
    /// Last entry covered by the snapshot; `(0, 0)` when there is none.
    snapshot: LogId,
    entries: Vec<Entry>,
    /// Entries up to here have been handed to storage.
    persisted: Index,
    /// Storage must drop entries from this index before appending the unstable ones.
    truncate_from: Option<Index>,
}

impl Log {
    /// A log restored from storage: `entries` follow `snapshot` and are all durable.
    /// Entries that break the index sequence or lie past [`MAX_INDEX`] (a storage bug) are cut
    /// off at the first such entry.
    pub(crate) fn restore(snapshot: LogId, entries: Vec<Entry>) -> Self {
        let mut log = Log {
            snapshot,
            entries: Vec::with_capacity(entries.len()),
            persisted: snapshot.index,
            truncate_from: None,
        };
        for entry in entries {
            if entry.index <= snapshot.index {
                continue;
            }
            let continues = log.last_index().checked_add(1) == Some(entry.index);
            if !continues || entry.index > MAX_INDEX || entry.term < log.last_term() {
                break;
            }
            log.entries.push(entry);
        }
        log.persisted = log.last_index();
        log
    }

    pub(crate) fn snapshot_id(&self) -> LogId {
        self.snapshot
    }

    pub(crate) fn first_index(&self) -> Index {
        // Saturates only for a snapshot at Index::MAX from storage, whose window is empty.
        self.snapshot.index.saturating_add(1)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as Index
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    pub(crate) fn last_id(&self) -> LogId {
        LogId::new(self.last_term(), self.last_index())
    }

    fn position(&self, index: Index) -> Option<usize> {
        if index <= self.snapshot.index || index > self.last_index() {
            None
        } else {
            Some((index - self.snapshot.index - 1) as usize)
        }
    }

    /// The term of the entry at `index`, if it is the snapshot point or in the window.
    pub(crate) fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.position(index).map(|p| self.entries[p].term)
    }

    /// Whether our log holds an entry with this id (the §5.3 consistency check).
    pub(crate) fn matches(&self, id: LogId) -> bool {
        self.term_at(id.index) == Some(id.term)
    }

    /// Entries in `[from, to]`, clamped to the window.
    pub(crate) fn slice(&self, from: Index, to: Index) -> &[Entry] {
        let start = self.position(from.max(self.first_index()));
        let end = self.position(to.min(self.last_index()));
        match (start, end) {
            (Some(start), Some(end)) if start <= end => &self.entries[start..=end],
            _ => &[],
        }
    }

    /// Entries from `from` within the count and byte limits (at least one if any exist).
    pub(crate) fn entries_to_send(&self, from: Index, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let available = self.slice(from, self.last_index());
        let mut bytes = 0;
        let mut count = 0;
        for entry in available.iter().take(max_count) {
            // Entries may share one buffer, so their sizes can add up past memory: saturate.
            bytes = entry.size_hint().saturating_add(bytes);
            if count > 0 && bytes > max_bytes {
                break;
            }
            count += 1;
        }
        available[..count].to_vec()
    }

    /// The index a new entry would take, or `None` when the log has reached [`MAX_INDEX`].
    pub(crate) fn next_index(&self) -> Option<Index> {
        self.last_index().checked_add(1).filter(|&index| index <= MAX_INDEX)
    }

    /// Appends an entry created here (leader) or received (follower, after checks).
    pub(crate) fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Appends entries that continue the log (checked by the caller), in one go.
    pub(crate) fn extend(&mut self, mut entries: Vec<Entry>) {
        self.entries.append(&mut entries);
        debug_assert!(self.entries.last().is_none_or(|e| e.index == self.last_index()));
    }

    /// Removes every entry at or after `index` (a conflicting suffix, Raft §5.3).
    pub(crate) fn truncate(&mut self, index: Index) {
        let Some(position) = self.position(index) else {
            return;
        };
        self.entries.truncate(position);
        if index <= self.persisted {
            self.persisted = index - 1;
            self.truncate_from = Some(self.truncate_from.map_or(index, |t| t.min(index)));
        }
    }

    /// Whether storage has work to do.
    pub(crate) fn has_unstable(&self) -> bool {
        self.truncate_from.is_some() || self.persisted < self.last_index()
    }

    /// What storage must do next: drop from an index, then append the entries from the
    /// returned index to the end of the log.
    pub(crate) fn take_unstable(&mut self) -> (Option<Index>, Index) {
        let first_unstable = self.persisted.saturating_add(1);
        self.persisted = self.last_index();
        (self.truncate_from.take(), first_unstable)
    }

    /// Drops entries covered by a snapshot that ends at `through` (which is in our log).
    pub(crate) fn compact(&mut self, through: LogId) {
        if through.index <= self.snapshot.index {
            return;
        }
        let covered = usize::try_from(through.index - self.snapshot.index).unwrap_or(usize::MAX);
        self.entries.drain(..covered.min(self.entries.len()));
        self.snapshot = through;
        self.persisted = self.persisted.max(through.index);
    }

    /// Replaces the whole log with a received snapshot (Raft §7: the log did not contain the
    /// snapshot's last entry, so everything is discarded). Storage discards its log as part of
    /// installing the snapshot, so nothing is left to truncate.
    pub(crate) fn reset_to(&mut self, snapshot: LogId) {
        self.entries.clear();
        self.snapshot = snapshot;
        self.persisted = snapshot.index;
        self.truncate_from = None;
    }

    /// The first index of the run of entries sharing `index`'s term (fast backtracking hint).
    pub(crate) fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index holding `term`, if the window holds that term.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<Index> {
        self.entries.iter().rev().find(|e| e.term == term).map(|e| e.index)
    }

    /// The newest configuration entry in the window.
    pub(crate) fn last_membership(&self) -> Option<(Index, &Membership)> {
        self.entries.iter().rev().find_map(|e| match &e.payload {
            Payload::Membership(m) => Some((e.index, &**m)),
            _ => None,
        })
    }

    /// The newest configuration entry at or below `index`.
    pub(crate) fn membership_at(&self, index: Index) -> Option<(Index, &Membership)> {
        self.slice(self.first_index(), index).iter().rev().find_map(|e| match &e.payload {
            Payload::Membership(m) => Some((e.index, &**m)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: Term, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Command(crate::Command::from_static(b"x")) }
    }

    fn log_of(terms: &[Term]) -> Log {
        Log::restore(
            LogId::default(),
            terms.iter().enumerate().map(|(i, &t)| entry(t, i as Index + 1)).collect(),
        )
    }

    #[test]
    fn restore_cuts_at_first_gap_and_marks_everything_durable() {
        let log = Log::restore(LogId::new(1, 2), [entry(1, 3), entry(2, 4), entry(2, 6)].into());
        assert_eq!(log.last_id(), LogId::new(2, 4));
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.term_at(1), None);
        let mut log = log;
        assert_eq!(log.take_unstable(), (None, 5));
    }

    #[test]
    fn truncation_of_durable_entries_is_reported_once() {
        let mut log = log_of(&[1, 1, 2, 2]);
        log.append(entry(3, 5));
        log.truncate(3);
        assert_eq!(log.last_id(), LogId::new(1, 2));
        log.append(entry(4, 3));
        let (truncate, first) = log.take_unstable();
        assert_eq!(truncate, Some(3));
        assert_eq!(log.slice(first, log.last_index()), [entry(4, 3)]);
        assert_eq!(log.take_unstable(), (None, 4));
    }

    #[test]
    fn term_hints_find_run_boundaries() {
        let log = log_of(&[1, 1, 2, 2, 2, 5]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.first_index_of_term_at(2), 1);
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.last_index_of_term(3), None);
    }

    #[test]
    fn send_limits_keep_at_least_one_entry() {
        let log = log_of(&[1, 1, 1, 1]);
        assert_eq!(log.entries_to_send(2, 2, usize::MAX).len(), 2);
        assert_eq!(log.entries_to_send(1, 10, 1).len(), 1);
        assert_eq!(log.entries_to_send(5, 10, 100).len(), 0);
    }

    #[test]
    fn compaction_keeps_the_tail_and_answers_the_snapshot_term() {
        let mut log = log_of(&[1, 1, 2, 2]);
        log.compact(LogId::new(2, 3));
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.term_at(3), Some(2));
        assert!(log.slice(3, 3).is_empty());
        assert_eq!(log.last_id(), LogId::new(2, 4));
        assert!(log.slice(1, 4).len() == 1);
    }
}
