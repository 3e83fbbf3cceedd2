//! [`Clock`]: how a runtime lends the stream driver its timers.

use core::future::Future;

use crate::types::Instant;

/// A monotonic clock and a timer, supplied by the runtime (tokio, embassy, a simulator).
///
/// With a clock, the stream driver sleeps until the node's next deadline
/// ([`Node::next_deadline`](crate::Node::next_deadline)) or the next input, whichever comes
/// first, instead of being woken by a periodic [`Incoming::Tick`](crate::Incoming::Tick): an
/// idle node costs nothing between heartbeats.
pub trait Clock: Send {
    /// The current time. Must never go backwards.
    fn now(&self) -> Instant;

    /// Resolves once [`now`](Clock::now) has reached `deadline` (at once if it already has).
    fn sleep_until(&mut self, deadline: Instant) -> impl Future<Output = ()> + Send;
}

/// The absence of a clock: time only enters through `Incoming::Tick` inputs.
#[derive(Debug)]
pub(crate) enum NoClock {}

impl Clock for NoClock {
    fn now(&self) -> Instant {
        match *self {}
    }

    async fn sleep_until(&mut self, _: Instant) {
        match *self {}
    }
}
