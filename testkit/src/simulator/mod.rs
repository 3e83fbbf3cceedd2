//! [`Simulator`]: a cluster of real [`raft_core::Node`]s in virtual time. Each node's output is
//! carried out by raft-core's own executor ([`raft_core::carry_out`]), watched step by step by
//! `observer.rs`; `report.rs` records the outcomes.

use std::collections::BTreeMap;

use raft_core::{
    carry_out, Bytes, Carried, Checkpoint, Entry, HardState, Incoming, Instant, MemState, Membership,
    MembershipChange, Node, NodeId, Outgoing, RequestId, Role,
};

use crate::error::{invalid, SimError};
use crate::history::{History, OpKind, OpOutcome, Stamp};
use crate::invariants::Invariants;
use crate::kv::KvStore;
use crate::network::{InFlight, MessageFilter, Network};
use crate::node::{Running, SimNode};
use crate::options::ClusterOptions;
use crate::resolve;
use crate::rng::SimRng;
use crate::rule::{Rule, Violation};
use crate::trace::{Trace, TraceEvent};

mod observer;
mod report;

use self::observer::{Stop, Watcher};

fn contract(detail: String) -> SimError {
    Violation::new(Rule::ReadyContract, detail).into()
}

/// Deliveries after which [`Simulator::settle`] gives up: the network never went quiet.
const SETTLE_LIMIT: usize = 100_000;

/// A simulated cluster of real [`raft_core::Node`]s in virtual time.
///
/// The simulator owns the clock. It jumps from one event to the next — a message arriving,
/// a node's timer ([`Node::next_deadline`]) — so simulated minutes take milliseconds. Every
/// random choice comes from the seed in [`ClusterOptions`], so a run replays exactly. After
/// every event the node that handled it is checked against the [`Rule`]s; a broken rule stops
/// the run with [`SimError::Violation`].
///
/// ```
/// use testkit::{ClusterOptions, Simulator};
/// let mut sim = Simulator::new(ClusterOptions::new([1, 2, 3])).unwrap();
/// sim.advance(1_000).unwrap(); // one simulated second: an election happens
/// let leader = sim.leader().expect("a leader");
/// let id = sim.propose(leader, "x=1").unwrap();
/// sim.settle().unwrap();
/// assert!(sim.history().get(id).unwrap().outcome.is_done());
/// ```
#[derive(Debug)]
pub struct Simulator {
    options: ClusterOptions,
    now: u64,
    seq: u64,
    steps: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    network: Network,
    history: History,
    invariants: Invariants,
    trace: Trace,
}

impl Simulator {
    /// Builds and starts the cluster described by `options`.
    pub fn new(options: ClusterOptions) -> Result<Self, SimError> {
        options.config.validate().map_err(|e| SimError::Invalid(e.to_string()))?;
        let membership = options.membership();
        let mut nodes = BTreeMap::new();
        for &id in membership.members().iter().chain(&options.spares) {
            if id == 0 {
                return invalid("node id 0 is reserved; use ids from 1");
            }
            let bootstrap = if membership.contains(id) { membership.clone() } else { Membership::default() };
            if nodes.insert(id, SimNode::new(MemState::new(bootstrap))).is_some() {
                return invalid(format!("node {id} is listed twice"));
            }
        }
        if options.voters.is_empty() {
            return invalid("a cluster needs at least one voter");
        }
        let network = Network::new(options.faults, SimRng::new(options.seed));
        let mut sim = Simulator {
            options,
            now: 0,
            seq: 0,
            steps: 0,
            nodes,
            network,
            history: History::default(),
            invariants: Invariants::default(),
            trace: Trace::default(),
        };
        for id in sim.ids() {
            sim.restart(id)?;
        }
        Ok(sim)
    }

    // ----- getters ---------------------------------------------------------------------

    /// The options the cluster was built with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// The simulated time, in milliseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How many events (deliveries and timers) have been handled.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Every node id, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Whether node `id` is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.running(id).is_some()
    }

    /// The protocol machine of a running node.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.running(id).map(|r| &r.node)
    }

    /// The state machine of a running node.
    pub fn machine(&self, id: NodeId) -> Option<&KvStore> {
        self.running(id).map(|r| &r.machine)
    }

    /// The durable storage of a node (running or not).
    pub fn storage(&self, id: NodeId) -> Option<&MemState> {
        self.nodes.get(&id).map(|n| &n.storage)
    }

    /// How many times node `id` has started.
    pub fn incarnation(&self, id: NodeId) -> u64 {
        self.nodes.get(&id).map_or(0, |n| n.incarnation)
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network, to change faults and partitions.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Every client operation so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The latest events.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The running leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .keys()
            .filter_map(|&id| self.node(id).filter(|n| n.role() == Role::Leader))
            .max_by_key(|n| n.term())
            .map(Node::id)
    }

    fn running(&self, id: NodeId) -> Option<&Running> {
        self.nodes.get(&id).and_then(|n| n.running.as_ref())
    }

    fn sim_node(&mut self, id: NodeId) -> Result<&mut SimNode, SimError> {
        match self.nodes.get_mut(&id) {
            Some(node) => Ok(node),
            None => invalid(format!("there is no node {id}")),
        }
    }

    fn require_up(&self, id: NodeId) -> Result<(), SimError> {
        match self.nodes.get(&id) {
            None => invalid(format!("there is no node {id}")),
            Some(n) if n.running.is_none() => invalid(format!("node {id} is down")),
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn stamp(&mut self) -> Stamp {
        self.seq += 1;
        Stamp { at: self.now, seq: self.seq }
    }

    /// Adds a line to the trace (the chaos driver notes the faults it injects).
    pub fn note(&mut self, note: String) {
        self.trace.push(self.now, TraceEvent::Note(note));
    }

    // ----- clients -----------------------------------------------------------------------

    /// A client sends `command` to node `id` for replication. The outcome shows in
    /// [`Simulator::history`] under the returned request id.
    pub fn propose(&mut self, id: NodeId, command: impl Into<Bytes>) -> Result<RequestId, SimError> {
        let command = command.into();
        self.request(id, OpKind::Propose { command: command.clone() }, |req| Incoming::Propose {
            id: req,
            command: command.into(),
        })
    }

    /// A client sends a linearizable read of `query` (a key) to node `id`.
    pub fn read(&mut self, id: NodeId, query: impl Into<Bytes>) -> Result<RequestId, SimError> {
        let query = query.into();
        self.request(id, OpKind::Read { query: query.clone() }, |req| Incoming::Read { id: req, query })
    }

    /// An operator asks node `id` to change the configuration.
    pub fn change_membership(&mut self, id: NodeId, change: MembershipChange) -> Result<RequestId, SimError> {
        self.request(id, OpKind::Change(change.clone()), |req| Incoming::ChangeMembership { id: req, change })
    }

    /// An operator asks node `id` to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, id: NodeId, to: NodeId) -> Result<RequestId, SimError> {
        self.request(id, OpKind::Transfer { to }, |req| Incoming::TransferLeadership { id: req, to })
    }

    /// Asks node `id` to snapshot its state machine and compact its log now.
    pub fn compact(&mut self, id: NodeId) -> Result<(), SimError> {
        self.require_up(id)?;
        self.input(id, Incoming::Compact)
    }

    fn request(
        &mut self,
        id: NodeId,
        kind: OpKind,
        input: impl FnOnce(RequestId) -> Incoming,
    ) -> Result<RequestId, SimError> {
        self.require_up(id)?;
        let at = self.stamp();
        let request = self.history.invoke(id, kind, at);
        self.input(id, input(request))?;
        Ok(request)
    }

    pub(crate) fn complete(&mut self, request: RequestId, outcome: OpOutcome) -> Result<(), Violation> {
        let at = self.stamp();
        if let OpOutcome::Committed { index } = outcome {
            if let Some(OpKind::Propose { command }) = self.history.get(request).map(|op| &op.kind) {
                self.invariants.acknowledged(request, index, command)?;
            }
        }
        if self.history.complete(request, outcome, at) {
            Ok(())
        } else {
            Err(Violation::new(Rule::ReadyContract, format!("request {request} was answered twice")))
        }
    }

    // ----- crashes -----------------------------------------------------------------------

    /// Crashes node `id` now: what it has not persisted is lost; its clients get no answer.
    pub fn crash(&mut self, id: NodeId) -> Result<(), SimError> {
        self.require_up(id)?;
        self.crash_now(id, None);
        Ok(())
    }

    /// Arms a crash of node `id` at `point` inside the first [`Ready`](raft_core::Ready) it
    /// carries out with work at that point (see [`Checkpoint`]).
    pub fn arm_crash(&mut self, id: NodeId, point: Checkpoint) -> Result<(), SimError> {
        self.require_up(id)?;
        self.sim_node(id)?.crash_at = Some(point);
        Ok(())
    }

    /// Disarms a crash armed with [`Simulator::arm_crash`].
    pub fn disarm_crash(&mut self, id: NodeId) -> Result<(), SimError> {
        self.sim_node(id)?.crash_at = None;
        Ok(())
    }

    pub(crate) fn crash_now(&mut self, id: NodeId, point: Option<Checkpoint>) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.running = None;
            node.crash_at = None;
        }
        let at = self.stamp();
        self.history.lose_pending(id, at);
        self.trace.push(self.now, TraceEvent::Crashed(id, point));
    }

    /// Starts node `id` from its storage (it must be down; [`Simulator::new`] starts every
    /// node once).
    pub fn restart(&mut self, id: NodeId) -> Result<(), SimError> {
        let mut config = self.options.config.clone();
        let seed = self.options.seed;
        let node = self.sim_node(id)?;
        if node.running.is_some() {
            return invalid(format!("node {id} is already running"));
        }
        node.incarnation += 1;
        config.seed = seed ^ node.incarnation.wrapping_mul(0xA076_1D64_78BD_642F);
        let mut machine = KvStore::default();
        let raft = resolve::now(raft_core::start(id, config, &mut node.storage, &mut machine))?
            .map_err(|e| Violation::new(Rule::ReadyContract, format!("node {id} cannot start: {e}")))?;
        let applied = raft.applied_index();
        // What the node holds (it may drop stored entries it cannot use) must match storage.
        let held = raft.entries(raft.first_index(), raft.last_log_id().index).to_vec();
        let prev_term = raft.term_at(raft.first_index() - 1);
        let (held_last, stored_last) = (raft.last_log_id(), node.storage.last_log_id());
        node.running = Some(Running { node: raft, machine, applied });
        self.invariants.restarted(id);
        self.invariants.stored(id, &held, prev_term)?;
        if held_last != stored_last {
            let detail = format!(
                "node {id} restarted with its log ending at {}@{}, but its storage holds entries to {}@{}",
                held_last.index, held_last.term, stored_last.index, stored_last.term
            );
            return Err(Violation::new(Rule::ReadyContract, detail).into());
        }
        self.trace.push(self.now, TraceEvent::Restarted(id));
        self.tick(id) // starts the new incarnation's clock
    }

    /// Adds machine `id` to the running simulation and starts it with empty storage, outside
    /// the configuration, as a spare starts: it waits for a leader to add it (see
    /// [`MembershipChange::AddVoter`]).
    ///
    /// ```
    /// use raft_core::MembershipChange;
    /// use testkit::{ClusterOptions, Simulator};
    /// let mut sim = Simulator::new(ClusterOptions::new([1])).unwrap();
    /// sim.advance(1_000).unwrap();
    /// sim.add_node(2).unwrap();
    /// let change = sim.change_membership(1, MembershipChange::AddVoter(2)).unwrap();
    /// sim.advance(100).unwrap();
    /// assert!(sim.history().get(change).unwrap().outcome.is_done());
    /// assert!(sim.node(2).unwrap().membership().voters.contains(&2));
    /// assert!(sim.add_node(2).is_err(), "node 2 exists");
    /// ```
    pub fn add_node(&mut self, id: NodeId) -> Result<(), SimError> {
        if id == 0 {
            return invalid("node id 0 is reserved; use ids from 1");
        }
        if self.nodes.contains_key(&id) {
            return invalid(format!("node {id} already exists"));
        }
        self.nodes.insert(id, SimNode::new(MemState::new(Membership::default())));
        self.restart(id)
    }

    /// Replaces node `id`'s storage with a hard state and a log, and restarts it: sets up
    /// scenarios such as the logs of the Raft paper's Figure 7. The entries are checked
    /// against every log the run has seen (Log Matching).
    pub fn restore(
        &mut self,
        id: NodeId,
        hard_state: HardState,
        entries: Vec<Entry>,
    ) -> Result<(), SimError> {
        if self.is_up(id) {
            self.crash_now(id, None);
        }
        let node = self.sim_node(id)?;
        let bootstrap = node.storage.bootstrap().clone();
        node.storage = MemState::with_log(bootstrap, hard_state, entries)
            .map_err(|e| SimError::Invalid(format!("cannot set up node {id}'s log: {e}")))?;
        self.restart(id)
    }

    // ----- time and delivery -------------------------------------------------------------

    /// Node `id`'s clock, in its own milliseconds.
    fn local_time(&self, id: NodeId) -> u64 {
        self.now + self.nodes.get(&id).map_or(0, |n| n.clock_offset)
    }

    /// Ticks node `id` up to the present if its clock lags.
    fn sync_clock(&mut self, id: NodeId) -> Result<(), SimError> {
        let local = self.local_time(id);
        if self.node(id).is_some_and(|n| n.now().as_millis() < local) {
            self.tick(id)?;
        }
        Ok(())
    }

    fn tick(&mut self, id: NodeId) -> Result<(), SimError> {
        self.input(id, Incoming::Tick(Instant::from_millis(self.local_time(id))))
    }

    /// When the next timer fires (simulated time) and whose it is.
    fn next_timer(&self) -> Option<(u64, NodeId)> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| {
                let node = &n.running.as_ref()?.node;
                let due = node.next_deadline().as_millis().max(node.now().as_millis() + 1);
                Some((due.saturating_sub(n.clock_offset).max(self.now), id))
            })
            .min()
    }

    /// When the next event (a message arriving, a timer) happens.
    pub fn next_event_time(&self) -> Option<u64> {
        let timer = self.next_timer().map(|(at, _)| at);
        match (timer, self.network.next_arrival()) {
            (Some(a), Some(b)) => Some(a.min(b.max(self.now))),
            (a, b) => a.or(b.map(|b| b.max(self.now))),
        }
    }

    /// Handles the next event, moving the clock to it. Returns false when nothing is left to
    /// happen (every node down and the network empty).
    pub fn step(&mut self) -> Result<bool, SimError> {
        let timer = self.next_timer();
        let arrival = self.network.next_arrival();
        match (timer, arrival) {
            (None, None) => return Ok(false),
            (Some((at, id)), arrival) if arrival.is_none_or(|a| at <= a) => {
                self.now = self.now.max(at);
                self.steps += 1;
                self.trace.push(self.now, TraceEvent::Timer(id));
                self.sync_clock(id)?;
            }
            _ => {
                if let Some(sent) = self.network.pop_next() {
                    self.now = self.now.max(sent.deliver_at);
                    self.steps += 1;
                    self.deliver_one(sent)?;
                }
            }
        }
        Ok(true)
    }

    /// Handles every event up to simulated time `until`, then sets the clock to it. Returns
    /// the number of events.
    pub fn run_until(&mut self, until: u64) -> Result<u64, SimError> {
        let start = self.steps;
        while self.next_event_time().is_some_and(|at| at <= until) {
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(self.steps - start)
    }

    /// Lets `ms` simulated milliseconds pass.
    pub fn advance(&mut self, ms: u64) -> Result<u64, SimError> {
        self.run_until(self.now + ms)
    }

    /// Makes node `id`'s election timer fire now: its clock jumps to its deadline (clocks of
    /// different nodes need not agree; only their rates matter).
    pub fn timeout(&mut self, id: NodeId) -> Result<(), SimError> {
        self.require_up(id)?;
        let Some(node) = self.node(id) else { return Ok(()) };
        let jump = node.next_deadline().as_millis().saturating_sub(self.local_time(id));
        self.sim_node(id)?.clock_offset += jump;
        self.trace.push(self.now, TraceEvent::Timer(id));
        self.sync_clock(id)
    }

    /// Delivers every message in flight, and every message that causes, without moving the
    /// clock (delays are skipped; cut links still lose messages). Returns the deliveries.
    pub fn settle(&mut self) -> Result<usize, SimError> {
        let mut delivered = 0;
        while let Some(sent) = self.network.pop_next() {
            delivered += 1;
            if delivered > SETTLE_LIMIT {
                return invalid(format!("the network did not go quiet after {SETTLE_LIMIT} deliveries"));
            }
            self.steps += 1;
            self.deliver_one(sent)?;
        }
        Ok(delivered)
    }

    /// Delivers the messages in flight selected by `filter` now (only the first when
    /// `first_only`). What they cause stays in flight. Returns how many were selected.
    pub fn deliver(&mut self, filter: &MessageFilter, first_only: bool) -> Result<usize, SimError> {
        let messages = self.network.take(filter, first_only);
        let count = messages.len();
        for sent in messages {
            self.steps += 1;
            self.deliver_one(sent)?;
        }
        Ok(count)
    }

    /// Loses the messages in flight selected by `filter` (only the first when `first_only`).
    pub fn drop_messages(&mut self, filter: &MessageFilter, first_only: bool) -> usize {
        let lost = self.network.take(filter, first_only);
        for e in &lost {
            self.trace.push(self.now, TraceEvent::Lost { from: e.from, to: e.to, kind: e.message.kind() });
        }
        lost.len()
    }

    fn deliver_one(&mut self, sent: InFlight) -> Result<(), SimError> {
        let InFlight { from, to, message, .. } = sent;
        if self.network.is_cut(from, to) || !self.is_up(to) {
            self.trace.push(self.now, TraceEvent::Lost { from, to, kind: message.kind() });
            return Ok(());
        }
        self.trace
            .push(self.now, TraceEvent::Delivered { from, to, kind: message.kind(), term: message.term() });
        self.sync_clock(to)?;
        self.input(to, Incoming::Message { from, message })
    }

    /// Feeds one input to a running node and carries out everything it produces.
    fn input(&mut self, id: NodeId, input: Incoming) -> Result<(), SimError> {
        let Some(running) = self.nodes.get_mut(&id).and_then(|n| n.running.as_mut()) else {
            return Ok(());
        };
        running.node.step(input);
        self.flush(id)
    }

    /// Takes and carries out the node's Ready until it has none, checking the rules.
    fn flush(&mut self, id: NodeId) -> Result<(), SimError> {
        while self.running(id).is_some_and(|r| r.node.has_ready()) {
            self.carry_out_one(id)?;
        }
        Ok(())
    }

    /// Carries out one Ready of running node `id` with raft-core's executor, watched by the
    /// rule checks, and lands an armed crash at its checkpoint.
    fn carry_out_one(&mut self, id: NodeId) -> Result<(), SimError> {
        let Some(SimNode { storage, running: Some(running), crash_at, .. }) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let Running { node, machine, applied } = running;
        let (role, term) = (node.role(), node.term());
        let ready = node.take_ready();
        let rewrite = (ready.truncate_from, ready.install_snapshot.is_some());
        let send_first = ready.send_first;
        let entries = ready.entries.to_vec();
        let mut watcher = Watcher {
            id,
            invariants: &mut self.invariants,
            crash_at: *crash_at,
            hard_state_before: storage.hard_state(),
            applied,
            installed: Vec::new(),
            stopped: None,
        };
        let mut out = Vec::new();
        let carried = resolve::now(carry_out(ready, storage, machine, &mut watcher, &mut out))?;
        let (stopped, installed) = (watcher.stopped.take(), std::mem::take(&mut watcher.installed));
        let prev_term = entries.first().and_then(|e| node.term_at(e.index - 1));
        // What the node now holds (taking the Ready may append: the second phase of a joint
        // change) must be what storage holds once the Ready is persisted.
        let durable = (HardState { term: node.term(), vote: node.vote() }, node.last_log_id());
        let stored = (storage.hard_state(), storage.last_log_id());
        let carried = carried.map_err(|e| contract(format!("node {id}: {e}")))?;
        if let (Carried::Done(Some(snapshot)), None) = (&carried, &stopped) {
            node.snapshot_taken(snapshot.clone());
        }

        self.invariants.ready_taken(id, (role, term), rewrite, &entries, prev_term)?;
        for index in installed {
            let note = format!("node {id} installed a snapshot through {index}");
            self.trace.push(self.now, TraceEvent::Note(note));
        }
        let crash = match stopped {
            Some(Stop::Violation(error)) => return Err(error),
            Some(Stop::Crash(point)) => Some(point),
            None => None,
        };
        let persisted = match crash {
            Some(Checkpoint::BeforePersist | Checkpoint::AfterHardState | Checkpoint::AfterSnapshot) => false,
            // A leader's messages leave before its log write (`Ready::send_first`).
            Some(Checkpoint::BeforeSend | Checkpoint::AfterSend) => !send_first,
            _ => true,
        };
        if persisted && stored != durable {
            return Err(contract(format!(
                "after persisting, node {id} holds term {} vote {:?} last log {:?} but storage holds term {} vote \
                 {:?} last log {:?}",
                durable.0.term, durable.0.vote, durable.1, stored.0.term, stored.0.vote, stored.1
            )));
        }
        for output in out {
            match output {
                Outgoing::Send { to, message } => self.network.send(id, to, message, self.now),
                Outgoing::Event(event) => self.report(id, event)?,
            }
        }
        if let Some(point) = crash {
            self.crash_now(id, Some(point));
            return Ok(());
        }
        match self.nodes.get(&id).and_then(|n| n.running.as_ref()) {
            Some(running) => Ok(self.invariants.observe(id, &running.node)?),
            None => Ok(()),
        }
    }

    // ----- end-of-run checks -------------------------------------------------------------

    /// Checks that every acknowledged write is applied on every running member of the
    /// leader's configuration (run it once the network has healed and the cluster settled).
    pub fn check_durability(&self) -> Result<(), SimError> {
        let Some(leader) = self.leader().and_then(|id| self.node(id)) else {
            return Err(Violation::new(Rule::Liveness, "no leader").into());
        };
        let acknowledged = self
            .history
            .ops()
            .iter()
            .filter_map(|op| match op.outcome {
                OpOutcome::Committed { index } => Some((index, op.id)),
                _ => None,
            })
            .max();
        let Some((index, request)) = acknowledged else { return Ok(()) };
        for member in leader.membership().members() {
            if let Some(node) = self.node(member).filter(|n| n.applied_index() < index) {
                let detail = format!(
                    "request {request} was acknowledged at index {index}, but member {member} has applied only \
                     through {}",
                    node.applied_index()
                );
                return Err(Violation::new(Rule::Durability, detail).into());
            }
        }
        Ok(())
    }

    /// Checks the client history of the key-value store for linearizability. Returns the keys
    /// whose check gave up (normally none).
    pub fn check_linearizability(&self) -> Result<Vec<String>, SimError> {
        crate::linearizability::check_kv(&self.history)
            .map_err(|e| Violation::new(Rule::Linearizability, e.to_string()).into())
    }
}
