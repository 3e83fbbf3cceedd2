//! The TCP transport over loopback: delivery, handshake refusals, oversized and undecodable
//! frames, bounded queues, reconnection and fault injection.

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::NodeId;
use raft_std::{Faults, Inbox, PeerBook, Transport, TransportConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

mod logs;

const ANY_PORT: &str = "127.0.0.1:0";

async fn bind<T>(id: NodeId, cluster: &str, book: &PeerBook, faults: &Faults) -> (Transport<T>, Inbox<T>)
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    bind_with(TransportConfig::new(id, cluster, ANY_PORT.parse().unwrap()), book, faults).await
}

async fn bind_with<T>(config: TransportConfig, book: &PeerBook, faults: &Faults) -> (Transport<T>, Inbox<T>)
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Transport::bind(config, book.clone(), faults.clone()).await.unwrap()
}

/// The next message within `wait`, if any.
async fn next<T>(inbox: &mut Inbox<T>, wait: Duration) -> Option<(NodeId, T)> {
    tokio::time::timeout(wait, inbox.recv()).await.ok().flatten()
}

/// Node 1 receives from node 2, which may use another cluster id or be unknown to node 1.
struct Pair<T> {
    one: Transport<T>,
    inbox: Inbox<T>,
    two: Transport<T>,
    faults: Faults,
}

async fn pair<T>(cluster_of_two: &str, one_knows_two: bool) -> Pair<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let (book_one, book_two, faults) = (PeerBook::new(), PeerBook::new(), Faults::default());
    let (one, inbox) = bind(1, "test", &book_one, &faults).await;
    let (two, _) = bind(2, cluster_of_two, &book_two, &faults).await;
    if one_knows_two {
        book_one.insert(2, two.local_addr().to_string());
    }
    book_two.insert(1, one.local_addr().to_string());
    Pair { one, inbox, two, faults }
}

#[tokio::test]
async fn messages_arrive_tagged_with_the_sender() {
    let mut pair = pair::<String>("test", true).await;
    for i in 0..100 {
        assert!(pair.two.send(1, format!("message {i}")));
    }
    for i in 0..100 {
        let received = next(&mut pair.inbox, Duration::from_secs(5)).await;
        assert_eq!(received, Some((2, format!("message {i}"))));
    }
    assert!(!pair.two.send(2, "to myself".into()), "a node does not send to itself");
    assert!(pair.two.links().iter().any(|link| link.id == 1 && link.connected));
    pair.one.shutdown().await;
    pair.two.shutdown().await;
}

#[tokio::test]
async fn a_peer_with_another_cluster_id_is_refused() {
    let logs = logs::capture();
    let mut pair = pair::<String>("other cluster", true).await;
    pair.two.send(1, "hello".into());
    assert_eq!(next(&mut pair.inbox, Duration::from_millis(500)).await, None);
    assert!(pair.two.links().iter().all(|link| !link.connected));
    let logs = logs.text();
    assert!(logs.contains("refused a connection") && logs.contains("does not match"), "{logs}");
}

#[tokio::test]
async fn an_unknown_node_is_refused() {
    let logs = logs::capture();
    let mut pair = pair::<String>("test", false).await;
    pair.two.send(1, "hello".into());
    assert_eq!(next(&mut pair.inbox, Duration::from_millis(500)).await, None);
    let logs = logs.text();
    assert!(logs.contains("unknown node id 2"), "{logs}");
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_and_the_sender_reconnects() {
    let logs = logs::capture();
    let (book_one, book_two, faults) = (PeerBook::new(), PeerBook::new(), Faults::default());
    let mut small = TransportConfig::new(1, "test", ANY_PORT.parse().unwrap());
    small.max_frame_bytes = 1024;
    let (one, mut inbox) = bind_with::<String>(small, &book_one, &faults).await;
    let (two, _) = bind::<String>(2, "test", &book_two, &faults).await;
    book_one.insert(2, two.local_addr().to_string());
    book_two.insert(1, one.local_addr().to_string());

    two.send(1, "x".repeat(10_000));
    assert_eq!(next(&mut inbox, Duration::from_millis(500)).await, None, "the big frame is refused");
    // The receiver closed the connection; the sender notices, reconnects and delivers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        two.send(1, "small".into());
        if let Some(received) = next(&mut inbox, Duration::from_millis(200)).await {
            assert_eq!(received, (2, "small".to_string()));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the sender never reconnected");
    }
    let logs = logs.text();
    assert!(logs.contains("closing the connection: unreadable frame"), "{logs}");
}

#[tokio::test]
async fn an_undecodable_frame_closes_the_connection() {
    let logs = logs::capture();
    let (book_one, book_two, faults) = (PeerBook::new(), PeerBook::new(), Faults::default());
    let (one, mut inbox) = bind::<bool>(1, "test", &book_one, &faults).await;
    let (two, _) = bind::<String>(2, "test", &book_two, &faults).await;
    book_one.insert(2, two.local_addr().to_string());
    book_two.insert(1, one.local_addr().to_string());
    two.send(1, "not a bool".into());
    assert_eq!(next(&mut inbox, Duration::from_millis(500)).await, None);
    let logs = logs.text();
    assert!(logs.contains("closing the connection: undecodable frame"), "{logs}");
}

#[tokio::test]
async fn a_slow_peer_cannot_make_the_queue_grow() {
    // Node 1 listens nowhere: every message waits in the queue, bounded by count …
    let book: PeerBook = [(1, free_address().to_string())].into_iter().collect();
    let mut config = TransportConfig::new(2, "test", ANY_PORT.parse().unwrap());
    config.queue_len = 16;
    let (two, _) = bind_with::<String>(config, &book, &Faults::default()).await;
    let queued = (0..1000).filter(|i| two.send(1, format!("message {i}"))).count();
    assert!(queued <= 17, "at most the queue's capacity (plus one in the writer), got {queued}");
    let link = two.links().into_iter().find(|link| link.id == 1).unwrap();
    assert_eq!(link.dropped, 1000 - queued as u64);

    // … and by bytes.
    let mut config = TransportConfig::new(2, "test", ANY_PORT.parse().unwrap());
    config.queue_bytes = 10_000;
    let (two, _) = bind_with::<String>(config, &book, &Faults::default()).await;
    let queued = (0..1000).filter(|_| two.send(1, "x".repeat(1000))).count();
    assert!(queued <= 11, "at most 10,000 bytes (plus one message in the writer), got {queued}");
}

#[tokio::test]
async fn queued_messages_are_delivered_once_the_peer_comes_up() {
    let address = free_address();
    let faults = Faults::default();
    let book_two: PeerBook = [(1, address.to_string())].into_iter().collect();
    let (two, _) = bind::<String>(2, "test", &book_two, &faults).await;
    two.send(1, "early".into());
    tokio::time::sleep(Duration::from_millis(300)).await; // a few failed connection attempts

    let book_one: PeerBook = [(2, two.local_addr().to_string())].into_iter().collect();
    let (_one, mut inbox) =
        bind_with::<String>(TransportConfig::new(1, "test", address), &book_one, &faults).await;
    assert_eq!(next(&mut inbox, Duration::from_secs(5)).await, Some((2, "early".to_string())));
}

#[tokio::test]
async fn faults_cut_and_heal_links() {
    let mut pair = pair::<String>("test", true).await;
    pair.faults.block(1, 2);
    assert!(!pair.two.send(1, "lost".into()));
    assert_eq!(next(&mut pair.inbox, Duration::from_millis(300)).await, None);
    pair.faults.heal();
    pair.two.send(1, "delivered".into());
    assert_eq!(next(&mut pair.inbox, Duration::from_secs(5)).await, Some((2, "delivered".to_string())));
}

/// A loopback address nothing listens on (yet).
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind(ANY_PORT).unwrap().local_addr().unwrap()
}
