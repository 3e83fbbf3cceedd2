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

/// What a rejected AppendEntries tells the leader about a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// It answers an older request and proves nothing now: ignore it.
    Stale,
    /// The peer's log does not reach or match the probed entry: probe further back.
    Backtrack,
    /// The peer no longer holds entries it acknowledged: its match index is forgotten and
    /// replication starts over from what it has.
    LostEntries,
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
    /// Heard from during the previous check-quorum period (for diagnostics: a peer that
    /// answers steadily never looks inactive just because a period began).
    pub(crate) previously_active: bool,
    /// Highest heartbeat round the peer has answered in this term.
    pub(crate) acked_round: u64,
    /// The commit index the peer can have learned from the last AppendEntries sent to it.
    pub(crate) sent_commit: Index,
    /// The leader's heartbeat round when `match_index` last advanced (see `on_reject`).
    match_round: u64,
    /// How often the peer was found to have lost entries it had acknowledged.
    pub(crate) lost_entries: u64,
    /// Snapshot state: the snapshot's last index and the byte offset to send next.
    pub(crate) snapshot_index: Index,
    pub(crate) snapshot_offset: u64,
}

impl Progress {
    /// Whether the peer answered within the last full check-quorum period.
    pub(crate) fn answered_lately(&self) -> bool {
        self.recent_active || self.previously_active
    }

    pub(crate) fn new(next_index: Index, max_inflight: usize) -> Self {
        Progress {
            match_index: 0,
            next_index: next_index.max(1),
            state: ReplicationState::Probe,
            paused: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            previously_active: false,
            acked_round: 0,
            sent_commit: 0,
            match_round: 0,
            lost_entries: 0,
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

    /// A success up to `match_index`, learned while the leader's heartbeat round is `round`.
    /// Returns whether the match index advanced.
    pub(crate) fn on_success(&mut self, match_index: Index, round: u64) -> bool {
        self.paused = false;
        if match_index <= self.match_index {
            return false;
        }
        self.match_index = match_index;
        self.match_round = round;
        self.next_index = self.next_index.max(match_index + 1);
        self.inflights.free_through(match_index);
        match self.state {
            ReplicationState::Probe => self.become_replicate(),
            ReplicationState::Snapshot if match_index >= self.snapshot_index => self.become_probe(),
            _ => {}
        }
        true
    }

    /// A rejection at `rejected` of a request sent in heartbeat round `round`; `hint_next` is
    /// where the leader's term lookup suggests to resume.
    pub(crate) fn on_reject(&mut self, rejected: Index, hint_next: Index, round: u64) -> Rejection {
        if self.state == ReplicationState::Snapshot {
            // The snapshot being sent replaces whatever the peer holds.
            return Rejection::Stale;
        }
        if rejected <= self.match_index {
            return self.on_reject_below_match(hint_next, rejected, round);
        }
        if self.state == ReplicationState::Probe && rejected.checked_add(1) != Some(self.next_index) {
            return Rejection::Stale;
        }
        self.become_probe();
        self.next_index = hint_next.clamp(self.match_index + 1, rejected);
        Rejection::Backtrack
    }

    /// A rejection at or below `match_index`: the peer lacks an entry it acknowledged, unless
    /// the rejection is older than the acknowledgement.
    ///
    /// Invariant: such a rejection proves the peer lost entries only when it answers a request
    /// sent after the success that set `match_index` arrived. The leader's round only grows,
    /// and every AppendEntries carries the round in force when it was sent (the peer echoes
    /// it); `match_round` is the round in force when `match_index` last advanced. So a request
    /// echoing a round above `match_round` left after that success arrived, and the peer
    /// handled it after it had stored, durably (a `Ready` persists before it sends), every
    /// entry through `match_index`. Within one term only this leader sends entries, it never
    /// contradicts what the peer acknowledged, and its snapshots cover the same prefix: a
    /// correct peer cannot have dropped them since (Log Matching, Raft §5.3), so its storage
    /// lost them. A rejection echoing `match_round` or less may have been sent before the
    /// acknowledgement and arrived late, reordered or duplicated: it proves nothing.
    ///
    /// On proof, `match_index` is forgotten (0: nothing is known to be replicated there any
    /// more; forgetting only makes commit decisions more cautious, and the commit index never
    /// goes back) and the peer is probed again from what it reported having, which falls back
    /// to a snapshot when that is below the leader's log.
    fn on_reject_below_match(&mut self, hint_next: Index, rejected: Index, round: u64) -> Rejection {
        if round <= self.match_round {
            return Rejection::Stale;
        }
        self.match_index = 0;
        self.sent_commit = 0;
        self.lost_entries = self.lost_entries.saturating_add(1);
        self.become_probe();
        self.next_index = hint_next.clamp(1, rejected.max(1));
        Rejection::LostEntries
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
        assert!(p.on_success(10, 0));
        assert_eq!(p.state, ReplicationState::Replicate);
        assert_eq!(p.next_index, 11);
        p.on_sent(12, 2);
        p.on_sent(14, 2);
        assert!(!p.can_send(), "window of two is full");
        assert!(p.on_success(12, 0));
        assert!(p.can_send());
        assert_eq!(p.next_index, 15);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(11, 4);
        p.on_sent(10, 0);
        assert_eq!(p.on_reject(7, 5, 0), Rejection::Stale, "probe only trusts a rejection of next_index - 1");
        assert_eq!(p.on_reject(10, 4, 0), Rejection::Backtrack);
        assert_eq!(p.next_index, 4);
        p.on_sent(3, 0);
        assert!(p.on_success(5, 2));
        p.on_sent(9, 4);
        assert_eq!(p.on_reject(5, 1, 2), Rejection::Stale, "at or below match, from the same round");
        assert_eq!(p.on_reject(4, 1, 1), Rejection::Stale, "at or below match, from an older round");
        assert_eq!(p.on_reject(9, 1, 2), Rejection::Backtrack);
        assert_eq!((p.state, p.next_index, p.match_index), (ReplicationState::Probe, 6, 5));
    }

    #[test]
    fn a_rejection_below_match_from_a_later_round_proves_lost_entries() {
        let mut p = Progress::new(1, 4);
        p.on_sent(0, 0);
        assert!(p.on_success(8, 3));
        p.on_sent(10, 2);
        p.sent_commit = 8;
        // Round 4 started after the success arrived: the peer now holds only up to 5.
        assert_eq!(p.on_reject(8, 6, 4), Rejection::LostEntries);
        assert_eq!((p.state, p.match_index, p.next_index), (ReplicationState::Probe, 0, 6));
        assert_eq!((p.sent_commit, p.lost_entries), (0, 1));
        assert!(p.can_send(), "probes again at once");
        // The next success re-establishes the match, in the round it arrives in.
        p.on_sent(5, 0);
        assert!(p.on_success(8, 5));
        assert_eq!(p.on_reject(7, 1, 5), Rejection::Stale);
        assert_eq!(p.match_index, 8);
    }

    #[test]
    fn snapshot_state_ignores_rejections() {
        let mut p = Progress::new(1, 4);
        assert!(p.on_success(3, 0));
        p.become_snapshot(100);
        assert_eq!(p.on_reject(2, 1, 9), Rejection::Stale);
        assert_eq!(p.on_reject(50, 1, 9), Rejection::Stale);
        assert_eq!((p.state, p.match_index), (ReplicationState::Snapshot, 3));
    }

    #[test]
    fn snapshot_resumes_probing_once_covered() {
        let mut p = Progress::new(5, 4);
        p.become_snapshot(100);
        assert!(!p.can_send());
        assert!(p.on_success(100, 0));
        assert_eq!((p.state, p.next_index), (ReplicationState::Probe, 101));
    }
}
