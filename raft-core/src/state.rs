//! Durable state: the [`PersistentState`] trait the stream driver calls, and [`MemState`], an
//! in-memory store for tests and examples.

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::future::Future;

use crate::machine::{AppliedState, RestoreError, StateMachine};
use crate::membership::Membership;
use crate::types::{Entry, HardState, Index, Snapshot, SnapshotMeta};

/// Everything a node needs from storage to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// Term and vote, as last saved.
    pub hard_state: HardState,
    /// The latest snapshot, if any. The state machine already reflects it.
    pub snapshot: Option<Snapshot>,
    /// Log entries after the snapshot, in index order.
    pub entries: Vec<Entry>,
    /// The last index the state machine has applied (at least the snapshot's last index).
    pub applied: Index,
    /// The configuration to start with when neither the snapshot nor the log holds one: the
    /// initial voters for a new cluster, or empty for a node that waits to be added.
    ///
    /// Storage must persist it when first created and return the stored value afterwards: a
    /// restart with different command-line peers must not silently change the voters.
    pub bootstrap: Membership,
}

/// Where a node keeps what must survive a crash, and its application state machine.
///
/// The stream driver calls these methods one at a time, in the order of the Raft rules
/// (DESIGN §2): a call that returns `Ok` must be durable, because messages that depend on it are
/// sent right after. An `Err` ends the event stream: a node that cannot persist must stop.
#[allow(async_fn_in_trait)] // Send-ness leaks from the concrete type; embedded users need none.
pub trait PersistentState {
    /// The storage error, passed through [`Error::Storage`](crate::Error::Storage).
    type Error: fmt::Debug + fmt::Display;

    /// Loads everything durable (called once, before anything else).
    fn load(&mut self) -> impl Future<Output = Result<InitialState, Self::Error>>;

    /// Durably records the current term and vote.
    fn save_hard_state(&mut self, state: HardState) -> impl Future<Output = Result<(), Self::Error>>;

    /// Durably drops every entry at or after `truncate_from` (when given), then appends
    /// `entries`, which continue the log without gaps.
    fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// Applies a committed entry to the state machine and returns the state machine's response
    /// (empty for no-op and configuration entries). Called in index order, exactly once per
    /// index after the last snapshot or restart.
    fn apply(&mut self, entry: &Entry) -> impl Future<Output = Result<Bytes, Self::Error>>;

    /// Answers a read-only query against the state machine as it is now.
    fn query(&mut self, query: &[u8]) -> impl Future<Output = Result<Bytes, Self::Error>>;

    /// Serializes the state machine, which has applied exactly through `meta.last`, stores the
    /// snapshot durably and may then discard log entries up to `meta.last.index`.
    fn snapshot(&mut self, meta: SnapshotMeta) -> impl Future<Output = Result<Snapshot, Self::Error>>;

    /// Replaces the state machine with a snapshot received from the leader, durably, and
    /// discards the log it covers, as one crash-safe step (Raft §7): the entries up to the
    /// snapshot's last index when the log holds that entry (same index and term), otherwise
    /// the entire log. A conflicting suffix must never survive behind the snapshot.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> impl Future<Output = Result<(), Self::Error>>;
}

/// An in-memory [`PersistentState`]: "durable" means "stored in this value". Clone it, or call
/// [`MemState::reboot`], to model what survives a crash.
///
/// ```
/// use raft_core::{MemState, Membership};
/// use bytes::Bytes;
/// let state: MemState<Vec<Bytes>> = MemState::new(Membership::new([1, 2, 3]));
/// assert_eq!(state.applied_index(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemState<M> {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    state: AppliedState<M>,
    bootstrap: Membership,
}

/// Why a [`MemState`] operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemStateError {
    /// `write_log` was handed entries that do not continue the log.
    Gap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// A snapshot could not be restored.
    Restore(RestoreError),
}

impl fmt::Display for MemStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemStateError::Gap { expected, got } => {
                write!(f, "log write would leave a gap: expected index {expected}, got {got}")
            }
            MemStateError::Restore(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for MemStateError {}

impl<M: StateMachine + Default> MemState<M> {
    /// A fresh store for a node whose initial configuration is `bootstrap` (empty for a node
    /// that waits to be added to an existing cluster).
    pub fn new(bootstrap: Membership) -> Self {
        MemState {
            hard_state: HardState::default(),
            snapshot: None,
            entries: Vec::new(),
            state: AppliedState::new(M::default()),
            bootstrap,
        }
    }

    /// What survives a crash: term, vote, log and snapshot. The state machine is rebuilt from
    /// the snapshot; later entries are applied again as the node learns they are committed.
    pub fn reboot(&self) -> Result<Self, MemStateError> {
        let mut state = AppliedState::new(M::default());
        if let Some(snapshot) = &self.snapshot {
            state.restore(snapshot).map_err(MemStateError::Restore)?;
        }
        Ok(MemState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            state,
            bootstrap: self.bootstrap.clone(),
        })
    }
}

impl<M: StateMachine> MemState<M> {
    /// The application state machine.
    pub fn machine(&self) -> &M {
        self.state.machine()
    }

    /// The last applied index.
    pub fn applied_index(&self) -> Index {
        self.state.applied_index()
    }
}

impl<M> MemState<M> {
    /// The stored term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored log entries (after the snapshot).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The stored snapshot.
    pub fn stored_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    fn first_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1
    }

    fn discard_through(&mut self, index: Index) {
        let keep = self.entries.partition_point(|e| e.index <= index);
        self.entries.drain(..keep);
    }
}

impl<M: StateMachine> PersistentState for MemState<M> {
    type Error = MemStateError;

    async fn load(&mut self) -> Result<InitialState, MemStateError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            applied: self.state.applied_index(),
            bootstrap: self.bootstrap.clone(),
        })
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), MemStateError> {
        self.hard_state = state;
        Ok(())
    }

    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), MemStateError> {
        if let Some(from) = truncate_from {
            let keep = self.entries.partition_point(|e| e.index < from);
            self.entries.truncate(keep);
        }
        let next = self.entries.last().map_or(self.first_index(), |e| e.index + 1);
        for (expected, entry) in (next..).zip(entries) {
            if entry.index != expected {
                return Err(MemStateError::Gap { expected, got: entry.index });
            }
        }
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, MemStateError> {
        Ok(self.state.apply(entry))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, MemStateError> {
        Ok(self.state.query(query))
    }

    async fn snapshot(&mut self, meta: SnapshotMeta) -> Result<Snapshot, MemStateError> {
        let snapshot = self.state.snapshot(meta);
        self.discard_through(snapshot.meta.last.index);
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), MemStateError> {
        self.state.restore(snapshot).map_err(MemStateError::Restore)?;
        let last = snapshot.meta.last;
        if self.entries.iter().any(|e| e.id() == last) {
            self.discard_through(last.index);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, Payload};
    use futures::executor::block_on;

    fn entry(term: u64, index: Index) -> Entry {
        Entry { term, index, payload: Payload::Command(Bytes::from_static(b"c")) }
    }

    fn snapshot(term: u64, index: Index) -> Snapshot {
        let meta = SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1]) };
        Snapshot { meta, data: Bytes::new() }
    }

    #[test]
    fn installing_a_snapshot_keeps_only_a_log_that_continues_it() {
        let mut state: MemState<Vec<Bytes>> = MemState::new(Membership::new([1]));
        block_on(state.write_log(None, &[entry(1, 1), entry(1, 2), entry(2, 3)])).unwrap();
        block_on(state.install_snapshot(&snapshot(1, 2))).unwrap();
        assert_eq!(state.entries(), [entry(2, 3)], "the log holds the snapshot's last entry");
        block_on(state.write_log(None, &[entry(2, 4), entry(2, 5)])).unwrap();
        block_on(state.install_snapshot(&snapshot(3, 4))).unwrap();
        assert!(state.entries().is_empty(), "a conflicting suffix never survives (Raft §7)");
        assert_eq!(state.applied_index(), 4);
        assert_eq!(
            block_on(state.write_log(None, &[entry(3, 6)])),
            Err(MemStateError::Gap { expected: 5, got: 6 })
        );
    }
}
