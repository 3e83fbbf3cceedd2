//! [`SharedMachine`]: the node's state machine, shared between the node task (which applies
//! entries) and the handle's stale reads ([`RaftNode::read_local`](super::RaftNode::read_local)).

use std::sync::Arc;

use raft_core::{Bytes, Entry, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine};
use tokio::sync::Mutex;

/// A state machine behind an async mutex. Cheap to clone; clones share the machine.
pub(super) struct SharedMachine<M>(Arc<Mutex<M>>);

impl<M> SharedMachine<M> {
    pub(super) fn new(machine: M) -> Self {
        SharedMachine(Arc::new(Mutex::new(machine)))
    }
}

impl<M> Clone for SharedMachine<M> {
    fn clone(&self) -> Self {
        SharedMachine(Arc::clone(&self.0))
    }
}

impl<M: StateMachine> StateMachine for SharedMachine<M> {
    type Error = M::Error;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, M::Error> {
        self.0.lock().await.apply(entry).await
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, M::Error> {
        self.0.lock().await.query(query).await
    }

    async fn build_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), M::Error> {
        self.0.lock().await.build_snapshot(meta, out).await
    }

    async fn restore(&mut self, meta: &SnapshotMeta, from: &mut impl SnapshotReader) -> Result<(), M::Error> {
        self.0.lock().await.restore(meta, from).await
    }
}
