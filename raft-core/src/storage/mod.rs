//! Storage: the two contracts a node's storage fulfils, and an in-memory implementation.
//!
//! * [`LogStore`]: what Raft itself must not forget — term and vote, the log, and the latest
//!   snapshot's bytes. Every call that returns `Ok` is durable.
//! * [`StateMachine`]: the application's state, which the log's committed entries are applied
//!   to. It may live in memory (rebuilt from the snapshot and the log at start) or be durable
//!   itself ([`StateMachine::durable_index`]).
//!
//! The split follows openraft's storage-v2 API, with one difference: the snapshot's bytes
//! belong to the log store, not the state machine. Term, vote, log and snapshot are then made
//! durable by one component, so installing a snapshot and discarding the log it covers is one
//! crash-safe step (Raft §7), and a state machine can be a plain in-memory value.
//!
//! [`MemState`] is the in-memory log store, generic over the container of entries: a
//! growable `VecDeque` here, a fixed-capacity window on a microcontroller.

mod entry_buffer;
mod log_store;
mod mem_state;
mod state_machine;

pub use entry_buffer::EntryBuffer;
pub use log_store::{LogState, LogStore};
pub use mem_state::{MemState, MemStateError};
pub use state_machine::{RestoreError, SnapshotAborted, SnapshotReader, SnapshotWriter, StateMachine};
