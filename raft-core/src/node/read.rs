//! Linearizable reads without writing the log: ReadIndex and lease reads (thesis §6.4).
//!
//! A read is served once (1) the leader has committed an entry of its own term, (2) a quorum
//! has answered a heartbeat round started after the read arrived (or, with `lease_reads`, the
//! leader lease is still valid), and (3) the state machine has applied the read index.

use alloc::collections::VecDeque;
use bytes::Bytes;

use super::Node;
use crate::event::{DropReason, Event, ReadError};
use crate::message::Message;
use crate::quorum::committed_index;
use crate::ready::ReadyRead;
use crate::types::{Index, NodeId, RequestId};

/// A read waiting at the leader for its heartbeat round.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    /// Who asked: a local client, or a follower on behalf of its client.
    origin: ReadOrigin,
    /// The round whose quorum confirms leadership.
    round: u64,
}

#[derive(Clone, Debug)]
enum ReadOrigin {
    Local { id: RequestId, query: Bytes },
    Follower { node: NodeId, request: RequestId },
}

/// A confirmed read waiting for the state machine to apply its index.
#[derive(Clone, Debug)]
pub(super) struct ConfirmedRead {
    pub(super) index: Index,
    id: RequestId,
    query: Bytes,
}

impl Node {
    pub(super) fn read(&mut self, id: RequestId, query: Bytes) {
        if self.is_leader() {
            return self.queue_read(ReadOrigin::Local { id, query });
        }
        match self.leader {
            Some(leader) => {
                let give_up = self.now.add_millis(self.config.election_timeout_max);
                self.forwarded_reads.insert(id, (query, give_up));
                self.send(leader, Message::ReadIndexRequest { term: self.term, request: id });
            }
            None => self.fail_read(id, ReadError::NotLeader { leader: None }),
        }
    }

    fn fail_read(&mut self, id: RequestId, error: ReadError) {
        self.ready.events.push(Event::Read { id, result: Err(error) });
    }

    pub(super) fn handle_read_index_request(&mut self, from: NodeId, request: RequestId) {
        if !self.is_leader() {
            let response = Message::ReadIndexResponse { term: self.term, request, index: None };
            return self.send(from, response);
        }
        if !self.membership.contains(from) {
            return self.dropped(from, DropReason::UnknownSender);
        }
        self.queue_read(ReadOrigin::Follower { node: from, request });
    }

    pub(super) fn handle_read_index_response(
        &mut self,
        from: NodeId,
        request: RequestId,
        index: Option<Index>,
    ) {
        if self.leader != Some(from) {
            return self.dropped(from, DropReason::Unexpected);
        }
        let Some((query, _)) = self.forwarded_reads.remove(&request) else {
            return self.dropped(from, DropReason::Unexpected);
        };
        match index {
            Some(index) => self.confirmed_reads.push_back(ConfirmedRead { index, id: request, query }),
            None => self.fail_read(request, ReadError::NotLeader { leader: None }),
        }
    }

    fn queue_read(&mut self, origin: ReadOrigin) {
        let lease_valid = self.config.lease_reads;
        let now = self.now;
        let Some(state) = self.leader_state() else { return };
        if lease_valid && !state.lease_revoked && now < state.lease_until {
            // Round 0 is confirmed by definition: the lease stands in for the heartbeat round.
            state.reads.push_back(PendingRead { origin, round: 0 });
            return self.confirm_reads();
        }
        // The next round, which starts when the Ready is taken (or earlier, with a heartbeat
        // that is due): after the read arrived, as ReadIndex requires, and shared by every
        // read that arrives until then. (Rounds count heartbeats: one a millisecond would take
        // 584 million years to reach u64::MAX.)
        let round = state.round.saturating_add(1);
        state.reads.push_back(PendingRead { origin, round });
        state.read_round_wanted = true;
    }

    /// Whether reads wait for a heartbeat round to start.
    pub(super) fn read_round_wanted(&self) -> bool {
        matches!(&self.role, super::RoleState::Leader(s) if s.read_round_wanted)
    }

    /// Releases reads whose round a quorum has answered, once our term has a committed entry.
    pub(super) fn confirm_reads(&mut self) {
        let waiting = matches!(&self.role, super::RoleState::Leader(s) if !s.reads.is_empty());
        if !waiting && !self.config.lease_reads {
            return;
        }
        let (id, term, commit) = (self.id, self.term, self.commit);
        if self.log.term_at(commit) != Some(term) {
            return; // Not yet: the commit index may lag what earlier leaders committed.
        }
        let lease_for = lease_duration(&self.config);
        let super::RoleState::Leader(state) = &mut self.role else { return };
        let acked = committed_index(&self.membership, |voter| {
            if voter == id {
                state.round
            } else {
                state.progress.get(&voter).map_or(0, |p| p.acked_round)
            }
        });
        if let Some(&(_, sent)) = state.round_sent.iter().rev().find(|(round, _)| *round <= acked) {
            state.lease_until = state.lease_until.max(sent.add_millis(lease_for));
        }
        let mut released = VecDeque::new();
        while state.reads.front().is_some_and(|r| r.round <= acked) {
            released.extend(state.reads.pop_front());
        }
        for read in released {
            match read.origin {
                ReadOrigin::Local { id, query } => {
                    self.confirmed_reads.push_back(ConfirmedRead { index: commit, id, query })
                }
                ReadOrigin::Follower { node, request } => {
                    let response = Message::ReadIndexResponse { term, request, index: Some(commit) };
                    self.send(node, response);
                }
            }
        }
    }

    /// Moves confirmed reads whose index is applied into `ready.reads`, in arrival order.
    ///
    /// Every read is checked, not only the oldest: a read index from a faulty or hostile leader
    /// may never be applied here, and must not hold back the reads confirmed after it. (Each
    /// read is linearizable on its own once its index is applied, so the order between
    /// concurrent reads does not matter.)
    pub(super) fn serve_reads(&mut self) {
        if !self.has_servable_reads() {
            return;
        }
        let applied = self.applied;
        let (servable, waiting): (VecDeque<ConfirmedRead>, _) =
            core::mem::take(&mut self.confirmed_reads).into_iter().partition(|r| r.index <= applied);
        self.confirmed_reads = waiting;
        let reads = servable.into_iter().map(|read| ReadyRead { id: read.id, query: read.query });
        self.ready.reads.extend(reads);
    }

    /// Whether a confirmed read has its index applied.
    pub(super) fn has_servable_reads(&self) -> bool {
        !self.confirmed_reads.is_empty() && self.confirmed_reads.iter().any(|r| r.index <= self.applied)
    }

    pub(super) fn fail_pending_reads(&mut self, reads: VecDeque<PendingRead>) {
        for read in reads {
            match read.origin {
                ReadOrigin::Local { id, .. } => {
                    self.fail_read(id, ReadError::LeadershipLost { leader: self.leader })
                }
                ReadOrigin::Follower { node, request } => {
                    let response = Message::ReadIndexResponse { term: self.term, request, index: None };
                    self.send(node, response);
                }
            }
        }
    }

    /// Forwarded reads whose request or answer was lost: fail them so the caller can retry.
    pub(super) fn expire_forwarded_reads(&mut self) {
        let now = self.now;
        let expired: alloc::vec::Vec<RequestId> = self
            .forwarded_reads
            .iter()
            .filter(|(_, (_, give_up))| now >= *give_up)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.forwarded_reads.remove(&id);
            self.fail_read(id, ReadError::Timeout);
        }
    }

    /// Reads forwarded to a leader we no longer follow will never be answered: fail them.
    pub(super) fn fail_forwarded_reads(&mut self) {
        let leader = self.leader;
        for (id, _) in core::mem::take(&mut self.forwarded_reads) {
            self.fail_read(id, ReadError::LeadershipLost { leader });
        }
    }
}

/// How long a quorum's answer to a heartbeat round keeps the leader lease: the shortest
/// election timeout, shortened by the clock drift bound (thesis §6.4.1). Computed in `u128` and
/// with the drift capped at 100 %, so no configuration overflows: `Config::validate` checks
/// the drift only when `lease_reads` is on, but reads confirmed by rounds pass here too.
fn lease_duration(config: &crate::Config) -> u64 {
    let kept_percent = 100 - config.lease_clock_drift_percent.min(100);
    let lease = u128::from(config.election_timeout_min) * u128::from(kept_percent) / 100;
    u64::try_from(lease).unwrap_or(config.election_timeout_min)
}
