//! Messages exchanged between nodes (Raft §5, §6, §7; pre-vote and leadership transfer from
//! the Raft thesis §9.6 and §3.10).
//!
//! Every message carries the sender's term. The sender's id travels beside the message (see
//! [`Incoming::Message`](crate::Incoming::Message)): the transport is trusted to name it.
//!
//! Every term a message carries must be at most [`MAX_TERM`], every index at most
//! [`MAX_INDEX`], and the positions it implies must fit too (`prev.index` plus the number of
//! entries, a snapshot chunk's offset plus its length); a message that breaks this is dropped
//! with [`DropReason::OutOfRange`](crate::DropReason::OutOfRange) before any rule runs.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Entry, Index, LogId, RequestId, SnapshotMeta, Term, MAX_INDEX, MAX_TERM};

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message {
    /// A candidate (or pre-candidate) asks for a vote.
    RequestVote(RequestVote),
    /// The answer to [`Message::RequestVote`].
    VoteResponse(VoteResponse),
    /// The leader replicates entries, or sends a heartbeat when `entries` is empty.
    AppendEntries(AppendEntries),
    /// The answer to [`Message::AppendEntries`].
    AppendResponse(AppendResponse),
    /// The leader sends one chunk of a snapshot to a follower behind its log. (Boxed: rare and
    /// large, it would otherwise make every message bigger.)
    InstallSnapshot(Box<InstallSnapshot>),
    /// The answer to [`Message::InstallSnapshot`].
    SnapshotResponse(SnapshotResponse),
    /// The leader tells an up-to-date follower to start an election now (leadership transfer).
    TimeoutNow {
        /// The leader's term.
        term: Term,
    },
    /// A follower asks the leader for a read index on behalf of a local linearizable read.
    ReadIndexRequest {
        /// The follower's term.
        term: Term,
        /// The follower's tag for the read, echoed in the response.
        request: RequestId,
    },
    /// The leader's answer to [`Message::ReadIndexRequest`].
    ReadIndexResponse {
        /// The leader's term.
        term: Term,
        /// The follower's tag, echoed.
        request: RequestId,
        /// The confirmed read index, or `None` when the leader could not serve it.
        index: Option<Index>,
    },
}

/// See [`Message::RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// The term the candidate runs in (for a pre-vote: the term it *would* run in).
    pub term: Term,
    /// The candidate's last log entry, for the up-to-date check (Raft §5.4.1).
    pub last_log: LogId,
    /// A pre-vote probe: granting it changes no state on the voter.
    pub pre_vote: bool,
    /// Sent because the leader asked (TimeoutNow): voters skip the leader-lease check.
    pub transfer: bool,
}

/// See [`Message::VoteResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The voter's term, or for a granted pre-vote the term that was asked for.
    pub term: Term,
    /// Whether the vote was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
}

/// See [`Message::AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: Term,
    /// The entry just before `entries`, for the consistency check (Raft §5.3).
    pub prev: LogId,
    /// Entries to store, consecutive from `prev.index + 1`; empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub commit: Index,
    /// The leader's heartbeat round, echoed in the response (confirms leadership for reads).
    pub round: u64,
}

/// See [`Message::AppendResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The follower's term.
    pub term: Term,
    /// The round of the request being answered.
    pub round: u64,
    /// Whether the entries were stored.
    pub result: AppendResult,
}

/// Whether an [`AppendEntries`] was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's through `match_index`.
    Success {
        /// The index of the last entry known to match the leader's log.
        match_index: Index,
    },
    /// The consistency check failed at `rejected` (the request's `prev.index`).
    Conflict {
        /// The `prev.index` that did not match.
        rejected: Index,
        /// Fast-backtracking hint: the term of the follower's entry at `rejected` and the first
        /// index the follower holds with that term; term 0 when the follower's log is shorter,
        /// with index one past its last entry.
        hint: LogId,
    },
}

/// See [`Message::InstallSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's term.
    pub term: Term,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` within the snapshot.
    pub offset: u64,
    /// One chunk of the snapshot.
    pub data: Bytes,
    /// Whether this is the last chunk.
    pub done: bool,
}

/// See [`Message::SnapshotResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The follower's term.
    pub term: Term,
    /// The last index covered by the snapshot being answered.
    pub last_index: Index,
    /// The byte offset the follower expects next (the snapshot's length once installed).
    pub next_offset: u64,
    /// Whether the whole snapshot is installed.
    pub done: bool,
}

impl AppendEntries {
    /// The index of the last entry carried (`prev.index` for a heartbeat), or `None` when that
    /// does not fit in an [`Index`].
    pub(crate) fn last_index(&self) -> Option<Index> {
        let count = Index::try_from(self.entries.len()).ok()?;
        self.prev.index.checked_add(count)
    }
}

/// Whether a log id is within [`MAX_TERM`] and [`MAX_INDEX`].
fn log_id_in_range(id: LogId) -> bool {
    id.term <= MAX_TERM && id.index <= MAX_INDEX
}

impl Message {
    /// Whether every term and index the message carries, and every position it implies, is
    /// within [`MAX_TERM`] and [`MAX_INDEX`] (see the module documentation). Entry ids inside
    /// an [`AppendEntries`] are not looked at here: the follower's structural check requires
    /// them to run consecutively from `prev` and to stay at or below the message's term.
    pub(crate) fn in_range(&self) -> bool {
        let fields = match self {
            Message::RequestVote(m) => log_id_in_range(m.last_log),
            Message::VoteResponse(_) | Message::TimeoutNow { .. } | Message::ReadIndexRequest { .. } => true,
            Message::AppendEntries(m) => {
                log_id_in_range(m.prev)
                    && m.commit <= MAX_INDEX
                    && m.last_index().is_some_and(|last| last <= MAX_INDEX)
            }
            Message::AppendResponse(m) => match m.result {
                AppendResult::Success { match_index } => match_index <= MAX_INDEX,
                AppendResult::Conflict { rejected, hint } => rejected <= MAX_INDEX && log_id_in_range(hint),
            },
            Message::InstallSnapshot(m) => {
                let len = u64::try_from(m.data.len()).ok();
                log_id_in_range(m.meta.last) && len.and_then(|len| m.offset.checked_add(len)).is_some()
            }
            Message::SnapshotResponse(m) => m.last_index <= MAX_INDEX,
            Message::ReadIndexResponse { index, .. } => index.is_none_or(|index| index <= MAX_INDEX),
        };
        fields && self.term() <= MAX_TERM
    }

    /// The sender's term.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::SnapshotResponse(m) => m.term,
            Message::TimeoutNow { term }
            | Message::ReadIndexRequest { term, .. }
            | Message::ReadIndexResponse { term, .. } => *term,
        }
    }

    /// A short name for logs and diagnostics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(m) if m.pre_vote => "PreVote",
            Message::RequestVote(_) => "RequestVote",
            Message::VoteResponse(m) if m.pre_vote => "PreVoteResponse",
            Message::VoteResponse(_) => "VoteResponse",
            Message::AppendEntries(m) if m.entries.is_empty() => "Heartbeat",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendResponse(_) => "AppendResponse",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::SnapshotResponse(_) => "SnapshotResponse",
            Message::TimeoutNow { .. } => "TimeoutNow",
            Message::ReadIndexRequest { .. } => "ReadIndexRequest",
            Message::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}
