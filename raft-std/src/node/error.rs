//! [`RequestError`]: why a [`RaftNode`](crate::RaftNode) request failed, and what to do.

use std::fmt;
use std::time::Duration;

use raft_core::{MembershipError, NodeId, ProposeError, TransferError};

/// Why a request to a [`RaftNode`](crate::RaftNode) failed. Each variant says whether the
/// request may have taken effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No leader accepted the request before its deadline (an election is running, or this
    /// node is cut off from a quorum). It was **not** applied: retry, on `leader` if known.
    #[error("no leader accepted the request in time; it was not applied. {}", LeaderHint(*leader))]
    NotLeader {
        /// The leader this node last knew of.
        leader: Option<NodeId>,
    },
    /// A leader accepted the request but its outcome did not arrive within `after` (the
    /// leader may have lost its quorum or crashed). It **may or may not** have been applied:
    /// read before retrying a command that is not idempotent.
    #[error(
        "no outcome within {after:?}; the request may or may not have been applied: check before retrying"
    )]
    Timeout {
        /// The request timeout.
        after: Duration,
    },
    /// The node is shutting down. A request in flight may or may not have been applied; send
    /// new requests to another node.
    #[error("the node is shutting down; send requests to another node")]
    ShuttingDown,
    /// The node stopped because its storage failed (it will not speak rather than break a
    /// promise it could not persist). Check the disk, then restart it.
    #[error("the node stopped after a storage failure: {0}")]
    Storage(String),
    /// The membership change was refused, or (for `LeadershipLost`) its outcome is unknown.
    #[error("membership change failed: {0}")]
    Membership(MembershipError),
    /// The leadership transfer failed.
    #[error("leadership transfer failed: {0}")]
    Transfer(TransferError),
    /// The proposal was settled inside a snapshot this node received, so the state machine's
    /// response is not available here: [`ProposeError::ResponseLost`] (it **was** applied) or
    /// [`ProposeError::OutcomeUnknown`] (it **may or may not** have been). Read before retrying.
    #[error("{0}")]
    Proposal(ProposeError),
    /// A learner added by [`RaftNode::add_member`](crate::RaftNode::add_member) did not catch
    /// up with the leader in time. It stays a learner (it does not vote, so the cluster is not
    /// weakened): start it or fix its address, then call `add_member` again, or remove it.
    #[error(
        "node {id} did not catch up within {waited:?} (match {match_index} of {last_index}); is it running \
         and reachable at {address}? It stays a learner: call add_member again, or remove_member({id})"
    )]
    CatchUp {
        /// The new node.
        id: NodeId,
        /// The address it was added with.
        address: String,
        /// How long it was given.
        waited: Duration,
        /// The last index the leader knows it holds.
        match_index: raft_core::Index,
        /// The leader's last index.
        last_index: raft_core::Index,
    },
    /// The application's [`Authorizer`](crate::Authorizer) refused the request on the leader,
    /// saying why. It was **not** applied.
    #[error("the request was refused: {0}; it was not applied")]
    Denied(String),
    /// A peer answered in a way this version does not understand (mixed versions?).
    #[error("unexpected answer from the cluster: {0}")]
    Protocol(String),
}

/// Renders the leader hint of [`RequestError::NotLeader`].
struct LeaderHint(Option<NodeId>);

impl fmt::Display for LeaderHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(leader) => write!(f, "Node {leader} was the last known leader; retry there or later"),
            None => f.write_str("No leader is known; retry shortly"),
        }
    }
}

/// Why [`RaftNode::start`](crate::RaftNode::start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The protocol configuration or node id is unusable.
    #[error("invalid configuration: {0}")]
    Config(raft_core::ConfigError),
    /// The node's state could not be loaded: the log store failed, holds something
    /// inconsistent, or the state machine could not be restored from the snapshot.
    #[error("cannot load the node's state: {0}")]
    Storage(String),
}
