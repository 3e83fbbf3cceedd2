//! What a [`RaftNode`](super::RaftNode) reports through the [`metrics`] facade, labelled with
//! the node's id.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Counter, Gauge, Unit};
use raft_core::{Diagnostics, NodeId, Role};

/// Handles to the node's series. Handles made before a recorder is installed record nothing,
/// so applications install their recorder before starting the node.
pub(super) struct NodeMetrics {
    term: Gauge,
    role: Gauge,
    leader_changes: Counter,
    commit_index: Gauge,
    applied_index: Gauge,
    first_index: Gauge,
    last_index: Gauge,
    proposals_ok: Counter,
    proposals_failed: Counter,
    /// The last leader seen, to count changes.
    leader: Option<NodeId>,
}

impl NodeMetrics {
    pub(super) fn new(node: NodeId) -> Self {
        describe();
        let node = node.to_string();
        NodeMetrics {
            term: gauge!("raft_term", "node" => node.clone()),
            role: gauge!("raft_role", "node" => node.clone()),
            leader_changes: counter!("raft_leader_changes_total", "node" => node.clone()),
            commit_index: gauge!("raft_commit_index", "node" => node.clone()),
            applied_index: gauge!("raft_applied_index", "node" => node.clone()),
            first_index: gauge!("raft_first_log_index", "node" => node.clone()),
            last_index: gauge!("raft_last_log_index", "node" => node.clone()),
            proposals_ok: counter!("raft_proposals_total", "node" => node.clone(), "outcome" => "ok"),
            proposals_failed: counter!("raft_proposals_total", "node" => node, "outcome" => "failed"),
            leader: None,
        }
    }

    /// The node's role, term or leader changed.
    pub(super) fn role_changed(&mut self, role: Role, term: u64, leader: Option<NodeId>) {
        self.role.set(role_number(role));
        self.term.set(term as f64);
        if leader.is_some() && leader != self.leader {
            self.leader_changes.increment(1);
            self.leader = leader;
        }
    }

    /// A proposal this node ran was settled.
    pub(super) fn proposal(&self, ok: bool) {
        if ok { &self.proposals_ok } else { &self.proposals_failed }.increment(1);
    }

    /// A fresh view of the node.
    pub(super) fn observe(&mut self, diagnostics: &Diagnostics) {
        self.role_changed(diagnostics.role, diagnostics.term, diagnostics.leader);
        self.commit_index.set(diagnostics.commit_index as f64);
        self.applied_index.set(diagnostics.applied_index as f64);
        self.first_index.set(diagnostics.first_index as f64);
        self.last_index.set(diagnostics.last_log.index as f64);
    }
}

/// `raft_role`'s values.
fn role_number(role: Role) -> f64 {
    match role {
        Role::Follower => 0.0,
        Role::PreCandidate => 1.0,
        Role::Candidate => 2.0,
        Role::Leader => 3.0,
    }
}

/// The help text of every series raft-std reports (shown by exporters such as Prometheus').
fn describe() {
    describe_gauge!("raft_term", "The node's current term.");
    describe_gauge!("raft_role", "The node's role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.");
    describe_counter!("raft_leader_changes_total", "Times the node saw a new leader.");
    describe_gauge!("raft_commit_index", "The node's commit index.");
    describe_gauge!("raft_applied_index", "The last index the node's state machine applied.");
    describe_gauge!(
        "raft_first_log_index",
        "The first index in the log (older entries are in the snapshot)."
    );
    describe_gauge!("raft_last_log_index", "The last index in the log.");
    describe_counter!("raft_proposals_total", "Proposals this node ran as leader, by outcome (ok, failed).");
    describe_counter!("raft_snapshots_total", "Snapshots stored: taken here, or received from a leader.");
    describe_histogram!(
        "raft_snapshot_seconds",
        Unit::Seconds,
        "From a snapshot's first chunk to its installation (building or receiving, storing, compacting)."
    );
    describe_histogram!(
        "raft_log_append_seconds",
        Unit::Seconds,
        "Time to append a batch to the log, fsync included."
    );
    describe_histogram!("raft_log_fsync_seconds", Unit::Seconds, "Time of the fsync of a log append.");
}
