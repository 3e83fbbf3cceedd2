//! Serving an axum [`Router`] over HTTP or HTTPS with bounds on what a client can hold.
//!
//! | bound | default | what happens past it |
//! | --- | --- | --- |
//! | [`Limits::header_timeout`] | 10 s | a connection whose TLS handshake, or whose request headers (counted from the connection's start or the request's first byte), take longer is closed |
//! | [`Limits::body_timeout`] | 30 s | a handler reading a body that has not fully arrived this long after its headers gets an error, answered `408 body_timeout`, and the connection is closed |
//! | [`Limits::idle_timeout`] | 30 s | a keep-alive connection with no new request for this long is closed |
//! | [`Limits::max_connections`] | 1,024, at most half the open-file limit | no more connections are accepted: new ones wait in the kernel's listen backlog, costing the process no file descriptor, until one closes |
//! | [`Limits::max_body_bytes`] | 1 MiB | `413 body_too_large` |
//!
//! Accept errors never stop the server: running out of file descriptors (`EMFILE`,
//! `ENFILE`) or memory (`ENOBUFS`, `ENOMEM`) is logged (at most every 10 s) and retried
//! with a backoff from 10 ms to 1 s; a connection that failed before it was accepted is
//! skipped. Timeouts and open connections are counted in `/metrics`
//! (`http_connections_open`, `http_connections_timed_out_total{phase}`).

mod body;
mod connection;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

pub use self::body::BodyTimedOut;
pub use self::connection::Peer;
use self::connection::Shared;
use crate::tls::ServerTls;

/// Smallest pause after an accept error that is not the client's fault.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Largest pause after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per this interval about accept errors or the connection cap.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in progress.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds of an HTTP server (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest TLS handshake, and longest wait for a request's headers.
    pub header_timeout: Duration,
    /// Longest time for a request's body to arrive, from the end of its headers.
    pub body_timeout: Duration,
    /// Longest wait for the next request on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request body the extractors accept.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: 1 << 20,
        }
    }
}

/// Serves `app` on `listener` within `limits`, over TLS if `tls` is given, until `shutdown`
/// resolves; then finishes the requests in progress (for up to 5 s) and returns. Each TLS
/// handshake uses `tls`'s current configuration: when it is reloaded, new connections use the
/// new one, and connections already made keep the one they started with.
///
/// Each request carries a [`Peer`] extension: the client's address and, over TLS with a
/// client CA, its verified certificate.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let max_connections = limits.max_connections;
    let shared =
        Arc::new(Shared { app: app.layer(DefaultBodyLimit::max(limits.max_body_bytes)), limits, tls });
    let (stop, stopping) = watch::channel(false);
    let mut warnings = Warnings::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);
    loop {
        if permits.available_permits() == 0 {
            warnings.warn(|| {
                tracing::warn!(
                    max_connections,
                    "HTTP connection cap reached; new connections wait in the listen backlog until one closes"
                )
            });
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                // Small JSON answers: do not wait for more to send.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(
                    stream,
                    remote,
                    Arc::clone(&shared),
                    stopping.clone(),
                    permit,
                ));
            }
            Err(error) if failed_before_accept(&error) => {
                tracing::debug!(%error, "a connection failed before it was accepted");
            }
            Err(error) => {
                drop(permit);
                warnings.warn(|| {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot accept HTTP connections; retrying")
                });
                ::metrics::counter!("http_accept_errors_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all)).await.is_err() {
        tracing::info!("closing HTTP connections still busy after {DRAIN_TIMEOUT:?}");
    }
}

/// Errors of one connection that the client gave up or reset before `accept` returned: not
/// the server's problem.
fn failed_before_accept(error: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(error.kind(), K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock)
}

/// Rate-limits a warning that could otherwise fill the log.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
}

impl Warnings {
    fn warn(&mut self, log: impl FnOnce()) {
        let now = Instant::now();
        if self.last.is_none_or(|last| now >= last + WARN_EVERY) {
            self.last = Some(now);
            log();
        }
    }
}
