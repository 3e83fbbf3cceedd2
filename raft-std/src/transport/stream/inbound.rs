//! The receiving side: accept connections (at most `max_connections` at once), secure them,
//! check the handshake, pass frames to the inbox tagged with the peer the connection was
//! authenticated as.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use raft_core::{Bytes, NodeId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::{handshake, Secure, Shared};

/// First pause after `accept` fails (usually out of file descriptors: EMFILE, ENFILE); it
/// doubles after each failure in a row, up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between attempts to accept after failures.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections until the transport shuts down. A failure to accept never ends it: it
/// waits, longer after each failure in a row, and tries again.
pub(super) async fn accept<S: Secure>(
    shared: Arc<Shared<S>>,
    listener: TcpListener,
    inbox: mpsc::Sender<(NodeId, Bytes)>,
) {
    let mut failures: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut turned_away: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        %error,
                        "cannot accept a connection (out of file descriptors?); retrying with backoff"
                    );
                } else {
                    tracing::debug!(%error, failures, "still cannot accept a connection");
                }
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(failures, "accepting connections again");
            failures = 0;
            backoff = ACCEPT_BACKOFF_MIN;
        }
        match Arc::clone(&shared.connections).try_acquire_owned() {
            Ok(permit) => {
                if turned_away > 0 {
                    tracing::info!(turned_away, "below the connection limit again");
                    turned_away = 0;
                }
                let serve = serve(Arc::clone(&shared), stream, address, inbox.clone(), permit);
                shared.tasks.spawn(serve.in_current_span());
            }
            Err(_) => {
                // Closed at once: the dialer sees the connection end, not a hang.
                drop(stream);
                turned_away += 1;
                if turned_away == 1 {
                    tracing::warn!(
                        %address,
                        limit = shared.config.max_connections,
                        "connection limit reached (max_connections): closing new connections until one ends"
                    );
                }
            }
        }
    }
}

/// Serves one incoming connection until it closes, fails, is replaced by a newer one from the
/// same peer, or the transport shuts down; or, once the credentials it was made with are
/// replaced, until the dialer closes it (it is asked to) or `handshake_timeout` passes. Holds
/// `_permit` meanwhile.
async fn serve<S: Secure>(
    shared: Arc<Shared<S>>,
    stream: TcpStream,
    address: SocketAddr,
    inbox: mpsc::Sender<(NodeId, Bytes)>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let opening = async {
        let secured = shared.secure.accept(stream).await?;
        let mut connection = handshake::frame(secured.stream, config.max_handshake_bytes);
        let from = handshake::accept(&mut connection, &shared.identity, &shared.book, secured.peer).await?;
        Ok::<_, String>((connection, from, secured.retired))
    };
    let (mut connection, from, retired) = tokio::select! {
        _ = shared.stop.cancelled() => return,
        opened = tokio::time::timeout(config.handshake_timeout, opening) => match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(reason)) => return tracing::warn!(%address, %reason, "refused a connection"),
            Err(_) => {
                return tracing::warn!(%address, "refused a connection: no handshake within handshake_timeout");
            }
        },
    };
    handshake::authenticated(&mut connection, config.max_frame_bytes);
    let (serial, replaced) = shared.opened_inbound(from);
    tracing::debug!(peer = from, %address, "accepted a connection");
    let mut overflowing = false;
    // Set once the credentials the connection was made with are replaced: the dialer has been
    // told to close (so it stops writing and reconnects), and what it already sent is still
    // read until it closes, or until this deadline.
    let mut closing_by: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match closing_by {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = replaced.cancelled() => break,
            _ = retired.cancelled(), if closing_by.is_none() => {
                tracing::debug!(peer = from, "credentials replaced: asking the peer to reconnect with the new ones");
                closing_by = Some(tokio::time::Instant::now() + config.handshake_timeout);
                let _ = tokio::time::timeout(config.handshake_timeout, SinkExt::<Bytes>::close(&mut connection)).await;
                continue;
            }
            _ = grace => break,
            frame = connection.next() => frame,
        };
        let bytes = match frame {
            None => {
                tracing::debug!(peer = from, %address, "peer closed the connection");
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(peer = from, %address, error = %e, "closing the connection: unreadable frame (oversized or cut short)");
                break;
            }
            Some(Ok(bytes)) => bytes,
        };
        match inbox.try_send((from, bytes.freeze())) {
            Ok(()) => overflowing = false,
            Err(TrySendError::Full(_)) => {
                if !std::mem::replace(&mut overflowing, true) {
                    tracing::warn!(
                        peer = from,
                        "inbox full: dropping received frames until the node catches up"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => break,
        }
    }
    shared.closed_inbound(from, serial);
}
