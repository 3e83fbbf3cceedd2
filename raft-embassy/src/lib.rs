//! # raft-embassy
//!
//! Runs [`raft_core`] nodes on [embassy](https://embassy.dev): `#![no_std]` with a heap, built
//! in CI for Cortex-M0+ (`thumbv6m-none-eabi`, with the `portable-atomic` feature), Cortex-M4F
//! (`thumbv7em-none-eabihf`), Cortex-M33 (`thumbv8m.main-none-eabihf`) and RISC-V without
//! atomics (`riscv32imc-unknown-none-elf`, with `portable-atomic`). The adapter supplies what
//! the runtime owns and stays thin:
//!
//! * **Time**: [`EmbassyClock`] lets a node sleep until its next deadline; or
//!   [`TickExt::with_ticks`] merges an embassy-time [`Ticker`](embassy_time::Ticker)
//!   into a node's incoming stream as [`Incoming::Tick`](raft_core::Incoming::Tick) events
//!   (embassy-time needs its generic timer queue: see [`TickExt`]).
//! * **Storage**: a node's storage is a raft-core [`LogStore`](raft_core::LogStore) (term, vote,
//!   log, snapshot bytes) and the application's [`StateMachine`](raft_core::StateMachine).
//!   [`FlashLog`] is a log store on any NOR flash (`embedded-storage`), crash-safe at every
//!   byte. [`RamState`] is raft-core's in-memory log store over a fixed-capacity [`Window`] of
//!   entries, compacted by snapshots; it reports
//!   [`MemStateError::Full`](raft_core::MemStateError::Full) rather than growing or panicking.
//! * **Transport**: a [`WireMessage`] (a Raft message with its sender and recipient) is the postcard wire format. [`LocalNetwork`] connects nodes
//!   of one firmware through embassy-sync channels (with links that can be cut, for tests and
//!   demos); [`FrameWriter`] and [`FrameReader`] carry CRC-checked, COBS-delimited frames over
//!   any `embedded-io-async` byte stream (UART, radio). With the `udp` feature, `UdpTransport`
//!   carries them as UDP datagrams over embassy-net, with the `auth` feature authenticated
//!   by a pre-shared key. [`check_frames`] and [`small_frame_config`] keep raft-core's
//!   messages within a transport's frames.
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

#[cfg(feature = "auth")]
mod auth;
mod budget;
mod flash;
mod network;
mod serial;
#[cfg(test)]
mod sim_flash;
mod store;
mod ticks;
#[cfg(feature = "udp")]
mod udp;
mod wire;

#[cfg(feature = "auth")]
pub use auth::{FrameKey, TAG_BYTES};
pub use budget::{check_frames, small_frame_config, FrameBudget, FrameBudgetError, Framing};
pub use flash::{FlashConfigError, FlashLog, FlashLogConfig, FlashLogError};
pub use network::{Inbox, LocalNetwork, NetworkStats, Undelivered};
pub use serial::{FrameReader, FrameWriter, SerialError};
pub use store::{RamState, Window};
pub use ticks::{EmbassyClock, TickExt, WithTicks, DEFAULT_TICK};
#[cfg(feature = "udp")]
pub use udp::{UdpSetupError, UdpStats, UdpTransport, SMALL_UDP_FRAME};
pub use wire::{FrameError, WireMessage};
