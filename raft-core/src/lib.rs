//! # raft-core
//!
//! A sans-IO implementation of the Raft consensus protocol, `#![no_std]` with `alloc`.
//!
//! It is fully deterministic: it contains no networking code, reads no clock and draws no
//! entropy from the operating system. Time arrives as [`Incoming::Tick`] inputs, election
//! jitter comes from a seed in [`Config`], and storage sits behind the [`PersistentState`]
//! trait. The same inputs always give the same outputs, which is what lets one core run on a
//! tokio server, on a Cortex-M microcontroller, in a deterministic simulator and in a REPL.
//!
//! Two layers:
//!
//! * [`Node`]: the pure protocol machine. [`Node::step`] takes one [`Incoming`] input;
//!   [`Node::take_ready`] returns a [`Ready`]: what to persist, then what to send, then what
//!   to apply, in that order.
//! * [`RaftStreamExt::into_raft_events`]: a runtime-free async driver that turns a stream of
//!   [`Incoming`] events plus a [`PersistentState`] into a stream of [`Outgoing`] events.
//!
//! Protocol features: leader election with randomized timeouts, pre-vote, check-quorum,
//! log replication with fast backtracking, pipelining and batching, commit by counting
//! current-term replicas only, membership changes (single-server and joint consensus,
//! learners), leadership transfer, ReadIndex and lease reads, snapshots with chunked
//! InstallSnapshot.
//!
//! ```
//! use futures::{executor::block_on, stream, StreamExt};
//! use raft_core::{Incoming, Instant, MemState, Membership, RaftStreamExt};
//! use bytes::Bytes;
//!
//! let state: MemState<Vec<Bytes>> = MemState::new(Membership::new([1]));
//! let ticks = (0..10).map(|i| Incoming::Tick(Instant::from_millis(i * 100)));
//! let events: Vec<_> = block_on(stream::iter(ticks).into_raft_events(1, state).collect());
//! assert!(events.iter().all(|e| e.is_ok()));
//! ```
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod config;
mod event;
mod log;
mod machine;
mod membership;
mod message;
mod node;
mod node_set;
mod progress;
pub mod quorum;
mod ready;
mod rng;
mod state;
mod stream;
mod types;
mod vec_map;

pub use bytes::Bytes;
pub use config::{Config, ConfigError};
pub use event::{
    Applied, Diagnostics, DropReason, Event, Incoming, InvalidChange, MembershipChange, MembershipError,
    Outgoing, PeerDiagnostics, ProposeError, ReadError, ReplicationState, Role, TransferError,
};
pub use machine::{AppliedState, RestoreError, StateMachine};
pub use membership::Membership;
pub use message::{
    AppendEntries, AppendResponse, AppendResult, InstallSnapshot, Message, RequestVote, SnapshotResponse,
    VoteResponse,
};
pub use node::Node;
pub use node_set::NodeSet;
pub use ready::{Ready, ReadyRead};
pub use state::{InitialState, MemState, MemStateError, PersistentState};
pub use stream::{raft_events, Error, RaftStreamExt};
pub use types::{
    Entry, HardState, Index, Instant, LogId, NodeId, Payload, RequestId, Snapshot, SnapshotMeta, Term,
    MAX_INDEX, MAX_TERM,
};
