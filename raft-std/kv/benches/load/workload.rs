//! The closed-loop clients: each one keeps one HTTP/1.1 keep-alive connection to the leader
//! (over TLS for raft-kv-tls) and sends its next request as soon as the previous answer has
//! arrived, recording the latency of every request that started in the measured window.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::procs::Kind;

/// Bytes per value.
pub const VALUE_BYTES: usize = 64;

/// One prepared request.
#[derive(Clone)]
pub struct Call {
    method: Method,
    uri: Uri,
    body: Bytes,
    /// For etcd's range: the answer must hold a key-value (etcd answers 200 without one).
    expect_kvs: bool,
}

/// The key client `client` writes as its `seq`-th write.
pub fn key(client: usize, seq: u64) -> String {
    format!("c{client:03}-{seq:08}")
}

/// The 64-byte value client `client` writes (ASCII, so valid UTF-8 for raft-kv).
pub fn value(client: usize) -> Bytes {
    let mut value = format!("value-of-client-{client:03}-");
    while value.len() < VALUE_BYTES {
        value.push('x');
    }
    value.truncate(VALUE_BYTES);
    Bytes::from(value)
}

/// A put of `key` = `value`. raft-kv: `PUT /kv/{key}` with the raw value; etcd: the JSON
/// gateway's `POST /v3/kv/put` with base64 key and value (`value_b64` is the encoded value).
pub fn write_call(kind: Kind, key: &str, value: &Bytes, value_b64: &str) -> Call {
    match kind {
        Kind::RaftKv | Kind::RaftKvTls => Call {
            method: Method::PUT,
            uri: format!("/kv/{key}").parse().expect("a valid path"),
            body: value.clone(),
            expect_kvs: false,
        },
        Kind::Etcd => Call {
            method: Method::POST,
            uri: Uri::from_static("/v3/kv/put"),
            body: format!(r#"{{"key":"{}","value":"{value_b64}"}}"#, BASE64.encode(key)).into(),
            expect_kvs: false,
        },
    }
}

/// A linearizable read of `key`. raft-kv: `GET /kv/{key}` (linearizable by default); etcd:
/// `POST /v3/kv/range` (linearizable unless `serializable` is set).
pub fn read_call(kind: Kind, key: &str) -> Call {
    match kind {
        Kind::RaftKv | Kind::RaftKvTls => Call {
            method: Method::GET,
            uri: format!("/kv/{key}").parse().expect("a valid path"),
            body: Bytes::new(),
            expect_kvs: false,
        },
        Kind::Etcd => Call {
            method: Method::POST,
            uri: Uri::from_static("/v3/kv/range"),
            body: format!(r#"{{"key":"{}"}}"#, BASE64.encode(key)).into(),
            expect_kvs: true,
        },
    }
}

/// What the requests of one client (or, merged, of all) came to.
#[derive(Default)]
pub struct Record {
    /// Latency of every successful request that started in the measured window, in ns.
    pub latencies: Vec<u64>,
    /// Failed requests in the measured window (error status, connection failure, missing key).
    pub errors: u64,
    pub first_error: Option<String>,
    /// Keys this client wrote successfully during the warm-up.
    pub warm_keys: Vec<String>,
}

impl Record {
    fn error(&mut self, counted: bool, message: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(message());
            }
        }
    }

    pub fn merge(&mut self, other: Record) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.warm_keys.extend(other.warm_keys);
    }
}

/// What a client does in a phase.
#[derive(Clone)]
pub enum Work {
    /// Writes fresh keys (client id, value, its base64 form).
    Writes { value: Bytes, value_b64: Arc<str> },
    /// Reads these (prepared) requests, each client starting at its own offset.
    Reads(Arc<Vec<Call>>),
    /// Writes keys `m{n}` for n taken from the counter until it reaches the limit.
    Load { next: Arc<AtomicU64>, limit: u64, value: Bytes, value_b64: Arc<str> },
}

/// Where the clients send their requests: the leader's client address, and for raft-kv-tls
/// how to make TLS connections to it.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<TlsConnector>,
}

/// The TLS client of raft-kv-tls's load clients: rustls with the ring provider (as raft-service
/// serves HTTPS), trusting `certs/ca.pem` and presenting the admin client certificate
/// (`client.pem`, `client-key.pem`), all as `raft-kv certs` wrote them in `certs`.
pub fn tls_connector(certs: &Path) -> TlsConnector {
    let file = |name: &str| certs.join(name);
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(file("ca.pem")).expect("ca.pem") {
        roots.add(ca.expect("a CA certificate in ca.pem")).expect("a usable CA certificate");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file("client.pem"))
        .expect("client.pem")
        .collect::<Result<_, _>>()
        .expect("certificates in client.pem");
    let key = PrivateKeyDer::from_pem_file(file("client-key.pem")).expect("a key in client-key.pem");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("the admin client certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// What the first TLS connection negotiated (protocol version and cipher suite).
static NEGOTIATED: OnceLock<String> = OnceLock::new();

/// The TLS version and cipher suite the clients negotiated, once one has connected.
pub fn negotiated() -> Option<&'static str> {
    NEGOTIATED.get().map(String::as_str)
}

/// One keep-alive connection.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects, and for TLS completes the handshake, before the first request.
    async fn open(endpoint: &Endpoint) -> Result<Connection, String> {
        let stream = TcpStream::connect(endpoint.addr).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let Some(tls) = &endpoint.tls else {
            return Connection::over(stream).await;
        };
        let name = ServerName::IpAddress(endpoint.addr.ip().into());
        let stream = tls.connect(name, stream).await.map_err(|e| format!("TLS handshake: {e}"))?;
        NEGOTIATED.get_or_init(|| {
            let (_, session) = stream.get_ref();
            let version = session.protocol_version().map_or("?".into(), |v| format!("{v:?}"));
            let suite = session.negotiated_cipher_suite().map_or("?".into(), |s| format!("{:?}", s.suite()));
            format!("{version}, {suite}")
        });
        Connection::over(stream).await
    }

    /// HTTP/1.1 over `stream`.
    async fn over<S>(stream: S) -> Result<Connection, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection); // ends when `sender` is dropped or the peer closes
        Ok(Connection { sender })
    }

    /// Sends `call`; Ok if the answer is a success (and, for etcd's range, holds the key).
    async fn send(&mut self, host: &str, call: &Call) -> Result<(), String> {
        let mut request =
            Request::builder().method(call.method.clone()).uri(call.uri.clone()).header(HOST, host);
        if !call.body.is_empty() && call.method == Method::POST {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(call.body.clone())).map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| format!("connection: {e}"))?;
        let response = self.sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        if status != StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        if call.expect_kvs && !body.windows(5).any(|w| w == b"\"kvs\"") {
            return Err(format!("no such key: {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    }
}

/// Runs client `id` against `endpoint` until `end`: requests that start before `measure_from`
/// are the warm-up (not recorded; for writes, their keys are kept for the reads). The client
/// connects (TLS: and completes the handshake) before its first request, so at the start of the
/// warm-up.
pub async fn client(
    kind: Kind,
    endpoint: Endpoint,
    id: usize,
    work: Work,
    measure_from: Instant,
    end: Instant,
) -> Record {
    let host = endpoint.addr.to_string();
    let mut record = Record::default();
    let mut connection = Connection::open(&endpoint).await.ok();
    let mut seq = 0u64;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let measured = start >= measure_from;
        let (call, key) = match &work {
            Work::Writes { value, value_b64 } => {
                let key = key(id, seq);
                (write_call(kind, &key, value, value_b64), Some(key))
            }
            Work::Reads(calls) => (calls[(id * 7919 + seq as usize) % calls.len()].clone(), None),
            Work::Load { next, limit, value, value_b64 } => {
                let n = next.fetch_add(1, Relaxed);
                if n >= *limit {
                    break;
                }
                (write_call(kind, &format!("m{n:09}"), value, value_b64), None)
            }
        };
        seq += 1;
        if connection.is_none() {
            match Connection::open(&endpoint).await {
                Ok(opened) => connection = Some(opened),
                Err(e) => {
                    record.error(measured, || e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let sent = connection.as_mut().expect("a connection").send(&host, &call).await;
        let elapsed = start.elapsed();
        match sent {
            Ok(()) if measured => record.latencies.push(elapsed.as_nanos() as u64),
            Ok(()) => record.warm_keys.extend(key),
            Err(e) => {
                if e.starts_with("connection") || e.starts_with("request") || e.starts_with("body") {
                    connection = None; // reconnect
                }
                record.error(measured, || e);
            }
        }
    }
    record
}
