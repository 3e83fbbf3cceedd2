//! [`RaftNode`]: a Raft node running on the current tokio runtime, and its handle for
//! applications.

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
use raft_core::{Applied, Bytes, ConfigError, Diagnostics, Index, NodeId, RaftStreamExt, StateMachine};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout_at, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::addresses::Addresses;
pub use self::config::{NodeConfig, DEFAULT_SNAPSHOT_EVERY};
use self::directory::{Directory, Envelope};
pub use self::error::{RequestError, StartError};
use self::retry::Next;
use self::shared::SharedMachine;
use self::task::{Command, NodeTask, Wiring};
use self::wire::{Request, Response};
use crate::storage::{FileState, StorageError};
use crate::ticks::TokioClock;
use crate::transport::{PeerLink, Transport};

/// Inputs waiting for the protocol at most; beyond that, client requests and peer messages
/// wait in their own bounded queues.
const INPUT_LEN: usize = 1024;
/// Client requests waiting for the node task at most.
const COMMAND_LEN: usize = 1024;
/// How often [`RaftNode::compact`] looks whether the snapshot is taken.
const COMPACT_POLL: Duration = Duration::from_millis(10);

/// A node's state, as [`RaftNode::status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Role, term, leader, log and commit positions, configuration and (on a leader) each
    /// peer's replication progress.
    pub diagnostics: Diagnostics,
    /// The links to the peers, as the transport reports them.
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
/// use raft_std::{NodeConfig, RaftNode, TcpConfig, TcpTransport};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let config = NodeConfig::new(1, dir.path());
/// let transport = TcpTransport::bind(1, TcpConfig::new("demo", "127.0.0.1:0".parse()?)).await?;
/// // `Vec<Bytes>` records every command; a query is the little-endian position to read.
/// let node = RaftNode::start(config, Vec::<Bytes>::new(), transport).await?;
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
    local_query: Box<LocalQuery>,
}

impl RaftNode {
    /// Opens the data directory (recovering from a crash) and spawns the node on the current
    /// tokio runtime, talking to its peers through `transport` (any [`Transport`]:
    /// [`TcpTransport`](crate::TcpTransport), [`ChannelTransport`](crate::ChannelTransport), or
    /// your own). `machine` is the application's state machine, in its initial state: it is
    /// restored from the latest snapshot.
    ///
    /// The transport is told the address of every peer in `config.peers`, and of every member
    /// whose address the node learns from the log.
    pub async fn start<M, T>(config: NodeConfig, machine: M, mut transport: T) -> Result<RaftNode, StartError>
    where
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
        let machine = SharedMachine::new(Directory::new(machine, addresses.clone()));
        let (dir, bootstrap, storage) = (config.data_dir.clone(), config.bootstrap(), config.storage.clone());
        let open_span = span.clone();
        let open = move || open_span.in_scope(|| FileState::open(dir, bootstrap, storage));
        let state = tokio::task::spawn_blocking(open)
            .await
            .map_err(|e| StartError::Storage(StorageError::Task(e.to_string())))??;
        state.label_metrics(id)?;
        let reader = machine.clone();

        let (input, inputs) = mpsc::channel(INPUT_LEN);
        // Deadline-driven: the node sleeps until its next heartbeat or timeout, or the next
        // input, rather than waking on a periodic tick.
        let events = ReceiverStream::new(inputs).into_raft_events_with_clock(
            id,
            (state, machine),
            config.raft,
            TokioClock::new(),
        );
        let (commands_sender, commands) = mpsc::channel(COMMAND_LEN);
        let (stopped_sender, stopped) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = NodeTask::new(Wiring {
            id,
            events,
            input,
            transport,
            addresses,
            commands,
            stop: stop.clone(),
            stopped: stopped_sender,
            request_timeout: config.request_timeout,
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
                local_query: Box::new(move |query| {
                    let mut reader = reader.clone();
                    Box::pin(async move { reader.query(&query).await.map_err(|e| e.to_string()) })
                }),
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Replicates `command` and resolves once the state machine has applied it, with its
    /// log index and the state machine's response.
    pub async fn propose(&self, command: impl Into<Bytes>) -> Result<Applied, RequestError> {
        let request = Request::Propose(encode(&Envelope::App(command.into()))?);
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

    /// This node's role, term, leader, log positions, configuration and links.
    pub async fn status(&self) -> Result<Status, RequestError> {
        let deadline = self.deadline();
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Status { reply }, deadline).await?;
        match timeout_at(deadline, answer).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => Err(self.failure_after_drop()),
            Err(_) => Err(self.timeout()),
        }
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
            self.enqueue(Command::Request { request: request.clone(), reply, deadline }, deadline).await?;
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

fn encode(envelope: &Envelope) -> Result<Bytes, RequestError> {
    envelope.encode().map_err(|e| RequestError::Protocol(format!("cannot encode the command: {e}")))
}

fn unexpected(response: Response) -> RequestError {
    RequestError::Protocol(format!("the answer {response:?} does not fit the request"))
}
