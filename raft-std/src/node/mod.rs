//! [`RaftNode`]: a Raft node running on the current tokio runtime, and its handle for
//! applications.

mod access;
mod addresses;
mod config;
mod directory;
mod error;
mod membership;
mod metrics;
mod retry;
mod shared;
mod task;
mod versioned;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use raft_core::{
    Applied, Bytes, Clock, ConfigError, Diagnostics, Incoming, Index, LogStore, NodeId, StateMachine,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::access::{Access, Action, Authorizer};
use self::addresses::Addresses;
pub use self::config::{NodeConfig, DEFAULT_SNAPSHOT_EVERY, DEFAULT_SNAPSHOT_LOG_PERCENT};
use self::directory::{Directory, DirectoryCommand};
pub use self::error::{RequestError, StartError};
use self::retry::Next;
use self::shared::SharedMachine;
use self::task::{Command, NodeTask, Wiring};
use self::wire::{Request, Response};
use crate::ticks::TokioClock;
use crate::transport::{PeerLink, Transport};

/// Client requests waiting for the node task at most; beyond that, callers wait (up to their
/// deadline) for room.
const COMMAND_LEN: usize = 1024;
/// How often [`RaftNode::compact`] looks whether the snapshot is taken.
const COMPACT_POLL: Duration = Duration::from_millis(10);

/// A node's state, as [`RaftNode::status`] and [`RaftNode::watch`] report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Role, term, leader, log and commit positions, configuration and (on a leader) each
    /// peer's replication progress. Published whenever role, term, vote, leader, log,
    /// commit or applied index, or configuration change, and every second.
    pub diagnostics: Diagnostics,
    /// The links to the peers, as the transport reports them (refreshed every second).
    pub links: Vec<PeerLink>,
}

/// A handle to a running Raft node. Cheap to clone; the node shuts down when
/// [`RaftNode::shutdown`] is called or the last handle is dropped.
///
/// Writes ([`propose`](RaftNode::propose)), membership changes and leadership transfers work
/// on any node: a follower forwards them to the leader over the Raft transport. Reads
/// ([`read`](RaftNode::read)) are linearizable on any node (ReadIndex). Every request has a
/// deadline ([`NodeConfig::request_timeout`]); attempts that prove nothing was applied (no
/// leader yet, a leader change) are retried until then.
///
/// ```
/// use raft_core::Bytes;
/// use raft_std::{FileState, NodeConfig, RaftNode, StorageOptions, TcpConfig, TcpTransport};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let config = NodeConfig::new(1);
/// let log = FileState::open(dir.path(), config.bootstrap(), StorageOptions::default())?;
/// let transport = TcpTransport::bind(1, TcpConfig::new("demo", "127.0.0.1:0".parse()?)).await?;
/// // `Vec<Bytes>` records every command; a query is the little-endian position to read.
/// let node = RaftNode::start(config, log, Vec::<Bytes>::new(), transport).await?;
/// let applied = node.propose(Bytes::from("hello")).await?; // waits for the node to elect itself
/// assert!(applied.index > 0);
/// assert_eq!(node.read(Bytes::copy_from_slice(&0u64.to_le_bytes())).await?, "hello");
/// assert_eq!(node.compact().await?, applied.index); // a snapshot now, the log compacted
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
    /// Who makes the requests of this handle (see [`RaftNode::with_caller`]).
    caller: Option<Arc<str>>,
}

type LocalQuery = dyn Fn(Bytes) -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync;

struct Inner {
    id: NodeId,
    catch_up_timeout: Duration,
    catch_up_margin: u64,
    request_timeout: Duration,
    commands: mpsc::Sender<Command>,
    stop: CancellationToken,
    stopped: watch::Receiver<Option<RequestError>>,
    status: watch::Receiver<Status>,
    local_query: Box<LocalQuery>,
}

impl RaftNode {
    /// Starts node `config.id` on the current tokio runtime: loads its state from `log` (any
    /// [`LogStore`]: [`FileState`](crate::FileState) on disk,
    /// [`MemState`](raft_core::MemState) in memory, or your own), restores `machine` (the
    /// application's [`StateMachine`], in its initial state) from the latest snapshot, and talks
    /// to its peers through `transport` (any [`Transport`]:
    /// [`TcpTransport`](crate::TcpTransport), [`ChannelTransport`](crate::ChannelTransport), or
    /// your own).
    ///
    /// The transport is told the address of every peer in `config.peers`, and of every member
    /// whose address the node learns from the log. The node sleeps until its next deadline (a
    /// heartbeat, an election timeout) or its next input: an idle node costs nothing between
    /// heartbeats.
    pub async fn start<L, M, T>(
        config: NodeConfig,
        mut log: L,
        machine: M,
        mut transport: T,
    ) -> Result<RaftNode, StartError>
    where
        L: LogStore + 'static,
        M: StateMachine + 'static,
        T: Transport,
    {
        let id = config.id;
        if id == 0 {
            return Err(StartError::Config(ConfigError::ReservedNodeId));
        }
        config.raft.validate().map_err(StartError::Config)?;
        let span = tracing::info_span!("raft", node = id);
        for (&peer, address) in config.peers.iter().filter(|(&peer, _)| peer != id) {
            transport.set_peer_address(peer, address);
        }
        let addresses = Addresses::default();
        let mut machine = SharedMachine::new(Directory::new(machine, addresses.clone()));
        let mut node = raft_core::start(id, config.raft.clone(), &mut log, &mut machine)
            .instrument(span.clone())
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?;
        let clock = TokioClock::new();
        node.step(Incoming::Tick(clock.now()));
        let reader = machine.clone();

        let (commands_sender, commands) = mpsc::channel(COMMAND_LEN);
        let (stopped_sender, stopped) = watch::channel(None);
        let first = Status { diagnostics: node.diagnostics(), links: transport.links() };
        let (status_sender, status) = watch::channel(first);
        let stop = CancellationToken::new();
        let task = NodeTask::new(Wiring {
            node,
            log,
            machine,
            clock,
            transport,
            addresses,
            commands,
            stop: stop.clone(),
            stopped: stopped_sender,
            status: status_sender,
            request_timeout: config.request_timeout,
            authorizer: config.authorizer.clone(),
        });
        tokio::spawn(task.run().instrument(span));
        Ok(RaftNode {
            inner: Arc::new(Inner {
                id,
                catch_up_timeout: config.catch_up_timeout,
                catch_up_margin: config.catch_up_margin,
                request_timeout: config.request_timeout,
                commands: commands_sender,
                stop,
                stopped,
                status,
                local_query: Box::new(move |query| {
                    let mut reader = reader.clone();
                    Box::pin(async move { reader.query(&query).await.map_err(|e| e.to_string()) })
                }),
            }),
            caller: None,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// A handle to the same node whose requests are made by `caller`: an opaque name the
    /// application gives its client (a user, a client certificate's subject). raft-std carries
    /// it with each request to the leader — forwarded requests too — and shows it to the
    /// [`Authorizer`] there ([`NodeConfig::authorizer`]); it does nothing else with it.
    ///
    /// ```
    /// use raft_core::{Bytes, MemState};
    /// use raft_std::{Action, Authorizer, ChannelNetwork, NodeConfig, RaftNode, RequestError};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut config = NodeConfig::new(1);
    /// config.authorizer = Some(Authorizer::new(|access| match (&access.action, access.caller) {
    ///     (Action::Propose(_), Some(_)) => Ok(()),
    ///     _ => Err("only named clients write".into()),
    /// }));
    /// let log = MemState::new(config.bootstrap());
    /// let node = RaftNode::start(config, log, Vec::<Bytes>::new(), ChannelNetwork::new().join(1)).await?;
    /// node.with_caller("alice").propose(Bytes::from("hello")).await?;
    /// let refused = node.propose(Bytes::from("anonymous")).await;
    /// assert!(matches!(refused, Err(RequestError::Denied(_))));
    /// node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_caller(&self, caller: impl Into<Arc<str>>) -> RaftNode {
        RaftNode { inner: Arc::clone(&self.inner), caller: Some(caller.into()) }
    }

    /// Who makes this handle's requests, if [`with_caller`](RaftNode::with_caller) named it.
    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// Replicates `command` and resolves once the state machine has applied it, with its
    /// log index and the state machine's response.
    pub async fn propose(&self, command: impl Into<Bytes>) -> Result<Applied, RequestError> {
        let request = Request::Propose(encode(&DirectoryCommand::App(command.into()))?);
        match self.call(request, self.deadline()).await? {
            Response::Applied(applied) => Ok(applied),
            other => Err(unexpected(other)),
        }
    }

    /// Answers `query` from the state machine once it reflects every write acknowledged
    /// before the call (linearizable; confirmed with the leader).
    pub async fn read(&self, query: impl Into<Bytes>) -> Result<Bytes, RequestError> {
        match self.call(Request::Read(query.into()), self.deadline()).await? {
            Response::Read(answer) => Ok(answer),
            other => Err(unexpected(other)),
        }
    }

    /// Answers `query` from this node's state machine as it is now, without asking anyone:
    /// fast, available without a quorum, and possibly stale.
    pub async fn read_local(&self, query: &[u8]) -> Result<Bytes, RequestError> {
        (self.inner.local_query)(Bytes::copy_from_slice(query)).await.map_err(RequestError::Storage)
    }

    /// Hands leadership to voter `to`; resolves once it leads.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<NodeId, RequestError> {
        match self.call(Request::TransferLeadership(to), self.deadline()).await? {
            Response::Leader(leader) => Ok(leader),
            other => Err(unexpected(other)),
        }
    }

    /// This node's role, term, leader, log positions, configuration and links, as last
    /// published by the node: answered at once, never queued behind protocol work.
    pub async fn status(&self) -> Result<Status, RequestError> {
        if let Some(reason) = self.inner.stopped.borrow().clone() {
            return Err(reason);
        }
        Ok(self.inner.status.borrow().clone())
    }

    /// A watch of this node's [`Status`]: it changes whenever the node's role, term, vote,
    /// leader, log, commit or applied index, or configuration does (and every second, for
    /// links and replication progress).
    ///
    /// ```
    /// use raft_core::{Bytes, MemState, Role};
    /// use raft_std::{ChannelNetwork, NodeConfig, RaftNode};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = NodeConfig::new(1);
    /// let log = MemState::new(config.bootstrap());
    /// let node = RaftNode::start(config, log, Vec::<Bytes>::new(), ChannelNetwork::new().join(1)).await?;
    /// let mut status = node.watch();
    /// let leading = status.wait_for(|s| s.diagnostics.role == Role::Leader).await?;
    /// assert_eq!(leading.diagnostics.leader, Some(1));
    /// # drop(leading);
    /// node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// Takes a snapshot of the state machine now and compacts the log up to the applied
    /// index, without waiting for the snapshot policy
    /// ([`NodeConfig::raft`]`.snapshot_every`). Resolves with the last index the snapshot
    /// covers (the earlier snapshot's when nothing was applied since).
    pub async fn compact(&self) -> Result<Index, RequestError> {
        let deadline = self.deadline();
        let before = self.status().await?.diagnostics;
        let target = before.applied_index;
        if before.first_index > target {
            return Ok(before.first_index - 1);
        }
        self.enqueue(Command::Compact, deadline).await?;
        loop {
            let covered = self.status().await?.diagnostics.first_index - 1;
            if covered >= target {
                return Ok(covered);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout());
            }
            tokio::time::sleep(COMPACT_POLL).await;
        }
    }

    /// Stops the node: finishes the storage write in progress, closes every connection, and
    /// waits for the node task to end. Requests in flight fail with
    /// [`RequestError::ShuttingDown`].
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.stopped().await;
    }

    /// Waits until the node stops (after [`shutdown`](RaftNode::shutdown), or on its own after
    /// a storage failure) and returns why.
    pub async fn stopped(&self) -> RequestError {
        let mut stopped = self.inner.stopped.clone();
        let reason = stopped.wait_for(Option::is_some).await.ok().and_then(|reason| reason.clone());
        reason.unwrap_or(RequestError::ShuttingDown)
    }

    /// Runs attempts at `request` until one is final or `deadline` passes.
    async fn call(&self, request: Request, deadline: Instant) -> Result<Response, RequestError> {
        let mut pause = retry::MIN_PAUSE;
        loop {
            let (reply, answer) = oneshot::channel();
            let caller = self.caller.clone();
            self.enqueue(Command::Request { request: request.clone(), reply, deadline, caller }, deadline)
                .await?;
            let outcome = match timeout_at(deadline, answer).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => return Err(self.failure_after_drop()),
                Err(_) => return Err(self.timeout()),
            };
            let error = match retry::after(outcome) {
                Next::Done(result) => return result,
                Next::Retry(error) => error,
            };
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(retry::MAX_PAUSE);
        }
    }

    async fn enqueue(&self, command: Command, deadline: Instant) -> Result<(), RequestError> {
        match timeout_at(deadline, self.inner.commands.send(command)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.failure_after_drop()),
            Err(_) => Err(self.timeout()),
        }
    }

    /// The node task dropped a request: it stopped, or (racing a deadline) gave up on it.
    fn failure_after_drop(&self) -> RequestError {
        self.inner.stopped.borrow().clone().unwrap_or_else(|| self.timeout())
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.request_timeout
    }

    fn timeout(&self) -> RequestError {
        RequestError::Timeout { after: self.inner.request_timeout }
    }
}

fn encode(command: &DirectoryCommand) -> Result<Bytes, RequestError> {
    command.encode().map_err(|e| RequestError::Protocol(format!("cannot encode the command: {e}")))
}

fn unexpected(response: Response) -> RequestError {
    RequestError::Protocol(format!("the answer {response:?} does not fit the request"))
}
