//! Core vocabulary: node ids, terms, log indexes, entries and virtual time.

use alloc::boxed::Box;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::membership::Membership;

/// Identifies a node in the cluster. `0` is reserved and never a valid node id.
pub type NodeId = u64;

/// A Raft term (Raft §5.1). Terms start at 0 and only ever grow, up to [`MAX_TERM`].
pub type Term = u64;

/// A position in the replicated log. The first entry has index 1; index 0 means "before the log".
/// Indexes never exceed [`MAX_INDEX`].
pub type Index = u64;

/// The highest term a node adopts, campaigns in or sends: 2^63 − 1.
///
/// A message that carries a higher term is dropped with
/// [`DropReason::OutOfRange`](crate::DropReason::OutOfRange) and never adopted, so one bad
/// message cannot push a cluster's terms to where `term + 1` overflows (which used to wrap to
/// 0 in release builds and leave every node leaderless for good).
///
/// A node whose term has reached `MAX_TERM` cannot campaign: there is no later term for it to
/// run in. It still votes and follows a leader of `MAX_TERM`. No correct cluster gets near:
/// one election per millisecond takes 292 million years to get there. A node restored with a
/// term above `MAX_TERM` (written by an older version) keeps it, because lowering a persisted
/// term could let it vote twice in one term; it never campaigns, and the other nodes drop its
/// messages as out of range. Wipe and re-add such a node.
///
/// The ceiling leaves `MAX_TERM + 1` representable and fits a signed 64-bit column (SQL
/// `BIGINT`), so storage may keep terms as `i64`.
pub const MAX_TERM: Term = u64::MAX >> 1;

/// The highest log index a node accepts or appends at: 2^63 − 1.
///
/// A message whose indexes reach past it (including `prev.index` plus the number of entries
/// of an [`AppendEntries`](crate::AppendEntries)) is dropped with
/// [`DropReason::OutOfRange`](crate::DropReason::OutOfRange). A node whose log ends at
/// `MAX_INDEX` cannot campaign (a new leader must append a no-op), and a leader that would
/// have to append past it steps down. Entries that storage returns past `MAX_INDEX` are cut
/// off at restart, like entries after a gap; a snapshot past it is kept (the state machine
/// reflects it), and the node then only follows.
pub const MAX_INDEX: Index = u64::MAX >> 1;

/// A caller-chosen tag that links a request (proposal, read, membership change …) to its outcome.
pub type RequestId = u64;

/// A point on the adapter's monotonic clock, in milliseconds.
///
/// The protocol machine never reads a clock: time only enters through
/// [`Incoming::Tick`](crate::Incoming::Tick). Any epoch works as long as it never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instant(pub u64);

impl Instant {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `millis` milliseconds (saturating).
    pub const fn add_millis(self, millis: u64) -> Self {
        Instant(self.0.saturating_add(millis))
    }

    /// Milliseconds from `earlier` to `self`, or 0 if `earlier` is later.
    pub const fn millis_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The (term, index) pair that identifies a log entry (Raft §5.3, Log Matching).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogId {
    /// Term of the entry. Compared first, so `LogId` orders by "up-to-date" (Raft §5.4.1).
    pub term: Term,
    /// Index of the entry.
    pub index: Index,
}

impl LogId {
    /// A log id from its term and index.
    pub const fn new(term: Term, index: Index) -> Self {
        LogId { term, index }
    }
}

/// What a log entry carries.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so it can commit entries from earlier terms (Raft §5.4.2, §8).
    Noop,
    /// An application command, opaque to Raft.
    Command(Command),
    /// A new cluster configuration. It takes effect on every node as soon as it is appended.
    /// (Boxed: configurations are rare, and this keeps every entry small.)
    Membership(Box<Membership>),
}

/// Entries are cloned for every peer and every stored copy: commands inline, configurations
/// (rare) out of line, so that the common path stays a few instructions.
impl Clone for Payload {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Payload::Noop => Payload::Noop,
            Payload::Command(command) => Payload::Command(command.clone()),
            Payload::Membership(membership) => Payload::Membership(clone_membership(membership)),
        }
    }
}

#[cold]
#[inline(never)]
fn clone_membership(membership: &Membership) -> Box<Membership> {
    Box::new(membership.clone())
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log.
    pub index: Index,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// The entry's log id.
    pub const fn id(&self) -> LogId {
        LogId::new(self.term, self.index)
    }

    /// Approximate encoded size, used for the per-message byte limit.
    pub fn size_hint(&self) -> usize {
        const HEADER: usize = 24;
        HEADER
            + match &self.payload {
                Payload::Noop => 0,
                Payload::Command(c) => c.len(),
                Payload::Membership(m) => 8 * (m.voters.len() + m.outgoing.len() + m.learners.len()),
            }
    }
}

/// Term and vote: the state that must be durable before any message revealing it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

/// Describes what a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log entry the snapshot includes.
    pub last: LogId,
    /// The configuration in force at `last`.
    pub membership: Membership,
}

/// A stored snapshot: what it covers and how many bytes it holds. The bytes themselves stay
/// in the [`LogStore`](crate::LogStore).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// Its length in bytes.
    pub size: u64,
}

/// Everything a [`Node`](crate::Node) needs from storage to start; [`start`](crate::start)
/// gathers it from a [`LogStore`](crate::LogStore) and a [`StateMachine`](crate::StateMachine).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// Term and vote, as last saved.
    pub hard_state: HardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Log entries after the snapshot, in index order.
    pub entries: Vec<Entry>,
    /// The last index the state machine has applied (at least the snapshot's last index).
    pub applied: Index,
    /// The configuration to start with when neither the snapshot nor the log holds one: the
    /// initial voters for a new cluster, or empty for a node that waits to be added.
    pub bootstrap: Membership,
}
