//! The task that runs one node: it drives raft-core's event stream and routes everything
//! around it — client requests in, messages to and from peers, outcomes back to whoever asked.
//!
//! One loop, in priority order: take the node's next output; on shutdown close the input;
//! accept a client command or a peer frame while the node's input has room (so memory stays
//! bounded when storage is slow); now and then drop requests whose deadline has passed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{FusedStream, StreamExt};
use raft_core::{Diagnostics, Event, Incoming, NodeId, Outgoing, RequestId, Role};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::addresses::Addresses;
use super::error::RequestError;
use super::metrics::NodeMetrics;
use super::wire::{Failure, Frame, Outcome, Request, Response};
use super::Status;
use crate::transport::Transport;

/// How often expired requests are dropped and the index metrics refreshed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a [`RaftNode`](super::RaftNode) handle asks of its task.
pub(super) enum Command {
    /// One attempt at a request.
    Request { request: Request, reply: oneshot::Sender<Outcome>, deadline: Instant },
    /// Report the node's state.
    Status { reply: oneshot::Sender<Status> },
    /// Take a snapshot and compact the log now.
    Compact,
}

/// The node's outgoing event stream.
pub(super) trait Events: FusedStream<Item = Result<Outgoing, Self::Failure>> + Unpin + Send {
    /// Why the node stopped.
    type Failure: std::fmt::Display;
}

impl<S, F: std::fmt::Display> Events for S
where
    S: FusedStream<Item = Result<Outgoing, F>> + Unpin + Send,
{
    type Failure = F;
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
pub(super) struct Wiring<E, T> {
    pub(super) id: NodeId,
    /// The node's outputs.
    pub(super) events: E,
    /// The node's inputs (ticks are merged in separately).
    pub(super) input: mpsc::Sender<Incoming>,
    pub(super) transport: T,
    /// Peer addresses learned from the log, for the transport.
    pub(super) addresses: Addresses,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) stop: CancellationToken,
    /// Set to why the node stopped, when it has.
    pub(super) stopped: watch::Sender<Option<RequestError>>,
    /// Deadline for requests forwarded here by followers.
    pub(super) request_timeout: Duration,
}

/// The running node.
pub(super) struct NodeTask<E, T> {
    id: NodeId,
    events: E,
    /// Raft's input; `None` once shutting down.
    input: Option<mpsc::Sender<Incoming>>,
    transport: T,
    /// Whether the transport still delivers frames.
    receiving: bool,
    addresses: Addresses,
    commands: mpsc::Receiver<Command>,
    stop: CancellationToken,
    stopped: watch::Sender<Option<RequestError>>,
    request_timeout: Duration,
    pending: BTreeMap<RequestId, Pending>,
    status_waiters: Vec<oneshot::Sender<Status>>,
    /// Requests for the leader's diagnostics, answered by the next diagnostics report.
    diagnostics_requests: Vec<RequestId>,
    /// The leader as the node last reported it.
    leader: Option<NodeId>,
    next_id: RequestId,
    metrics: NodeMetrics,
}

impl<E: Events, T: Transport> NodeTask<E, T> {
    pub(super) fn new(wiring: Wiring<E, T>) -> Self {
        let Wiring { id, events, input, transport, addresses, commands, stop, stopped, request_timeout } =
            wiring;
        NodeTask {
            id,
            events,
            input: Some(input),
            transport,
            receiving: true,
            addresses,
            commands,
            stop,
            stopped,
            request_timeout,
            pending: BTreeMap::new(),
            status_waiters: Vec::new(),
            diagnostics_requests: Vec::new(),
            leader: None,
            next_id: 0,
            metrics: NodeMetrics::new(id),
        }
    }

    /// Runs until shutdown or a storage failure.
    pub(super) async fn run(mut self) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut reason = RequestError::ShuttingDown;
        loop {
            let room = self.input.as_ref().is_some_and(|input| input.capacity() > 0);
            tokio::select! {
                biased;
                output = self.events.next() => match output {
                    Some(Ok(output)) => self.on_output(output),
                    Some(Err(error)) => {
                        tracing::error!(%error, "node stopped");
                        reason = RequestError::Storage(error.to_string());
                        break;
                    }
                    None => break,
                },
                _ = self.stop.cancelled(), if self.input.is_some() => self.close_input(),
                command = self.commands.recv(), if room => match command {
                    Some(command) => self.on_command(command),
                    None => self.close_input(), // every handle is gone
                },
                received = self.transport.recv(), if room && self.receiving => match received {
                    Some((from, bytes)) => self.on_bytes(from, &bytes),
                    None => {
                        tracing::warn!("the transport stopped delivering frames");
                        self.receiving = false;
                    }
                },
                _ = self.addresses.learned() => self.pass_on_addresses(),
                _ = sweep.tick() => {
                    self.sweep();
                    if room {
                        self.push(Incoming::Diagnostics); // refreshes the metrics
                    }
                }
            }
        }
        self.transport.shutdown().await;
        tracing::info!("node stopped");
        // Dropping the pending requests wakes their clients, who read this reason.
        self.stopped.send_replace(Some(reason));
    }

    fn close_input(&mut self) {
        if self.input.take().is_some() {
            tracing::info!("shutting down: finishing the work in progress");
        }
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
        match frame.encode() {
            Ok(bytes) => self.transport.send(to, bytes),
            Err(error) => {
                tracing::error!(peer = to, %error, "cannot encode a frame; dropped");
                false
            }
        }
    }

    fn push(&self, input: Incoming) {
        // The caller checked for room; during shutdown inputs are dropped.
        if let Some(sender) = &self.input {
            let _ = sender.try_send(input);
        }
    }

    fn on_output(&mut self, output: Outgoing) {
        match output {
            Outgoing::Send { to, message } => {
                self.send(to, &Frame::Raft(message));
            }
            Outgoing::Event(event) => self.on_event(event),
        }
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
            Event::Diagnostics(diagnostics) => self.answer_status(*diagnostics),
            other => tracing::debug!(event = ?other, "unhandled event"),
        }
    }

    fn answer_status(&mut self, diagnostics: Diagnostics) {
        self.metrics.observe(&diagnostics);
        for id in std::mem::take(&mut self.diagnostics_requests) {
            let outcome = if diagnostics.role == Role::Leader {
                Ok(Response::Diagnostics(Box::new(diagnostics.clone())))
            } else {
                Err(Failure::NotLeader { leader: diagnostics.leader })
            };
            self.resolve(id, outcome);
        }
        let links = self.transport.links();
        for waiter in self.status_waiters.drain(..) {
            let _ = waiter.send(Status { diagnostics: diagnostics.clone(), links: links.clone() });
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
            Command::Request { request, reply, deadline } => {
                let id = self.next_request_id();
                match self.leader {
                    Some(leader) if leader != self.id && request.forwarded() => {
                        if self.send(leader, &Frame::Forward { id, request }) {
                            self.pending.insert(
                                id,
                                Pending { origin: Origin::Forwarded { leader, reply }, deadline },
                            );
                        } else {
                            let _ = reply.send(Err(Failure::Undelivered { leader }));
                        }
                    }
                    _ => self.submit(id, request, Origin::Local(reply), deadline),
                }
            }
            Command::Status { reply } => {
                self.status_waiters.push(reply);
                self.push(Incoming::Diagnostics);
            }
            Command::Compact => self.push(Incoming::Compact),
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
            Frame::Raft(message) => self.push(Incoming::Message { from, message }),
            Frame::Forward { id, request } => {
                let local = self.next_request_id();
                let deadline = Instant::now() + self.request_timeout;
                self.submit(local, request, Origin::Remote { from, id }, deadline);
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

    /// Hands a request to the local Raft node.
    fn submit(&mut self, id: RequestId, request: Request, origin: Origin, deadline: Instant) {
        self.pending.insert(id, Pending { origin, deadline });
        let input = match request {
            Request::Propose(command) => Incoming::Propose { id, command },
            Request::Read(query) => Incoming::Read { id, query },
            Request::ChangeMembership(change) => Incoming::ChangeMembership { id, change },
            Request::TransferLeadership(to) => Incoming::TransferLeadership { id, to },
            Request::LeaderDiagnostics => {
                self.diagnostics_requests.push(id);
                Incoming::Diagnostics
            }
        };
        self.push(input);
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
        self.status_waiters.retain(|waiter| !waiter.is_closed());
        let pending = &self.pending;
        self.diagnostics_requests.retain(|id| pending.contains_key(id));
    }

    fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }
}
