//! The sending side of one peer: dial, secure, handshake, drain the queue; on failure, back
//! off and dial again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use raft_core::{Bytes, NodeId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::handshake::{self, Connection};
use super::{Link, Secure, Shared};

/// Messages written before one flush at most.
const BATCH: usize = 256;

/// Why a connection's session ended.
enum End {
    /// The queue closed: the transport is shutting down.
    Closed,
    /// The credentials it was made with were replaced: dial again at once, with the new ones.
    Retired,
    /// It failed, or could not be made.
    Failed(String),
}

/// Runs until the transport shuts down.
pub(super) async fn run<S: Secure>(
    shared: Arc<Shared<S>>,
    to: NodeId,
    mut queue: mpsc::Receiver<Bytes>,
    link: Arc<Link>,
) {
    let mut backoff = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
    let mut last_failure: Option<String> = None;
    loop {
        let session = async {
            let (mut connection, retired) = match connect(&shared, to).await {
                Ok(connected) => connected,
                Err(failure) => return End::Failed(failure),
            };
            link.connected.store(true, Ordering::Relaxed);
            backoff.reset();
            if last_failure.take().is_some() {
                tracing::info!(peer = to, "connected to peer");
            } else {
                tracing::debug!(peer = to, "connected to peer");
            }
            let end = pump(to, &mut connection, &mut queue, &link, &retired).await;
            if let End::Retired = end {
                // Close cleanly, so the acceptor reads everything written before.
                let closing = SinkExt::<Bytes>::close(&mut connection);
                let _ = tokio::time::timeout(shared.config.handshake_timeout, closing).await;
            }
            end
        };
        let failure = tokio::select! {
            _ = shared.stop.cancelled() => return,
            end = session => match end {
                End::Closed => return,
                End::Retired => {
                    link.connected.store(false, Ordering::Relaxed);
                    tracing::debug!(peer = to, "credentials replaced: reconnecting with the new ones");
                    continue;
                }
                End::Failed(failure) => failure,
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

/// Dials `to`, secures the connection and introduces this node; returns the connection and
/// the token that retires it when the credentials change.
async fn connect<S: Secure>(
    shared: &Shared<S>,
    to: NodeId,
) -> Result<(Connection<S::Stream>, CancellationToken), String> {
    let config = &shared.config;
    let address = shared.book.get(to).ok_or_else(|| "address unknown".to_string())?;
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(address.as_str()))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("cannot configure the socket: {e}"))?;
    let opening = async {
        let secured = shared.secure.connect(stream, to).await?;
        let mut connection = handshake::frame(secured.stream, config.max_handshake_bytes);
        handshake::dial(&mut connection, &shared.identity, to).await?;
        Ok::<_, String>((connection, secured.retired))
    };
    let (mut connection, retired) = tokio::time::timeout(config.handshake_timeout, opening)
        .await
        .map_err(|_| format!("no handshake with {address} within handshake_timeout"))??;
    handshake::authenticated(&mut connection, config.max_frame_bytes);
    Ok((connection, retired))
}

/// Writes queued messages until the connection fails, its credentials are retired, or the
/// queue closes.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    to: NodeId,
    connection: &mut Connection<S>,
    queue: &mut mpsc::Receiver<Bytes>,
    link: &Link,
    retired: &CancellationToken,
) -> End {
    loop {
        tokio::select! {
            message = queue.recv() => {
                let Some(message) = message else { return End::Closed };
                if let Err(failure) = write_batch(connection, queue, link, message).await {
                    return End::Failed(failure);
                }
                if queue.is_empty() {
                    link.drained(to);
                }
            }
            // The peer never sends on this connection: anything readable means it closed.
            read = connection.next() => return End::Failed(match read {
                None => "the peer closed the connection".to_string(),
                Some(Err(e)) => format!("read failed: {e}"),
                Some(Ok(_)) => "the peer sent data on a send-only connection".to_string(),
            }),
            _ = retired.cancelled() => return End::Retired,
        }
    }
}

/// Writes `first` and what else is queued, up to a batch, then flushes.
async fn write_batch<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    queue: &mut mpsc::Receiver<Bytes>,
    link: &Link,
    first: Bytes,
) -> Result<(), String> {
    write(connection, link, first).await?;
    for _ in 1..BATCH {
        let Ok(message) = queue.try_recv() else { break };
        write(connection, link, message).await?;
    }
    SinkExt::<Bytes>::flush(connection).await.map_err(|e| format!("write failed: {e}"))
}

/// Buffers one frame (flushed by the caller).
async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    link: &Link,
    message: Bytes,
) -> Result<(), String> {
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
