//! # raft-embassy
//!
//! Runs [`raft_core`] nodes on [embassy](https://embassy.dev): `#![no_std]`, on any
//! microcontroller with a heap. The adapter supplies what the runtime owns and stays thin:
//!
//! * **Time**: [`TickExt::with_ticks`] merges an embassy-time [`Ticker`](embassy_time::Ticker)
//!   into a node's incoming stream as [`Incoming::Tick`](raft_core::Incoming::Tick) events
//!   (embassy-time needs its generic timer queue: see [`TickExt`]).
//! * **Storage**: [`RamState`] is raft-core's in-memory [`LogStore`](raft_core::LogStore) over a
//!   fixed-capacity [`Window`] of entries, compacted by snapshots; it reports
//!   [`MemStateError::Full`](raft_core::MemStateError::Full) rather than growing or panicking.
//!   The application's [`StateMachine`](raft_core::StateMachine) is separate.
//! * **Transport**: an [`Envelope`] is the postcard wire format. [`LocalNetwork`] connects nodes
//!   of one firmware through embassy-sync channels (with links that can be cut, for tests and
//!   demos); [`FrameWriter`] and [`FrameReader`] carry CRC-checked, COBS-delimited frames over
//!   any `embedded-io-async` byte stream (UART, radio).
//!
//! A node is then a few lines in an embassy task:
//!
//! ```no_run
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use futures::StreamExt;
//! use raft_core::{Bytes, Membership, Outgoing, RaftStreamExt};
//! use raft_embassy::{LocalNetwork, RamState, TickExt, DEFAULT_TICK};
//!
//! static NETWORK: LocalNetwork<CriticalSectionRawMutex, 3, 16> = LocalNetwork::new([1, 2, 3]);
//!
//! async fn node(id: u64) {
//!     let log = RamState::<64>::with_buffer(Membership::new([1, 2, 3]));
//!     let machine: Vec<Bytes> = Vec::new(); // the application's state machine
//!     let inputs = NETWORK.inbox(id).unwrap().with_ticks(DEFAULT_TICK);
//!     let mut outputs = inputs.into_raft_events(id, (log, machine));
//!     while let Some(Ok(output)) = outputs.next().await {
//!         match output {
//!             Outgoing::Send { to, message } => {
//!                 let _lost_frames_are_retransmitted = NETWORK.send(id, to, message);
//!             }
//!             Outgoing::Event(event) => { /* role changes, committed proposals, reads … */ }
//!         }
//!     }
//! }
//! ```
//!
//! The crate's `examples/firmware` runs three such nodes on an emulated Cortex-M4F (QEMU
//! `mps2-an386`); see the README for how to build and run it.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

mod envelope;
mod network;
mod serial;
mod store;
mod ticks;

pub use envelope::{Envelope, FrameError};
pub use network::{Inbox, LocalNetwork, NetworkStats, Undelivered};
pub use serial::{FrameReader, FrameWriter, SerialError};
pub use store::{RamState, Window};
pub use ticks::{TickExt, WithTicks, DEFAULT_TICK};
