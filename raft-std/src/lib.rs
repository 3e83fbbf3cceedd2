//! # raft-std
//!
//! The tokio adapter for [`raft_core`]: what the runtime owns, kept thin around the
//! protocol core.
//!
//! * [`ticks`] / [`with_ticks`]: time, as [`Incoming::Tick`](raft_core::Incoming::Tick)
//!   events merged into a node's input.
//! * [`FileState`]: a durable [`PersistentState`](raft_core::PersistentState) in a data
//!   directory (segmented, checksummed log; atomic term and vote; snapshots; crash recovery).
//! * [`Transport`]: how a node reaches its peers, with two implementations:
//!   [`TcpTransport`] (length-delimited frames, a cluster-id handshake, reconnection with
//!   backoff, bounded per-peer queues) and [`ChannelNetwork`] (in-process, with fault
//!   injection). The `testing` feature adds `FaultyTransport`, which cuts links of any
//!   transport.
//! * [`RaftNode`]: a running node for applications — propose, read, change membership,
//!   transfer leadership, status — each with a bounded timeout.
//!
//! `raft-kv` (the nested package `raft-std/kv`) is a replicated key-value service built on
//! these parts.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod node;
mod storage;
mod ticks;
mod transport;

pub use node::{NodeConfig, RaftNode, RequestError, StartError, Status};
pub use storage::{FileState, FsyncPolicy, StateReader, StorageError, StorageOptions};
pub use ticks::{ticks, with_ticks, DEFAULT_TICK};
pub use transport::{
    ChannelNetwork, ChannelTransport, PeerLink, TcpConfig, TcpTransport, Transport, DEFAULT_CHANNEL_INBOX_LEN,
};
#[cfg(feature = "testing")]
pub use transport::{Faults, FaultyTransport};
