//! The follower's rules: accepting entries (Raft §5.3) and snapshots (Raft §7).

use super::{Node, RoleState};
use crate::event::{DropReason, Event, ProposeError};
use crate::message::{
    AppendEntries, AppendResponse, AppendResult, InstallSnapshot, Message, SnapshotResponse,
};
use crate::ready::SnapshotChunk;
use crate::types::{LogId, NodeId, Payload, SnapshotInfo, SnapshotMeta};

/// A snapshot being received in chunks. The bytes go straight to the log store's staging
/// area (`Ready::snapshot_chunks`); the node only counts them.
#[derive(Debug)]
pub(super) struct IncomingSnapshot {
    meta: SnapshotMeta,
    received: u64,
}

impl Node {
    /// Accepts `from` as the leader of the current term (the term rules already ran).
    /// Returns false if we are the leader ourselves, which would mean two leaders in a term.
    fn follow(&mut self, from: NodeId) -> bool {
        if self.is_leader() {
            self.dropped(from, DropReason::Unexpected);
            return false;
        }
        if !matches!(self.role, RoleState::Follower) || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.leader_contact = Some(self.now);
        self.reset_election_deadline();
        true
    }

    pub(super) fn handle_append_entries(&mut self, from: NodeId, request: AppendEntries) {
        if !well_formed(&request) {
            return self.dropped(from, DropReason::Malformed);
        }
        if !self.follow(from) {
            return;
        }
        let round = request.round;
        // `receive` checked that this fits within MAX_INDEX.
        let Some(last_new) = request.last_index() else {
            return self.dropped(from, DropReason::OutOfRange);
        };
        // Entries at or below our commit index are already known to match (they are
        // committed, and every leader holds them): skip them. (The count is taken in `u64`
        // first: a gap of 2^32 or more must not truncate on a 32-bit target.)
        let (prev, skip) = if request.prev.index < self.commit {
            let behind = self.commit - request.prev.index;
            let skip =
                usize::try_from(behind).map_or(request.entries.len(), |s| s.min(request.entries.len()));
            let commit_term = self.log.term_at(self.commit).unwrap_or(0);
            (LogId::new(commit_term, self.commit), skip)
        } else {
            (request.prev, 0)
        };
        if !self.log.matches(prev) {
            let hint = if prev.index > self.log.last_index() {
                // prev.index <= MAX_INDEX, so the log ends below it and this cannot saturate.
                LogId::new(0, self.log.last_index().saturating_add(1))
            } else {
                let term = self.log.term_at(prev.index).unwrap_or(0);
                LogId::new(term, self.log.first_index_of_term_at(prev.index))
            };
            let result = AppendResult::Conflict { rejected: request.prev.index, hint };
            return self
                .send(from, Message::AppendResponse(AppendResponse { term: self.term, round, result }));
        }
        // Skip what we already hold; at the first conflict, truncate (never below commit).
        let mut new = skip;
        let mut truncated = false;
        while let Some(entry) = request.entries.get(new) {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => new += 1,
                Some(_) if entry.index <= self.commit => {
                    // A leader contradicting a committed entry breaks Leader Completeness.
                    return self.dropped(from, DropReason::Malformed);
                }
                Some(_) => {
                    let index = entry.index;
                    self.truncate_log(index);
                    truncated = true;
                    break;
                }
                None => break,
            }
        }
        let before = self.log.last_index();
        let mut entries = request.entries;
        entries.drain(..new);
        self.log.extend(entries);
        let appended = self.log.slice(before.saturating_add(1), self.log.last_index());
        let membership_touched =
            truncated || appended.iter().any(|e| matches!(e.payload, Payload::Membership(_)));
        if membership_touched {
            self.refresh_membership();
        }
        self.advance_commit(request.commit.min(last_new));
        let result = AppendResult::Success { match_index: last_new };
        self.send(from, Message::AppendResponse(AppendResponse { term: self.term, round, result }));
    }

    /// Removes a conflicting suffix from `index`.
    ///
    /// Invariant: an acknowledgement still waiting in `ready` must not claim entries that are
    /// gone by the time it is sent, so acknowledgements reaching `index` are withdrawn (losing a
    /// message is always safe in Raft).
    fn truncate_log(&mut self, index: crate::Index) {
        self.log.truncate(index);
        self.withdraw_acks_from(index);
    }

    fn withdraw_acks_from(&mut self, index: crate::Index) {
        self.ready.messages.retain(|(_, m)| {
            !matches!(m, Message::AppendResponse(AppendResponse {
                result: AppendResult::Success { match_index }, ..
            }) if *match_index >= index)
        });
    }

    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, request: InstallSnapshot) {
        if !self.follow(from) {
            return;
        }
        let last = request.meta.last;
        let reply = |node: &mut Node, next_offset: u64, done: bool| {
            let response = SnapshotResponse { term: node.term, last_index: last.index, next_offset, done };
            node.send(from, Message::SnapshotResponse(response));
        };
        if last.index <= self.commit {
            // We already hold everything it covers.
            return reply(self, request.offset + request.data.len() as u64, true);
        }
        if request.offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot { meta: request.meta, received: 0 });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut().filter(|s| s.meta.last == last) else {
            return reply(self, 0, false);
        };
        if incoming.received != request.offset {
            let expected = incoming.received;
            return reply(self, expected, false);
        }
        incoming.received += request.data.len() as u64;
        let received = incoming.received;
        self.ready.snapshot_chunks.push(SnapshotChunk { offset: request.offset, data: request.data });
        if !request.done {
            return reply(self, received, false);
        }
        if let Some(incoming) = self.incoming_snapshot.take() {
            self.install_snapshot(SnapshotInfo { meta: incoming.meta, size: received });
        }
        reply(self, received, true);
    }

    /// Installs a complete snapshot from the leader (Raft §7).
    fn install_snapshot(&mut self, snapshot: SnapshotInfo) {
        let last = snapshot.meta.last;
        // Proposals this node made that the snapshot now covers. If our log agrees with the
        // snapshot's last entry, Log Matching says our entries up to it are the committed ones.
        // Otherwise only a term above the snapshot's last term decides (log terms never
        // decrease, so the leader holds no such entry there); anything else cannot be known.
        let log_agrees = self.log.matches(last);
        while let Some(&(index, term, id)) = self.proposals.front() {
            if index > last.index {
                break;
            }
            self.proposals.pop_front();
            let committed = if log_agrees {
                Some(self.log.term_at(index) == Some(term))
            } else if term > last.term {
                Some(false)
            } else {
                None
            };
            let error = match committed {
                Some(true) => ProposeError::ResponseLost { index },
                Some(false) => ProposeError::Superseded { leader: self.leader },
                None => ProposeError::OutcomeUnknown { index },
            };
            self.ready.events.push(Event::Proposal { id, result: Err(error) });
        }
        if self.log.matches(last) {
            self.log.compact(last);
        } else {
            self.log.reset_to(last);
            self.withdraw_acks_from(last.index + 1);
        }
        self.base_membership = snapshot.meta.membership.clone();
        self.commit = self.commit.max(last.index);
        self.applied = last.index;
        self.applied_bytes = 0;
        self.ready.install_snapshot = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
        self.refresh_membership();
    }
}

/// Structural checks on a received AppendEntries (every input is untrusted): entries run
/// consecutively from `prev`, with terms that never decrease and never pass the message's.
fn well_formed(request: &AppendEntries) -> bool {
    let mut previous = request.prev;
    for entry in &request.entries {
        if previous.index.checked_add(1) != Some(entry.index)
            || entry.term < previous.term
            || entry.term > request.term
        {
            return false;
        }
        previous = entry.id();
    }
    request.prev.term <= request.term
}
