//! Finding: a frame header claiming 16 MiB was buffered before the handshake; 100 such
//! connections took a node to 1.37 GB RSS. Now the handshake reads frames of at most
//! `max_handshake_bytes`: 100 connections that each declare 16 MiB and send 4 MiB of it are
//! closed at once, and the process's memory stays flat. (Its own test binary: it measures the
//! process's resident memory, which other tests would disturb.)

use std::time::{Duration, Instant};

use raft_core::Bytes;
use raft_std::{TcpConfig, TcpTransport, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 100;
/// What each connection sends after its header, of the 16 MiB it declares.
static PAYLOAD: [u8; 4 << 20] = [0; 4 << 20];

/// The process's resident memory, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("resident pages");
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_handshakes_declaring_16_mib_are_refused_without_buffering_them() {
    let mut config = TcpConfig::new("test", "127.0.0.1:0".parse().unwrap());
    config.max_connections = 2 * CONNECTIONS; // the cap is not what stops them here
    config.handshake_timeout = Duration::from_secs(30); // nor the timeout
    let mut one = TcpTransport::bind(1, config).await.unwrap();
    let address = one.local_addr();

    let before = rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let attackers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await.expect("a connection");
                let _ = stream.write_all(&(16u32 << 20).to_be_bytes()).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&PAYLOAD)).await;
                // The node closes the connection (a reset, or the end of the stream).
                let mut byte = [0];
                let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
                matches!(read, Ok(Ok(0) | Err(_)))
            })
        })
        .collect();
    let mut closed = 0;
    for attacker in attackers {
        closed += usize::from(attacker.await.unwrap());
    }
    let took = started.elapsed();
    sampler.abort();
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "FIGURES: {CONNECTIONS} connections declaring 16 MiB and sending 4 MiB each: {closed} closed by the node \
         in {took:.1?}; resident memory grew by {:.1} MiB at most",
        grew as f64 / (1 << 20) as f64
    );
    assert_eq!(closed, CONNECTIONS, "every connection is closed by the node");
    assert!(grew < 64 << 20, "resident memory grew by {grew} bytes");

    // The node still takes its peers' connections.
    let mut two =
        TcpTransport::bind(2, TcpConfig::new("test", "127.0.0.1:0".parse().unwrap())).await.unwrap();
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &address.to_string());
    two.send(1, Bytes::from_static(b"hello"));
    let received = tokio::time::timeout(Duration::from_secs(5), one.recv()).await;
    assert_eq!(received.ok().flatten(), Some((2, Bytes::from_static(b"hello"))));
}
