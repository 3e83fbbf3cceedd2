//! The leader's rules: replication with flow control (Raft §5.3), commit by counting
//! current-term replicas (Raft §5.4.2), heartbeats, check-quorum and leadership transfer.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::read::PendingRead;
use super::{Node, RoleState};
use crate::config::Config;
use crate::event::{DropReason, Event, ReplicationState, TransferError};
use crate::message::{AppendEntries, AppendResponse, AppendResult, Message, SnapshotResponse};
use crate::progress::{Progress, Rejection};
use crate::quorum::{committed_index, vote_result, VoteResult};
use crate::ready::SnapshotSend;
use crate::types::{Entry, Index, Instant, LogId, NodeId, Payload, RequestId};
use crate::vec_map::VecMap;

/// State that exists only while leading.
#[derive(Debug)]
pub(super) struct LeaderState {
    pub(super) progress: VecMap<NodeId, Progress>,
    heartbeat_deadline: Instant,
    quorum_deadline: Instant,
    /// Heartbeat round: bumped for every broadcast; peers echo it (ReadIndex confirmation).
    pub(super) round: u64,
    /// When each recent round was broadcast (lease reads), oldest first.
    pub(super) round_sent: VecDeque<(u64, Instant)>,
    /// The leader lease: reads may be served without a round until this instant.
    pub(super) lease_until: Instant,
    /// Set once TimeoutNow went out: voters grant the target without the lease check, so from
    /// then on this term's lease proves nothing (thesis §6.4.1).
    pub(super) lease_revoked: bool,
    /// Reads waiting for leadership confirmation.
    pub(super) reads: VecDeque<PendingRead>,
    /// Reads wait for round `round + 1`, which starts when the `Ready` is taken: every read
    /// queued until then shares that one round.
    pub(super) read_round_wanted: bool,
    /// A leadership transfer in progress.
    pub(super) transfer: Option<Transfer>,
    /// An uncommitted membership change: request and the index of its entry.
    pub(super) change: Option<(RequestId, Index)>,
}

/// A leadership transfer in progress (thesis §3.10).
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub(super) id: RequestId,
    pub(super) to: NodeId,
    pub(super) deadline: Instant,
    timeout_sent: bool,
}

impl LeaderState {
    pub(super) fn next_deadline(&self) -> Instant {
        let mut deadline = self.heartbeat_deadline.min(self.quorum_deadline);
        if let Some(transfer) = &self.transfer {
            deadline = deadline.min(transfer.deadline);
        }
        deadline
    }

    pub(super) fn restart_timers(&mut self, now: Instant, config: &Config) {
        self.heartbeat_deadline = now.add_millis(config.heartbeat_interval);
        self.quorum_deadline = now.add_millis(config.election_timeout_min);
    }
}

impl Node {
    pub(super) fn become_leader(&mut self) {
        // Invariant: `campaign` checked `has_room_to_lead`, so this never saturates.
        let next = self.log.last_index().saturating_add(1);
        let mut progress = VecMap::new();
        for id in self.membership.members().into_iter().filter(|&id| id != self.id) {
            progress.insert(id, Progress::new(next, self.config.max_inflight));
        }
        let mut state = LeaderState {
            progress,
            heartbeat_deadline: self.now,
            quorum_deadline: self.now,
            round: 0,
            round_sent: VecDeque::new(),
            lease_until: Instant::default(),
            lease_revoked: false,
            reads: VecDeque::new(),
            read_round_wanted: false,
            transfer: None,
            change: None,
        };
        state.restart_timers(self.now, &self.config);
        self.role = RoleState::Leader(alloc::boxed::Box::new(state));
        self.leader = Some(self.id);
        self.leader_contact = None;
        // A no-op from the new term lets the leader commit earlier-term entries (§5.4.2, §8).
        // (`campaign` made sure there is room for it.)
        let _ = self.append_as_leader(Payload::Noop);
    }

    /// Appends a new entry of the current term; returns its index. `None` when the log has
    /// reached [`MAX_INDEX`](crate::MAX_INDEX): a leader that cannot append cannot serve, so it
    /// steps down (and, at the ceiling, never campaigns again).
    pub(super) fn append_as_leader(&mut self, payload: Payload) -> Option<Index> {
        let Some(index) = self.log.next_index() else {
            self.become_follower(self.term, None);
            return None;
        };
        let is_membership = matches!(payload, Payload::Membership(_));
        self.log.append(Entry { term: self.term, index, payload });
        if is_membership {
            self.refresh_membership();
        }
        Some(index)
    }

    pub(super) fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(state) => Some(state),
            _ => None,
        }
    }

    pub(super) fn leader_tick(&mut self) {
        let now = self.now;
        let config = self.config.clone();
        let Some(state) = self.leader_state() else { return };
        if let Some(transfer) = state.transfer.filter(|t| now >= t.deadline) {
            state.transfer = None;
            self.ready.events.push(Event::Transfer { id: transfer.id, result: Err(TransferError::TimedOut) });
        }
        let Some(state) = self.leader_state() else { return };
        let quorum_check = now >= state.quorum_deadline;
        let heartbeat = now >= state.heartbeat_deadline;
        if quorum_check {
            state.quorum_deadline = now.add_millis(config.election_timeout_min);
            if !self.quorum_active() && config.check_quorum {
                // Check-quorum (thesis §6.2): we may be on the minority side of a partition.
                return self.become_follower(self.term, None);
            }
        }
        if heartbeat {
            self.broadcast_heartbeat();
        }
    }

    /// Whether a quorum answered during the last check-quorum period; clears the marks.
    fn quorum_active(&mut self) -> bool {
        let id = self.id;
        let RoleState::Leader(state) = &mut self.role else { return false };
        let progress = &state.progress;
        let result = vote_result(&self.membership, |voter| {
            Some(voter == id || progress.get(&voter).is_some_and(|p| p.recent_active))
        });
        for progress in state.progress.values_mut() {
            progress.previously_active = core::mem::take(&mut progress.recent_active);
        }
        result == VoteResult::Won
    }

    /// Sends every peer a heartbeat (or, when probing, the probe again) in a new round.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let now = self.now;
        let heartbeat_interval = self.config.heartbeat_interval;
        let Some(state) = self.leader_state() else { return };
        state.heartbeat_deadline = now.add_millis(heartbeat_interval);
        state.read_round_wanted = false;
        state.round = state.round.saturating_add(1);
        state.round_sent.push_back((state.round, now));
        while state.round_sent.len() > 64 {
            state.round_sent.pop_front();
        }
        // Peers by position, not a collected list (no allocation): sending changes no key.
        for position in 0.. {
            let Some(state) = self.leader_state() else { return };
            let Some(peer) = state.progress.key_at(position) else { break };
            let Some(progress) = state.progress.get_mut(&peer) else { continue };
            match progress.state {
                ReplicationState::Probe => {
                    progress.paused = false;
                    self.send_append(peer, true);
                }
                ReplicationState::Replicate => self.send_append(peer, false),
                ReplicationState::Snapshot => self.send_snapshot_chunk(peer),
            }
        }
        self.confirm_reads();
    }

    /// Sends each peer what it is missing, as far as flow control allows (called when output
    /// is taken, so proposals made in one batch travel together). A peer with nothing new to
    /// receive still hears about a commit index it can use, without waiting for a heartbeat.
    pub(super) fn replicate(&mut self) {
        let last = self.log.last_index();
        // Peers by position, not a collected list (no allocation): sending changes no key.
        for position in 0.. {
            let RoleState::Leader(state) = &self.role else { return };
            let Some(peer) = state.progress.key_at(position) else { break };
            let mut sent = false;
            while self.progress(peer).is_some_and(|p| p.can_send() && p.next_index <= last) {
                self.send_append(peer, true);
                sent = true;
            }
            if !sent && self.has_commit_news(peer) {
                self.send_append(peer, false);
            }
        }
    }

    /// Whether [`Node::replicate`] has something to send.
    pub(super) fn replication_pending(&self) -> bool {
        let RoleState::Leader(state) = &self.role else { return false };
        let last = self.log.last_index();
        state
            .progress
            .iter()
            .any(|(&peer, p)| (p.can_send() && p.next_index <= last) || self.has_commit_news(peer))
    }

    fn progress(&self, peer: NodeId) -> Option<&Progress> {
        match &self.role {
            RoleState::Leader(state) => state.progress.get(&peer),
            _ => None,
        }
    }

    /// Whether `peer` (streaming) could advance its commit index if told ours.
    fn has_commit_news(&self, peer: NodeId) -> bool {
        let RoleState::Leader(state) = &self.role else { return false };
        let Some(progress) = state.progress.get(&peer) else { return false };
        progress.state == ReplicationState::Replicate
            && self.commit.min(progress.match_index) > progress.sent_commit
    }

    /// One AppendEntries to `peer` from its next index (empty when `with_entries` is false),
    /// or a snapshot when the entries it needs are compacted away.
    pub(super) fn send_append(&mut self, peer: NodeId, with_entries: bool) {
        let (term, commit) = (self.term, self.commit);
        let (max_count, max_bytes) = (self.config.max_append_entries, self.config.max_append_bytes);
        let RoleState::Leader(state) = &mut self.role else { return };
        let round = state.round;
        let Some(progress) = state.progress.get(&peer) else { return };
        let prev_index = progress.next_index - 1;
        let Some(prev_term) = self.log.term_at(prev_index) else {
            return self.start_snapshot(peer);
        };
        let entries = if with_entries {
            self.log.entries_to_send(progress.next_index, max_count, max_bytes)
        } else {
            Vec::new()
        };
        let last_sent = prev_index + entries.len() as Index;
        let count = entries.len();
        let Some(state) = self.leader_state() else { return };
        if let Some(progress) = state.progress.get_mut(&peer) {
            progress.on_sent(last_sent, count);
            // The follower adopts min(commit, last entry of this message) (Raft §5.3).
            progress.sent_commit = commit.min(last_sent);
        }
        let prev = LogId::new(prev_term, prev_index);
        self.send(peer, Message::AppendEntries(AppendEntries { term, prev, entries, commit, round }));
    }

    fn start_snapshot(&mut self, peer: NodeId) {
        // Invariant: the log is only compacted behind a snapshot, so one exists here. Were it
        // missing, the peer still leaves the sending states, so replication cannot spin.
        let snapshot_index = self.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        let Some(state) = self.leader_state() else { return };
        if let Some(progress) = state.progress.get_mut(&peer) {
            progress.become_snapshot(snapshot_index);
        }
        self.send_snapshot_chunk(peer);
    }

    /// Sends the next chunk of the snapshot to `peer` (stop-and-wait; resent on heartbeats).
    /// The executor reads the chunk's bytes from the log store.
    fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let term = self.term;
        let chunk = self.config.snapshot_chunk_bytes as u64;
        let Some(snapshot) = self.snapshot.clone() else { return };
        let Some(state) = self.leader_state() else { return };
        let Some(progress) = state.progress.get_mut(&peer) else { return };
        if progress.snapshot_index != snapshot.meta.last.index {
            progress.become_snapshot(snapshot.meta.last.index);
        }
        let offset = progress.snapshot_offset.min(snapshot.size);
        let end = offset.saturating_add(chunk).min(snapshot.size);
        let len = (end - offset) as usize;
        let send =
            SnapshotSend { to: peer, term, meta: snapshot.meta, offset, len, done: end == snapshot.size };
        self.ready.snapshot_sends.push(send);
    }

    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, response: SnapshotResponse) {
        let Some(state) = self.leader_state() else {
            return self.dropped(from, DropReason::Unexpected);
        };
        let round = state.round;
        let Some(progress) = state.progress.get_mut(&from) else {
            return self.dropped(from, DropReason::UnknownSender);
        };
        progress.recent_active = true;
        if progress.state != ReplicationState::Snapshot || progress.snapshot_index != response.last_index {
            return;
        }
        if response.done {
            progress.on_success(response.last_index, round);
            self.maybe_send_timeout_now(from);
        } else {
            progress.snapshot_offset = response.next_offset;
            self.send_snapshot_chunk(from);
        }
    }

    pub(super) fn handle_append_response(&mut self, from: NodeId, response: AppendResponse) {
        let last_index = self.log.last_index();
        let Some(state) = self.leader_state() else {
            return self.dropped(from, DropReason::Unexpected);
        };
        let round = state.round;
        let Some(progress) = state.progress.get_mut(&from) else {
            return self.dropped(from, DropReason::UnknownSender);
        };
        if response.round > round {
            return self.dropped(from, DropReason::Malformed);
        }
        progress.recent_active = true;
        progress.acked_round = progress.acked_round.max(response.round);
        match response.result {
            AppendResult::Success { match_index } => {
                if match_index > last_index {
                    return self.dropped(from, DropReason::Malformed);
                }
                if progress.on_success(match_index, round) {
                    self.maybe_commit();
                    self.maybe_send_timeout_now(from);
                }
            }
            AppendResult::Conflict { rejected, hint } => {
                if rejected > last_index {
                    return self.dropped(from, DropReason::Malformed);
                }
                // Fast backtracking (thesis §5.3): skip a whole term per round trip.
                let next = match hint.term {
                    0 => hint.index,
                    term => self.log.last_index_of_term(term).map_or(hint.index, |i| i + 1),
                };
                let Some(state) = self.leader_state() else { return };
                let Some(progress) = state.progress.get_mut(&from) else { return };
                let match_index = progress.match_index;
                match progress.on_reject(rejected, next, response.round) {
                    Rejection::Stale => {}
                    Rejection::Backtrack => self.send_append(from, true),
                    Rejection::LostEntries => {
                        let first_missing = if hint.term == 0 { hint.index.min(rejected) } else { rejected };
                        let event = Event::FollowerLostEntries { peer: from, match_index, first_missing };
                        self.ready.events.push(event);
                        self.send_append(from, true);
                    }
                }
            }
        }
        self.confirm_reads();
    }

    /// Commits the highest index a quorum holds, if it is from our term (Raft §5.4.2: entries
    /// of earlier terms are never committed by counting replicas; Figure 8).
    pub(super) fn maybe_commit(&mut self) {
        let (id, last) = (self.id, self.log.last_index());
        let RoleState::Leader(state) = &self.role else { return };
        let progress = &state.progress;
        let index = committed_index(&self.membership, |voter| {
            if voter == id {
                last
            } else {
                progress.get(&voter).map_or(0, |p| p.match_index)
            }
        });
        if index > self.commit && self.log.term_at(index) == Some(self.term) {
            self.advance_commit(index);
        }
    }

    // ----- leadership transfer ---------------------------------------------------------

    pub(super) fn transfer_leadership(&mut self, id: RequestId, to: NodeId) {
        let (now, timeout, leader) = (self.now, self.config.election_timeout_max, self.leader);
        let is_voter = self.membership.is_voter(to);
        let me = self.id;
        let Some(state) = self.leader_state() else {
            let result = Err(TransferError::NotLeader { leader });
            return self.ready.events.push(Event::Transfer { id, result });
        };
        let error = if to == me {
            return self.ready.events.push(Event::Transfer { id, result: Ok(me) });
        } else if !is_voter || !state.progress.contains_key(&to) {
            Some(TransferError::NotVoter(to))
        } else if state.transfer.is_some() {
            Some(TransferError::InProgress)
        } else {
            None
        };
        if let Some(error) = error {
            return self.ready.events.push(Event::Transfer { id, result: Err(error) });
        }
        state.transfer = Some(Transfer { id, to, deadline: now.add_millis(timeout), timeout_sent: false });
        self.maybe_send_timeout_now(to);
    }

    /// Once the transfer target holds our whole log, tell it to campaign.
    fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let (term, last) = (self.term, self.log.last_index());
        let Some(state) = self.leader_state() else { return };
        let Some(transfer) = state.transfer.as_mut().filter(|t| t.to == peer && !t.timeout_sent) else {
            return;
        };
        if state.progress.get(&peer).is_some_and(|p| p.match_index == last) {
            transfer.timeout_sent = true;
            state.lease_revoked = true;
            self.send(peer, Message::TimeoutNow { term });
        }
    }

    /// Cleans up when leadership ends: reads fail, an unfinished transfer waits to see who
    /// leads next, an unfinished membership change is reported lost.
    pub(super) fn leader_stepped_down(&mut self, state: LeaderState) {
        self.fail_pending_reads(state.reads);
        if let Some((id, _)) = state.change {
            let result = Err(crate::MembershipError::LeadershipLost { leader: None });
            self.ready.events.push(Event::Membership { id, result });
        }
        if let Some(transfer) = state.transfer {
            self.transfer_waiting = Some((transfer.id, transfer.to, transfer.deadline));
        }
    }

    /// Reports the outcome of a transfer this node started before stepping down.
    pub(super) fn resolve_transfer_waiting(&mut self) {
        let Some((id, to, deadline)) = self.transfer_waiting else { return };
        let result = match self.leader {
            Some(leader) if leader == to => Ok(to),
            Some(_) => Err(TransferError::TimedOut),
            None if self.now >= deadline => Err(TransferError::TimedOut),
            None => return,
        };
        self.transfer_waiting = None;
        self.ready.events.push(Event::Transfer { id, result });
    }
}
