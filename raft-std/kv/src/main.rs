//! `raft-kv`: a replicated key-value store on Raft with a JSON HTTP API.
//!
//! ```text
//! raft-kv --id 1 --listen 127.0.0.1:7001 --http 127.0.0.1:8001 \
//!         --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data ./data/1
//! raft-kv cluster up --nodes 3        # or: a local 3-node cluster in one command
//! ```
//!
//! See `raft-std/kv/README.md` for the HTTP API.

mod api_error;
mod cli;
mod cluster;
mod http;
mod machine;
mod metrics;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use raft_std::{Faults, FaultyTransport, FileState, RaftNode, TcpTransport};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, NodeArgs, NodePlan};
use crate::machine::KvStore;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Cluster(command)) => cluster::run(command).await,
        None => serve(cli.node).await,
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
async fn serve(args: NodeArgs) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let NodePlan { http, config, data, storage, tcp, fault_injection } = args.plan()?;
    let metrics = metrics::install()?;
    let listen = tcp.listen;
    let transport = TcpTransport::bind(config.id, tcp)
        .await
        .map_err(|e| format!("cannot listen for peers on {listen}: {e}"))?;
    let raft = transport.local_addr();
    // Without --fault-injection nobody holds the handle, so no link is ever cut.
    let faults = Faults::default();
    let transport = FaultyTransport::new(config.id, transport, faults.clone());
    let bootstrap = config.bootstrap();
    let log = tokio::task::spawn_blocking(move || FileState::open(data, bootstrap, storage)).await??;
    log.label_metrics(config.id)?;
    let node = RaftNode::start(config, log, KvStore::default(), transport).await?;
    let listener = TcpListener::bind(http).await.map_err(|e| format!("cannot serve HTTP on {http}: {e}"))?;
    tracing::info!(%http, %raft, "serving the HTTP API");
    let faults = fault_injection.then_some(faults);
    let server = axum::serve(listener, http::router(node.clone(), metrics, faults))
        .with_graceful_shutdown(termination());
    let outcome: Result<(), Box<dyn std::error::Error>> = tokio::select! {
        served = server => served.map_err(Into::into),
        reason = node.stopped() => Err(reason.into()),
    };
    node.shutdown().await;
    outcome
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("signal received: shutting down");
}
