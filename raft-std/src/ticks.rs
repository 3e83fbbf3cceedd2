//! Timers on tokio: time enters raft-core only as [`Incoming::Tick`] events, so the adapter
//! merges a tick stream into the node's input.

use std::future::ready;
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use raft_core::{Incoming, Instant};
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::IntervalStream;

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
/// let state: MemState<Vec<Bytes>> = MemState::new(Membership::new([1]));
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
