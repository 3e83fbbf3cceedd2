//! # raft-service
//!
//! What every service built on [`raft_std`] shares, so that each one (the key-value store
//! `raft-kv`, the task runner) has the same edge, hardened once:
//!
//! * [`http::serve`]: HTTP or HTTPS with bounds ([`http::Limits`]): header, body and idle
//!   timeouts, a cap on concurrent connections that holds the rest in the listen backlog,
//!   a maximum body size, and an accept loop that backs off on `EMFILE` instead of dying.
//! * [`tls`]: rustls server configuration for HTTPS, client certificates verified against the
//!   cluster's CA, and an HTTPS client for tools and tests.
//! * [`reload`]: the TLS material and the roles file are read again when they change, without
//!   a restart ([`reload::Reloading`]).
//! * [`auth`]: client identities (certificate or bearer token) mapped to the roles `read`,
//!   `write`, `admin` and `worker` (for a service's worker processes) by a roles file,
//!   enforced by an axum middleware.
//! * [`certs`]: a CA, node certificates (URI SAN `raft://<cluster>/node/<id>`, DNS
//!   `localhost`, IP `127.0.0.1`) and client certificates, made with rcgen.
//! * [`cli`]: the node's command line ([`cli::NodeArgs`]) and the `cluster` and `certs`
//!   subcommands ([`cli::Command`]), run by [`run_command`].
//! * [`node::run`]: a node from its command line to its shutdown; [`routes`]: `/metrics`, the
//!   admin API (membership changes that keep a reachable quorum, leadership transfer,
//!   compaction, fault injection) and the common `/status` fields.
//! * [`ApiError`]: JSON errors with stable codes, which say what is wrong without echoing
//!   what the client sent.
//! * `test_support` (cargo feature `test-support`): a harness that runs a service's real
//!   processes on loopback for its integration tests.
//!
//! A service adds its own routes and state machine:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use clap::Parser;
//! use raft_core::Bytes;
//!
//! #[derive(Parser)]
//! #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Option<raft_service::cli::Command>,
//!     #[command(flatten)]
//!     node: raft_service::cli::NodeArgs,
//! }
//!
//! const PROGRAM: raft_service::cluster::Program =
//!     raft_service::cluster::Program { name: "echo", examples: &[("", "/hello")], clients: &[] };
//!
//! #[tokio::main]
//! async fn main() -> Result<(), raft_service::node::Failure> {
//!     let cli = Cli::parse();
//!     if let Some(command) = cli.command {
//!         return raft_service::run_command(command, &PROGRAM).await;
//!     }
//!     raft_service::node::init_logging();
//!     let plan = cli.node.plan(PROGRAM.name)?;
//!     // `Vec<Bytes>` is a state machine that records every command.
//!     raft_service::node::run(plan, Vec::<Bytes>::new(), |_node| {
//!         Router::new().route("/hello", get(|| async { "hello" }))
//!     })
//!     .await
//! }
//! ```

pub mod api_error;
pub mod auth;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod consistency;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod reload;
pub mod routes;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tls;

pub use api_error::ApiError;

/// Runs one of the shared subcommands of `program`.
pub async fn run_command(command: cli::Command, program: &cluster::Program) -> Result<(), node::Failure> {
    match command {
        cli::Command::Cluster(command) => cluster::run(command, program).await,
        cli::Command::Certs(args) => Ok(certs::run(args, program.name)?),
    }
}
