//! `raft-tasks`: a replicated task runner on Raft. Clients submit commands over a JSON HTTP
//! API; worker processes lease them, run them and report their results, which are committed
//! only under a lease that is still current; a task whose worker stops renewing its lease goes
//! back to the queue.
//!
//! ```text
//! raft-tasks cluster up --nodes 3                  # a local 3-node cluster (HTTPS, certificates made)
//! raft-tasks worker --cluster https://localhost:8001,https://localhost:8002,https://localhost:8003 \
//!     --name w1 --slots 4 --ca raft-tasks-cluster/certs/ca.pem \
//!     --cert raft-tasks-cluster/certs/client-worker.pem --key raft-tasks-cluster/certs/client-worker-key.pem
//! ```
//!
//! See `raft-std/tasks/README.md` for the HTTP API and the design: `machine` (the state
//! machine: queue, leases and fencing epochs, results), `clock` (cluster time, proposed by the
//! leader), `http` (the API), `worker` (the worker process).

mod cli;
mod clock;
mod http;
mod machine;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use raft_service::auth::Role;
use raft_service::cluster::Program;
use raft_service::node::Failure;

use crate::cli::{Cli, TasksCommand};
use crate::machine::TaskMachine;

const PROGRAM: Program = Program {
    name: "raft-tasks",
    examples: &[
        ("-X POST -H 'content-type: application/json'", "/tasks -d '{\"command\": [\"echo\", \"hello\"]}'"),
        ("", "/tasks"),
        ("", "/workers"),
    ],
    clients: &[("worker", Role::Worker)],
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // One thread: children are tied to the thread that started them (PR_SET_PDEATHSIG).
        Some(TasksCommand::Worker(args)) => runtime(false).and_then(|runtime| {
            raft_service::node::init_logging();
            runtime.block_on(worker::run(args))
        }),
        Some(TasksCommand::Shared(command)) => {
            runtime(true).and_then(|runtime| runtime.block_on(raft_service::run_command(command, &PROGRAM)))
        }
        None => runtime(true).and_then(|runtime| runtime.block_on(serve(cli))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raft-tasks: {error}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, Failure> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    Ok(builder.enable_all().build()?)
}

/// Runs one node until SIGINT or SIGTERM (clean exit) or a storage failure (exit 1).
async fn serve(cli: Cli) -> Result<(), Failure> {
    raft_service::node::init_logging();
    let mut plan = cli.node.plan(PROGRAM.name)?;
    plan.proposal_role = http::role_needed;
    let machine = TaskMachine::default();
    let summary = machine.summary();
    let settings = Arc::new(cli.tasks);
    raft_service::node::run(plan, machine, |node| {
        let every = Duration::from_millis(settings.lease_check_ms);
        tokio::spawn(clock::run(node.raft.clone(), summary.clone(), every, settings.retention()));
        http::router(node.raft.clone(), summary, settings)
    })
    .await
}
