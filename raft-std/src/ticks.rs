//! Time on tokio, two ways: [`TokioClock`] lends the stream driver tokio's timer, so a node
//! sleeps until its next deadline; or [`with_ticks`] merges periodic [`Incoming::Tick`] events
//! into the node's input.

use std::future::ready;
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use raft_core::{Clock, Incoming, Instant};
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::IntervalStream;

/// tokio's monotonic clock and timer, as a raft-core [`Clock`]: instants count milliseconds
/// since the clock was created. With it, a node wakes only for its next deadline (a heartbeat,
/// an election timeout) or its next input.
///
/// ```
/// use futures::StreamExt;
/// use raft_core::{Bytes, Config, Event, MemState, Membership, Outgoing, RaftStreamExt, Role};
/// use raft_std::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (_inputs, receiver) = tokio::sync::mpsc::unbounded_channel();
/// let state = (MemState::new(Membership::new([1])), Vec::<Bytes>::new());
/// let mut events = tokio_stream::wrappers::UnboundedReceiverStream::new(receiver)
///     .into_raft_events_with_clock(1, state, Config::default(), TokioClock::new());
/// // No ticks are sent: the node wakes at its election deadline and elects itself.
/// while let Some(Ok(output)) = events.next().await {
///     if let Outgoing::Event(Event::RoleChanged { role: Role::Leader, .. }) = output {
///         break;
///     }
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose epoch is now. Must be created inside a tokio runtime.
    pub fn new() -> Self {
        TokioClock { start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let millis = self.start.elapsed().as_millis();
        Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&mut self, deadline: Instant) {
        tokio::time::sleep_until(self.start + Duration::from_millis(deadline.as_millis())).await;
    }
}

/// How often [`with_ticks`] ticks by default: well below any sensible heartbeat interval.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// An endless stream of [`Incoming::Tick`] every `period`, on tokio's monotonic clock. The
/// instants count milliseconds since the stream was created. Must be created inside a tokio
/// runtime.
pub fn ticks(period: Duration) -> impl Stream<Item = Incoming> + Send + Unpin {
    let start = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    IntervalStream::new(interval).map(move |now| {
        let millis = u64::try_from(now.duration_since(start).as_millis()).unwrap_or(u64::MAX);
        Incoming::Tick(Instant::from_millis(millis))
    })
}

/// Merges [`ticks`] into `inputs`. The merged stream ends when `inputs` ends, so closing the
/// input channel stops the node.
///
/// ```
/// use futures::StreamExt;
/// use raft_core::{Bytes, Membership, MemState, RaftStreamExt};
/// use raft_std::{with_ticks, DEFAULT_TICK};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (inputs, receiver) = tokio::sync::mpsc::unbounded_channel();
/// let state = (MemState::new(Membership::new([1])), Vec::<Bytes>::new());
/// let mut events = with_ticks(tokio_stream::wrappers::UnboundedReceiverStream::new(receiver), DEFAULT_TICK)
///     .into_raft_events(1, state);
/// drop(inputs); // no more input: the node finishes its work and the stream ends
/// while let Some(event) = events.next().await {
///     event.unwrap();
/// }
/// # }
/// ```
pub fn with_ticks<S>(inputs: S, period: Duration) -> impl Stream<Item = Incoming>
where
    S: Stream<Item = Incoming>,
{
    let inputs = inputs.map(Some).chain(stream::once(ready(None)));
    stream::select(inputs, ticks(period).map(Some))
        .take_while(|input| ready(input.is_some()))
        .filter_map(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_count_milliseconds_and_end_with_the_inputs() {
        let ticks: Vec<_> = ticks(Duration::from_millis(10)).take(3).collect().await;
        assert_eq!(ticks, [0, 10, 20].map(|ms| Incoming::Tick(Instant::from_millis(ms))));
        let merged: Vec<_> = with_ticks(stream::iter([Incoming::Compact]), DEFAULT_TICK).collect().await;
        assert!(merged.contains(&Incoming::Compact));
    }
}
