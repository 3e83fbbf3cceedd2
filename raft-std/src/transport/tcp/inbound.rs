//! The receiving side: accept connections, check the handshake, pass frames to the inbox
//! tagged with the peer the handshake authenticated.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use raft_core::{Bytes, NodeId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::Instrument;

use super::handshake;
use super::Shared;

/// Accepts connections until the transport shuts down.
pub(super) async fn accept(shared: Arc<Shared>, listener: TcpListener, inbox: mpsc::Sender<(NodeId, Bytes)>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                shared
                    .tasks
                    .spawn(serve(Arc::clone(&shared), stream, address, inbox.clone()).in_current_span());
            }
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one incoming connection until it closes, fails, or the transport shuts down.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    address: SocketAddr,
    inbox: mpsc::Sender<(NodeId, Bytes)>,
) {
    let _ = stream.set_nodelay(true);
    let mut connection = handshake::frame(stream, shared.config.max_frame_bytes);
    let timeout = shared.config.handshake_timeout;
    let handshake = handshake::accept(&mut connection, &shared.identity, &shared.book, timeout);
    let from = tokio::select! {
        _ = shared.stop.cancelled() => return,
        result = handshake => match result {
            Ok(from) => from,
            Err(reason) => {
                tracing::warn!(%address, %reason, "refused a connection");
                return;
            }
        },
    };
    tracing::debug!(peer = from, %address, "accepted a connection");
    let mut overflowing = false;
    loop {
        let frame = tokio::select! {
            _ = shared.stop.cancelled() => return,
            frame = connection.next() => frame,
        };
        let bytes = match frame {
            None => return tracing::debug!(peer = from, %address, "peer closed the connection"),
            Some(Err(e)) => {
                return tracing::warn!(peer = from, %address, error = %e, "closing the connection: unreadable frame (oversized or cut short)");
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
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
