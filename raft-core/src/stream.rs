//! The stream API: [`RaftStreamExt::into_raft_events`] turns a stream of [`Incoming`] events, a
//! [`LogStore`] and a [`StateMachine`] into a stream of [`Outgoing`] events.
//!
//! The driver is a thin async loop around [`Node`]: wait for input (then take whatever else is
//! ready, so a burst of proposals is persisted and replicated as one batch), and have the
//! executor ([`carry_out`](crate::carry_out)) persist, send, apply and report. It names no
//! runtime. Time arrives either as [`Incoming::Tick`] events that the adapter merges into the
//! input, or from a [`Clock`], with which the driver sleeps until the node's next deadline.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::pin::{pin, Pin};
use core::task::Poll;

use futures_core::stream::{FusedStream, Stream};
use futures_util::future::{poll_fn, select, Either};
use futures_util::StreamExt;

use crate::clock::{Clock, NoClock};
use crate::config::Config;
use crate::event::{Incoming, Outgoing};
use crate::executor::{advance, start, Error};
use crate::node::Node;
use crate::storage::{LogStore, StateMachine};
use crate::types::NodeId;

/// Inputs taken in one batch at most, before persisting and sending.
const MAX_BATCH: usize = 1024;

/// The error the event stream of a node on `L` and `M` ends with.
pub type StreamError<L, M> = Error<<L as LogStore>::Error, <M as StateMachine>::Error>;

/// Turns a stream of [`Incoming`] events into a Raft node's stream of [`Outgoing`] events.
///
/// `state` is the node's storage: a [`LogStore`] and the application's [`StateMachine`]
/// (lend them as `(&mut log, &mut machine)` to keep them after the stream ends).
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use raft_core::{Bytes, Command, Event, Incoming, Instant, MemState, Membership, Outgoing, RaftStreamExt};
///
/// // A one-node cluster: it elects itself, then commits a proposal.
/// let log: MemState = MemState::new(Membership::new([1]));
/// let inputs = stream::iter([
///     Incoming::Tick(Instant::from_millis(0)),
///     Incoming::Tick(Instant::from_millis(500)),
///     Incoming::Propose { id: 7, command: Command::from_static(b"hello") },
/// ]);
/// let outputs: Vec<_> = block_on(inputs.into_raft_events(1, (log, Vec::<Bytes>::new())).collect());
/// assert!(outputs.iter().any(|o| matches!(
///     o,
///     Ok(Outgoing::Event(Event::Proposal { id: 7, result: Ok(_) }))
/// )));
/// ```
pub trait RaftStreamExt: Stream<Item = Incoming> + Sized {
    /// Runs node `node_id` with the default [`Config`] (seeded with the node id).
    fn into_raft_events<L: LogStore, M: StateMachine>(
        self,
        node_id: NodeId,
        state: (L, M),
    ) -> impl FusedStream<Item = Result<Outgoing, StreamError<L, M>>> + Unpin {
        let config = Config { seed: node_id, ..Config::default() };
        self.into_raft_events_with(node_id, state, config)
    }

    /// Runs node `node_id` with `config`.
    fn into_raft_events_with<L: LogStore, M: StateMachine>(
        self,
        node_id: NodeId,
        state: (L, M),
        config: Config,
    ) -> impl FusedStream<Item = Result<Outgoing, StreamError<L, M>>> + Unpin {
        drive(self, node_id, state, config, None::<NoClock>)
    }

    /// Runs node `node_id` with `config`, taking time from `clock`: the node sleeps until its
    /// next deadline or the next input, and no [`Incoming::Tick`] needs to be sent.
    fn into_raft_events_with_clock<L: LogStore, M: StateMachine, C: Clock>(
        self,
        node_id: NodeId,
        state: (L, M),
        config: Config,
        clock: C,
    ) -> impl FusedStream<Item = Result<Outgoing, StreamError<L, M>>> + Unpin {
        drive(self, node_id, state, config, Some(clock))
    }
}

impl<St: Stream<Item = Incoming>> RaftStreamExt for St {}

fn drive<St, L, M, C>(
    incoming: St,
    node_id: NodeId,
    (log, machine): (L, M),
    config: Config,
    clock: Option<C>,
) -> impl FusedStream<Item = Result<Outgoing, StreamError<L, M>>> + Unpin
where
    St: Stream<Item = Incoming>,
    L: LogStore,
    M: StateMachine,
    C: Clock,
{
    let driver = Box::new(Driver {
        incoming: Box::pin(incoming),
        log,
        machine,
        clock,
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

struct Driver<St, L, M, C> {
    incoming: Pin<Box<St>>,
    log: L,
    machine: M,
    clock: Option<C>,
    node_id: NodeId,
    config: Option<Config>,
    node: Option<Node>,
    out: Vec<Outgoing>,
    input_done: bool,
    finished: bool,
}

/// What woke the driver.
enum Wake {
    Input(Incoming),
    Deadline,
    InputEnded,
}

impl<St, L, M, C> Driver<St, L, M, C>
where
    St: Stream<Item = Incoming>,
    L: LogStore,
    M: StateMachine,
    C: Clock,
{
    /// Runs turns until one produces output; `None` once the input has ended and all work is
    /// done, or after an error has been yielded.
    async fn next_batch(&mut self) -> Option<Result<Vec<Outgoing>, StreamError<L, M>>> {
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
    async fn turn(&mut self) -> Result<bool, StreamError<L, M>> {
        if self.node.is_none() {
            let config = self.config.take().unwrap_or_default();
            let mut node = start(self.node_id, config, &mut self.log, &mut self.machine).await?;
            if let Some(clock) = &self.clock {
                node.step(Incoming::Tick(clock.now()));
            }
            self.node = Some(node);
        }
        let Some(node) = self.node.as_mut() else { return Ok(false) };
        if !node.has_ready() {
            if self.input_done {
                return Ok(false);
            }
            match next_wake(&mut self.incoming, self.clock.as_mut(), node).await {
                Wake::Input(input) => node.step(input),
                Wake::Deadline => {}
                Wake::InputEnded => {
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
        advance(node, &mut self.log, &mut self.machine, &mut self.out).await?;
        Ok(true)
    }
}

/// Waits for the next input or, with a clock, the node's next deadline. With a clock, the
/// node's time is brought up to date before it sees either.
async fn next_wake<St, C>(incoming: &mut Pin<Box<St>>, clock: Option<&mut C>, node: &mut Node) -> Wake
where
    St: Stream<Item = Incoming>,
    C: Clock,
{
    let Some(clock) = clock else {
        return incoming.next().await.map_or(Wake::InputEnded, Wake::Input);
    };
    let deadline = node.next_deadline();
    let wake = {
        let sleep = pin!(clock.sleep_until(deadline));
        match select(incoming.next(), sleep).await {
            Either::Left((input, _)) => input.map_or(Wake::InputEnded, Wake::Input),
            Either::Right(((), _)) => Wake::Deadline,
        }
    };
    node.step(Incoming::Tick(clock.now()));
    wake
}
