//! The sending side of one peer: dial, handshake, drain the queue; on failure, back off and
//! dial again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use raft_core::{Bytes, NodeId};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::handshake::{self, Connection};
use super::{Link, Shared};

/// Messages written before one flush at most.
const BATCH: usize = 256;

/// Runs until the transport shuts down.
pub(super) async fn run(shared: Arc<Shared>, to: NodeId, mut queue: mpsc::Receiver<Bytes>, link: Arc<Link>) {
    let mut backoff = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
    let mut last_failure: Option<String> = None;
    loop {
        let session = async {
            let mut connection = connect(&shared, to).await?;
            link.connected.store(true, Ordering::Relaxed);
            backoff.reset();
            if last_failure.take().is_some() {
                tracing::info!(peer = to, "connected to peer");
            } else {
                tracing::debug!(peer = to, "connected to peer");
            }
            pump(to, &mut connection, &mut queue, &link).await
        };
        let failure = tokio::select! {
            _ = shared.stop.cancelled() => return,
            result = session => match result {
                Ok(()) => return, // the queue closed: the transport is shutting down
                Err(failure) => failure,
            },
        };
        let was_connected = link.connected.swap(false, Ordering::Relaxed);
        if was_connected || last_failure.as_deref() != Some(failure.as_str()) {
            tracing::warn!(peer = to, reason = %failure, "link to peer down; reconnecting with backoff");
        } else {
            tracing::debug!(peer = to, reason = %failure, "still cannot reach peer");
        }
        last_failure = Some(failure);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next()) => {}
        }
    }
}

async fn connect(shared: &Shared, to: NodeId) -> Result<Connection, String> {
    let address = shared.book.get(to).ok_or_else(|| "address unknown".to_string())?;
    let stream = tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(address.as_str()))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("cannot configure the socket: {e}"))?;
    let mut connection = handshake::frame(stream, shared.config.max_frame_bytes);
    handshake::dial(&mut connection, &shared.identity, to, shared.config.handshake_timeout).await?;
    Ok(connection)
}

/// Writes queued messages until the connection fails (`Err`) or the queue closes (`Ok`).
async fn pump(
    to: NodeId,
    connection: &mut Connection,
    queue: &mut mpsc::Receiver<Bytes>,
    link: &Link,
) -> Result<(), String> {
    loop {
        tokio::select! {
            message = queue.recv() => {
                let Some(message) = message else { return Ok(()) };
                write(connection, link, message).await?;
                for _ in 1..BATCH {
                    let Ok(message) = queue.try_recv() else { break };
                    write(connection, link, message).await?;
                }
                SinkExt::<Bytes>::flush(connection).await.map_err(|e| format!("write failed: {e}"))?;
                if queue.is_empty() {
                    link.drained(to);
                }
            }
            // The peer never sends on this connection: anything readable means it closed.
            read = connection.next() => return Err(match read {
                None => "the peer closed the connection".to_string(),
                Some(Err(e)) => format!("read failed: {e}"),
                Some(Ok(_)) => "the peer sent data on a send-only connection".to_string(),
            }),
        }
    }
}

/// Buffers one frame (flushed by the caller).
async fn write(connection: &mut Connection, link: &Link, message: Bytes) -> Result<(), String> {
    link.queued_bytes.fetch_sub(message.len(), Ordering::Relaxed);
    connection.feed(message).await.map_err(|e| format!("write failed: {e}"))
}

/// Exponential backoff between reconnection attempts.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { next: min, min, max: max.max(min) }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let delays: Vec<_> = (0..5).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.next().as_millis(), 50);
    }
}
