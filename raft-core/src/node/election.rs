//! Leader election (Raft §5.2, §5.4.1), pre-vote (thesis §9.6) and the voter's rules.

use super::{Node, RoleState};
use crate::event::DropReason;
use crate::message::{Message, RequestVote, VoteResponse};
use crate::quorum::{vote_result, VoteResult};
use crate::types::{NodeId, Term, MAX_INDEX, MAX_TERM};
use crate::vec_map::VecMap;

/// Answers received in an election: voter → granted.
pub(super) type Votes = VecMap<NodeId, bool>;

/// Which kind of campaign to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Campaign {
    /// Ask whether a real election could win, without raising the term.
    PreVote,
    /// A real election.
    Election,
    /// A real election the leader asked for (TimeoutNow): skips voters' lease check.
    Transfer,
}

impl Node {
    pub(super) fn election_timeout(&mut self) {
        if !self.may_campaign() {
            self.reset_election_deadline();
            return;
        }
        self.campaign(if self.config.pre_vote { Campaign::PreVote } else { Campaign::Election });
    }

    /// Voters campaign; learners and nodes outside the configuration do not — except a node
    /// whose removal is not committed yet: it may hold the only copy of the new configuration,
    /// and the cluster needs it to lead until that commits (thesis §4.2.2).
    fn may_campaign(&self) -> bool {
        if !self.has_room_to_lead() {
            return false;
        }
        if self.membership.is_voter(self.id) {
            return true;
        }
        if self.membership_index <= self.commit {
            return false;
        }
        let previous = self.log.membership_at(self.membership_index - 1).map(|(_, m)| m);
        previous.unwrap_or(&self.base_membership).is_voter(self.id)
    }

    /// Whether a campaign could succeed without leaving the ceilings: it runs in `term + 1`,
    /// which must be at most [`MAX_TERM`], and the new leader appends a no-op at
    /// `last_index + 1`, which must be at most [`MAX_INDEX`]. A node at either ceiling only
    /// follows (see [`MAX_TERM`]).
    pub(super) fn has_room_to_lead(&self) -> bool {
        self.term < MAX_TERM && self.log.last_index() < MAX_INDEX
    }

    pub(super) fn campaign(&mut self, kind: Campaign) {
        if !self.has_room_to_lead() {
            return self.reset_election_deadline();
        }
        let mut votes = Votes::new();
        votes.insert(self.id, true);
        let term = if kind == Campaign::PreVote {
            self.role = RoleState::PreCandidate(votes);
            self.leader = None;
            self.term + 1
        } else {
            self.become_follower(self.term + 1, None);
            self.vote = Some(self.id);
            self.role = RoleState::Candidate(votes);
            self.term
        };
        self.reset_election_deadline();
        if self.tally() {
            return;
        }
        let request = RequestVote {
            term,
            last_log: self.log.last_id(),
            pre_vote: kind == Campaign::PreVote,
            transfer: kind == Campaign::Transfer,
        };
        let me = self.id;
        let mut voters = self.membership.voters.union(&self.membership.outgoing);
        voters.remove(&me);
        for voter in voters {
            self.send(voter, Message::RequestVote(request.clone()));
        }
    }

    /// Counts the votes; acts on a decision. Returns whether the election was decided.
    fn tally(&mut self) -> bool {
        let (votes, pre_vote) = match &self.role {
            RoleState::PreCandidate(votes) => (votes, true),
            RoleState::Candidate(votes) => (votes, false),
            _ => return false,
        };
        match vote_result(&self.membership, |id| votes.get(&id).copied()) {
            VoteResult::Pending => false,
            VoteResult::Lost => {
                self.become_follower(self.term, None);
                true
            }
            VoteResult::Won if pre_vote => {
                self.campaign(Campaign::Election);
                true
            }
            VoteResult::Won => {
                self.become_leader();
                true
            }
        }
    }

    /// The voter's side. The term rules in `receive` ran already: `request.term >= self.term`
    /// for real votes, and pre-votes left our term alone.
    pub(super) fn handle_vote_request(&mut self, from: NodeId, request: RequestVote) {
        let up_to_date = request.last_log >= self.log.last_id();
        let free_to_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let granted = up_to_date
            && if request.pre_vote { request.term > self.term || free_to_vote } else { free_to_vote };
        if granted && !request.pre_vote {
            self.vote = Some(from);
            self.reset_election_deadline();
        }
        let term = if granted && request.pre_vote { request.term } else { self.term };
        self.send_vote(from, term, granted, request.pre_vote);
    }

    pub(super) fn send_vote(&mut self, to: NodeId, term: Term, granted: bool, pre_vote: bool) {
        self.send(to, Message::VoteResponse(VoteResponse { term, granted, pre_vote }));
    }

    /// Within a leader lease: a pre-vote gets a refusal (so the asker stops quickly), a real
    /// vote request is ignored, as the thesis prescribes (§4.2.3).
    pub(super) fn reject_vote_in_lease(&mut self, from: NodeId, pre_vote: bool) {
        if pre_vote {
            self.send_vote(from, self.term, false, true);
        } else {
            self.dropped(from, DropReason::LeaderLease);
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, response: VoteResponse) {
        let expected_term = match &self.role {
            RoleState::PreCandidate(_) if response.pre_vote => {
                if response.granted {
                    // Invariant: a pre-candidate's term is below MAX_TERM (`campaign` checks, and
                    // any change of term makes it a follower), so this never saturates.
                    self.term.saturating_add(1)
                } else {
                    self.term
                }
            }
            RoleState::Candidate(_) if !response.pre_vote => self.term,
            _ => return self.dropped(from, DropReason::Unexpected),
        };
        if response.term != expected_term || !self.membership.is_voter(from) {
            return self.dropped(from, DropReason::Unexpected);
        }
        if let RoleState::PreCandidate(votes) | RoleState::Candidate(votes) = &mut self.role {
            votes.get_or_insert_with(from, || response.granted);
        }
        self.tally();
    }

    /// The leader asks us to campaign at once (leadership transfer, thesis §3.10).
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.leader != Some(from) || !self.membership.is_voter(self.id) {
            return self.dropped(from, DropReason::Unexpected);
        }
        self.campaign(Campaign::Transfer);
    }
}
