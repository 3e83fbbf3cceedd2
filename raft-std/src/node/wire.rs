//! What nodes send each other through the [`Transport`](crate::Transport): Raft messages, and
//! requests forwarded to the leader with their replies, in a versioned [`Frame`].
//!
//! Which frame is accepted from whom, and why, is in the crate docs ("Who may say what"): the
//! checks are in `task.rs` (`on_frame`) and `access.rs`.

use raft_core::{
    Applied, Bytes, Diagnostics, Membership, MembershipChange, MembershipError, Message, NodeId,
    ProposeError, ReadError, RequestId, TransferError,
};
use serde::{Deserialize, Serialize};

use super::versioned::{self, FormatError};

/// The frame format this build writes and reads (2: forwarded requests carry the caller).
const FRAME_VERSION: u8 = 2;

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
        /// The client who asked, as the application named it on the follower
        /// ([`RaftNode::with_caller`](crate::RaftNode::with_caller)).
        caller: Option<String>,
    },
    /// The leader's answer to [`Frame::Forward`].
    Reply {
        /// The follower's tag.
        id: RequestId,
        /// How it went.
        outcome: Outcome,
    },
}

impl Frame {
    /// The frame's bytes, after its version tag.
    pub(super) fn encode(&self) -> Result<Bytes, postcard::Error> {
        versioned::encode(FRAME_VERSION, self)
    }

    /// Reads a frame; another version or undecodable bytes are an error.
    pub(super) fn decode(bytes: &[u8]) -> Result<Frame, FormatError> {
        versioned::decode(FRAME_VERSION, "frame", bytes)
    }
}

/// What a client asks a node to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Request {
    /// Replicate and apply a command (already wrapped in a `DirectoryCommand`).
    Propose(Bytes),
    /// A linearizable read (served by the local node through ReadIndex; never forwarded).
    Read(Bytes),
    /// Change the configuration.
    ChangeMembership(MembershipChange),
    /// Hand leadership to a voter.
    TransferLeadership(NodeId),
    /// The leader's diagnostics (each peer's replication progress), answered by the leader only.
    LeaderDiagnostics,
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
    /// The leader's diagnostics.
    Diagnostics(Box<Diagnostics>),
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
    /// The node asked is not the leader (for requests only a leader answers).
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The request could not be queued for the leader (its link is down or full); it was not
    /// delivered.
    Undelivered {
        /// The leader it was meant for.
        leader: NodeId,
    },
    /// The application's [`Authorizer`](crate::Authorizer) refused the request, saying why.
    Denied(String),
    /// The leader refused a forwarded request that no correct member sends (a read, an
    /// undecodable command) or that came from a node that is not a member.
    Invalid(String),
}

/// The outcome of one attempt.
pub(super) type Outcome = Result<Response, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_version_and_other_versions_are_refused() {
        let frame = Frame::Forward { id: 7, request: Request::TransferLeadership(2), caller: None };
        let bytes = frame.encode().unwrap();
        assert_eq!(bytes[0], FRAME_VERSION);
        assert!(matches!(Frame::decode(&bytes), Ok(Frame::Forward { id: 7, .. })));
        let mut future = bytes.to_vec();
        future[0] = FRAME_VERSION + 1;
        let error = Frame::decode(&future).unwrap_err();
        assert!(matches!(error, FormatError::UnknownVersion { found: 3, supported: 2, .. }));
        assert!(error.to_string().contains("run the same raft-std version on every node"), "{error}");
    }
}
