//! # raft-core
//!
//! A sans-IO implementation of the Raft consensus protocol, `#![no_std]` with `alloc`.
//!
//! It is fully deterministic: it contains no networking code, reads no clock and draws no
//! entropy from the operating system. Time arrives as [`Incoming::Tick`] inputs (or from a
//! [`Clock`] the runtime lends), election jitter comes from a seed in [`Config`], and storage
//! sits behind two traits: the [`LogStore`] (term, vote, log, snapshot bytes) and the
//! application's [`StateMachine`]. The same inputs always give the same outputs, which is what
//! lets one core run on a tokio server, on a Cortex-M microcontroller, in a deterministic
//! simulator and in a REPL.
//!
//! Three layers:
//!
//! * [`Node`]: the pure protocol machine. [`Node::step`] takes one [`Incoming`] input;
//!   [`Node::take_ready`] returns a [`Ready`]: what to persist, then what to send, then what
//!   to apply, in that order.
//! * The executor: [`carry_out`] does a `Ready`'s work against a [`LogStore`] and a
//!   [`StateMachine`], and [`start`] builds a `Node` from them. It is the one implementation of
//!   the `Ready` contract; the stream driver, raft-std's `RaftNode` and the testkit simulator
//!   (through an [`Observer`] that checks rules and lands crashes) all run it.
//! * [`RaftStreamExt::into_raft_events`]: a runtime-free async driver that turns a stream of
//!   [`Incoming`] events plus storage into a stream of [`Outgoing`] events.
//!
//! Protocol features: leader election with randomized timeouts, pre-vote, check-quorum,
//! log replication with fast backtracking, pipelining and batching, commit by counting
//! current-term replicas only, membership changes (single-server and joint consensus,
//! learners), leadership transfer, ReadIndex and lease reads, snapshots streamed in chunks.
//!
//! ```
//! use futures::{executor::block_on, stream, StreamExt};
//! use raft_core::{Bytes, Incoming, Instant, MemState, Membership, RaftStreamExt};
//!
//! let log: MemState = MemState::new(Membership::new([1]));
//! let machine: Vec<Bytes> = Vec::new(); // records every applied command
//! let ticks = (0..10).map(|i| Incoming::Tick(Instant::from_millis(i * 100)));
//! let events: Vec<_> = block_on(stream::iter(ticks).into_raft_events(1, (log, machine)).collect());
//! assert!(events.iter().all(|e| e.is_ok()));
//! ```
//!
//! ## Migrating
//!
//! **Commands are a [`Command`], no longer a [`Bytes`]** ([`Payload::Command`],
//! [`Incoming::Propose`]). A `Command` stores up to [`Command::INLINE`] bytes inside itself,
//! so small commands cost no allocation and no reference counting as they are copied to
//! peers, the log store and the messages; longer ones stay shared. The wire format (serde)
//! is unchanged: a `Command` encodes exactly as the `Bytes` it replaces, so stored logs and
//! running peers keep working. In code:
//!
//! * to propose, convert what you have: `Bytes`, `Vec<u8>`, `&'static [u8]` and
//!   `&'static str` all convert with `.into()` (a `Bytes` longer than the inline limit is
//!   kept as it is, not copied), or copy a slice with [`Command::copy_from_slice`];
//! * to apply, read the command as a byte slice (`&command[..]`, or any `[u8]` method through
//!   `Deref`), or take a `Bytes` with [`Command::to_bytes`] (a copy only when inline);
//! * in tests, `Payload::Command(Bytes::from_static(b"x"))` becomes
//!   `Payload::Command(Command::from_static(b"x"))`.
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod clock;
mod command;
mod config;
mod event;
mod executor;
mod log;
mod membership;
mod message;
mod node;
mod node_set;
mod progress;
pub mod quorum;
mod ready;
mod rng;
mod storage;
mod stream;
mod types;
mod vec_map;

pub use bytes::Bytes;
pub use clock::Clock;
pub use command::Command;
pub use config::{Config, ConfigError};
pub use event::{
    Applied, Diagnostics, DropReason, Event, Incoming, InvalidChange, MembershipChange, MembershipError,
    Outgoing, PeerDiagnostics, ProposeError, ReadError, ReplicationState, Role, TransferError,
};
pub use executor::{
    advance, carry_out, start, Carried, Checkpoint, Error, Inconsistency, Observer, Step, UnknownCheckpoint,
};
pub use membership::Membership;
pub use message::{
    AppendEntries, AppendResponse, AppendResult, InstallSnapshot, Message, RequestVote, SnapshotResponse,
    VoteResponse,
};
pub use node::Node;
pub use node_set::NodeSet;
pub use ready::{Ready, ReadyRead, SnapshotChunk, SnapshotSend};
pub use rng::SplitMix64;
pub use storage::{
    EntryBuffer, LogState, LogStore, MemState, MemStateError, RestoreError, SnapshotAborted, SnapshotReader,
    SnapshotWriter, StateMachine,
};
pub use stream::{RaftStreamExt, StreamError};
pub use types::{
    Entry, HardState, Index, InitialState, Instant, LogId, NodeId, Payload, RequestId, SnapshotInfo,
    SnapshotMeta, Term, MAX_INDEX, MAX_TERM,
};
