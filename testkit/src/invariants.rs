//! The safety checks run after every simulator step (Raft §5.2–§5.4, Figure 3), plus the
//! durability rules of the [`Ready`](raft_core::Ready) contract.
//!
//! The checker keeps ledgers across the whole run, not copies of logs: the leader of each
//! term, every `(index, term)` ever stored with its payload digest and predecessor term, every
//! committed and every applied index. Each observation is compared against them.

use std::collections::{BTreeMap, HashMap};

use raft_core::{
    Bytes, Entry, HardState, Index, LogId, MemState, Message, Node, NodeId, Payload, RequestId, Role,
    SnapshotMeta, Term,
};

use crate::digest::entry_digest;
use crate::rule::{Rule, Violation};

fn fail<T>(rule: Rule, detail: String) -> Result<T, Violation> {
    Err(Violation::new(rule, detail))
}

/// The last observation of one node.
#[derive(Clone, Copy, Debug)]
struct Watch {
    role: Role,
    term: Term,
    commit: Index,
    applied: Index,
    last_log: LogId,
}

/// An index known committed, and the term of the node that first committed it.
#[derive(Clone, Copy, Debug)]
struct Committed {
    term: Term,
    digest: u64,
    in_term: Term,
}

/// An index applied somewhere: the entry, the state machine after it, and its command.
#[derive(Clone, Debug)]
struct AppliedEntry {
    digest: u64,
    state: u64,
    command: Option<Bytes>,
}

/// The ledgers and per-node watches of one run.
#[derive(Debug, Default)]
pub(crate) struct Invariants {
    leaders: BTreeMap<Term, NodeId>,
    /// `(index, term)` → (payload digest, term of the entry before it).
    entries: HashMap<(Index, Term), (u64, Term)>,
    committed: BTreeMap<Index, Committed>,
    applied: BTreeMap<Index, AppliedEntry>,
    watches: BTreeMap<NodeId, Watch>,
}

impl Invariants {
    /// Forgets the per-incarnation watch of a node that restarts.
    pub(crate) fn restarted(&mut self, id: NodeId) {
        if let Some(watch) = self.watches.get_mut(&id) {
            watch.commit = 0;
            watch.applied = 0;
            watch.role = Role::Follower;
        }
    }

    /// Registers entries a node holds: the same `(index, term)` must always carry the same
    /// payload after the same predecessor (Log Matching, by induction on the index).
    pub(crate) fn stored(
        &mut self,
        id: NodeId,
        entries: &[Entry],
        mut prev_term: Option<Term>,
    ) -> Result<(), Violation> {
        for entry in entries {
            let digest = entry_digest(entry);
            if let Some(prev) = prev_term {
                let seen = *self.entries.entry((entry.index, entry.term)).or_insert((digest, prev));
                if seen != (digest, prev) {
                    let what = if seen.0 != digest { "another payload" } else { "another predecessor" };
                    return fail(
                        Rule::LogMatching,
                        format!(
                            "node {id} stores entry {}@{} after an entry of term {prev}, but another log holds \
                             {}@{} with {what} (after an entry of term {})",
                            entry.index, entry.term, entry.index, entry.term, seen.1
                        ),
                    );
                }
            }
            prev_term = Some(entry.term);
        }
        Ok(())
    }

    /// Checks the log writes of a [`Ready`](raft_core::Ready) just taken from node `id`:
    /// `rewrite` says whether it truncates the log (from which index) or installs a snapshot.
    /// `(role, term)` is the node's when the Ready was taken; `prev_term` the term of the entry
    /// before the first new one.
    pub(crate) fn ready_taken(
        &mut self,
        id: NodeId,
        (role, term): (Role, Term),
        rewrite: (Option<Index>, bool),
        entries: &[Entry],
        prev_term: Option<Term>,
    ) -> Result<(), Violation> {
        if let Some(watch) = self.watches.get(&id) {
            let still_leading = watch.role == Role::Leader && role == Role::Leader && watch.term == term;
            let overwrites = entries.first().is_some_and(|e| e.index <= watch.last_log.index);
            if still_leading && (rewrite.0.is_some() || rewrite.1 || overwrites) {
                return fail(
                    Rule::LeaderAppendOnly,
                    format!(
                        "node {id}, leader of term {}, rewrote its log (truncate from {:?}, snapshot {}, first new \
                         entry {:?}, last entry was {}@{})",
                        watch.term,
                        rewrite.0,
                        rewrite.1,
                        entries.first().map(Entry::id),
                        watch.last_log.index,
                        watch.last_log.term
                    ),
                );
            }
        }
        self.stored(id, entries, prev_term)
    }

    /// Checks a node's state after it handled an input and its output was carried out.
    pub(crate) fn observe(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let now = Watch {
            role: node.role(),
            term: node.term(),
            commit: node.commit_index(),
            applied: node.applied_index(),
            last_log: node.last_log_id(),
        };
        let before = self.watches.get(&id).copied();
        if let Some(before) = before {
            if now.term < before.term || now.commit < before.commit || now.applied < before.applied {
                return fail(
                    Rule::Monotonicity,
                    format!(
                        "node {id} went from term {} commit {} applied {} to term {} commit {} applied {}",
                        before.term, before.commit, before.applied, now.term, now.commit, now.applied
                    ),
                );
            }
        }
        if now.applied > now.commit || now.commit > now.last_log.index {
            return fail(
                Rule::Monotonicity,
                format!(
                    "node {id} has applied {} > commit {} or commit > last log index {}",
                    now.applied, now.commit, now.last_log.index
                ),
            );
        }
        if now.role == Role::Leader {
            let leader = *self.leaders.entry(now.term).or_insert(id);
            if leader != id {
                return fail(
                    Rule::ElectionSafety,
                    format!("nodes {leader} and {id} both lead term {}", now.term),
                );
            }
            let newly = before.is_none_or(|b| b.role != Role::Leader || b.term != now.term);
            if newly {
                self.check_completeness(id, node)?;
            }
        }
        self.record_commits(id, node, before.map_or(0, |b| b.commit))?;
        self.watches.insert(id, now);
        Ok(())
    }

    /// A new leader of term T must hold every entry committed before T: by Log Matching it
    /// is enough to check the last one.
    fn check_completeness(&self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let term = node.term();
        let Some((&index, committed)) = self.committed.iter().rev().find(|(_, c)| c.in_term < term) else {
            return Ok(());
        };
        let holds = match node.term_at(index) {
            Some(t) => t == committed.term,
            None => index < node.first_index() && index <= node.last_log_id().index,
        };
        if holds {
            Ok(())
        } else {
            fail(
                Rule::LeaderCompleteness,
                format!(
                    "node {id} leads term {term} without entry {index}@{} committed in term {} (its log ends at {}@{})",
                    committed.term,
                    committed.in_term,
                    node.last_log_id().index,
                    node.last_log_id().term
                ),
            )
        }
    }

    /// Records indexes newly committed on a node; every node must commit the same entries.
    fn record_commits(&mut self, id: NodeId, node: &Node, from: Index) -> Result<(), Violation> {
        let commit = node.commit_index();
        for entry in node.entries(from.max(node.first_index()), commit) {
            let digest = entry_digest(entry);
            match self.committed.get(&entry.index) {
                Some(c) if c.digest != digest => {
                    return fail(
                        Rule::StateMachineSafety,
                        format!(
                            "node {id} committed {}@{} but {}@{} was committed before",
                            entry.index, entry.term, entry.index, c.term
                        ),
                    )
                }
                Some(_) => {}
                None => {
                    let record = Committed { term: entry.term, digest, in_term: node.term() };
                    self.committed.insert(entry.index, record);
                }
            }
        }
        Ok(())
    }

    /// Records an entry applied on node `id`, leaving its state machine with `state` digest.
    pub(crate) fn applied(&mut self, id: NodeId, entry: &Entry, state: u64) -> Result<(), Violation> {
        let digest = entry_digest(entry);
        if let Some(c) = self.committed.get(&entry.index) {
            if c.digest != digest {
                return fail(
                    Rule::StateMachineSafety,
                    format!(
                        "node {id} applied {}@{} but {}@{} is the committed entry",
                        entry.index, entry.term, entry.index, c.term
                    ),
                );
            }
        }
        match self.applied.get(&entry.index) {
            Some(a) if a.digest != digest || a.state != state => fail(
                Rule::StateMachineSafety,
                format!(
                    "node {id} applied a different entry at index {} (or reached another state) than a node before it",
                    entry.index
                ),
            ),
            Some(_) => Ok(()),
            None => {
                let command = match &entry.payload {
                    Payload::Command(c) => Some(c.to_bytes()),
                    _ => None,
                };
                self.applied.insert(entry.index, AppliedEntry { digest, state, command });
                Ok(())
            }
        }
    }

    /// Checks an acknowledgement: request `request` proposed `command`, reported committed at
    /// `index`, so whatever was applied at `index` must be that command.
    pub(crate) fn acknowledged(
        &self,
        request: RequestId,
        index: Index,
        command: &Bytes,
    ) -> Result<(), Violation> {
        match self.applied.get(&index) {
            Some(a) if a.command.as_ref() != Some(command) => {
                let held = a.command.as_ref().map_or_else(
                    || "a no-op or configuration entry".to_string(),
                    |c| format!("{:?}", String::from_utf8_lossy(c)),
                );
                fail(
                    Rule::Durability,
                    format!(
                        "request {request} ({:?}) was acknowledged as committed at index {index}, but index \
                         {index} holds {held}",
                        String::from_utf8_lossy(command)
                    ),
                )
            }
            _ => Ok(()),
        }
    }

    /// Checks a snapshot received from a leader against what was applied at its index.
    pub(crate) fn snapshot_installed(
        &mut self,
        id: NodeId,
        meta: &SnapshotMeta,
        state: u64,
    ) -> Result<(), Violation> {
        let last = meta.last;
        if let Some(c) = self.committed.get(&last.index).filter(|c| c.term != last.term) {
            return fail(
                Rule::StateMachineSafety,
                format!(
                    "node {id} installed a snapshot through {}@{} but {}@{} is committed",
                    last.index, last.term, last.index, c.term
                ),
            );
        }
        match self.applied.get(&last.index) {
            Some(a) if a.state != state => fail(
                Rule::StateMachineSafety,
                format!(
                    "node {id} installed a snapshot through {} whose state differs from the applied one",
                    last.index
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Checks a durable hard-state write: the term never decreases, and a vote cast in a term
    /// is never changed.
    pub(crate) fn hard_state_saved(
        &self,
        id: NodeId,
        old: HardState,
        new: HardState,
    ) -> Result<(), Violation> {
        let vote_changed = new.term == old.term && old.vote.is_some() && new.vote != old.vote;
        if new.term < old.term || vote_changed {
            return fail(
                Rule::Monotonicity,
                format!(
                    "node {id} persisted term {} vote {:?} over term {} vote {:?}",
                    new.term, new.vote, old.term, old.vote
                ),
            );
        }
        Ok(())
    }

    /// Checks that what `message` reveals is durable on its sender.
    pub(crate) fn sending(
        &self,
        id: NodeId,
        storage: &MemState,
        to: NodeId,
        message: &Message,
    ) -> Result<(), Violation> {
        let durable = storage.hard_state();
        let revealed_term = match message {
            Message::RequestVote(m) if m.pre_vote => None,
            Message::VoteResponse(m) if m.pre_vote => None,
            other => Some(other.term()),
        };
        let problem = match message {
            _ if revealed_term.is_some_and(|t| t > durable.term) => Some("a term that is not durable"),
            Message::VoteResponse(m) if m.granted && !m.pre_vote && durable.vote != Some(to) => {
                Some("a vote that is not durable")
            }
            Message::RequestVote(m) if !m.pre_vote && durable.vote != Some(id) => {
                Some("a candidacy whose self-vote is not durable")
            }
            Message::AppendResponse(raft_core::AppendResponse {
                result: raft_core::AppendResult::Success { match_index },
                ..
            }) if *match_index > storage.last_log_id().index => Some("entries that are not durable"),
            _ => None,
        };
        match problem {
            Some(what) => fail(
                Rule::PersistBeforeSend,
                format!(
                    "node {id} sent {} to {to} revealing {what} (durable: term {}, vote {:?}, log to {})",
                    message.kind(),
                    durable.term,
                    durable.vote,
                    storage.last_log_id().index
                ),
            ),
            None => Ok(()),
        }
    }
}
