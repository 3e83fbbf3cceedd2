//! What nodes send each other: Raft messages, and requests forwarded to the leader with their
//! replies.

use raft_core::{
    Applied, Bytes, Membership, MembershipChange, MembershipError, Message, NodeId, ProposeError, ReadError,
    RequestId, TransferError,
};
use serde::{Deserialize, Serialize};

/// One transport frame.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Frame {
    /// A Raft protocol message.
    Raft(Message),
    /// A request a follower's client made, for the leader to carry out.
    Forward {
        /// The follower's tag, echoed in the reply.
        id: RequestId,
        /// What to do.
        request: Request,
    },
    /// The leader's answer to [`Frame::Forward`].
    Reply {
        /// The follower's tag.
        id: RequestId,
        /// How it went.
        outcome: Outcome,
    },
}

/// What a client asks a node to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Request {
    /// Replicate and apply a command (already wrapped in an `Envelope`).
    Propose(Bytes),
    /// A linearizable read (served by the local node through ReadIndex; never forwarded).
    Read(Bytes),
    /// Change the configuration.
    ChangeMembership(MembershipChange),
    /// Hand leadership to a voter.
    TransferLeadership(NodeId),
}

impl Request {
    /// Whether a follower hands this request to the leader. Reads are not forwarded: Raft
    /// serves them on any node by asking the leader for a read index.
    pub(super) fn forwarded(&self) -> bool {
        !matches!(self, Request::Read(_))
    }
}

/// A successful outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Response {
    /// A proposal was applied.
    Applied(Applied),
    /// A read's answer.
    Read(Bytes),
    /// The configuration now committed.
    Membership(Membership),
    /// The new leader after a transfer.
    Leader(NodeId),
}

/// Why one attempt at a request failed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Failure {
    /// raft-core refused or lost a proposal.
    Propose(ProposeError),
    /// raft-core could not serve a read.
    Read(ReadError),
    /// raft-core refused a membership change.
    Membership(MembershipError),
    /// raft-core could not transfer leadership.
    Transfer(TransferError),
    /// The request could not be queued for the leader (its link is down or full); it was not
    /// delivered.
    Undelivered {
        /// The leader it was meant for.
        leader: NodeId,
    },
}

/// The outcome of one attempt.
pub(super) type Outcome = Result<Response, Failure>;
