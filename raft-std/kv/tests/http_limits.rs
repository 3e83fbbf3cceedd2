//! The HTTP edge of real `raft-kv` processes against clients that hold connections: idle
//! sockets, slow headers, incomplete and slow bodies, and idle keep-alive connections are
//! closed within the configured timeouts; 1,100 idle connections to a node started with
//! `ulimit -n 1024` neither exhaust its file descriptors nor stop it committing.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, KvApi};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(20);
/// The header, body and idle timeouts the node runs with.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// How much later than its timeout a connection may close.
const SLACK: Duration = Duration::from_millis(1500);

/// Reads from `stream` until the server closes it (or `within` passes); returns what arrived
/// and how long after `since` the connection ended.
async fn until_closed(stream: &mut TcpStream, since: Instant, within: Duration) -> (String, Duration) {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let remaining = within.saturating_sub(since.elapsed());
        match tokio::time::timeout(remaining, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), since.elapsed())
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => {
                panic!("still open after {within:?}; received {:?}", String::from_utf8_lossy(&received))
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_within_the_timeouts() {
    let ms = TIMEOUT.as_millis().to_string();
    let cluster = Cluster::start(
        1,
        &["--http-header-timeout-ms", &ms, "--http-body-timeout-ms", &ms, "--http-idle-timeout-ms", &ms],
    );
    let api = cluster.api();
    api.wait_for_leader(&[1], PATIENCE).await;
    let address = api.http_address(1);
    let connect = || async { TcpStream::connect(address).await.expect("a connection") };

    // An idle socket: nothing is ever sent.
    let mut idle = connect().await;
    let (received, after) = until_closed(&mut idle, Instant::now(), TIMEOUT + SLACK).await;
    assert!(received.is_empty() && after >= TIMEOUT - Duration::from_millis(100), "{after:?} {received:?}");
    eprintln!("idle socket closed after {after:?}");

    // Slow headers: a header line every 200 ms, never finished.
    let mut slow = connect().await;
    let start = Instant::now();
    slow.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let lines = b"X-Slow: 1\r\n".repeat(100);
    let (mut reader, mut writer) = slow.into_split();
    let sender = tokio::spawn(async move {
        for line in lines.chunks(11) {
            if writer.write_all(line).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT + SLACK, reader.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "slow headers still open after {:?}", start.elapsed());
    eprintln!("slow headers cut off after {:?}", start.elapsed());
    sender.abort();

    // An incomplete body: 10 of 100 bytes, then nothing.
    let mut incomplete = connect().await;
    incomplete
        .write_all(b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let (received, after) = until_closed(&mut incomplete, Instant::now(), TIMEOUT + SLACK).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("\"code\":\"body_timeout\""), "{received}");
    eprintln!("incomplete body answered 408 and closed after {after:?}");

    // A slow body: one byte every 100 ms of 100 (10 s if the server waited for it all).
    let mut slow_body = connect().await;
    let start = Instant::now();
    slow_body.write_all(b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let (mut reader, mut writer) = slow_body.into_split();
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT + SLACK, reader.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "slow body still open after {:?}", start.elapsed());
    let received = String::from_utf8_lossy(&buffer);
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    eprintln!("slow body answered 408 and closed after {:?}", start.elapsed());
    sender.abort();

    // A keep-alive connection: one request, then silence.
    let mut keep_alive = connect().await;
    keep_alive.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut first = [0; 12];
    keep_alive.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (_, after) = until_closed(&mut keep_alive, Instant::now(), TIMEOUT + SLACK).await;
    eprintln!("idle keep-alive connection closed {after:?} after its response");

    // The node served all along.
    api.put_until_acknowledged(1, "still", "serving", PATIENCE).await;
    let metrics = api.metrics(1).await.unwrap();
    for phase in ["header", "idle"] {
        assert!(
            metrics.contains(&format!("http_connections_timed_out_total{{phase=\"{phase}\"}}")),
            "{metrics}"
        );
    }
}

/// Raises this process's soft open-file limit: the test itself holds 1,100 sockets.
fn raise_own_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_do_not_exhaust_a_node_with_1024_descriptors() {
    raise_own_open_file_limit();
    let mut cluster = Cluster::new(3, &["--http-header-timeout-ms", "4000"]);
    cluster.limit_open_files(1, 1024);
    cluster.launch_all();
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&[1, 2, 3], PATIENCE).await;
    if leader != 1 {
        let moved =
            api.post(leader, "/cluster/transfer-leader", json!({ "to": 1 })).await.expect("an answer");
        assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    }
    assert_eq!(api.wait_for_leader(&[1, 2, 3], PATIENCE).await, 1);
    let log = cluster.log(1);
    assert!(log.contains("max_connections=512"), "the cap is half of 1,024 descriptors:\n{log}");

    // 1,100 connections that never send a byte.
    let address = api.http_address(1);
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(TcpStream::connect(address).await.expect("the kernel completes the handshake"));
    }
    let held = open_descriptors(cluster.pid(1));
    eprintln!("node 1 holds {held} descriptors with 1,100 clients connected");
    assert!(held < 700, "at most 512 clients get a descriptor: {held}");

    // The leader keeps committing (its log and term are written through all this), and stays up.
    for i in 0..20 {
        api.put_until_acknowledged(2, &format!("under-load-{i}"), "yes", PATIENCE).await;
    }
    assert!(cluster.is_running(1), "node 1 is alive");
    assert_eq!(api.status(2).await.expect("a status")["leader"], 1);
    assert!(cluster.log(1).contains("HTTP connection cap reached"), "{}", cluster.log(1));

    // The header timeout frees the slots; the node serves new clients again.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = api.status(1).await {
            break status;
        }
        assert!(start.elapsed() < PATIENCE, "node 1 never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("node 1 served a new client {:?} after the writes", start.elapsed());
    assert_eq!(status["role"], "Leader");
    drop(idle);
    let answer = api.get(1, "under-load-19", false).await.expect("a read");
    assert_eq!(answer.body["value"], "yes");
    assert!(!cluster.log(1).contains("storage failed"), "{}", cluster.log(1));
}
