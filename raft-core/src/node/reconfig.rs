//! Membership changes: single-server changes (thesis §4.1) and joint consensus (Raft §6).
//!
//! A configuration takes effect on each node as soon as its entry is appended. One change at
//! a time: a new one is refused until the previous one (both phases, when joint) commits.

use super::Node;
use crate::event::{Event, InvalidChange, MembershipChange, MembershipError};
use crate::membership::Membership;
use crate::progress::Progress;
use crate::types::{Payload, RequestId};

impl Node {
    pub(super) fn change_membership(&mut self, id: RequestId, change: MembershipChange) {
        match self.check_change(change) {
            Ok(next) => match self.append_as_leader(Payload::Membership(next.into())) {
                Some(index) => {
                    if let Some(state) = self.leader_state() {
                        state.change = Some((id, index));
                    }
                }
                None => {
                    let result = Err(MembershipError::NotLeader { leader: None });
                    self.ready.events.push(Event::Membership { id, result });
                }
            },
            Err(error) => self.ready.events.push(Event::Membership { id, result: Err(error) }),
        }
    }

    /// Validates a change against the configuration in force and builds the next one.
    fn check_change(&mut self, change: MembershipChange) -> Result<Membership, MembershipError> {
        if !self.is_leader() {
            return Err(MembershipError::NotLeader { leader: self.leader });
        }
        // Also wait for an entry of this term to commit: a configuration appended before that
        // may not overlap one that an earlier leader appended (Ongaro, raft-dev 2015).
        let busy = self.membership.is_joint()
            || self.membership_index > self.commit
            || self.log.term_at(self.commit) != Some(self.term)
            || self.leader_state().is_some_and(|s| s.change.is_some() || s.transfer.is_some());
        if busy {
            return Err(MembershipError::ChangeInProgress);
        }
        let current = &self.membership;
        let mut next = current.clone();
        let invalid = |why| Err(MembershipError::Invalid(why));
        match change {
            MembershipChange::AddVoter(0)
            | MembershipChange::AddLearner(0)
            | MembershipChange::Promote(0)
            | MembershipChange::Remove(0) => return invalid(InvalidChange::ReservedId),
            MembershipChange::AddVoter(node) => {
                if current.voters.contains(&node) {
                    return invalid(InvalidChange::AlreadyMember(node));
                }
                next.learners.remove(&node);
                next.voters.insert(node);
            }
            MembershipChange::AddLearner(node) => {
                if current.contains(node) {
                    return invalid(InvalidChange::AlreadyMember(node));
                }
                next.learners.insert(node);
            }
            MembershipChange::Promote(node) => {
                if !current.learners.contains(&node) {
                    return invalid(if current.voters.contains(&node) {
                        InvalidChange::AlreadyMember(node)
                    } else {
                        InvalidChange::NotMember(node)
                    });
                }
                next.learners.remove(&node);
                next.voters.insert(node);
            }
            MembershipChange::Remove(node) => {
                if !current.contains(node) {
                    return invalid(InvalidChange::NotMember(node));
                }
                next.voters.remove(&node);
                next.learners.remove(&node);
                if next.voters.is_empty() {
                    return invalid(InvalidChange::NoVoters);
                }
            }
            MembershipChange::ReplaceVoters(voters) => {
                if voters.contains(&0) {
                    return invalid(InvalidChange::ReservedId);
                }
                if voters.is_empty() {
                    return invalid(InvalidChange::NoVoters);
                }
                next.voters = voters.into_iter().collect();
                if next.voters == current.voters {
                    return invalid(InvalidChange::AlreadyMember(*next.voters.iter().next().unwrap_or(&0)));
                }
                next.outgoing = current.voters.clone();
                next.learners.retain(|l| !next.voters.contains(l));
            }
        }
        Ok(next)
    }

    /// Keeps the leader's progress map in step with the configuration in force.
    pub(super) fn membership_changed(&mut self) {
        // New peers are probed from the configuration entry itself, so they hear at once.
        let (me, next, max_inflight) = (self.id, self.log.last_index(), self.config.max_inflight);
        let members = self.membership.members();
        let Some(state) = self.leader_state() else { return };
        state.progress.retain(|id, _| members.contains(id));
        for id in members.into_iter().filter(|&id| id != me) {
            state.progress.get_or_insert_with(id, || Progress::new(next, max_inflight));
        }
        // A smaller quorum may already hold entries that now count as committed.
        self.maybe_commit();
    }

    /// Runs after committed entries are handed out: finishes joint changes, reports outcomes,
    /// and steps a leader down once a configuration without it commits.
    pub(super) fn after_membership_commit(&mut self) {
        if self.membership_index > self.commit || !self.is_leader() {
            return;
        }
        if self.membership.is_joint() {
            // C_old,new is committed: move on to C_new (Raft §6).
            let mut next = self.membership.clone();
            next.outgoing.clear();
            // At MAX_INDEX the leader steps down instead, which reports the change as lost.
            let Some(index) = self.append_as_leader(Payload::Membership(next.into())) else { return };
            if let Some(state) = self.leader_state() {
                if let Some(change) = state.change.as_mut() {
                    change.1 = index;
                }
            }
            return;
        }
        if let Some((id, _)) = self.leader_state().and_then(|s| s.change.take()) {
            let committed = self.membership.clone();
            self.ready.events.push(Event::Membership { id, result: Ok(committed) });
        }
        if !self.membership.is_voter(self.id) {
            // Removed: hand over by stepping down; the remaining voters elect a leader.
            self.become_follower(self.term, None);
        }
    }
}
