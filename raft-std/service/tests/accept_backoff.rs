//! The accept loop when the process runs out of file descriptors: `accept` fails with
//! `EMFILE`, the server logs it, backs off and keeps going, and serves the waiting client as
//! soon as descriptors are free again. (Its own test binary: it lowers the process's limit.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use raft_service::http::{serve, Limits};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Log lines, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_pauses_accepting_and_never_stops_the_server() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "served" }));
    let server = tokio::spawn(serve(listener, app, Limits::default(), None, std::future::pending()));

    // Leave this process a handful of descriptors, then take all but one of them.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let limit = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(open + 16), maximum: limit.maximum }).unwrap();
    let mut fillers = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        fillers.push(file);
    }
    fillers.pop();
    // The client's socket takes the last one: the server has none to accept it with.
    let mut client = TcpStream::connect(address).await.expect("the kernel completes the handshake");
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("cannot accept HTTP connections") && logged.contains("24"),
        "EMFILE is logged: {logged}"
    );
    assert!(!server.is_finished(), "the server keeps running");

    drop(fillers);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
        .await
        .expect("answered once descriptors are free")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("served"), "{answer}");
    setrlimit(Resource::Nofile, limit).unwrap();
}
