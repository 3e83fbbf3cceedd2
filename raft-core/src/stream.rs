//! The stream API: [`RaftStreamExt::into_raft_events`] turns a stream of [`Incoming`] events and
//! a [`PersistentState`] into a stream of [`Outgoing`] events.
//!
//! The driver is a thin async loop around [`Node`]: wait for input (then take whatever else is
//! ready, so a burst of proposals is persisted and replicated as one batch), persist, send,
//! apply, report. It names no runtime: time arrives as [`Incoming::Tick`] events that the
//! adapter merges into the input (an interval timer from tokio, embassy, or a simulator).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::pin::Pin;

use core::task::Poll;
use futures_core::stream::{FusedStream, Stream};
use futures_util::future::poll_fn;
use futures_util::future::Either;
use futures_util::StreamExt;

use crate::config::{Config, ConfigError};
use crate::event::{Applied, Event, Incoming, Outgoing};
use crate::node::Node;
use crate::ready::Ready;
use crate::state::PersistentState;
use crate::types::{NodeId, SnapshotMeta};

/// Inputs taken in one batch at most, before persisting and sending.
const MAX_BATCH: usize = 1024;

/// Why the outgoing stream failed. The stream ends after yielding an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The [`PersistentState`] failed; the node stopped rather than risk breaking a promise
    /// it could not make durable.
    Storage(E),
    /// The configuration or node id is unusable.
    Config(ConfigError),
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Storage(e) => write!(f, "storage failed, node stopped: {e}"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

/// Turns a stream of [`Incoming`] events into a Raft node's stream of [`Outgoing`] events.
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use raft_core::{Event, Incoming, Instant, MemState, Membership, Outgoing, RaftStreamExt};
/// use bytes::Bytes;
///
/// // A one-node cluster: it elects itself, then commits a proposal.
/// let state: MemState<Vec<Bytes>> = MemState::new(Membership::new([1]));
/// let inputs = stream::iter([
///     Incoming::Tick(Instant::from_millis(0)),
///     Incoming::Tick(Instant::from_millis(500)),
///     Incoming::Propose { id: 7, command: Bytes::from_static(b"hello") },
/// ]);
/// let outputs: Vec<_> = block_on(inputs.into_raft_events(1, state).collect());
/// assert!(outputs.iter().any(|o| matches!(
///     o,
///     Ok(Outgoing::Event(Event::Proposal { id: 7, result: Ok(_) }))
/// )));
/// ```
pub trait RaftStreamExt: Stream<Item = Incoming> + Sized {
    /// Runs node `node_id` with the default [`Config`] (seeded with the node id).
    fn into_raft_events<S: PersistentState>(
        self,
        node_id: NodeId,
        state: S,
    ) -> impl FusedStream<Item = Result<Outgoing, Error<S::Error>>> + Unpin {
        let config = Config { seed: node_id, ..Config::default() };
        self.into_raft_events_with(node_id, state, config)
    }

    /// Runs node `node_id` with `config`.
    fn into_raft_events_with<S: PersistentState>(
        self,
        node_id: NodeId,
        state: S,
        config: Config,
    ) -> impl FusedStream<Item = Result<Outgoing, Error<S::Error>>> + Unpin {
        raft_events(self, node_id, state, config)
    }
}

impl<St: Stream<Item = Incoming>> RaftStreamExt for St {}

/// The free-function form of [`RaftStreamExt::into_raft_events_with`].
pub fn raft_events<St, S>(
    incoming: St,
    node_id: NodeId,
    state: S,
    config: Config,
) -> impl FusedStream<Item = Result<Outgoing, Error<S::Error>>> + Unpin
where
    St: Stream<Item = Incoming>,
    S: PersistentState,
{
    let driver = Box::new(Driver {
        incoming: Box::pin(incoming),
        state,
        node_id,
        config: Some(config),
        node: None,
        out: Vec::new(),
        input_done: false,
        finished: false,
    });
    // The driver yields what each turn produced as one batch, which is flattened here: every
    // item is then a pop from a buffer, and the (boxed) driver moves once per batch only.
    let batches = futures_util::stream::unfold(driver, |mut driver| async move {
        let batch = driver.next_batch().await?;
        Some((batch, driver))
    });
    Box::pin(batches)
        .flat_map(|batch| match batch {
            Ok(outputs) => Either::Left(futures_util::stream::iter(outputs.into_iter().map(Ok))),
            Err(error) => Either::Right(futures_util::stream::once(core::future::ready(Err(error)))),
        })
        .fuse()
}

struct Driver<St, S> {
    incoming: Pin<Box<St>>,
    state: S,
    node_id: NodeId,
    config: Option<Config>,
    node: Option<Node>,
    out: Vec<Outgoing>,
    input_done: bool,
    finished: bool,
}

impl<St, S> Driver<St, S>
where
    St: Stream<Item = Incoming>,
    S: PersistentState,
{
    /// Runs turns until one produces output; `None` once the input has ended and all work is
    /// done, or after an error has been yielded.
    async fn next_batch(&mut self) -> Option<Result<Vec<Outgoing>, Error<S::Error>>> {
        while !self.finished {
            match self.turn().await {
                Ok(true) if !self.out.is_empty() => return Some(Ok(core::mem::take(&mut self.out))),
                Ok(true) => {}
                Ok(false) => self.finished = true,
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }

    /// One turn of the loop. Returns false once the input has ended and all work is done.
    async fn turn(&mut self) -> Result<bool, Error<S::Error>> {
        if self.node.is_none() {
            let initial = self.state.load().await.map_err(Error::Storage)?;
            let config = self.config.take().unwrap_or_default();
            self.node = Some(Node::new(self.node_id, config, initial).map_err(Error::Config)?);
        }
        let Some(node) = self.node.as_mut() else { return Ok(false) };
        if !node.has_ready() {
            if self.input_done {
                return Ok(false);
            }
            match self.incoming.next().await {
                Some(input) => node.step(input),
                None => {
                    self.input_done = true;
                    return Ok(true);
                }
            }
            // Take whatever else is already waiting, so a burst is persisted and sent as one
            // batch. Polled with this task's own context: some runtimes' streams (embassy's
            // timers) require a waker of theirs.
            let (incoming, input_done) = (&mut self.incoming, &mut self.input_done);
            poll_fn(|cx| {
                for _ in 1..MAX_BATCH {
                    match incoming.as_mut().poll_next(cx) {
                        Poll::Ready(Some(input)) => node.step(input),
                        Poll::Ready(None) => {
                            *input_done = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                Poll::Ready(())
            })
            .await;
        }
        let take_snapshot = execute(node.take_ready(), &mut self.state, &mut self.out).await?;
        if let Some(meta) = take_snapshot {
            let snapshot = self.state.snapshot(meta).await.map_err(Error::Storage)?;
            node.snapshot_taken(snapshot);
        }
        Ok(true)
    }
}

/// Carries out a [`Ready`] in its documented order, queueing what it produces in `out`.
/// Returns the snapshot to take, which needs the node back once the `Ready` is done.
async fn execute<S: PersistentState>(
    ready: Ready<'_>,
    state: &mut S,
    out: &mut Vec<Outgoing>,
) -> Result<Option<SnapshotMeta>, Error<S::Error>> {
    if let Some(hard_state) = ready.hard_state {
        state.save_hard_state(hard_state).await.map_err(Error::Storage)?;
    }
    if let Some(snapshot) = &ready.snapshot {
        state.install_snapshot(snapshot).await.map_err(Error::Storage)?;
    }
    if ready.truncate_from.is_some() || !ready.entries.is_empty() {
        state.write_log(ready.truncate_from, ready.entries).await.map_err(Error::Storage)?;
    }
    out.extend(ready.messages.into_iter().map(|(to, message)| Outgoing::Send { to, message }));
    let mut proposals = ready.proposals.into_iter().peekable();
    for entry in ready.apply {
        let response = state.apply(entry).await.map_err(Error::Storage)?;
        if let Some((index, id)) = proposals.next_if(|&(index, _)| index == entry.index) {
            let result = Ok(Applied { index, response });
            out.push(Outgoing::Event(Event::Proposal { id, result }));
        }
    }
    for read in ready.reads {
        let answer = state.query(&read.query).await.map_err(Error::Storage)?;
        out.push(Outgoing::Event(Event::Read { id: read.id, result: Ok(answer) }));
    }
    out.extend(ready.events.into_iter().map(Outgoing::Event));
    Ok(ready.take_snapshot)
}
