//! Carrying out a node's [`Ready`] in its documented order — persist, send, apply, read,
//! report, snapshot — with an armed crash landing between two steps, and the rule checks that
//! belong to each step.

use std::fmt;

use raft_core::{
    Entry, Event, HardState, Index, Message, NodeId, Payload, ProposeError, Ready, ReadyRead, RequestId,
    Snapshot, SnapshotMeta, StateMachine,
};

use super::Simulator;
use crate::crash::CrashPoint;
use crate::error::SimError;
use crate::history::OpOutcome;
use crate::node::Running;
use crate::rule::{Rule, Violation};
use crate::trace::TraceEvent;

fn contract(detail: String) -> SimError {
    Violation::new(Rule::ReadyContract, detail).into()
}

/// The outcome of a failed request: the error's variant name and message.
fn failed(error: &(impl fmt::Debug + fmt::Display)) -> OpOutcome {
    let debug = format!("{error:?}");
    let kind = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string();
    OpOutcome::Failed { kind, message: error.to_string() }
}

/// A [`Ready`] with its borrowed entries copied, so the node can be used while it is carried
/// out.
#[derive(Debug)]
pub(super) struct Work {
    pub(super) hard_state: Option<HardState>,
    pub(super) snapshot: Option<Snapshot>,
    pub(super) truncate_from: Option<Index>,
    pub(super) entries: Vec<Entry>,
    messages: Vec<(NodeId, Message)>,
    apply: Vec<Entry>,
    proposals: Vec<(Index, RequestId)>,
    reads: Vec<ReadyRead>,
    events: Vec<Event>,
    take_snapshot: Option<SnapshotMeta>,
}

impl From<Ready<'_>> for Work {
    fn from(ready: Ready<'_>) -> Self {
        Work {
            hard_state: ready.hard_state,
            snapshot: ready.snapshot,
            truncate_from: ready.truncate_from,
            entries: ready.entries.to_vec(),
            messages: ready.messages,
            apply: ready.apply.to_vec(),
            proposals: ready.proposals,
            reads: ready.reads,
            events: ready.events,
            take_snapshot: ready.take_snapshot,
        }
    }
}

impl Simulator {
    pub(super) fn carry_out(&mut self, id: NodeId, work: Work) -> Result<(), SimError> {
        let Work {
            hard_state,
            snapshot,
            truncate_from,
            entries,
            messages,
            apply,
            proposals,
            reads,
            events,
            take_snapshot,
        } = work;
        // 1. Persist: hard state, then snapshot, then the log write.
        let persists =
            hard_state.is_some() || snapshot.is_some() || truncate_from.is_some() || !entries.is_empty();
        if self.crash_lands(id, CrashPoint::BeforePersist, persists) {
            return Ok(());
        }
        if let Some(new) = hard_state {
            let storage = &mut self.nodes.get_mut(&id).expect("running node").storage;
            self.invariants.hard_state_saved(id, storage.hard_state(), new)?;
            storage.save_hard_state(new);
        }
        if self.crash_lands(id, CrashPoint::AfterHardState, hard_state.is_some()) {
            return Ok(());
        }
        let installs = snapshot.is_some();
        if let Some(snapshot) = snapshot {
            self.install_snapshot(id, snapshot)?;
        }
        if self.crash_lands(id, CrashPoint::AfterSnapshot, installs) {
            return Ok(());
        }
        if truncate_from.is_some() || !entries.is_empty() {
            let storage = &mut self.nodes.get_mut(&id).expect("running node").storage;
            storage.write_log(truncate_from, &entries).map_err(|gap| {
                contract(format!(
                    "node {id} asked for a log write at {} after index {}",
                    gap.got,
                    gap.expected - 1
                ))
            })?;
        }
        self.check_storage_mirrors_node(id)?;
        if self.crash_lands(id, CrashPoint::BeforeSend, !messages.is_empty()) {
            return Ok(());
        }
        // 2. Send.
        let sends = !messages.is_empty();
        let storage = &self.nodes[&id].storage;
        for (to, message) in messages {
            self.invariants.sending(id, storage, to, &message)?;
            self.network.send(id, to, message, self.now);
        }
        if self.crash_lands(id, CrashPoint::AfterSend, sends) {
            return Ok(());
        }
        // 3. Apply, answering the proposals made here.
        let mut proposals = proposals.into_iter().peekable();
        for entry in &apply {
            self.apply(id, entry)?;
            while let Some((index, request)) = proposals.next_if(|&(index, _)| index == entry.index) {
                self.complete(request, OpOutcome::Committed { index })?;
            }
        }
        if let Some((index, request)) = proposals.next() {
            return Err(contract(format!(
                "node {id} answers request {request} with index {index}, which it does not apply"
            )));
        }
        // 4. Reads.
        for read in reads {
            let value = self.running_mut(id).machine.query(&read.query);
            self.complete(read.id, OpOutcome::Value(value))?;
        }
        // 5. Report.
        for event in events {
            self.report(id, event)?;
        }
        // 6. Snapshot.
        if let Some(meta) = take_snapshot {
            self.take_snapshot(id, meta)?;
        }
        Ok(())
    }

    fn running_mut(&mut self, id: NodeId) -> &mut Running {
        self.nodes.get_mut(&id).and_then(|n| n.running.as_mut()).expect("running node")
    }

    /// Crashes the node if a crash is armed at `point` and this Ready has work on both sides
    /// of it (`splits`).
    fn crash_lands(&mut self, id: NodeId, point: CrashPoint, splits: bool) -> bool {
        let lands = splits && self.nodes.get(&id).is_some_and(|n| n.crash_at == Some(point));
        if lands {
            self.crash_now(id, Some(point));
        }
        lands
    }

    /// Once persisted, storage holds the node's term, vote and last log entry.
    fn check_storage_mirrors_node(&self, id: NodeId) -> Result<(), SimError> {
        let node = &self.nodes[&id];
        let Some(Running { node: raft, .. }) = &node.running else { return Ok(()) };
        let expected = HardState { term: raft.term(), vote: raft.vote() };
        let storage = &node.storage;
        if storage.last_log_id() != raft.last_log_id() || storage.hard_state() != expected {
            return Err(contract(format!(
                "after persisting, node {id} holds term {} vote {:?} last log {:?} but storage holds term {} vote \
                 {:?} last log {:?}",
                expected.term,
                expected.vote,
                raft.last_log_id(),
                storage.hard_state().term,
                storage.hard_state().vote,
                storage.last_log_id()
            )));
        }
        Ok(())
    }

    fn install_snapshot(&mut self, id: NodeId, snapshot: Snapshot) -> Result<(), SimError> {
        let node = self.nodes.get_mut(&id).expect("running node");
        let running = node.running.as_mut().expect("running node");
        running.machine.restore(&snapshot.data).map_err(|e| contract(format!("node {id}: {e}")))?;
        running.applied = snapshot.meta.last.index;
        let state = running.machine.digest();
        self.invariants.snapshot_installed(id, &snapshot.meta, state)?;
        self.trace.push(
            self.now,
            TraceEvent::Note(format!("node {id} installed a snapshot through {}", running.applied)),
        );
        node.storage.store_snapshot(snapshot);
        Ok(())
    }

    fn apply(&mut self, id: NodeId, entry: &Entry) -> Result<(), SimError> {
        let running = self.running_mut(id);
        if entry.index != running.applied + 1 {
            let after = running.applied;
            return Err(contract(format!(
                "node {id} was handed entry {} to apply after {after}",
                entry.index
            )));
        }
        if let Payload::Command(command) = &entry.payload {
            running.machine.apply(entry.index, command);
        }
        running.applied = entry.index;
        let state = running.machine.digest();
        self.invariants.applied(id, entry, state)?;
        Ok(())
    }

    fn take_snapshot(&mut self, id: NodeId, meta: SnapshotMeta) -> Result<(), SimError> {
        let node = self.nodes.get_mut(&id).expect("running node");
        let running = node.running.as_mut().expect("running node");
        if meta.last.index != running.applied {
            let applied = running.applied;
            return Err(contract(format!(
                "node {id} asked for a snapshot through {} with its state machine at {applied}",
                meta.last.index
            )));
        }
        let snapshot = Snapshot { data: running.machine.snapshot(), meta };
        node.storage.store_snapshot(snapshot.clone());
        running.node.snapshot_taken(snapshot);
        Ok(())
    }

    fn report(&mut self, id: NodeId, event: Event) -> Result<(), SimError> {
        let (request, outcome) = match event {
            // Committed and applied inside a snapshot: a success without a response.
            Event::Proposal { id: request, result: Err(ProposeError::ResponseLost { index }) } => {
                (request, OpOutcome::Committed { index })
            }
            Event::Proposal { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), |a| OpOutcome::Committed { index: a.index }))
            }
            Event::Read { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Value))
            }
            Event::Membership { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Changed))
            }
            Event::Transfer { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Transferred))
            }
            Event::RoleChanged { role, term, leader } => {
                self.trace.push(self.now, TraceEvent::Role { node: id, role, term, leader });
                return Ok(());
            }
            Event::Compacted { through } => {
                self.trace.push(
                    self.now,
                    TraceEvent::Note(format!("node {id} compacted its log through {through}")),
                );
                return Ok(());
            }
            _ => return Ok(()),
        };
        Ok(self.complete(request, outcome)?)
    }
}
