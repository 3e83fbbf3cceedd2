//! # raft-std
//!
//! The tokio adapter for [`raft_core`]: what the runtime owns, kept thin around the protocol
//! core, and [`RaftNode`], the handle an async application holds.
//!
//! * [`RaftNode`]: a running node — [`propose`](RaftNode::propose),
//!   [`read`](RaftNode::read) (linearizable) and [`read_local`](RaftNode::read_local),
//!   membership ([`add_member`](RaftNode::add_member) learner-first,
//!   [`add_learner`](RaftNode::add_learner), [`promote`](RaftNode::promote),
//!   [`remove_member`](RaftNode::remove_member),
//!   [`change_membership`](RaftNode::change_membership) by joint consensus),
//!   [`transfer_leader`](RaftNode::transfer_leader), [`compact`](RaftNode::compact),
//!   [`status`](RaftNode::status), [`shutdown`](RaftNode::shutdown). Every request works on
//!   any node (followers forward to the leader) and has a deadline.
//! * [`Transport`]: how a node reaches its peers. [`TcpTransport`] (length-delimited frames,
//!   a cluster-id handshake, reconnection with backoff, bounded per-peer queues) and
//!   [`ChannelNetwork`] (in one process, with cut, heal and delay) come with the crate; the
//!   `testing` feature adds `FaultyTransport`, which cuts links of any transport.
//! * [`FileState`]: a durable [`LogStore`](raft_core::LogStore) in a data directory
//!   (segmented, checksummed log; atomic term and vote; snapshots streamed to and from files;
//!   crash recovery that refuses to start with less than it promised).
//! * [`TokioClock`]: tokio's timer for raft-core's stream driver, so a node sleeps until its
//!   next deadline; or [`ticks`] / [`with_ticks`], periodic
//!   [`Incoming::Tick`](raft_core::Incoming::Tick) events, for those who drive raft-core's stream
//!   themselves.
//!
//! `raft-kv` (the nested package `raft-std/kv`) is a replicated key-value service built on
//! these parts, with an HTTP API and Prometheus metrics.
//!
//! ## A three-node cluster in one process
//!
//! Your state machine, three nodes on the in-process channel transport, a write through a
//! follower, a linearizable read, a partition:
//!
//! ```
//! use raft_core::{
//!     Bytes, Entry, MemState, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
//! };
//! use raft_std::{ChannelNetwork, NodeConfig, RaftNode};
//!
//! /// Adds up the numbers it is sent.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     type Error = RestoreError;
//!     async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
//!         if let Payload::Command(command) = &entry.payload {
//!             let step = command[..].try_into().map(u64::from_le_bytes).unwrap_or(0);
//!             self.0 = self.0.saturating_add(step);
//!         }
//!         Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
//!     }
//!     async fn query(&mut self, _query: &[u8]) -> Result<Bytes, RestoreError> {
//!         Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
//!     }
//!     async fn build_snapshot(&mut self, _: &SnapshotMeta, out: &mut impl SnapshotWriter) -> Result<(), RestoreError> {
//!         Ok(out.write(&self.0.to_le_bytes()).await?)
//!     }
//!     async fn restore(&mut self, _: &SnapshotMeta, from: &mut impl SnapshotReader) -> Result<(), RestoreError> {
//!         let bytes = from.read_to_end().await?;
//!         self.0 = u64::from_le_bytes(bytes.try_into().map_err(|_| RestoreError("not 8 bytes".into()))?);
//!         Ok(())
//!     }
//! }
//!
//! fn total(answer: Bytes) -> u64 {
//!     u64::from_le_bytes(answer.as_ref().try_into().unwrap())
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = ChannelNetwork::new();
//! let mut nodes = Vec::new();
//! for id in 1..=3 {
//!     let mut config = NodeConfig::new(id);
//!     for peer in (1..=3).filter(|&peer| peer != id) {
//!         config.peers.insert(peer, format!("node-{peer}")); // channels need no address
//!     }
//!     let log = MemState::new(config.bootstrap()); // in memory; FileState keeps it on disk
//!     nodes.push(RaftNode::start(config, log, Counter::default(), network.join(id)).await?);
//! }
//!
//! // Any node takes writes; the first waits for the election.
//! nodes[2].propose(Bytes::copy_from_slice(&5u64.to_le_bytes())).await?;
//! assert_eq!(total(nodes[1].read(Bytes::new()).await?), 5);
//!
//! // Cut the leader off: the other two elect a new one and go on.
//! let leader = nodes[0].status().await?.diagnostics.leader.expect("a leader");
//! network.isolate(leader, (1..=3).filter(|&id| id != leader));
//! let majority: Vec<_> = nodes.iter().filter(|node| node.id() != leader).collect();
//! let applied = majority[0].propose(Bytes::copy_from_slice(&2u64.to_le_bytes())).await?;
//! assert_eq!(total(applied.response), 7);
//! network.heal();
//! for node in &nodes {
//!     node.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Across processes, give each node a [`FileState`] in its data directory instead of a
//! `MemState`, a [`TcpTransport`] instead of `network.join(id)`, and the peers' `host:port` in
//! [`NodeConfig::peers`].
//!
//! ## Bounded by default
//!
//! Every queue has a bound, and what a node keeps is bounded by its snapshot policy:
//!
//! | what | bound | knob |
//! | --- | --- | --- |
//! | log in memory (raft-core's window) | the entries after the last snapshot: about `snapshot_every` applied entries, plus those not yet applied | [`NodeConfig::raft`]`.snapshot_every`, default [`DEFAULT_SNAPSHOT_EVERY`] (10,000); or [`RaftNode::compact`] |
//! | log on disk | the same entries, plus the older entries of the oldest segment still needed (segments are deleted whole), so at most one [`StorageOptions::segment_bytes`] (64 MiB) more; 16 bytes of index in memory per entry on disk | [`StorageOptions::segment_bytes`] |
//! | start-up | reads the snapshot and the log segments left; applies again only the entries after the snapshot (the in-memory bound above) | the same |
//! | requests waiting for a node | 1,024 client requests, then 1,024 protocol inputs; a full queue makes callers wait up to their deadline | [`NodeConfig::request_timeout`] |
//! | TCP | per peer 1,024 frames or 64 MiB queued, 4,096 received frames waiting; beyond, frames are dropped and counted | [`TcpConfig`] |
//! | channels | 4,096 frames per inbox; beyond, dropped and counted | [`ChannelNetwork::with_inbox_len`] |
//!
//! A snapshot is streamed: the state machine writes it in chunks to a file, a lagging follower
//! receives it in chunks ([`raft_core::Config::snapshot_chunk_bytes`]) into a staging file,
//! and neither side holds it whole in memory (unless the state machine itself does). With `snapshot_every = 0` nothing is compacted unless
//! [`RaftNode::compact`] is called, and the log grows without bound.
//!
//! ## Metrics
//!
//! raft-std reports through the [`metrics`] facade: install a recorder (raft-kv uses
//! `metrics-exporter-prometheus`) **before** starting a node; without one, reporting costs
//! next to nothing. Every series carries the label `node`:
//!
//! | series | kind | what |
//! | --- | --- | --- |
//! | `raft_term` | gauge | the current term |
//! | `raft_role` | gauge | 0 follower, 1 pre-candidate, 2 candidate, 3 leader |
//! | `raft_leader_changes_total` | counter | times the node saw a new leader |
//! | `raft_commit_index`, `raft_applied_index` | gauge | commit and applied index (refreshed every second) |
//! | `raft_first_log_index`, `raft_last_log_index` | gauge | the log's extent (older entries are in the snapshot) |
//! | `raft_proposals_total{outcome="ok"\|"failed"}` | counter | proposals this node ran as leader |
//! | `raft_log_append_seconds`, `raft_log_fsync_seconds` | histogram | FileState's log appends (fsync included) and their fsyncs |
//! | `raft_snapshots_total` | counter | snapshots stored: taken here, or received from a leader |
//! | `raft_snapshot_seconds` | histogram | from a snapshot's first chunk to its installation (building or receiving it, storing it, compacting the log) |
//!
//! Log lines from a node, its storage and its transport carry the `tracing` span
//! `raft{node=<id>}`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod node;
mod storage;
mod ticks;
mod transport;

pub use node::{
    Access, Action, Authorizer, NodeConfig, RaftNode, RequestError, StartError, Status,
    DEFAULT_SNAPSHOT_EVERY,
};
pub use storage::{FileState, FsyncPolicy, StorageError, StorageOptions};
pub use ticks::{ticks, with_ticks, TokioClock, DEFAULT_TICK};
#[cfg(feature = "tls")]
pub use transport::{node_uri, TlsConfig, TlsError, TlsReloader, TlsTransport};
pub use transport::{
    ChannelNetwork, ChannelTransport, PeerLink, TcpConfig, TcpTransport, Transport, DEFAULT_CHANNEL_INBOX_LEN,
};
#[cfg(feature = "testing")]
pub use transport::{Faults, FaultyTransport};
