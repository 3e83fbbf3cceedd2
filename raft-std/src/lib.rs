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
//!   any node (followers forward to the leader) and has a deadline. With
//!   [`with_caller`](RaftNode::with_caller) a request carries the client's identity to the
//!   leader, where the application's [`Authorizer`] may refuse it.
//! * [`Transport`]: how a node reaches its peers. [`TcpTransport`] (length-delimited frames,
//!   a cluster-id handshake, reconnection with backoff, bounded queues and connections; it
//!   authenticates nobody), `TlsTransport` (cargo feature `tls`: the same over mutual TLS, each
//!   peer the node its certificate names, certificates reloaded without a restart) and
//!   [`ChannelNetwork`] (in one process, with cut, heal and delay) come with the crate; the
//!   `testing` feature adds `FaultyTransport`, which cuts links of any transport.
//! * [`FileState`]: a durable [`LogStore`](raft_core::LogStore) in a data directory
//!   (segmented, checksummed log; atomic term and vote; snapshots streamed to and from files;
//!   crash recovery that refuses to start with less than it promised).
//! * [`FileWatch`]: whether files something was loaded from changed, and a poll loop that
//!   loads them again (how `TlsTransport` reloads its certificates, and raft-service its
//!   HTTPS certificate and roles file).
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
//! `MemState`, a `TlsTransport` (or, on a network only the nodes reach, a [`TcpTransport`])
//! instead of `network.join(id)`, and the peers' `host:port` in [`NodeConfig::peers`].
//!
//! ## Who may say what
//!
//! The `from` of every frame is the peer as the transport authenticated it: with
//! `TlsTransport`, the node its certificate names (a handshake claiming another id is
//! refused); with [`TcpTransport`], the id its handshake claims — plain TCP authenticates
//! nobody, so whoever reaches the port and knows the cluster id can claim any known id. Either
//! way a connection is accepted only from a peer the node knows: one of
//! [`NodeConfig::peers`], or a member whose address a **committed** log entry recorded.
//! Committed membership alone says who the peers are and where they live.
//!
//! | frame | accepted from | what the node does, and why |
//! | --- | --- | --- |
//! | Raft message (votes, pre-votes, appends, snapshots, TimeoutNow, read index) | any known peer | hands it to raft-core as that peer's, which validates every field (terms within `MAX_TERM`, indexes within `MAX_INDEX`, the log's consistency) and applies Raft's rules about who may lead, vote and replicate; a node that is joining must take a leader it is not configured with yet |
//! | forwarded write ([`propose`](RaftNode::propose)), address record (first step of [`add_learner`](RaftNode::add_learner)), membership change, leadership transfer | a member of the current configuration | carried out if this node leads. First a proposal must decode as an application command or an address record of this version (one the log could not apply would stop every node); then the application's [`Authorizer`], if any, decides, seeing the original client's identity ([`Access::caller`]) and the forwarding member ([`Access::via`]). Address records and membership changes go through it like any write |
//! | forwarded request for the leader's diagnostics | a member | answered (replication progress, which `add_member` waits on): nothing secret, nothing changed |
//! | forwarded read | nobody | refused: a node serves reads itself (ReadIndex) and never forwards them |
//! | reply to a forwarded request | the leader that request went to | resolves the request; a reply to no request of ours, or from another node, is ignored |
//! | anything undecodable, or of another version | nobody | dropped and logged |
//!
//! A refused forward fails at the client with an error ([`RequestError::Denied`] for the
//! authorizer's refusals); nothing is applied. Without an authorizer every member's forwarded
//! requests are carried out, as a client of the leader's would be.
//!
//! ## Bounded by default
//!
//! Every queue has a bound, and what a node keeps is bounded by its snapshot policy:
//!
//! | what | bound | knob |
//! | --- | --- | --- |
//! | log in memory (raft-core's window) | the entries after the last snapshot: about `snapshot_every` applied entries or `snapshot_log_percent` % of the last snapshot's size, whichever is more, plus those not yet applied | [`NodeConfig::raft`]`.snapshot_every`, default [`DEFAULT_SNAPSHOT_EVERY`] (10,000), and `.snapshot_log_percent`, default [`DEFAULT_SNAPSHOT_LOG_PERCENT`] (25); or [`RaftNode::compact`] |
//! | log on disk | the same entries, plus the older entries of the oldest segment still needed (segments are deleted whole), so at most one [`StorageOptions::segment_bytes`] (64 MiB) more; 16 bytes of index in memory per entry on disk | [`StorageOptions::segment_bytes`] |
//! | start-up | reads the snapshot and the log segments left; applies again only the entries after the snapshot (the in-memory bound above) | the same |
//! | requests waiting for a node | 1,024 client requests, then 1,024 protocol inputs; a full queue makes callers wait up to their deadline | [`NodeConfig::request_timeout`] |
//! | TCP and TLS: sending | per peer 1,024 frames or 64 MiB queued; beyond, frames are dropped and counted | [`TcpConfig::queue_len`], [`TcpConfig::queue_bytes`] |
//! | TCP and TLS: receiving | 4,096 received frames waiting for the node; beyond, dropped and counted | [`TcpConfig::inbox_len`] |
//! | TCP and TLS: before authentication | frames of at most 4 KiB (a longer declared length closes the connection before anything is reserved); 2 s to finish the handshake, TLS included; the TLS layer's own buffers (rustls: a record, a handshake message) | [`TcpConfig::max_handshake_bytes`], [`TcpConfig::handshake_timeout`] |
//! | TCP and TLS: after authentication | frames of at most 16 MiB, so at most that buffered per connection | [`TcpConfig::max_frame_bytes`] |
//! | TCP and TLS: accepted connections | 64 at once, handshaking or established, one established per peer; more are closed at once. A failing `accept` (out of file descriptors) waits 10 ms to 1 s and tries again, never stopping the node | [`TcpConfig::max_connections`] |
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
mod reload;
mod storage;
mod ticks;
mod transport;

pub use node::{
    Access, Action, Authorizer, NodeConfig, RaftNode, RequestError, StartError, Status,
    DEFAULT_SNAPSHOT_EVERY, DEFAULT_SNAPSHOT_LOG_PERCENT,
};
pub use reload::FileWatch;
pub use storage::{FileState, FsyncPolicy, StorageError, StorageOptions};
pub use ticks::{ticks, with_ticks, TokioClock, DEFAULT_TICK};
#[cfg(feature = "tls")]
pub use transport::{node_uri, TlsConfig, TlsError, TlsReloader, TlsTransport};
pub use transport::{
    ChannelNetwork, ChannelTransport, PeerLink, TcpConfig, TcpTransport, Transport, DEFAULT_CHANNEL_INBOX_LEN,
};
#[cfg(feature = "testing")]
pub use transport::{Faults, FaultyTransport};
