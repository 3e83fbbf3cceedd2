//! What [`FileState`](super::FileState) reports through the [`metrics`] facade.

use std::time::Instant;

use metrics::{counter, histogram, Counter, Histogram, Label};

/// Handles to FileState's series, labelled with the node once a [`RaftNode`](crate::RaftNode)
/// runs the store. Handles made before a recorder is installed record nothing.
#[derive(Clone, Debug)]
pub(super) struct StorageMetrics {
    /// Seconds to append a batch of entries to the log, fsync included.
    pub(super) append: Histogram,
    /// Seconds of the fsync that makes an append durable.
    pub(super) fsync: Histogram,
    /// Snapshots stored: taken by this node or received from a leader.
    pub(super) snapshots: Counter,
    /// Seconds from a snapshot's first chunk to its installation (building or receiving it,
    /// storing it, and compacting the log).
    pub(super) snapshot: Histogram,
}

impl StorageMetrics {
    /// For a store that no node has labelled.
    pub(super) fn unlabelled() -> Self {
        StorageMetrics::new(Vec::new())
    }

    pub(super) fn new(labels: Vec<Label>) -> Self {
        StorageMetrics {
            append: histogram!("raft_log_append_seconds", labels.clone()),
            fsync: histogram!("raft_log_fsync_seconds", labels.clone()),
            snapshots: counter!("raft_snapshots_total", labels.clone()),
            snapshot: histogram!("raft_snapshot_seconds", labels),
        }
    }
}

/// Seconds since `start`, for a histogram.
pub(super) fn seconds_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
