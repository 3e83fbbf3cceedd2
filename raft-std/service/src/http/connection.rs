//! One client connection: TLS handshake, HTTP/1.1, and the watchdog that closes it when the
//! client is too slow or idle too long.
//!
//! The watchdog knows which phase the connection is in:
//!
//! | phase | from | closed after |
//! | --- | --- | --- |
//! | head | the connection is accepted, or the first byte of the next request arrives | the header timeout, unless the request's headers are complete |
//! | busy | the headers are complete and the request is handed to the application | never by the watchdog: the body has its own deadline ([`DeadlineBody`]), and handlers their request timeout |
//! | idle | the response is handed back | the idle timeout, unless a new request starts (each write of the response pushes it back) |

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt;

use super::body::DeadlineBody;
use super::Limits;
use crate::auth::ClientCertificate;
use crate::tls::ServerTls;

/// What a connection needs from its server.
pub(super) struct Shared {
    pub(super) app: Router,
    pub(super) limits: Limits,
    /// The TLS configuration, read at each handshake (it may be reloaded meanwhile).
    pub(super) tls: Option<Arc<ServerTls>>,
}

/// Serves one accepted connection until it ends, times out, or the server shuts down.
/// `_permit` is the connection's place under the cap, returned when this returns.
pub(super) async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    context: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = OpenGauge::new();
    let limits = &context.limits;
    let Some(tls) = &context.tls else {
        drive(stream, remote, None, &context, shutdown).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let tls = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "TLS handshake failed");
            ::metrics::counter!("http_tls_handshake_failures_total").increment(1);
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake did not finish within the header timeout");
            closed_for("handshake");
            return;
        }
    };
    let certificate = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first());
    let certificate = certificate.map(|der| ClientCertificate::from_verified(der));
    drive(tls, remote, certificate, &context, shutdown).await;
}

/// Runs HTTP/1.1 on `io` under the watchdog.
async fn drive<I>(
    io: I,
    remote: SocketAddr,
    certificate: Option<ClientCertificate>,
    context: &Shared,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &context.limits;
    let activity = Arc::new(Activity::new(limits));
    let handler = Handler {
        app: context.app.clone(),
        activity: Arc::clone(&activity),
        remote,
        certificate,
        limits: limits.clone(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watchdog times the headers (hyper's own timer would also cut idle keep-alive
    // connections at the header timeout).
    http.timer(TokioTimer::new()).header_read_timeout(None);
    let connection =
        http.serve_connection(TokioIo::new(Watched { io, activity: Arc::clone(&activity) }), handler);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let deadline = activity.deadline();
        let expiry = async {
            match deadline {
                Some((deadline, _)) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "HTTP connection ended with an error");
                }
                return;
            }
            () = expiry => {
                if let Some((deadline, phase)) = activity.deadline() {
                    if deadline <= Instant::now() {
                        tracing::debug!(%remote, phase = phase.name(), "closing a connection: {} timeout", phase.name());
                        closed_for(phase.name());
                        return;
                    }
                }
            }
            () = activity.moved.notified() => {}
            _ = shutdown.changed(), if !draining => {
                // Finish the request in progress (bounded by the timeouts), then close.
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Counts a connection closed by the watchdog.
fn closed_for(phase: &'static str) {
    ::metrics::counter!("http_connections_timed_out_total", "phase" => phase).increment(1);
}

/// The `http_connections_open` gauge, for as long as a connection is served.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        ::metrics::gauge!("http_connections_open").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        ::metrics::gauge!("http_connections_open").decrement(1.0);
    }
}

/// Where a connection is (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Head => "header",
            Phase::Busy => "request",
            Phase::Idle => "idle",
        }
    }
}

/// The connection's phase and deadline, moved by its I/O and its requests.
struct Activity {
    state: Mutex<(Phase, Option<Instant>)>,
    /// Woken when the deadline moves earlier (or appears), so the watchdog re-arms.
    moved: Notify,
    header_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
}

impl Activity {
    fn new(limits: &Limits) -> Self {
        Activity {
            state: Mutex::new((Phase::Head, Some(Instant::now() + limits.header_timeout))),
            moved: Notify::new(),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    fn deadline(&self) -> Option<(Instant, Phase)> {
        let (phase, deadline) = *self.lock();
        deadline.map(|deadline| (deadline, phase))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Option<Instant>)> {
        // The state is two plain values: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived: in an idle connection, a new request begins.
    fn read(&self) {
        let mut state = self.lock();
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Some(Instant::now() + self.header_timeout));
            drop(state);
            self.moved.notify_one();
        }
    }

    /// Bytes of a response left: an idle connection is still making progress.
    fn wrote(&self) {
        let mut state = self.lock();
        if state.0 == Phase::Idle {
            state.1 = Some(Instant::now() + self.idle_timeout);
        }
    }

    fn request_started(&self) {
        *self.lock() = (Phase::Busy, None);
    }

    fn request_finished(&self) {
        *self.lock() = (Phase::Idle, Some(Instant::now() + self.idle_timeout));
        self.moved.notify_one();
    }
}

/// The connection's I/O, reporting progress to its [`Activity`].
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Who is on the other end of a request's connection: inserted into every request's
/// extensions (axum: `Extension<Peer>`).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The client certificate it presented, verified against the CA (HTTPS with a client CA
    /// only).
    pub certificate: Option<ClientCertificate>,
}

/// Hands each request to the application, with its [`Peer`] and a body deadline.
#[derive(Clone)]
struct Handler {
    app: Router,
    activity: Arc<Activity>,
    remote: SocketAddr,
    certificate: Option<ClientCertificate>,
    limits: Limits,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(Peer { remote: self.remote, certificate: self.certificate.clone() });
        let request = Request::from_parts(parts, DeadlineBody::new(body, self.limits.body_timeout));
        let (app, activity) = (self.app.clone(), Arc::clone(&self.activity));
        Box::pin(async move {
            let response = app.oneshot(request).await;
            activity.request_finished();
            response
        })
    }
}
