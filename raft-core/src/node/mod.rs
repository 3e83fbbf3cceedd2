//! The protocol machine: [`Node`].
//!
//! `mod.rs` holds the state, the rules shared by every role (term handling, Raft §5.1) and the
//! output path; `election.rs`, `follower.rs` and `leader.rs` hold each role's rules.

mod election;
mod follower;
mod leader;
mod read;
mod reconfig;
mod snapshot;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::config::{Config, ConfigError};
use crate::event::{Diagnostics, DropReason, Event, Incoming, PeerDiagnostics, ProposeError, Role};
use crate::log::Log;
use crate::membership::Membership;
use crate::message::{AppendResult, Message};
use crate::ready::{Outbox, Ready};
use crate::rng::SplitMix64;
use crate::types::{HardState, Index, InitialState, Instant, LogId, NodeId, RequestId, SnapshotInfo, Term};
use crate::vec_map::VecMap;

use self::election::Votes;
use self::follower::IncomingSnapshot;
use self::leader::LeaderState;
use self::read::ConfirmedRead;

/// The Raft protocol machine for one node: pure, deterministic, no I/O.
///
/// # Calling contract
///
/// 1. Build it with [`Node::new`] from what storage holds ([`InitialState`]).
/// 2. Feed every input with [`Node::step`]: messages, client requests, and
///    [`Incoming::Tick`] at least every heartbeat interval (time only enters through ticks).
/// 3. After one or more steps, call [`Node::take_ready`] and carry out the [`Ready`] in its
///    documented order: persist, then send, then apply, then report.
/// 4. Optionally ask [`Node::next_deadline`] when the next tick matters (virtual time).
///
/// The same inputs always produce the same outputs, byte for byte.
///
/// ```
/// use raft_core::{Config, Incoming, InitialState, Instant, Membership, Node, Role};
///
/// let initial = InitialState { bootstrap: Membership::new([1]), ..InitialState::default() };
/// let mut node = Node::new(1, Config::default(), initial).unwrap();
/// node.step(Incoming::Tick(Instant::from_millis(0)));
/// node.step(Incoming::Tick(Instant::from_millis(1_000))); // past any election timeout
/// assert_eq!(node.role(), Role::Leader); // a single voter elects itself
/// let ready = node.take_ready();
/// assert_eq!(ready.entries.len(), 1); // the new leader's no-op, to persist
/// // ... persist `ready.entries`, send `ready.messages`, apply `ready.apply` ...
/// ```
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: Config,
    now: Instant,
    clock_started: bool,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    /// When we last heard from `leader` (check-quorum lease on the follower side).
    leader_contact: Option<Instant>,
    log: Log,
    commit: Index,
    applied: Index,
    /// The configuration in force: the newest one in the log, else `base_membership`.
    membership: Membership,
    /// Index of the entry that holds `membership` (0 if it comes from `base_membership`).
    membership_index: Index,
    /// The configuration of the snapshot, or the bootstrap one.
    base_membership: Membership,
    role: RoleState,
    election_deadline: Instant,
    rng: SplitMix64,
    /// Proposals made here that are not applied yet: (index, term, request), sorted by index.
    /// An index may appear twice: after losing and regaining leadership, a node may propose
    /// again where an older proposal of its own still waits.
    proposals: VecDeque<(Index, Term, RequestId)>,
    /// The latest snapshot (its bytes are in the log store), sent to followers behind the log.
    snapshot: Option<SnapshotInfo>,
    /// Size hints of the entries applied since `snapshot`, for the snapshot policy
    /// ([`Config::snapshot_log_percent`]).
    applied_bytes: u64,
    /// A snapshot arriving in chunks from the leader.
    incoming_snapshot: Option<IncomingSnapshot>,
    /// Reads sent to the leader for a read index: request → (query, give up at).
    forwarded_reads: VecMap<RequestId, (Bytes, Instant)>,
    /// Reads with a confirmed read index, waiting for it to be applied.
    confirmed_reads: VecDeque<ConfirmedRead>,
    /// A transfer this node started as leader, waiting to see who leads next.
    transfer_waiting: Option<(RequestId, NodeId, Instant)>,
    saved_hard_state: HardState,
    reported: (Role, Term, Option<NodeId>),
    ready: Outbox,
}

#[derive(Debug)]
enum RoleState {
    Follower,
    PreCandidate(Votes),
    Candidate(Votes),
    Leader(Box<LeaderState>),
}

impl Node {
    /// A node restored from storage. Fails on an unusable configuration or node id 0.
    ///
    /// Storage is not trusted to be sane, and nothing it returns makes the node panic. Log
    /// entries that break the index sequence or lie past [`MAX_INDEX`](crate::MAX_INDEX) are
    /// cut off, and `applied` is clamped to the log. A term above
    /// [`MAX_TERM`](crate::MAX_TERM) (a disk written by a version without the ceiling) is kept,
    /// since lowering a persisted term could let the node vote twice in one term: the node then
    /// never campaigns, answers messages of lower terms with its own term, and the other nodes
    /// drop those answers as [`DropReason::OutOfRange`](crate::DropReason::OutOfRange). It can
    /// no longer take part; wipe it and add it back as a new member.
    pub fn new(id: NodeId, config: Config, initial: InitialState) -> Result<Self, ConfigError> {
        config.validate()?;
        if id == 0 {
            return Err(ConfigError::ReservedNodeId);
        }
        let snapshot_id = initial.snapshot.as_ref().map_or(LogId::default(), |s| s.meta.last);
        let base_membership = initial
            .snapshot
            .as_ref()
            .map_or_else(|| initial.bootstrap.clone(), |s| s.meta.membership.clone());
        let log = Log::restore(snapshot_id, initial.entries);
        let applied = initial.applied.clamp(snapshot_id.index, log.last_index());
        let seed = config.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut node = Node {
            id,
            now: Instant::default(),
            clock_started: false,
            term: initial.hard_state.term,
            vote: initial.hard_state.vote,
            leader: None,
            leader_contact: None,
            log,
            commit: applied,
            applied,
            membership: Membership::default(),
            membership_index: 0,
            base_membership,
            role: RoleState::Follower,
            election_deadline: Instant::default(),
            rng: SplitMix64::new(seed),
            proposals: VecDeque::new(),
            snapshot: initial.snapshot,
            applied_bytes: 0,
            incoming_snapshot: None,
            forwarded_reads: VecMap::new(),
            confirmed_reads: VecDeque::new(),
            transfer_waiting: None,
            saved_hard_state: initial.hard_state,
            reported: (Role::Follower, initial.hard_state.term, None),
            ready: Outbox::default(),
            config,
        };
        node.refresh_membership();
        node.reset_election_deadline();
        node.applied_bytes = node.bytes_applied_after(snapshot_id.index);
        Ok(node)
    }

    // ----- getters -------------------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.commit
    }

    /// The index of the last entry handed out for applying.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// The last log entry's id.
    pub fn last_log_id(&self) -> LogId {
        self.log.last_id()
    }

    /// The first index still in the log window.
    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }

    /// The term of the entry at `index`, if it is in the window (or is the snapshot point).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The entries in `[from, to]` that are in the window.
    pub fn entries(&self, from: Index, to: Index) -> &[crate::Entry] {
        self.log.slice(from, to)
    }

    /// The configuration in force.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The node's clock: the latest tick.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the node next needs a tick to act on a timeout.
    pub fn next_deadline(&self) -> Instant {
        let deadline = match &self.role {
            RoleState::Leader(leader) => leader.next_deadline(),
            _ => self.election_deadline,
        };
        let read_expiry = self.forwarded_reads.values().map(|&(_, give_up)| give_up).min();
        read_expiry.map_or(deadline, |expiry| deadline.min(expiry))
    }

    /// A report of the node's state (also produced by [`Incoming::Diagnostics`]).
    pub fn diagnostics(&self) -> Diagnostics {
        let peers = match &self.role {
            RoleState::Leader(leader) => leader
                .progress
                .iter()
                .map(|(&id, p)| PeerDiagnostics {
                    id,
                    match_index: p.match_index,
                    next_index: p.next_index,
                    state: p.state,
                    recently_active: p.answered_lately(),
                    lost_entries: p.lost_entries,
                })
                .collect(),
            _ => Vec::new(),
        };
        Diagnostics {
            id: self.id,
            role: self.role(),
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            membership: self.membership.clone(),
            last_log: self.log.last_id(),
            first_index: self.log.first_index(),
            commit_index: self.commit,
            applied_index: self.applied,
            peers,
        }
    }

    // ----- input ---------------------------------------------------------------------------

    /// Feeds one input. Never panics; bad inputs are dropped with an [`Event::Dropped`] or
    /// answered with an error outcome.
    pub fn step(&mut self, input: Incoming) {
        match input {
            Incoming::Tick(now) => self.tick(now),
            Incoming::Message { from, message } => self.receive(from, message),
            Incoming::Propose { id, command } => self.propose(id, command),
            Incoming::Read { id, query } => self.read(id, query),
            Incoming::ChangeMembership { id, change } => self.change_membership(id, change),
            Incoming::TransferLeadership { id, to } => self.transfer_leadership(id, to),
            Incoming::Compact => self.request_snapshot(),
            Incoming::Diagnostics => {
                let report = self.diagnostics();
                self.ready.events.push(Event::Diagnostics(report.into()));
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if !self.clock_started {
            self.clock_started = true;
            self.now = now;
            self.reset_election_deadline();
            if let RoleState::Leader(leader) = &mut self.role {
                leader.restart_timers(now, &self.config);
            }
            return;
        }
        if now <= self.now {
            return;
        }
        self.now = now;
        self.expire_forwarded_reads();
        if self.is_leader() {
            self.leader_tick();
        } else if now >= self.election_deadline {
            self.election_timeout();
        }
    }

    /// Term rules shared by all roles (Raft §5.1), then the role's own rule.
    fn receive(&mut self, from: NodeId, message: Message) {
        if from == self.id || from == 0 {
            return self.dropped(from, DropReason::Malformed);
        }
        // Invariant: past this point every term and index from the message is within MAX_TERM
        // and MAX_INDEX, so our term stays at most MAX_TERM unless storage started us above it.
        if !message.in_range() {
            return self.dropped(from, DropReason::OutOfRange);
        }
        // Vote requests are not checked against our configuration: a node added by an entry we
        // have not received yet must still be able to win (and a node that waits to be added
        // must be able to vote), or a reconfiguration can deadlock. Strangers cannot disrupt a
        // live cluster: the leader lease below refuses them, and pre-vote keeps their term out.
        if let Message::RequestVote(request) = &message {
            if !request.transfer && self.in_leader_lease(from) {
                return self.reject_vote_in_lease(from, request.pre_vote);
            }
        }
        let term = message.term();
        if term > self.term {
            let keeps_term = match &message {
                Message::RequestVote(r) => r.pre_vote,
                Message::VoteResponse(r) => r.pre_vote && r.granted,
                _ => false,
            };
            if !keeps_term {
                let leader = match &message {
                    Message::AppendEntries(_) | Message::InstallSnapshot(_) => Some(from),
                    _ => None,
                };
                self.become_follower(term, leader);
            }
        } else if term < self.term {
            return self.answer_stale(from, message);
        }
        match message {
            Message::RequestVote(request) => self.handle_vote_request(from, request),
            Message::VoteResponse(response) => self.handle_vote_response(from, response),
            Message::AppendEntries(request) => self.handle_append_entries(from, request),
            Message::AppendResponse(response) => self.handle_append_response(from, response),
            Message::InstallSnapshot(request) if request.meta.last.term > request.term => {
                // Like an AppendEntries whose `prev.term` passes its term: no leader holds an
                // entry from a later term than its own.
                self.dropped(from, DropReason::Malformed)
            }
            Message::InstallSnapshot(request) => self.handle_install_snapshot(from, *request),
            Message::SnapshotResponse(response) => self.handle_snapshot_response(from, response),
            Message::TimeoutNow { .. } => self.handle_timeout_now(from),
            Message::ReadIndexRequest { request, .. } => self.handle_read_index_request(from, request),
            Message::ReadIndexResponse { request, index, .. } => {
                self.handle_read_index_response(from, request, index)
            }
        }
    }

    /// A message from an older term. Leaders and candidates of old terms learn the new term
    /// from our answer and step down; everything else is dropped.
    fn answer_stale(&mut self, from: NodeId, message: Message) {
        let term = self.term;
        match message {
            Message::AppendEntries(request) => self.send(
                from,
                Message::AppendResponse(crate::message::AppendResponse {
                    term,
                    round: request.round,
                    result: AppendResult::Conflict { rejected: request.prev.index, hint: LogId::default() },
                }),
            ),
            Message::InstallSnapshot(request) => self.send(
                from,
                Message::SnapshotResponse(crate::message::SnapshotResponse {
                    term,
                    last_index: request.meta.last.index,
                    next_offset: 0,
                    done: false,
                }),
            ),
            Message::RequestVote(request) => self.send_vote(from, term, false, request.pre_vote),
            _ => self.dropped(from, DropReason::StaleTerm),
        }
    }

    fn propose(&mut self, id: RequestId, command: crate::Command) {
        match &self.role {
            RoleState::Leader(leader) if leader.transfer.is_some() => {
                self.fail_proposal(id, ProposeError::TransferInProgress)
            }
            RoleState::Leader(_) => match self.append_as_leader(crate::Payload::Command(command)) {
                Some(index) => self.track_proposal(index, id),
                None => self.fail_proposal(id, ProposeError::NotLeader { leader: None }),
            },
            _ => self.fail_proposal(id, ProposeError::NotLeader { leader: self.leader }),
        }
    }

    fn fail_proposal(&mut self, id: RequestId, error: ProposeError) {
        self.ready.events.push(Event::Proposal { id, result: Err(error) });
    }

    // ----- output --------------------------------------------------------------------------

    /// Whether [`Node::take_ready`] would return work.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
            || self.commit > self.applied
            || self.hard_state() != self.saved_hard_state
            || self.log.has_unstable()
            || self.reported != (self.role(), self.term, self.leader)
            || self.replication_pending()
            || self.read_round_wanted()
            || self.has_servable_reads()
    }

    /// Takes the accumulated work; see [`Ready`] for the order to carry it out in.
    pub fn take_ready(&mut self) -> Ready<'_> {
        if self.is_leader() {
            self.maybe_commit();
            self.confirm_reads();
        }
        // Saturates only for a snapshot at Index::MAX from storage, when nothing is left to apply.
        let apply_from = self.applied.saturating_add(1);
        self.collect_committed();
        let apply_to = self.applied;
        if self.is_leader() {
            if self.read_round_wanted() {
                self.broadcast_heartbeat();
            }
            self.replicate();
        }
        let mut hard_state = Some(self.hard_state());
        if hard_state == Some(self.saved_hard_state) {
            hard_state = None;
        } else {
            self.saved_hard_state = self.hard_state();
        }
        let (truncate_from, unstable_from) = self.log.take_unstable();
        self.serve_reads();
        self.resolve_transfer_waiting();
        let now_reported = (self.role(), self.term, self.leader);
        if now_reported != self.reported {
            self.reported = now_reported;
            let (role, term, leader) = now_reported;
            self.ready.events.push(Event::RoleChanged { role, term, leader });
        }
        let take_snapshot = self.snapshot_to_take();
        let out = core::mem::take(&mut self.ready);
        let entries = self.log.slice(unstable_from, self.log.last_index());
        // A leader's messages reveal its term (durable since its election), its entries
        // (followers may store them before it does) and its commit index, which must not
        // cover entries it has not written: a lone voter commits what it appends at once.
        let send_first = self.is_leader()
            && hard_state.is_none()
            && out.snapshot_chunks.is_empty()
            && out.install_snapshot.is_none()
            && entries.first().is_some_and(|first| self.commit_index() < first.index);
        Ready {
            hard_state,
            snapshot_chunks: out.snapshot_chunks,
            install_snapshot: out.install_snapshot,
            truncate_from,
            entries,
            messages: out.messages,
            snapshot_sends: out.snapshot_sends,
            apply: self.log.slice(apply_from, apply_to),
            proposals: out.proposals,
            reads: out.reads,
            events: out.events,
            take_snapshot,
            send_first,
        }
    }

    /// Remembers a proposal made here until its index commits.
    fn track_proposal(&mut self, index: Index, id: RequestId) {
        let entry = (index, self.term, id);
        if self.proposals.back().is_none_or(|&(last, _, _)| last < index) {
            self.proposals.push_back(entry);
        } else {
            let position = self.proposals.partition_point(|&(i, _, _)| i <= index);
            self.proposals.insert(position, entry);
        }
    }

    /// Marks entries up to the commit index as handed out for applying, and resolves the
    /// proposals made here that they answer: the proposal whose term matches the committed
    /// entry succeeded; any other at that index was superseded.
    fn collect_committed(&mut self) {
        if self.commit <= self.applied {
            return;
        }
        while let Some(&(index, term, id)) = self.proposals.front() {
            if index > self.commit {
                break;
            }
            self.proposals.pop_front();
            if self.log.term_at(index) == Some(term) {
                self.ready.proposals.push((index, id));
            } else {
                let result = Err(ProposeError::Superseded { leader: self.leader });
                self.ready.events.push(Event::Proposal { id, result });
            }
        }
        self.count_applied_bytes(self.commit);
        self.applied = self.commit;
        self.after_apply();
    }

    // ----- shared helpers ------------------------------------------------------------------

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote }
    }

    fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.ready.messages.push((to, message));
    }

    fn dropped(&mut self, from: NodeId, reason: DropReason) {
        self.ready.events.push(Event::Dropped { from, reason });
    }

    fn reset_election_deadline(&mut self) {
        let timeout = self.rng.in_range(self.config.election_timeout_min, self.config.election_timeout_max);
        self.election_deadline = self.now.add_millis(timeout);
    }

    /// Whether we still trust a live leader (check-quorum lease, thesis §4.2.3): if so, vote
    /// requests from others are not granted.
    fn in_leader_lease(&self, candidate: NodeId) -> bool {
        if !self.config.check_quorum {
            return false;
        }
        match (&self.role, self.leader, self.leader_contact) {
            (RoleState::Leader(_), _, _) => true,
            (_, Some(leader), Some(contact)) if leader != candidate => {
                self.now.millis_since(contact) < self.config.election_timeout_min
            }
            _ => false,
        }
    }

    /// Steps down (or stays) as follower. Raising the term clears the vote.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if let RoleState::Leader(state) = core::mem::replace(&mut self.role, RoleState::Follower) {
            self.leader_stepped_down(*state);
        }
        if self.leader != leader {
            self.leader = leader;
            self.fail_forwarded_reads();
        }
        self.leader_contact = leader.map(|_| self.now);
        self.reset_election_deadline();
    }

    /// Advances the commit index (never backwards).
    fn advance_commit(&mut self, index: Index) {
        let index = index.min(self.log.last_index());
        if index > self.commit {
            self.commit = index;
        }
    }

    /// Recomputes the configuration in force from the log (after appends or truncation).
    fn refresh_membership(&mut self) {
        let (index, membership) = match self.log.last_membership() {
            Some((index, m)) => (index, m),
            None => (0, &self.base_membership),
        };
        if index != self.membership_index || *membership != self.membership {
            self.membership = membership.clone();
            self.membership_index = index;
            self.membership_changed();
        }
    }
}

#[cfg(test)]
mod tests;
