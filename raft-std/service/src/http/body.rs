//! A request body with a deadline: the whole body must arrive within the body timeout,
//! counted from the end of the request's headers, however it trickles in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a handler reading the body sees once the body timeout has passed (the API
/// answers it with `408 body_timeout`).
#[derive(Debug)]
pub struct BodyTimedOut {
    after: Duration,
}

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {:?}", self.after)
    }
}

impl std::error::Error for BodyTimedOut {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `inner`, failing with [`BodyTimedOut`] once `timeout` has passed since it was made.
pub(super) struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Armed the first time the body has nothing to give.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    pub(super) fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody { inner, timeout, deadline: Instant::now() + timeout, sleep: None }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut { after: self.timeout })))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
