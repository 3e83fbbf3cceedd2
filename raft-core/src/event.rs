//! The stream vocabulary: what goes into a node ([`Incoming`]) and what comes out
//! ([`Outgoing`]), with one small error enum per operation.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::membership::Membership;
use crate::message::Message;
use crate::types::{Index, Instant, LogId, NodeId, RequestId, Term};

/// An input to a node: from its transport, its clients, its timer or its operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Incoming {
    /// Time has reached this instant. The only way time enters the protocol; send one at least
    /// every heartbeat interval (10 ms works well). Instants that go backwards are ignored.
    Tick(Instant),
    /// A message from another node.
    Message {
        /// Sender, as authenticated by the transport.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// Replicate an application command. Answered by [`Event::Proposal`] once the command's
    /// position is committed (or superseded). A proposal left on a node that lost leadership
    /// is answered only when the commit index passes its position, which may never happen on
    /// a node cut off for good: applications should bound their wait.
    Propose {
        /// Caller's tag for the outcome.
        id: RequestId,
        /// The command, opaque to Raft (see [`Command`] for building one).
        command: Command,
    },
    /// A linearizable read: `query` is run against the state machine once it has applied
    /// everything committed before the read arrived (ReadIndex, Raft thesis §6.4). Answered by
    /// [`Event::Read`]. Every read a leader receives before its next [`Ready`](crate::Ready) is
    /// taken is confirmed by the same single heartbeat round.
    Read {
        /// Caller's tag for the outcome.
        id: RequestId,
        /// Handed to the state machine's query function.
        query: Bytes,
    },
    /// Change the cluster configuration. Answered by [`Event::Membership`].
    ChangeMembership {
        /// Caller's tag for the outcome.
        id: RequestId,
        /// The change.
        change: MembershipChange,
    },
    /// Hand leadership to `to`. Answered by [`Event::Transfer`].
    TransferLeadership {
        /// Caller's tag for the outcome.
        id: RequestId,
        /// The voter that should become leader.
        to: NodeId,
    },
    /// Take a state-machine snapshot now and compact the log up to the applied index.
    Compact,
    /// Report [`Diagnostics`].
    Diagnostics,
}

/// A requested change of configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MembershipChange {
    /// Add a voter (single-server change, Raft thesis §4.1).
    AddVoter(NodeId),
    /// Add a non-voting learner.
    AddLearner(NodeId),
    /// Promote a learner to voter.
    Promote(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
    /// Replace the voters with this set through joint consensus (C_old,new then C_new, Raft
    /// §6). Learners are kept unless they appear in the new voter set.
    ReplaceVoters(Vec<NodeId>),
}

/// Everything a node emits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outgoing {
    /// Deliver `message` to node `to`. Loss, duplication and reordering are tolerated.
    Send {
        /// Recipient.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Something for the application or the operator.
    Event(Event),
}

/// Outcomes, role changes and reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// The outcome of [`Incoming::Propose`].
    Proposal {
        /// The caller's tag.
        id: RequestId,
        /// Where the command was committed and what the state machine answered.
        result: Result<Applied, ProposeError>,
    },
    /// The outcome of [`Incoming::Read`].
    Read {
        /// The caller's tag.
        id: RequestId,
        /// The state machine's answer to the query.
        result: Result<Bytes, ReadError>,
    },
    /// The outcome of [`Incoming::ChangeMembership`].
    Membership {
        /// The caller's tag.
        id: RequestId,
        /// The configuration now committed.
        result: Result<Membership, MembershipError>,
    },
    /// The outcome of [`Incoming::TransferLeadership`].
    Transfer {
        /// The caller's tag.
        id: RequestId,
        /// `Ok` once the target leads.
        result: Result<NodeId, TransferError>,
    },
    /// The node's role, term or known leader changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// The log was compacted up to `through` after a snapshot.
    Compacted {
        /// Last index covered by the snapshot.
        through: Index,
    },
    /// A follower no longer holds log entries it had acknowledged to this leader: its storage
    /// lost them (a disk that dropped synced writes, a restore from an old backup). Log it as a
    /// warning: Raft assumes stable storage, so entries committed with this follower's help may
    /// now be held by fewer nodes than it took to commit them.
    ///
    /// The leader forgets the follower's match index and replicates to it again, from a
    /// snapshot when it lacks entries the leader has compacted; the commit index never goes
    /// back. Only an answer to a request sent after the acknowledgement arrived counts as
    /// proof, so late, reordered or duplicated rejections never raise it. Counted per peer in
    /// [`PeerDiagnostics::lost_entries`].
    FollowerLostEntries {
        /// The follower.
        peer: NodeId,
        /// How far the follower had acknowledged the leader's log.
        match_index: Index,
        /// The lowest index its answer shows it lacks (at most `match_index`): one past its last
        /// entry when its log is shorter, else the index whose entry it no longer matches.
        first_missing: Index,
    },
    /// A message was not acted on. Useful in logs; harmless to ignore.
    Dropped {
        /// The sender.
        from: NodeId,
        /// Why.
        reason: DropReason,
    },
    /// The answer to [`Incoming::Diagnostics`].
    Diagnostics(Box<Diagnostics>),
}

/// A committed proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The log position of the command.
    pub index: Index,
    /// The state machine's response.
    pub response: Bytes,
}

/// A node's role (Raft §5.2; pre-candidate from the thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (also the role of learners and of nodes outside the configuration).
    Follower,
    /// Probing with a pre-vote whether an election could succeed, without raising the term.
    PreCandidate,
    /// Running an election.
    Candidate,
    /// Leading the cluster.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Follower => "Follower",
            Role::PreCandidate => "PreCandidate",
            Role::Candidate => "Candidate",
            Role::Leader => "Leader",
        })
    }
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DropReason {
    /// The message's term is older than ours and it needs no answer.
    StaleTerm,
    /// The sender is not a member of our configuration.
    UnknownSender,
    /// The message refers to log positions that cannot exist (index past the end, entries not
    /// consecutive, entry or snapshot terms above the message term …).
    Malformed,
    /// A vote request arrived while we still hear from a live leader (check-quorum lease).
    LeaderLease,
    /// The message does not apply to our role (a response we no longer wait for …).
    Unexpected,
    /// A term above [`MAX_TERM`](crate::MAX_TERM) or an index above
    /// [`MAX_INDEX`](crate::MAX_INDEX), or positions whose sum overflows (`prev.index` plus the
    /// number of entries, a snapshot chunk's offset plus its length). No correct node sends
    /// one; adopting it could exhaust the term or index space, so it is never acted on.
    OutOfRange,
}

/// Why a proposal failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader. Retry on `leader` if known.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Leadership is being handed over; retry shortly on the new leader.
    TransferInProgress,
    /// The entry was replaced by a later leader and will never be applied.
    Superseded {
        /// The leader this node now knows of.
        leader: Option<NodeId>,
    },
    /// The command was committed at `index` and applied, but it reached this node inside a
    /// snapshot from the leader, so the state machine's response is not available here. Read
    /// the state to learn the effect; do not blindly retry.
    ResponseLost {
        /// Where the command was committed.
        index: Index,
    },
    /// The fate of the command at `index` was settled inside a snapshot from the leader that
    /// this node cannot compare with its own log: it may or may not have been applied. Read
    /// the state to learn which; retry only if the command is idempotent.
    OutcomeUnknown {
        /// Where the command was proposed.
        index: Index,
    },
}

/// Why a read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader is known to serve the read index; retry later.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Leadership changed before the read was confirmed; retry.
    LeadershipLost {
        /// The leader this node now knows of.
        leader: Option<NodeId>,
    },
    /// The leader did not answer a forwarded read within an election timeout; retry.
    Timeout,
}

/// Why a membership change failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MembershipError {
    /// This node is not the leader.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Another change has not committed yet; one change at a time.
    ChangeInProgress,
    /// The change makes no sense for the current configuration.
    Invalid(InvalidChange),
    /// Leadership changed before the change committed; check the configuration and retry.
    LeadershipLost {
        /// The leader this node now knows of.
        leader: Option<NodeId>,
    },
}

/// Why a membership change is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InvalidChange {
    /// The node is already a member in that role.
    AlreadyMember(NodeId),
    /// The node is not a member.
    NotMember(NodeId),
    /// The change would leave no voters.
    NoVoters,
    /// Node id 0 is reserved.
    ReservedId,
}

/// Why a leadership transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TransferError {
    /// This node is not the leader.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The target is not a voter.
    NotVoter(NodeId),
    /// Another transfer is in progress.
    InProgress,
    /// The target did not take over within an election timeout.
    TimedOut,
}

/// A snapshot of a node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Whom it voted for in `term`.
    pub vote: Option<NodeId>,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The configuration in force.
    pub membership: Membership,
    /// Its last log entry.
    pub last_log: LogId,
    /// First index still in the log (everything before is in the snapshot).
    pub first_index: Index,
    /// Its commit index.
    pub commit_index: Index,
    /// Its applied index.
    pub applied_index: Index,
    /// Replication progress of each peer, when leader.
    pub peers: Vec<PeerDiagnostics>,
}

/// A leader's view of one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDiagnostics {
    /// The peer.
    pub id: NodeId,
    /// Highest index known replicated on the peer.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Replication mode: "probe", "replicate" or "snapshot".
    pub state: ReplicationState,
    /// Whether the peer answered within the last full check-quorum period (an election
    /// timeout): during the current period or the one before. False for every peer of a leader
    /// elected less than that long ago that has not answered it yet.
    pub recently_active: bool,
    /// How often, since this node became leader, the peer was found to have lost log entries
    /// it had acknowledged (each time also reported as [`Event::FollowerLostEntries`]). Above
    /// zero means the peer's storage does not keep what it promised.
    pub lost_entries: u64,
}

/// How the leader replicates to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationState {
    /// Finding the match point: one message at a time.
    Probe,
    /// Streaming: up to `max_inflight` messages in flight.
    Replicate,
    /// Sending a snapshot.
    Snapshot,
}

fn leader_hint(f: &mut fmt::Formatter<'_>, leader: &Option<NodeId>) -> fmt::Result {
    match leader {
        Some(id) => write!(f, "; node {id} is the leader, retry there"),
        None => f.write_str("; no leader is known yet, retry shortly"),
    }
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader } => {
                f.write_str("this node is not the leader")?;
                leader_hint(f, leader)
            }
            ProposeError::TransferInProgress => {
                f.write_str("leadership is being transferred; retry on the new leader")
            }
            ProposeError::Superseded { leader } => {
                f.write_str("the entry was replaced by a newer leader and was not applied")?;
                leader_hint(f, leader)
            }
            ProposeError::ResponseLost { index } => write!(
                f,
                "the command was applied at index {index}, but inside a snapshot, so its response is \
                 lost; read the state to learn its effect"
            ),
            ProposeError::OutcomeUnknown { index } => write!(
                f,
                "the command at index {index} was settled inside a snapshot this node cannot check; \
                 it may or may not have been applied: read the state before retrying"
            ),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader } => {
                f.write_str("no leader could confirm the read")?;
                leader_hint(f, leader)
            }
            ReadError::LeadershipLost { leader } => {
                f.write_str("leadership changed before the read was confirmed")?;
                leader_hint(f, leader)
            }
            ReadError::Timeout => f.write_str("the leader did not answer the read in time; retry"),
        }
    }
}

impl fmt::Display for InvalidChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidChange::AlreadyMember(id) => write!(f, "node {id} is already a member in that role"),
            InvalidChange::NotMember(id) => write!(f, "node {id} is not a member"),
            InvalidChange::NoVoters => f.write_str("the change would leave the cluster without voters"),
            InvalidChange::ReservedId => f.write_str("node id 0 is reserved"),
        }
    }
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::NotLeader { leader } => {
                f.write_str("this node is not the leader")?;
                leader_hint(f, leader)
            }
            MembershipError::ChangeInProgress => {
                f.write_str("another membership change has not committed yet; retry when it has")
            }
            MembershipError::Invalid(why) => write!(f, "invalid membership change: {why}"),
            MembershipError::LeadershipLost { leader } => {
                f.write_str("leadership changed before the change committed; check the configuration")?;
                leader_hint(f, leader)
            }
        }
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader } => {
                f.write_str("this node is not the leader")?;
                leader_hint(f, leader)
            }
            TransferError::NotVoter(id) => write!(f, "node {id} is not a voter and cannot lead"),
            TransferError::InProgress => f.write_str("another leadership transfer is in progress"),
            TransferError::TimedOut => f.write_str("the target did not take over within an election timeout"),
        }
    }
}

impl core::error::Error for ProposeError {}
impl core::error::Error for ReadError {}
impl core::error::Error for InvalidChange {}
impl core::error::Error for MembershipError {}
impl core::error::Error for TransferError {}
