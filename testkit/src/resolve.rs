//! Resolving the executor's futures inside the (synchronous) simulator.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::error::{invalid, SimError};

/// Runs `future` to completion at once. The simulator's stores never wait, so the executor's
/// futures are always ready on the first poll; one that is not is reported, not spun on.
pub(crate) fn now<F: Future>(future: F) -> Result<F::Output, SimError> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => invalid("a simulated store waited, which it never should"),
    }
}
