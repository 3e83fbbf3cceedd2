//! The task that runs one node. It owns the protocol machine and its storage, and routes
//! everything around them: client requests in, messages to and from peers, outcomes back to
//! whoever asked.
//!
//! One loop: carry out the node's work with raft-core's executor (persist, send, apply) and
//! publish its status; then sleep until the node's next deadline or the next input (a client
//! command, a peer frame), take what else is already waiting as one batch, and step the node.
//! While storage works, nothing new is read: the bounded command and transport queues hold
//! the rest, so memory stays bounded when storage is slow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use raft_core::{
    advance, Clock, Diagnostics, Event, Incoming, LogStore, Node, NodeId, Outgoing, RequestId, Role,
    StateMachine,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::access::{self, Authorizer};
use super::addresses::Addresses;
use super::error::RequestError;
use super::metrics::NodeMetrics;
use super::wire::{Failure, Frame, Outcome, Request, Response};
use super::Status;
use crate::ticks::TokioClock;
use crate::transport::Transport;

/// How often expired requests are dropped, links and metrics refreshed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Inputs taken in one batch at most, before the node's work is carried out.
const MAX_BATCH: usize = 1024;

/// What a [`RaftNode`](super::RaftNode) handle asks of its task.
pub(super) enum Command {
    /// One attempt at a request, made by `caller` (see `RaftNode::with_caller`).
    Request { request: Request, reply: oneshot::Sender<Outcome>, deadline: Instant, caller: Option<Arc<str>> },
    /// Take a snapshot and compact the log now.
    Compact,
}

/// Who waits for a request's outcome.
enum Origin {
    /// A client of this node; the request runs here.
    Local(oneshot::Sender<Outcome>),
    /// A client of this node; the request was forwarded to `leader`.
    Forwarded { leader: NodeId, reply: oneshot::Sender<Outcome> },
    /// A client of node `from`, which forwarded the request here under its tag `id`.
    Remote { from: NodeId, id: RequestId },
}

struct Pending {
    origin: Origin,
    deadline: Instant,
}

/// Everything a node task is connected to.
pub(super) struct Wiring<L, M, T> {
    pub(super) node: Node,
    pub(super) log: L,
    pub(super) machine: M,
    pub(super) clock: TokioClock,
    pub(super) transport: T,
    /// Peer addresses learned from the log, for the transport.
    pub(super) addresses: Addresses,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) stop: CancellationToken,
    /// Set to why the node stopped, when it has.
    pub(super) stopped: watch::Sender<Option<RequestError>>,
    /// The node's status, as it changes.
    pub(super) status: watch::Sender<Status>,
    /// Deadline for requests forwarded here by followers.
    pub(super) request_timeout: Duration,
    /// The application's say over requests before they enter the log.
    pub(super) authorizer: Option<Authorizer>,
}

/// The running node.
pub(super) struct NodeTask<L, M, T> {
    id: NodeId,
    node: Node,
    log: L,
    machine: M,
    clock: TokioClock,
    transport: T,
    /// Whether the transport still delivers frames.
    receiving: bool,
    addresses: Addresses,
    commands: mpsc::Receiver<Command>,
    stop: CancellationToken,
    stopped: watch::Sender<Option<RequestError>>,
    status: watch::Sender<Status>,
    request_timeout: Duration,
    authorizer: Option<Authorizer>,
    pending: BTreeMap<RequestId, Pending>,
    /// The leader as the node last reported it.
    leader: Option<NodeId>,
    next_id: RequestId,
    metrics: NodeMetrics,
    /// What the executor produced for the clients.
    events: Vec<Event>,
}

/// What woke the node task.
enum Wake {
    Stop,
    Command(Option<Command>),
    Frame(Option<(NodeId, raft_core::Bytes)>),
    Addresses,
    Deadline,
    Sweep,
}

impl<L, M, T> NodeTask<L, M, T>
where
    L: LogStore,
    M: StateMachine,
    T: Transport,
{
    pub(super) fn new(wiring: Wiring<L, M, T>) -> Self {
        let Wiring {
            node,
            log,
            machine,
            clock,
            transport,
            addresses,
            commands,
            stop,
            stopped,
            status,
            request_timeout,
            authorizer,
        } = wiring;
        let id = node.id();
        NodeTask {
            id,
            node,
            log,
            machine,
            clock,
            transport,
            receiving: true,
            addresses,
            commands,
            stop,
            stopped,
            status,
            request_timeout,
            authorizer,
            pending: BTreeMap::new(),
            leader: None,
            next_id: 0,
            metrics: NodeMetrics::new(id),
            events: Vec::new(),
        }
    }

    /// Runs until shutdown, every handle is gone, or storage or the state machine fails.
    pub(super) async fn run(mut self) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let reason = loop {
            if let Err(error) = self.carry_out().await {
                tracing::error!(%error, "node stopped");
                break RequestError::Storage(error);
            }
            self.publish_status(false);
            match self.wait(&mut sweep).await {
                Wake::Stop | Wake::Command(None) => {
                    tracing::info!("shutting down");
                    break RequestError::ShuttingDown;
                }
                Wake::Command(Some(command)) => {
                    self.tick();
                    self.on_command(command);
                }
                Wake::Frame(Some((from, bytes))) => {
                    self.tick();
                    self.on_bytes(from, &bytes);
                }
                Wake::Frame(None) => {
                    tracing::warn!("the transport stopped delivering frames");
                    self.receiving = false;
                }
                Wake::Addresses => self.pass_on_addresses(),
                Wake::Deadline => self.tick(),
                Wake::Sweep => {
                    self.tick();
                    self.sweep();
                    self.publish_status(true);
                }
            }
            self.take_waiting();
        };
        self.transport.shutdown().await;
        tracing::info!("node stopped");
        // Dropping the pending requests wakes their clients, who read this reason.
        self.stopped.send_replace(Some(reason));
    }

    /// Sleeps until the next input or the node's next deadline.
    async fn wait(&mut self, sweep: &mut tokio::time::Interval) -> Wake {
        let deadline = self.node.next_deadline();
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Wake::Stop,
            command = self.commands.recv() => Wake::Command(command),
            frame = self.transport.recv(), if self.receiving => Wake::Frame(frame),
            _ = self.addresses.learned() => Wake::Addresses,
            _ = self.clock.sleep_until(deadline) => Wake::Deadline,
            _ = sweep.tick() => Wake::Sweep,
        }
    }

    /// Takes the commands and frames already waiting, up to a batch, without waiting: a burst
    /// of proposals is then persisted and replicated together.
    fn take_waiting(&mut self) {
        for _ in 1..MAX_BATCH {
            if let Ok(command) = self.commands.try_recv() {
                self.on_command(command);
                continue;
            }
            // `recv` is cancel-safe: polling it once and dropping it loses nothing.
            match self.receiving.then(|| self.transport.recv().now_or_never()).flatten() {
                Some(Some((from, bytes))) => self.on_bytes(from, &bytes),
                _ => break,
            }
        }
    }

    /// Brings the node's clock to now.
    fn tick(&mut self) {
        self.node.step(Incoming::Tick(self.clock.now()));
    }

    /// Carries out the node's work. Messages go to the transport the moment the executor
    /// hands them over (a leader's, before its own log write: the two overlap); events wait
    /// until the work is done.
    async fn carry_out(&mut self) -> Result<(), String> {
        let mut out = Dispatch { transport: &mut self.transport, events: &mut self.events };
        advance(&mut self.node, &mut self.log, &mut self.machine, &mut out)
            .await
            .map_err(|e| e.to_string())?;
        for event in std::mem::take(&mut self.events) {
            self.on_event(event);
        }
        Ok(())
    }

    /// Publishes the node's status if it changed (or, with `always`, with fresh links).
    fn publish_status(&mut self, always: bool) {
        let node = &self.node;
        let changed = changed_since(&self.status.borrow().diagnostics, node);
        if !changed && !always {
            return;
        }
        let diagnostics = node.diagnostics();
        self.metrics.observe(&diagnostics);
        let links = if always { self.transport.links() } else { self.status.borrow().links.clone() };
        self.status.send_replace(Status { diagnostics, links });
    }

    fn pass_on_addresses(&mut self) {
        for (id, address) in self.addresses.take() {
            if id != self.id {
                self.transport.set_peer_address(id, &address);
            }
        }
    }

    /// Sends `frame` to `to`; false if the transport dropped it.
    fn send(&mut self, to: NodeId, frame: &Frame) -> bool {
        send(&mut self.transport, to, frame)
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Proposal { id, result } => {
                self.metrics.proposal(result.is_ok());
                self.resolve(id, result.map(Response::Applied).map_err(Failure::Propose))
            }
            Event::Read { id, result } => self.resolve(id, result.map(Response::Read).map_err(Failure::Read)),
            Event::Membership { id, result } => {
                match &result {
                    Ok(membership) => tracing::info!(%membership, "membership change committed"),
                    Err(error) => tracing::info!(%error, "membership change failed"),
                }
                self.resolve(id, result.map(Response::Membership).map_err(Failure::Membership))
            }
            Event::Transfer { id, result } => {
                tracing::info!(?result, "leadership transfer finished");
                self.resolve(id, result.map(Response::Leader).map_err(Failure::Transfer))
            }
            Event::RoleChanged { role, term, leader } => {
                match role {
                    Role::Leader => tracing::info!(term, "became leader"),
                    Role::Candidate => tracing::info!(term, "election started"),
                    Role::PreCandidate => tracing::debug!(term, "pre-vote started"),
                    Role::Follower => tracing::info!(term, leader, "following"),
                }
                self.leader = leader;
                self.metrics.role_changed(role, term, leader);
            }
            Event::Compacted { through } => tracing::debug!(through, "log compacted"),
            Event::Dropped { from, reason } => {
                tracing::debug!(from, ?reason, "message dropped by the protocol")
            }
            Event::FollowerLostEntries { peer, match_index, first_missing } => tracing::warn!(
                peer,
                match_index,
                first_missing,
                "a follower lost log entries it had acknowledged (its storage did not keep them); \
                 replicating them again"
            ),
            other => tracing::debug!(event = ?other, "unhandled event"),
        }
    }

    fn resolve(&mut self, id: RequestId, outcome: Outcome) {
        let Some(pending) = self.pending.remove(&id) else { return };
        match pending.origin {
            Origin::Local(reply) | Origin::Forwarded { reply, .. } => {
                let _ = reply.send(outcome);
            }
            Origin::Remote { from, id } => {
                self.send(from, &Frame::Reply { id, outcome });
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { request, reply, deadline, caller } => {
                let id = self.next_request_id();
                match self.leader {
                    Some(leader) if leader != self.id && request.forwarded() => {
                        let caller = caller.as_deref().map(str::to_owned);
                        if self.send(leader, &Frame::Forward { id, request, caller }) {
                            self.pending.insert(
                                id,
                                Pending { origin: Origin::Forwarded { leader, reply }, deadline },
                            );
                        } else {
                            let _ = reply.send(Err(Failure::Undelivered { leader }));
                        }
                    }
                    _ => self.submit(id, request, Origin::Local(reply), deadline, caller.as_deref()),
                }
            }
            Command::Compact => self.node.step(Incoming::Compact),
        }
    }

    fn on_bytes(&mut self, from: NodeId, bytes: &[u8]) {
        match Frame::decode(bytes) {
            Ok(frame) => self.on_frame(from, frame),
            Err(error) => tracing::warn!(peer = from, %error, "dropping a frame"),
        }
    }

    fn on_frame(&mut self, from: NodeId, frame: Frame) {
        match frame {
            Frame::Raft(message) => self.node.step(Incoming::Message { from, message }),
            Frame::Forward { id, request, caller } => {
                if !self.node.membership().contains(from) {
                    tracing::warn!(peer = from, "refused a request forwarded by a node that is not a member");
                    let outcome =
                        Err(Failure::Invalid("the forwarding node is not a member of the cluster".into()));
                    self.send(from, &Frame::Reply { id, outcome });
                    return;
                }
                let local = self.next_request_id();
                let deadline = Instant::now() + self.request_timeout;
                self.submit(local, request, Origin::Remote { from, id }, deadline, caller.as_deref());
            }
            Frame::Reply { id, outcome } => {
                let expected = matches!(
                    self.pending.get(&id),
                    Some(Pending { origin: Origin::Forwarded { leader, .. }, .. }) if *leader == from
                );
                if expected {
                    self.resolve(id, outcome);
                } else {
                    tracing::debug!(from, id, "reply to no request of ours; ignored");
                }
            }
        }
    }

    /// Hands a request to the local Raft node, once it passed the checks of forwarded requests
    /// and the application's authorizer.
    fn submit(
        &mut self,
        id: RequestId,
        request: Request,
        origin: Origin,
        deadline: Instant,
        caller: Option<&str>,
    ) {
        let via = match origin {
            Origin::Remote { from, .. } => Some(from),
            Origin::Local(_) | Origin::Forwarded { .. } => None,
        };
        self.pending.insert(id, Pending { origin, deadline });
        if let Err(failure) = access::check(self.authorizer.as_ref(), &request, caller, via) {
            tracing::info!(?via, caller, ?failure, "refused a request");
            return self.resolve(id, Err(failure));
        }
        let input = match request {
            Request::Propose(command) => Incoming::Propose { id, command: command.into() },
            Request::Read(query) => Incoming::Read { id, query },
            Request::ChangeMembership(change) => Incoming::ChangeMembership { id, change },
            Request::TransferLeadership(to) => Incoming::TransferLeadership { id, to },
            Request::LeaderDiagnostics => {
                let outcome = leader_diagnostics(self.node.diagnostics());
                return self.resolve(id, outcome);
            }
        };
        self.node.step(input);
    }

    /// Drops requests past their deadline or whose client gave up. Raft may still report
    /// their outcome later; it is then ignored.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.pending.retain(|_, pending| {
            let abandoned = match &pending.origin {
                Origin::Local(reply) | Origin::Forwarded { reply, .. } => reply.is_closed(),
                Origin::Remote { .. } => false,
            };
            pending.deadline > now && !abandoned
        });
    }

    fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }
}

/// Whether the node moved on from what `published` says (cheaply, without building a new
/// report): another role, term, vote, leader, log position, commit or applied index, or
/// configuration. A leader's per-peer progress is refreshed with these, and every second.
fn changed_since(published: &Diagnostics, node: &Node) -> bool {
    published.role != node.role()
        || published.term != node.term()
        || published.vote != node.vote()
        || published.leader != node.leader()
        || published.commit_index != node.commit_index()
        || published.applied_index != node.applied_index()
        || published.last_log != node.last_log_id()
        || published.first_index != node.first_index()
        || published.membership != *node.membership()
}

/// The answer to a follower asking this node for the leader's view of the cluster.
fn leader_diagnostics(diagnostics: Diagnostics) -> Outcome {
    if diagnostics.role == Role::Leader {
        Ok(Response::Diagnostics(Box::new(diagnostics)))
    } else {
        Err(Failure::NotLeader { leader: diagnostics.leader })
    }
}

/// Sends `frame` to `to`; false if the transport dropped it.
fn send<T: Transport>(transport: &mut T, to: NodeId, frame: &Frame) -> bool {
    match frame.encode() {
        Ok(bytes) => transport.send(to, bytes),
        Err(error) => {
            tracing::error!(peer = to, %error, "cannot encode a frame; dropped");
            false
        }
    }
}

/// Where the executor's output goes: messages straight to the transport, events aside.
struct Dispatch<'a, T> {
    transport: &'a mut T,
    events: &'a mut Vec<Event>,
}

impl<T: Transport> Extend<Outgoing> for Dispatch<'_, T> {
    fn extend<I: IntoIterator<Item = Outgoing>>(&mut self, outputs: I) {
        for output in outputs {
            match output {
                Outgoing::Send { to, message } => {
                    send(self.transport, to, &Frame::Raft(message));
                }
                Outgoing::Event(event) => self.events.push(event),
            }
        }
    }
}
