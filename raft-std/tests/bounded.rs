//! Bounded by default: 10,000 writes through a `RaftNode` with `NodeConfig`'s defaults leave a
//! log that the snapshot policy keeps short, in memory and in what a restart replays; and
//! `compact` empties it on demand.

use futures::{stream, StreamExt, TryStreamExt};
use raft_core::{Bytes, Diagnostics};
use raft_std::{ChannelNetwork, FileState, NodeConfig, RaftNode, StorageOptions, DEFAULT_SNAPSHOT_EVERY};

const WRITES: u64 = 10_000;

async fn start(dir: &std::path::Path) -> RaftNode {
    // A single voter: any transport will do.
    let transport = ChannelNetwork::new().join(1);
    let config = NodeConfig::new(1);
    let log = FileState::open(dir, config.bootstrap(), StorageOptions::default()).expect("the store opens");
    RaftNode::start(config, log, Vec::<Bytes>::new(), transport).await.expect("the node starts")
}

async fn diagnostics(node: &RaftNode) -> Diagnostics {
    node.status().await.expect("a status").diagnostics
}

/// Entries held in the log (after the snapshot): what memory holds and a restart replays.
fn in_log(d: &Diagnostics) -> u64 {
    d.last_log.index + 1 - d.first_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_writes_leave_a_bounded_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    stream::iter(0..WRITES)
        .map(|i| node.propose(Bytes::from(format!("write {i}"))))
        .buffer_unordered(256)
        .try_collect::<Vec<_>>()
        .await
        .expect("every write is applied");

    // The status is published by the node task, after the writes' answers: wait for it.
    let mut status = node.watch();
    let published = status.wait_for(|s| s.diagnostics.applied_index > WRITES);
    tokio::time::timeout(std::time::Duration::from_secs(5), published)
        .await
        .expect("the status shows every write applied")
        .expect("the node runs");
    let d = diagnostics(&node).await;
    assert!(d.applied_index > WRITES, "{d:?}");
    assert!(d.first_index > 1, "the default policy took a snapshot: {d:?}");
    assert!(in_log(&d) <= DEFAULT_SNAPSHOT_EVERY, "the log holds {} entries: {d:?}", in_log(&d));
    node.shutdown().await;

    // A restart replays the entries after the snapshot only.
    let node = start(dir.path()).await;
    let d = diagnostics(&node).await;
    assert!(
        d.first_index > 1 && in_log(&d) <= DEFAULT_SNAPSHOT_EVERY,
        "replayed {} entries: {d:?}",
        in_log(&d)
    );
    // Every write is still there (the state machine records them in order of application).
    let at = |position: u64| node.read(Bytes::copy_from_slice(&position.to_le_bytes()));
    assert!(at(WRITES - 1).await.unwrap().starts_with(b"write "));
    assert!(at(WRITES).await.unwrap().is_empty());

    // compact() snapshots now: nothing applied stays in the log.
    let covered = node.compact().await.expect("a snapshot");
    let d = diagnostics(&node).await;
    assert!(covered >= d.applied_index - 1 && d.first_index == covered + 1, "covered {covered}: {d:?}");
    assert_eq!(node.compact().await.unwrap(), covered, "nothing new to compact");
    node.shutdown().await;
}
