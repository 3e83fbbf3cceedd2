//! # raft-std
//!
//! The tokio adapter for [`raft_core`]: what the runtime owns, kept thin around the
//! protocol core.
//!
//! * [`TokioClock`]: time, lent to the stream driver, so a node sleeps until its next
//!   deadline; or [`ticks`] / [`with_ticks`], periodic
//!   [`Incoming::Tick`](raft_core::Incoming::Tick) events merged into a node's input.
//! * [`FileState`]: a durable [`LogStore`](raft_core::LogStore) in a data
//!   directory (segmented, checksummed log; atomic term and vote; snapshots; crash recovery).
//! * [`Transport`]: TCP with length-delimited postcard frames, a cluster-id handshake,
//!   reconnection with backoff and bounded per-peer queues; [`Faults`] cuts links in tests.
//! * [`RaftNode`]: a running node for applications — propose, read, change membership,
//!   transfer leadership, status — each with a bounded timeout.
//!
//! The `raft-kv` binary in this crate is a replicated key-value service built on these parts.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod node;
mod storage;
mod ticks;
mod transport;

pub use node::{NodeConfig, RaftNode, RequestError, StartError, Status};
pub use storage::{FileState, FsyncPolicy, StorageError, StorageOptions};
pub use ticks::{ticks, with_ticks, TokioClock, DEFAULT_TICK};
pub use transport::{Faults, Inbox, PeerBook, PeerLink, Transport, TransportConfig};
