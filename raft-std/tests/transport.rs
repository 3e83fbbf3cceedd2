//! The TCP transport over loopback: delivery, handshake refusals, oversized frames, bounded
//! queues, the connection cap, reconnection and (with the `testing` feature) fault injection.

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::{Bytes, NodeId};
use raft_std::{TcpConfig, TcpTransport, Transport};

mod logs;

const ANY_PORT: &str = "127.0.0.1:0";

async fn bind(id: NodeId, cluster: &str) -> TcpTransport {
    bind_with(id, TcpConfig::new(cluster, ANY_PORT.parse().unwrap())).await
}

async fn bind_with(id: NodeId, config: TcpConfig) -> TcpTransport {
    TcpTransport::bind(id, config).await.unwrap()
}

fn text(text: impl Into<String>) -> Bytes {
    Bytes::from(text.into())
}

/// The next frame within `wait`, if any.
async fn next(transport: &mut impl Transport, wait: Duration) -> Option<(NodeId, Bytes)> {
    tokio::time::timeout(wait, transport.recv()).await.ok().flatten()
}

/// Node 1 receives from node 2, which may use another cluster id or be unknown to node 1.
struct Pair {
    one: TcpTransport,
    two: TcpTransport,
}

async fn pair(cluster_of_two: &str, one_knows_two: bool) -> Pair {
    let mut one = bind(1, "test").await;
    let mut two = bind(2, cluster_of_two).await;
    if one_knows_two {
        one.set_peer_address(2, &two.local_addr().to_string());
    }
    two.set_peer_address(1, &one.local_addr().to_string());
    Pair { one, two }
}

#[tokio::test]
async fn messages_arrive_tagged_with_the_sender() {
    let mut pair = pair("test", true).await;
    for i in 0..100 {
        assert!(pair.two.send(1, text(format!("message {i}"))));
    }
    for i in 0..100 {
        let received = next(&mut pair.one, Duration::from_secs(5)).await;
        assert_eq!(received, Some((2, text(format!("message {i}")))));
    }
    assert!(!pair.two.send(2, text("to myself")), "a node does not send to itself");
    assert!(pair.two.links().iter().any(|link| link.id == 1 && link.connected));
    pair.one.shutdown().await;
    pair.two.shutdown().await;
}

#[tokio::test]
async fn a_peer_with_another_cluster_id_is_refused() {
    let logs = logs::capture();
    let mut pair = pair("other cluster", true).await;
    pair.two.send(1, text("hello"));
    assert_eq!(next(&mut pair.one, Duration::from_millis(500)).await, None);
    assert!(pair.two.links().iter().all(|link| !link.connected));
    let logs = logs.text();
    assert!(logs.contains("refused a connection") && logs.contains("does not match"), "{logs}");
}

#[tokio::test]
async fn an_unknown_node_is_refused() {
    let logs = logs::capture();
    let mut pair = pair("test", false).await;
    pair.two.send(1, text("hello"));
    assert_eq!(next(&mut pair.one, Duration::from_millis(500)).await, None);
    let logs = logs.text();
    assert!(logs.contains("not a known peer") && logs.contains("claimed to be node 2"), "{logs}");
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_and_the_sender_reconnects() {
    let logs = logs::capture();
    let mut small = TcpConfig::new("test", ANY_PORT.parse().unwrap());
    small.max_frame_bytes = 1024;
    let mut one = bind_with(1, small).await;
    let mut two = bind(2, "test").await;
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &one.local_addr().to_string());

    two.send(1, text("x".repeat(10_000)));
    assert_eq!(next(&mut one, Duration::from_millis(500)).await, None, "the big frame is refused");
    // The receiver closed the connection; the sender notices, reconnects and delivers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        two.send(1, text("small"));
        if let Some(received) = next(&mut one, Duration::from_millis(200)).await {
            assert_eq!(received, (2, text("small")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the sender never reconnected");
    }
    let logs = logs.text();
    assert!(logs.contains("closing the connection: unreadable frame"), "{logs}");
}

#[tokio::test]
async fn a_slow_peer_cannot_make_the_queue_grow() {
    // Node 1 listens nowhere: every frame waits in the queue, bounded by count …
    let nowhere = free_address().to_string();
    let mut config = TcpConfig::new("test", ANY_PORT.parse().unwrap());
    config.queue_len = 16;
    let mut two = bind_with(2, config).await;
    two.set_peer_address(1, &nowhere);
    let queued = (0..1000).filter(|i| two.send(1, text(format!("message {i}")))).count();
    assert!(queued <= 17, "at most the queue's capacity (plus one in the writer), got {queued}");
    let link = two.links().into_iter().find(|link| link.id == 1).unwrap();
    assert_eq!(link.dropped, 1000 - queued as u64);

    // … and by bytes.
    let mut config = TcpConfig::new("test", ANY_PORT.parse().unwrap());
    config.queue_bytes = 10_000;
    let mut two = bind_with(2, config).await;
    two.set_peer_address(1, &nowhere);
    let queued = (0..1000).filter(|_| two.send(1, text("x".repeat(1000)))).count();
    assert!(queued <= 11, "at most 10,000 bytes (plus one message in the writer), got {queued}");
}

#[tokio::test]
async fn queued_messages_are_delivered_once_the_peer_comes_up() {
    let address = free_address();
    let mut two = bind(2, "test").await;
    two.send(1, text("early")); // queued while node 1's address is unknown …
    two.set_peer_address(1, &address.to_string());
    tokio::time::sleep(Duration::from_millis(300)).await; // … then a few failed connection attempts

    let mut one = bind_with(1, TcpConfig::new("test", address)).await;
    one.set_peer_address(2, &two.local_addr().to_string());
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, text("early"))));
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_the_node_keeps_working() {
    use tokio::io::AsyncReadExt;
    let logs = logs::capture();
    let mut config = TcpConfig::new("test", ANY_PORT.parse().unwrap());
    config.max_connections = 8;
    config.handshake_timeout = Duration::from_secs(1);
    let mut one = bind_with(1, config).await;
    let mut two = bind(2, "test").await;
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &one.local_addr().to_string());
    two.send(1, text("hello"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, text("hello"))));

    // Node 2's connection holds one place: 7 idle connections fit, the 13 others are closed.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(one.local_addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0];
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await;
        closed += usize::from(matches!(read, Ok(Ok(0) | Err(_))));
    }
    assert_eq!(closed, 13, "connections over the cap are closed at once");
    two.send(1, text("still here"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, text("still here"))));

    // Idle connections are closed after handshake_timeout, which frees their places.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut three = bind(3, "test").await;
    one.set_peer_address(3, &three.local_addr().to_string());
    three.set_peer_address(1, &one.local_addr().to_string());
    three.send(1, text("a newcomer"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((3, text("a newcomer"))));
    let logs = logs.text();
    assert!(logs.contains("connection limit reached") && logs.contains("no handshake within"), "{logs}");
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn faults_cut_and_heal_links_of_a_tcp_transport() {
    use raft_std::{Faults, FaultyTransport};
    let Pair { one, two } = pair("test", true).await;
    let faults = Faults::default();
    let mut one = FaultyTransport::new(1, one, faults.clone());
    let mut two = FaultyTransport::new(2, two, faults.clone());
    faults.block(1, 2);
    assert!(!two.send(1, text("lost")));
    assert!(!one.send(2, text("lost")));
    assert_eq!(next(&mut one, Duration::from_millis(300)).await, None);
    faults.heal();
    two.send(1, text("delivered"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, text("delivered"))));
    assert!(one.inner().local_addr().port() > 0);
    one.shutdown().await;
    assert_eq!(one.recv().await, None, "nothing arrives after shutdown");
}

/// A loopback address nothing listens on (yet).
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind(ANY_PORT).unwrap().local_addr().unwrap()
}
