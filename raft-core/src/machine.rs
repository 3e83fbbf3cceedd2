//! The application side: the [`StateMachine`] trait, and [`AppliedState`], a state machine
//! with the index it has applied, which every [`PersistentState`](crate::PersistentState)
//! store shares.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use core::fmt;

use crate::types::{Entry, Index, Payload, Snapshot, SnapshotMeta};

/// A deterministic application state machine (used by [`MemState`](crate::MemState) and the adapters' stores).
pub trait StateMachine {
    /// Applies a committed command and returns the response for its proposer.
    fn apply(&mut self, index: Index, command: &[u8]) -> Bytes;
    /// Answers a read-only query.
    fn query(&self, query: &[u8]) -> Bytes;
    /// Serializes the whole state.
    fn snapshot(&self) -> Bytes;
    /// Replaces the state with a serialized one.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;
}

/// A snapshot that a state machine could not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError(pub String);

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot restore the state machine from the snapshot: {}", self.0)
    }
}

impl core::error::Error for RestoreError {}

/// Records every applied command. Query: an 8-byte little-endian position; answer: the command
/// applied at that position (empty if none). Handy in tests.
impl StateMachine for Vec<Bytes> {
    fn apply(&mut self, _index: Index, command: &[u8]) -> Bytes {
        self.push(Bytes::copy_from_slice(command));
        Bytes::new()
    }

    fn query(&self, query: &[u8]) -> Bytes {
        let position = <[u8; 8]>::try_from(query).map(u64::from_le_bytes).unwrap_or(u64::MAX);
        usize::try_from(position).ok().and_then(|p| self.get(p).cloned()).unwrap_or_default()
    }

    fn snapshot(&self) -> Bytes {
        let mut out = BytesMut::new();
        for command in self {
            out.put_u32_le(command.len() as u32);
            out.put_slice(command);
        }
        out.freeze()
    }

    fn restore(&mut self, mut snapshot: &[u8]) -> Result<(), RestoreError> {
        self.clear();
        while snapshot.has_remaining() {
            if snapshot.remaining() < 4 {
                return Err(RestoreError("truncated length prefix".into()));
            }
            let len = snapshot.get_u32_le() as usize;
            if snapshot.remaining() < len {
                return Err(RestoreError("truncated command".into()));
            }
            self.push(Bytes::copy_from_slice(&snapshot[..len]));
            snapshot.advance(len);
        }
        Ok(())
    }
}

/// An application [`StateMachine`] and the index it has applied: the part of a store that
/// applies committed entries, answers queries and takes and restores snapshots.
///
/// ```
/// use raft_core::{AppliedState, Bytes, Entry, Payload};
/// let mut state = AppliedState::new(Vec::<Bytes>::new());
/// let entry = Entry { term: 1, index: 1, payload: Payload::Command(Bytes::from_static(b"x")) };
/// state.apply(&entry);
/// assert_eq!((state.applied_index(), state.machine().len()), (1, 1));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AppliedState<M> {
    machine: M,
    applied: Index,
}

impl<M: StateMachine> AppliedState<M> {
    /// A state machine that has applied nothing.
    pub fn new(machine: M) -> Self {
        AppliedState { machine, applied: 0 }
    }

    /// The state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The last applied index.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// Applies a committed entry; returns the state machine's response (empty for no-op and
    /// configuration entries, which only advance the applied index).
    pub fn apply(&mut self, entry: &Entry) -> Bytes {
        self.applied = entry.index;
        match &entry.payload {
            Payload::Command(command) => self.machine.apply(entry.index, command),
            Payload::Noop | Payload::Membership(_) => Bytes::new(),
        }
    }

    /// Answers a read-only query.
    pub fn query(&self, query: &[u8]) -> Bytes {
        self.machine.query(query)
    }

    /// A snapshot of the state, which must have applied exactly through `meta.last`.
    pub fn snapshot(&self, meta: SnapshotMeta) -> Snapshot {
        Snapshot { data: self.machine.snapshot(), meta }
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), RestoreError> {
        self.machine.restore(&snapshot.data)?;
        self.applied = snapshot.meta.last.index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_machine_round_trips_through_its_snapshot() {
        let mut machine: Vec<Bytes> = Vec::new();
        machine.apply(1, b"one");
        machine.apply(2, b"two");
        let mut restored: Vec<Bytes> = Vec::new();
        restored.restore(&machine.snapshot()).unwrap();
        assert_eq!(restored, machine);
        assert_eq!(restored.query(&1u64.to_le_bytes()), Bytes::from_static(b"two"));
        assert!(restored.restore(&[1, 0, 0]).is_err(), "a truncated snapshot is an error");
    }
}
