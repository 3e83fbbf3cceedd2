//! [`run`]: one node of a service, from its command line to its shutdown.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use axum::Router;
use raft_core::StateMachine;
use raft_std::{
    Faults, FaultyTransport, FileState, RaftNode, TcpTransport, TlsConfig, TlsTransport, Transport,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing_subscriber::EnvFilter;

use crate::auth::{self, Access, RolesFile};
use crate::cli::{NodePlan, Security};
use crate::routes::{self, Node};
use crate::tls::ServerTls;
use crate::{limits, metrics};

/// An error that ends the program, with a message for the operator.
pub type Failure = Box<dyn std::error::Error>;

/// Logs to stderr, at the level `RUST_LOG` sets (`info` by default).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Runs one node until SIGINT or SIGTERM (a clean exit) or a storage failure (an error):
/// raises the open-file limit, reads the TLS material and roles, starts the Raft node on its
/// data directory with `machine`, and serves `app` (the service's routes, given the node)
/// merged with the [shared routes](routes::shared), behind authentication, within the HTTP
/// limits. Call [`init_logging`] first.
///
/// The Raft port is mutual TLS ([`TlsTransport`]) with the node's certificate, whose URI SAN
/// names the node and the cluster, and the CA of `--tls-ca`; with `--insecure`, plain TCP.
/// The certificate, key and CA files (for both ports) and the roles file are reloaded when
/// they change, without a restart (looked at every `--tls-reload-ms`).
pub async fn run<M>(plan: NodePlan, machine: M, app: impl FnOnce(&Node) -> Router) -> Result<(), Failure>
where
    M: StateMachine + 'static,
{
    let listen = plan.tcp.listen;
    let cannot_listen = |e: &dyn std::fmt::Display| format!("cannot listen for peers on {listen}: {e}");
    match &plan.security {
        Security::Insecure => {
            tracing::warn!(
                "--insecure: peers talk plain TCP; any host that reaches the Raft port can pose as a node"
            );
            let transport =
                TcpTransport::bind(plan.config.id, plan.tcp.clone()).await.map_err(|e| cannot_listen(&e))?;
            let raft = transport.local_addr();
            serve(plan, raft, transport, machine, app).await
        }
        Security::Tls { files, reload_every, .. } => {
            let ca = files.client_ca.clone().ok_or(
                "the Raft port needs --tls-ca, the CA that signs the nodes' certificates (mutual TLS between nodes)",
            )?;
            let mut config =
                TlsConfig::new(plan.tcp.cluster.clone(), listen, ca, files.cert.clone(), files.key.clone());
            config.tcp = plan.tcp.clone(); // every limit from the command line
            config.reload_every = *reload_every;

            let transport =
                TlsTransport::bind(plan.config.id, config).await.map_err(|e| cannot_listen(&e))?;
            let raft = transport.local_addr();
            serve(plan, raft, transport, machine, app).await
        }
    }
}

/// [`run`], once the Raft port is bound.
async fn serve<M, T>(
    plan: NodePlan,
    raft: std::net::SocketAddr,
    transport: T,
    machine: M,
    app: impl FnOnce(&Node) -> Router,
) -> Result<(), Failure>
where
    M: StateMachine + 'static,
    T: Transport,
{
    let NodePlan {
        http,
        mut config,
        data,
        storage,
        tcp: _,
        fault_injection,
        mut limits,
        security,
        proposal_role,
    } = plan;
    let open_files = limits::raise_open_file_limit();
    limits.max_connections = limits::connection_cap(limits.max_connections, open_files);
    // Reload the TLS material and the roles file as long as the node serves.
    let mut watchers = JoinSet::new();
    let (tls, access) = match &security {
        Security::Insecure => {
            tracing::warn!(
                %http,
                "--insecure: serving plain HTTP without authentication; anyone who can reach this address can \
                 read, write and change the cluster's membership"
            );
            (None, Access::Open)
        }
        Security::Tls { files, roles, reload_every } => {
            let roles = Arc::new(RolesFile::open(roles)?);
            // The leader checks forwarded requests against its own roles file too.
            config.authorizer = Some(Arc::clone(&roles).authorizer(proposal_role));
            let tls = Arc::new(ServerTls::open(files)?);
            if !reload_every.is_zero() {
                watchers.spawn(Arc::clone(&tls).watch(*reload_every));
                watchers.spawn(Arc::clone(&roles).watch(*reload_every));
            }
            (Some(tls), Access::Roles(roles))
        }
    };
    let metrics = metrics::install()?;
    // Without --fault-injection nobody holds the handle, so no link is ever cut.
    let faults = Faults::default();
    let transport = FaultyTransport::new(config.id, transport, faults.clone());
    let bootstrap = config.bootstrap();
    let log = tokio::task::spawn_blocking(move || FileState::open(data, bootstrap, storage)).await??;
    log.label_metrics(config.id)?;
    let raft_node = RaftNode::start(config, log, machine, transport).await?;
    let node = Node { raft: raft_node.clone(), metrics, faults: fault_injection.then_some(faults) };
    let router = routes::with_fallbacks(app(&node).merge(routes::shared(node)))
        .layer(axum::middleware::from_fn_with_state(access, auth::authorize));
    let listener = TcpListener::bind(http).await.map_err(|e| format!("cannot serve HTTP on {http}: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%http, %raft, scheme, max_connections = limits.max_connections, "serving the HTTP API");
    let server = crate::http::serve(listener, router, limits, tls, termination());
    let outcome: Result<(), Failure> = tokio::select! {
        () = server => Ok(()),
        reason = raft_node.stopped() => Err(reason.into()),
    };
    raft_node.shutdown().await;
    watchers.abort_all();
    outcome
}

/// Resolves on SIGINT or SIGTERM.
fn termination() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    async {
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
}
