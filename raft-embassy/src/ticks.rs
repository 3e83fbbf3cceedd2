//! Time for the stream driver, two ways: [`EmbassyClock`] lends it embassy-time's timer, so
//! a node sleeps until its next deadline; or [`TickExt::with_ticks`] merges an embassy
//! [`Ticker`] into the node's incoming stream.
//!
//! raft-core never reads a clock. Time enters as [`Incoming::Tick`] events (every `period`,
//! the current [`embassy_time::Instant`] becomes a `Tick` in milliseconds), or through a
//! [`Clock`] the driver asks for the time and for a timer.

use core::pin::Pin;
use core::task::{Context, Poll};

use embassy_time::{Duration, Ticker, Timer};
use futures_core::stream::{FusedStream, Stream};
use futures_util::StreamExt;
use pin_project_lite::pin_project;
use raft_core::{Clock, Incoming, Instant};

/// embassy-time's clock and timer, as a raft-core [`Clock`]: with
/// [`into_raft_events_with_clock`](raft_core::RaftStreamExt::into_raft_events_with_clock) a
/// node wakes only for its next deadline (a heartbeat, an election timeout) or its next input,
/// instead of every tick: on a battery, the MCU sleeps in between. Instants are
/// [`embassy_time::Instant`] in milliseconds. The timer queue note on [`TickExt`] applies.
///
/// ```
/// use futures::stream;
/// use raft_core::{Bytes, Config, Incoming, MemState, Membership, RaftStreamExt};
/// use raft_embassy::EmbassyClock;
///
/// let state = (MemState::new(Membership::new([1])), Vec::<Bytes>::new());
/// let events = stream::pending::<Incoming>().into_raft_events_with_clock(1, state, Config::default(), EmbassyClock);
/// # drop(events);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    async fn sleep_until(&mut self, deadline: Instant) {
        Timer::at(embassy_time::Instant::from_millis(deadline.as_millis())).await;
    }
}

/// A tick period that suits the default [`raft_core::Config`] timeouts: well below the 50 ms
/// heartbeat interval, so timers fire within 10 ms of their deadline.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// Adds embassy-time ticks to a stream of [`Incoming`] events.
///
/// **Timer queue.** Either of embassy-time's timer queues works when the node runs in an
/// embassy task. The ticker registers the waker of whoever polls it, and raft-core's stream
/// driver polls its input with the task's own context, batching included (since raft-core
/// stopped using a no-op waker), so the timer sees an embassy task waker. The queue integrated
/// into embassy-executor panics ("Found waker not created by the Embassy executor") only when
/// the stream is polled from some other executor, such as `futures::executor::block_on` or a host
/// test's `LocalPool`: there, build embassy-time with a `generic-queue-*` feature (as this
/// crate's host tests do) or give your time driver
/// `embassy_time_queue_utils::queue_generic::ConstGenericQueue` (as the firmware example does,
/// because it is the simplest queue for a hand-written driver).
///
/// ```
/// use futures::stream;
/// use raft_core::Incoming;
/// use raft_embassy::{TickExt, DEFAULT_TICK};
///
/// let inputs = stream::pending::<Incoming>().with_ticks(DEFAULT_TICK);
/// # drop(inputs);
/// ```
pub trait TickExt: Stream<Item = Incoming> + Sized {
    /// Merges an [`Incoming::Tick`] every `period` into this stream. The first tick comes one
    /// period from now; the merged stream ends when this one ends.
    fn with_ticks(self, period: Duration) -> WithTicks<Self> {
        WithTicks { inner: self, ticker: Ticker::every(period), done: false }
    }
}

impl<St: Stream<Item = Incoming>> TickExt for St {}

pin_project! {
    /// The stream returned by [`TickExt::with_ticks`].
    #[must_use = "streams do nothing unless polled"]
    pub struct WithTicks<St> {
        #[pin]
        inner: St,
        ticker: Ticker,
        done: bool,
    }
}

impl<St: Stream<Item = Incoming>> Stream for WithTicks<St> {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // The ticker goes first: it is ready at most once per period, so it cannot starve the
        // inner stream, while a flood of messages must not hold back elections and heartbeats.
        if this.ticker.poll_next_unpin(cx).is_ready() {
            return Poll::Ready(Some(Incoming::Tick(now())));
        }
        let next = this.inner.poll_next(cx);
        if let Poll::Ready(None) = next {
            *this.done = true;
        }
        next
    }
}

impl<St: Stream<Item = Incoming>> FusedStream for WithTicks<St> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// The embassy clock as a raft-core instant (milliseconds since boot).
fn now() -> Instant {
    Instant::from_millis(embassy_time::Instant::now().as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use embassy_time::MockDriver;
    use futures::channel::mpsc;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;

    /// The only test in this binary that uses the process-wide mock clock.
    #[test]
    fn ticks_carry_the_clock_come_first_and_end_with_the_input() {
        let (inputs, receiver) = mpsc::unbounded();
        let mut stream = receiver.with_ticks(Duration::from_millis(10));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        let record = Rc::clone(&seen);
        pool.spawner()
            .spawn_local(async move {
                while let Some(input) = stream.next().await {
                    record.borrow_mut().push(input);
                }
                record.borrow_mut().push(Incoming::Diagnostics); // marks the end
            })
            .unwrap();
        let tick = |millis| Incoming::Tick(Instant::from_millis(millis));

        let start = embassy_time::Instant::now().as_millis();
        for _ in 0..15 {
            pool.run_until_stalled();
            MockDriver::get().advance(Duration::from_millis(1));
        }
        pool.run_until_stalled();
        assert_eq!(*seen.borrow(), [tick(start + 10)]);

        // Inputs queued while a tick came due: the tick goes first.
        inputs.unbounded_send(Incoming::Compact).unwrap();
        MockDriver::get().advance(Duration::from_millis(5));
        pool.run_until_stalled();
        assert_eq!(*seen.borrow(), [tick(start + 10), tick(start + 20), Incoming::Compact]);

        inputs.close_channel();
        pool.run_until_stalled();
        assert_eq!(seen.borrow().last(), Some(&Incoming::Diagnostics), "the stream ended with its input");
    }
}
