//! `raft-kv`: a replicated key-value store on Raft with a JSON HTTP API.
//!
//! ```text
//! raft-kv certs --dir certs --node 1=kv-1.example --node 2=kv-2.example --node 3=kv-3.example
//! raft-kv --id 1 --listen 127.0.0.1:7001 --http 127.0.0.1:8001 \
//!         --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data ./data/1 \
//!         --tls-cert certs/node-1.pem --tls-key certs/node-1-key.pem --tls-ca certs/ca.pem --roles certs/roles
//! raft-kv cluster up --nodes 3        # or: a local 3-node cluster in one command
//! ```
//!
//! See `raft-std/kv/README.md` for the HTTP API.

mod cli;
mod http;
mod machine;

use std::process::ExitCode;

use clap::Parser;
use raft_service::cluster::Program;
use raft_service::node::Failure;

use crate::cli::Cli;
use crate::machine::KvStore;

const PROGRAM: Program = Program {
    name: "raft-kv",
    examples: &[("-X PUT", "/kv/hello -d world"), ("", "/kv/hello")],
    clients: &[],
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(command) => raft_service::run_command(command, &PROGRAM).await,
        None => serve(cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raft-kv: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one node until SIGINT or SIGTERM (clean exit) or a storage failure (exit 1).
async fn serve(cli: Cli) -> Result<(), Failure> {
    raft_service::node::init_logging();
    let plan = cli.node.plan(PROGRAM.name)?;
    let quota = cli.kv.quota_bytes;
    raft_service::node::run(plan, KvStore::default(), |node| http::router(node.raft.clone(), quota)).await
}
