//! # tuitest
//!
//! An interactive REPL on a simulated [`raft_core`] cluster: a person explores how the
//! cluster behaves under partitions, crashes and membership changes, and turns what they
//! found into a test.
//!
//! * The cluster is testkit's [`Simulator`](testkit::Simulator), in virtual time: time passes
//!   only when a command lets it (`tick`, `run 500ms`, a request waiting for its outcome), or
//!   with `auto on`, as the wall clock does.
//! * Commands: testkit's scenario language ([`testkit::Command`]), read by its one parser —
//!   the original REPL's commands among them (`addnode first`, `removenode`, `connect`,
//!   `disconnect`, `pushpayload`, `diagnostics`, `queuelen`, `clearqueue`), with nodes called
//!   by id or by name — plus the REPL's own: `help`, `save`, `load`, `auto`, `seed`, `reset`,
//!   `quit`. A [`Shell`] runs them on a [`testkit::Session`] and records them as typed.
//! * After each command, role, term and leader changes are printed as events, stamped with
//!   the virtual time they happened; `status` shows the cluster at a glance.
//! * `save FILE.rs` writes the recording as a `seq_test!` test that replays the session
//!   exactly and asserts where it ended: every line of it works at the prompt too.
//!
//! `cargo run -p tuitest` starts it; see the crate README for a walkthrough.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod batch;
mod catalog;
mod cluster_line;
mod helper;
mod input;
mod observer;
mod pacer;
mod recording;
mod repl;
mod scenario;
mod shell;
mod style;
mod table;

pub use batch::run_lines;
pub use repl::run_interactive;
pub use shell::{Reply, Settings, Shell};
pub use style::Style;
