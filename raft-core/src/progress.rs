//! A leader's view of one peer's replication: probe, replicate or snapshot, with a bounded
//! window of in-flight AppendEntries (flow control).
//!
//! Invariant: `match_index < next_index`.

use alloc::collections::VecDeque;

use crate::event::ReplicationState;
use crate::types::Index;

/// The last index of each AppendEntries in flight, oldest first, at most `capacity` of them.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    last_indexes: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    pub(crate) fn new(capacity: usize) -> Self {
        Inflights { last_indexes: VecDeque::new(), capacity }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    pub(crate) fn add(&mut self, last_index: Index) {
        self.last_indexes.push_back(last_index);
    }

    /// Frees every message whose entries are all acknowledged by `match_index`.
    pub(crate) fn free_through(&mut self, match_index: Index) {
        while self.last_indexes.front().is_some_and(|&i| i <= match_index) {
            self.last_indexes.pop_front();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.last_indexes.clear();
    }
}

/// Replication progress of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: Index,
    pub(crate) next_index: Index,
    pub(crate) state: ReplicationState,
    /// Probe: a message is outstanding; wait for its answer or the next heartbeat.
    pub(crate) paused: bool,
    pub(crate) inflights: Inflights,
    /// Heard from during the current check-quorum period.
    pub(crate) recent_active: bool,
    /// Highest heartbeat round the peer has answered in this term.
    pub(crate) acked_round: u64,
    /// The commit index the peer can have learned from the last AppendEntries sent to it.
    pub(crate) sent_commit: Index,
    /// Snapshot state: the snapshot's last index and the byte offset to send next.
    pub(crate) snapshot_index: Index,
    pub(crate) snapshot_offset: u64,
}

impl Progress {
    pub(crate) fn new(next_index: Index, max_inflight: usize) -> Self {
        Progress {
            match_index: 0,
            next_index: next_index.max(1),
            state: ReplicationState::Probe,
            paused: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            acked_round: 0,
            sent_commit: 0,
            snapshot_index: 0,
            snapshot_offset: 0,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ReplicationState::Probe;
        self.next_index = self.next_index.max(self.match_index + 1);
        self.paused = false;
        self.inflights.clear();
    }

    fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.match_index + 1;
        self.inflights.clear();
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ReplicationState::Snapshot;
        self.snapshot_index = snapshot_index;
        self.snapshot_offset = 0;
        self.paused = false;
        self.inflights.clear();
    }

    /// Whether an AppendEntries may go out now.
    pub(crate) fn can_send(&self) -> bool {
        match self.state {
            ReplicationState::Probe => !self.paused,
            ReplicationState::Replicate => !self.inflights.is_full(),
            ReplicationState::Snapshot => false,
        }
    }

    /// Records an AppendEntries whose last entry is `last_index` (equal to `next_index - 1` for
    /// an empty one).
    pub(crate) fn on_sent(&mut self, last_index: Index, entries: usize) {
        match self.state {
            ReplicationState::Replicate if entries > 0 => {
                self.next_index = last_index + 1;
                self.inflights.add(last_index);
            }
            ReplicationState::Probe => self.paused = true,
            _ => {}
        }
    }

    /// A success up to `match_index`. Returns whether the match index advanced.
    pub(crate) fn on_success(&mut self, match_index: Index) -> bool {
        self.paused = false;
        if match_index <= self.match_index {
            return false;
        }
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index + 1);
        self.inflights.free_through(match_index);
        match self.state {
            ReplicationState::Probe => self.become_replicate(),
            ReplicationState::Snapshot if match_index >= self.snapshot_index => self.become_probe(),
            _ => {}
        }
        true
    }

    /// A rejection at `rejected`; `hint_next` is where the leader's term lookup suggests to
    /// resume. Returns false when the rejection is stale (answers an older request).
    pub(crate) fn on_reject(&mut self, rejected: Index, hint_next: Index) -> bool {
        match self.state {
            ReplicationState::Replicate if rejected <= self.match_index => false,
            ReplicationState::Probe if rejected + 1 != self.next_index => false,
            ReplicationState::Snapshot => false,
            _ => {
                self.become_probe();
                self.next_index = hint_next.clamp(self.match_index + 1, rejected.max(self.match_index + 1));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_streams_after_first_success() {
        let mut p = Progress::new(11, 2);
        assert!(p.can_send());
        p.on_sent(10, 0);
        assert!(!p.can_send(), "probe waits for an answer");
        assert!(p.on_success(10));
        assert_eq!(p.state, ReplicationState::Replicate);
        assert_eq!(p.next_index, 11);
        p.on_sent(12, 2);
        p.on_sent(14, 2);
        assert!(!p.can_send(), "window of two is full");
        assert!(p.on_success(12));
        assert!(p.can_send());
        assert_eq!(p.next_index, 15);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(11, 4);
        p.on_sent(10, 0);
        assert!(!p.on_reject(7, 5), "probe only trusts a rejection of next_index - 1");
        assert!(p.on_reject(10, 4));
        assert_eq!(p.next_index, 4);
        p.on_sent(3, 0);
        assert!(p.on_success(5));
        p.on_sent(9, 4);
        assert!(!p.on_reject(5, 1), "replicate ignores rejections at or below match");
        assert!(p.on_reject(9, 1));
        assert_eq!((p.state, p.next_index), (ReplicationState::Probe, 6));
    }

    #[test]
    fn snapshot_resumes_probing_once_covered() {
        let mut p = Progress::new(5, 4);
        p.become_snapshot(100);
        assert!(!p.can_send());
        assert!(p.on_success(100));
        assert_eq!((p.state, p.next_index), (ReplicationState::Probe, 101));
    }
}
