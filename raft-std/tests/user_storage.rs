//! An application's own log store: a wrapper that counts calls around raft-core's `MemState`,
//! run by `RaftNode` over the in-process channel transport. The cluster grows learner-first,
//! hands leadership over, and every step shows in `watch()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raft_core::{
    Bytes, Entry, HardState, Index, LogState, LogStore, MemState, MemStateError, Role, SnapshotMeta,
};
use raft_std::{ChannelNetwork, NodeConfig, RaftNode, Status};
use tokio::sync::watch;

/// How often each part of the contract was called.
#[derive(Default, Debug)]
struct Calls {
    loads: AtomicU64,
    hard_states: AtomicU64,
    log_writes: AtomicU64,
    entries_written: AtomicU64,
}

/// The application's store: MemState, counting.
struct Counting {
    inner: MemState,
    calls: Arc<Calls>,
}

impl LogStore for Counting {
    type Error = MemStateError;

    async fn load(&mut self) -> Result<LogState, MemStateError> {
        self.calls.loads.fetch_add(1, Ordering::Relaxed);
        self.inner.load().await
    }

    async fn read_entries(&mut self, from: Index, to: Index) -> Result<Vec<Entry>, MemStateError> {
        self.inner.read_entries(from, to).await
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), MemStateError> {
        self.calls.hard_states.fetch_add(1, Ordering::Relaxed);
        self.inner.save_hard_state(state).await
    }

    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), MemStateError> {
        self.calls.log_writes.fetch_add(1, Ordering::Relaxed);
        self.calls.entries_written.fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.inner.write_log(truncate_from, entries).await
    }

    async fn write_snapshot_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), MemStateError> {
        self.inner.write_snapshot_chunk(offset, data).await
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), MemStateError> {
        self.inner.install_snapshot(meta).await
    }

    async fn read_snapshot(&mut self, offset: u64, len: usize) -> Result<Bytes, MemStateError> {
        self.inner.read_snapshot(offset, len).await
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

async fn start(network: &ChannelNetwork, id: u64, join: bool) -> (RaftNode, Arc<Calls>) {
    let mut config = NodeConfig::new(id);
    config.join = join;
    config.catch_up_timeout = PATIENCE;
    let calls = Arc::new(Calls::default());
    let log = Counting { inner: MemState::new(config.bootstrap()), calls: Arc::clone(&calls) };
    let node =
        RaftNode::start(config, log, Vec::<Bytes>::new(), network.join(id)).await.expect("the node starts");
    (node, calls)
}

/// Waits until `status` satisfies `done`.
async fn until(status: &mut watch::Receiver<Status>, done: impl FnMut(&Status) -> bool) -> Status {
    let seen =
        tokio::time::timeout(PATIENCE, status.wait_for(done)).await.expect("in time").expect("a status");
    seen.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_runs_on_the_applications_own_log_store() {
    let network = ChannelNetwork::new();
    let (one, one_calls) = start(&network, 1, false).await;
    let mut watched = one.watch();
    until(&mut watched, |s| s.diagnostics.role == Role::Leader).await;

    let (two, two_calls) = start(&network, 2, true).await;
    let (three, _) = start(&network, 3, true).await;
    one.add_member(2, "node-2").await.expect("node 2 joins learner-first");
    one.add_member(3, "node-3").await.expect("node 3 joins learner-first");
    let status = until(&mut watched, |s| s.diagnostics.membership.voters.len() == 3).await;
    assert!(status.diagnostics.membership.learners.is_empty(), "promoted once caught up");

    for i in 0..20u64 {
        two.propose(Bytes::from(format!("command {i}"))).await.expect("a write through a follower");
    }
    let applied = one.propose(Bytes::from_static(b"last")).await.expect("a write").index;
    let mut on_three = three.watch();
    until(&mut on_three, |s| s.diagnostics.applied_index >= applied).await;

    assert_eq!(one.transfer_leader(2).await.expect("a transfer"), 2);
    let status = until(&mut watched, |s| s.diagnostics.leader == Some(2)).await;
    assert_eq!(status.diagnostics.role, Role::Follower, "node 1 saw the hand-over");
    let mut on_two = two.watch();
    until(&mut on_two, |s| s.diagnostics.role == Role::Leader).await;
    assert_eq!(three.read(Bytes::copy_from_slice(&0u64.to_le_bytes())).await.unwrap(), "command 0");

    assert_eq!(one_calls.loads.load(Ordering::Relaxed), 1, "the store is loaded once, at start");
    assert!(one_calls.hard_states.load(Ordering::Relaxed) >= 1, "the term and vote were saved");
    let written = two_calls.entries_written.load(Ordering::Relaxed);
    assert!(written >= 21, "node 2 stored what it replicated: {written} entries");
    assert!(
        two_calls.log_writes.load(Ordering::Relaxed) <= written,
        "entries are written in batches, never one call per entry or more"
    );
    for node in [&one, &two, &three] {
        node.shutdown().await;
    }
}
