//! [`Ready`]: what the protocol machine asks its driver to do, in the order it must be done.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::event::Event;
use crate::message::Message;
use crate::types::{Entry, HardState, Index, NodeId, RequestId, SnapshotInfo, SnapshotMeta, Term};

/// The work produced by [`Node::step`](crate::Node::step), taken with
/// [`Node::take_ready`](crate::Node::take_ready). [`carry_out`](crate::carry_out) does it, in
/// field order:
///
/// 1. **Persist** `hard_state`; then the received `snapshot_chunks`, and, when a snapshot is
///    complete, `install_snapshot` (which replaces the state machine and the log up to its last
///    index); then the log write (`truncate_from`, `entries`). Wait until all of it is durable.
/// 2. **Send** `messages` and `snapshot_sends`. (Only now: they may reveal the state persisted
///    in step 1.)
/// 3. **Apply** `apply` to the state machine in order; for each entry listed in `proposals`,
///    answer that proposal with the state machine's response.
/// 4. **Read**: run each query in `reads` against the state machine and answer it.
/// 5. **Report** `events` to the application.
/// 6. **Snapshot**: if `take_snapshot` is set, snapshot the state machine (it has applied
///    exactly through its `last`) into the log store and hand the result to
///    [`Node::snapshot_taken`](crate::Node::snapshot_taken).
///
/// When `send_first` is set, steps 1 and 2 may swap: the messages may leave before (or while)
/// the log write is made durable.
///
/// A `Ready` lends the node's own entries (`entries`, `apply`) instead of copying them, so the
/// borrow checker makes sure it is finished before the node is stepped again.
#[must_use = "a Ready holds state to persist and messages to send"]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ready<'a> {
    /// Term and vote to persist, when they changed.
    pub hard_state: Option<HardState>,
    /// Chunks of a snapshot from the leader, to stage in the log store in order (a chunk at
    /// offset 0 begins a new staged snapshot).
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// The staged snapshot is complete: install it (replacing the log it covers) and restore
    /// the state machine from it.
    pub install_snapshot: Option<SnapshotInfo>,
    /// Drop log entries from this index before appending `entries`.
    pub truncate_from: Option<Index>,
    /// Entries to append to the durable log.
    pub entries: &'a [Entry],
    /// Messages to send once the above is durable.
    pub messages: Vec<(NodeId, Message)>,
    /// Chunks of the current snapshot to read from the log store and send.
    pub snapshot_sends: Vec<SnapshotSend>,
    /// Committed entries to apply, in index order.
    pub apply: &'a [Entry],
    /// Proposals made on this node that entries in `apply` answer: (index, request), in index
    /// order. Report [`Event::Proposal`] with the response of the entry at that index.
    pub proposals: Vec<(Index, RequestId)>,
    /// Linearizable reads that may now be served from the state machine.
    pub reads: Vec<ReadyRead>,
    /// Outcomes and reports for the application.
    pub events: Vec<Event>,
    /// Take a snapshot covering exactly this (the state machine's applied point).
    pub take_snapshot: Option<SnapshotMeta>,
    /// The messages may be sent before the persist step: a leader's replication of new
    /// entries, with no term or vote to persist, and a commit index short of those entries.
    /// The leader then writes its own log while its followers write theirs (Raft §10.2.1).
    ///
    /// Why it is safe: the node is not stepped again until the whole Ready is carried out, so
    /// it counts no acknowledgement (nor itself) toward a commit before its own write is
    /// durable, and no message reveals a commit of an entry only this Ready writes (a lone
    /// voter commits as it appends: its Ready never sends first). Followers' and candidates'
    /// messages never go first: they report a durable log, term or vote.
    pub send_first: bool,
}

impl Ready<'_> {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot_chunks.is_empty()
            && self.install_snapshot.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.snapshot_sends.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.events.is_empty()
            && self.take_snapshot.is_none()
    }
}

/// A read whose read index has been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyRead {
    /// The caller's tag: report [`Event::Read`].
    pub id: RequestId,
    /// The query for the state machine.
    pub query: Bytes,
}

/// A chunk of a snapshot received from the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// Where it goes in the snapshot.
    pub offset: u64,
    /// Its bytes.
    pub data: Bytes,
}

/// A chunk of the current snapshot to send: read `len` bytes at `offset` from the log store
/// and send them to `to` as an [`InstallSnapshot`](crate::InstallSnapshot) with these fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSend {
    /// The follower.
    pub to: NodeId,
    /// The leader's term.
    pub term: Term,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// Where the chunk starts.
    pub offset: u64,
    /// How many bytes it holds.
    pub len: usize,
    /// Whether it is the last chunk.
    pub done: bool,
}

/// The owned parts of the next [`Ready`], gathered while the node is stepped.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) snapshot_chunks: Vec<SnapshotChunk>,
    pub(crate) install_snapshot: Option<SnapshotInfo>,
    pub(crate) messages: Vec<(NodeId, Message)>,
    pub(crate) snapshot_sends: Vec<SnapshotSend>,
    pub(crate) proposals: Vec<(Index, RequestId)>,
    pub(crate) reads: Vec<ReadyRead>,
    pub(crate) events: Vec<Event>,
    /// A snapshot was asked for (policy or `Incoming::Compact`); its metadata is fixed when
    /// the `Ready` is taken, so that it matches what the state machine will have applied.
    pub(crate) snapshot_wanted: bool,
}

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.snapshot_chunks.is_empty()
            && self.install_snapshot.is_none()
            && self.messages.is_empty()
            && self.snapshot_sends.is_empty()
            && self.proposals.is_empty()
            && self.reads.is_empty()
            && self.events.is_empty()
            && !self.snapshot_wanted
    }
}
