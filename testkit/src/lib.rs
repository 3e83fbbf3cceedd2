//! # testkit
//!
//! A deterministic simulator for [`raft_core`] clusters, the `seq_test!` scenario language,
//! and the checks that hunt for protocol bugs.
//!
//! * [`Simulator`] runs real [`raft_core::Node`]s in virtual time over a faulty [`Network`],
//!   with crashes that lose whatever is not durable ([`raft_core::MemState`], [`CrashPoint`]) and clients
//!   whose operations are recorded in a [`History`]. Every random choice comes from one seed.
//! * After every event it checks the Raft safety properties ([`Rule`]); at the end of a run,
//!   that acknowledged writes survive and that the client history is linearizable
//!   ([`linearizability`]).
//! * [`Command`] is a small textual command language, with one parser for tests and the REPL
//!   (nodes by id, or by the [`Names`] `addnode` gives them); [`Session`] runs it, and
//!   [`seq_test!`] turns a scenario into a test. The REPL (`tuitest`) speaks the same
//!   language, and saves a session as a test of it.
//! * [`chaos`] drives randomized runs with faults, crashes and membership churn; a failing
//!   seed prints the command that replays it.
//!
//! ```
//! use testkit::{ClusterOptions, Simulator};
//!
//! let mut sim = Simulator::new(ClusterOptions { seed: 1, ..ClusterOptions::new([1, 2, 3]) }).unwrap();
//! sim.advance(10 * 60 * 1000).unwrap(); // ten simulated minutes
//! let leader = sim.leader().expect("an elected leader");
//! let write = sim.propose(leader, "x=1").unwrap();
//! sim.advance(100).unwrap();
//! let read = sim.read(leader, "x").unwrap();
//! sim.advance(100).unwrap();
//! assert_eq!(sim.history().get(read).unwrap().outcome, testkit::OpOutcome::Value("1".into()));
//! assert!(sim.history().get(write).unwrap().outcome.is_done());
//! sim.check_linearizability().unwrap();
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod chaos;
mod command;
pub mod conformance;
mod counter;
mod digest;
mod error;
mod expect;
mod history;
mod invariants;
mod kv;
pub mod linearizability;
mod log_view;
mod macros;
mod names;
mod network;
mod node;
mod options;
mod parse;
mod resolve;
mod rng;
mod rule;
mod session;
mod simulator;
mod status;
mod suggest;
mod trace;

pub use command::{
    Cmp, Command, Duration, EntrySpec, Expectation, Field, MemberSet, NodeRef, Nodes, OutcomeSpec, StatusView,
};
pub use counter::CommandCounter;
pub use error::SimError;
pub use history::{History, OpKind, OpOutcome, Operation, Stamp};
pub use kv::{split_command, KvStore};
pub use names::Names;
pub use network::{CutMode, InFlight, LinkFaults, MessageFilter, Network};
pub use options::ClusterOptions;
pub use parse::{split_script, ParseError};
/// Where inside a `Ready` an armed crash lands: raft-core's executor checkpoints.
pub use raft_core::Checkpoint as CrashPoint;
pub use rng::SimRng;
pub use rule::{Rule, Violation};
pub use session::{Observe, ScriptFailure, Session};
pub use simulator::Simulator;
pub use status::StatusTable;
pub use suggest::closest;
pub use trace::{Trace, TraceEvent, TraceLine};
