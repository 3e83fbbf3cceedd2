//! `cluster up|status|down`: a local cluster on loopback ports, so a new user has a working
//! cluster with one command.
//!
//! `up` makes a CA, a certificate per node, an admin client certificate and a roles file in
//! `<dir>/certs` (unless `--insecure`, or they are already there), starts one background
//! process of the program per node (its own process group, so closing the terminal does not
//! stop it) serving HTTPS, and records them in `<dir>/cluster.json`; each node keeps its data
//! in `<dir>/<id>/` and logs to `<dir>/<id>.log`.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use raft_core::NodeId;
use rustix::process::{kill_process, test_kill_process, Pid, Signal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Role;
use crate::certs::{self, ClientName, NodeHosts, Plan};
use crate::cli::{ClusterCommand, ClusterDown, ClusterUp};
use crate::node::Failure;

const STATE_FILE: &str = "cluster.json";
const CERTS_DIR: &str = "certs";

/// The program whose nodes `cluster` runs.
pub struct Program {
    /// Its name: the default cluster id, and the start of the default directory's name.
    pub name: &'static str,
    /// What to try once the cluster is up: paths and curl options after the node's base URL,
    /// e.g. `("-X PUT", "/kv/hello -d world")`.
    pub examples: &'static [(&'static str, &'static str)],
    /// Client certificates `up` makes besides the admin's, with their roles (a task runner's
    /// workers, say): `<dir>/certs/client-<name>.pem` and its key.
    pub clients: &'static [(&'static str, Role)],
}

/// What `up` started.
#[derive(Serialize, Deserialize)]
struct ClusterState {
    nodes: Vec<LocalNode>,
    /// Whether the nodes serve HTTPS with the certificates in `<dir>/certs`.
    #[serde(default)]
    tls: bool,
}

#[derive(Serialize, Deserialize)]
struct LocalNode {
    id: NodeId,
    raft: SocketAddr,
    http: SocketAddr,
    pid: i32,
}

/// Runs a `cluster` subcommand.
pub async fn run(command: ClusterCommand, program: &Program) -> Result<(), Failure> {
    let default_dir = || PathBuf::from(format!("{}-cluster", program.name));
    match command {
        ClusterCommand::Up(args) => {
            let dir = args.dir.dir.clone().unwrap_or_else(default_dir);
            up(args, dir, program).await
        }
        ClusterCommand::Status(args) => status(&args.dir.unwrap_or_else(default_dir)).await,
        ClusterCommand::Down(args) => {
            let dir = args.dir.dir.clone().unwrap_or_else(default_dir);
            down(args, dir).await
        }
    }
}

async fn up(args: ClusterUp, dir: PathBuf, program: &Program) -> Result<(), Failure> {
    if let Some(state) = read_state(&dir)? {
        if state.nodes.iter().any(|node| alive(node.pid)) {
            return Err(format!(
                "a cluster is already running in {}; stop it with `{} cluster down --dir {0}`",
                dir.display(),
                program.name
            )
            .into());
        }
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut nodes = plan(&args)?;
    let tls = !args.insecure;
    let certs = dir.join(CERTS_DIR);
    if tls {
        make_certificates(&certs, program, &nodes)?;
    }
    let exe = std::env::current_exe()?;
    for index in 0..nodes.len() {
        let pid = spawn(&exe, &dir, &nodes[index], &nodes, tls.then_some(certs.as_path()), &args.node_args)?;
        nodes[index].pid = pid;
    }
    let state = ClusterState { nodes, tls };
    write_state(&dir, &state)?;
    say(format_args!("started {} nodes in {}; waiting for a leader…", args.nodes, dir.display()))?;
    let client = client(&dir, tls)?;
    for _ in 0..100 {
        let reports = reports(&client, &state).await;
        if reports.iter().any(|(_, report)| report.as_ref().is_some_and(|r| r["role"] == "Leader")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    print_table(&state, &reports(&client, &state).await)?;
    for node in state.nodes.iter().filter(|node| !alive(node.pid)) {
        say(format_args!("node {} exited; see {}", node.id, log_path(&dir, node.id).display()))?;
    }
    let (scheme, options) = if tls {
        let (cert, key) = certs::admin_client(&certs);
        let ca = certs::ca(&certs);
        ("https", format!("--cacert {} --cert {} --key {}", ca.display(), cert.display(), key.display()))
    } else {
        ("http", String::new())
    };
    let port = state.nodes[0].http.port();
    say(format_args!("\ntry:"))?;
    for (before, after) in program.examples {
        let url = format!("{scheme}://localhost:{port}{after}");
        let words: Vec<&str> =
            [options.as_str(), before, &url].into_iter().filter(|w| !w.is_empty()).collect();
        say(format_args!("  curl {}", words.join(" ")))?;
    }
    say(format_args!(
        "  {1} cluster status --dir {0}\n  {1} cluster down --dir {0}",
        dir.display(),
        program.name
    ))?;
    Ok(())
}

/// Makes the local cluster's certificates, unless an earlier `up` did.
fn make_certificates(certs: &Path, program: &Program, nodes: &[LocalNode]) -> Result<(), Failure> {
    let missing = nodes.iter().any(|node| !certs::node_cert(certs, node.id).exists())
        || !certs::admin_client(certs).0.exists()
        || program.clients.iter().any(|(name, _)| !certs::client(certs, name).0.exists());
    if missing {
        let clients = program.clients.iter().map(|&(name, role)| ClientName { name: name.into(), role });
        let plan = Plan {
            dir: certs.to_path_buf(),
            cluster: program.name.to_string(),
            nodes: nodes.iter().map(|node| NodeHosts { id: node.id, hosts: Vec::new() }).collect(),
            clients: clients.collect(),
            days: 365,
        };
        certs::generate(&plan)?;
        let others: Vec<String> = program
            .clients
            .iter()
            .map(|(name, role)| format!(", a {role} client certificate ({name})"))
            .collect();
        say(format_args!(
            "made a CA, node certificates, an admin client certificate{} in {}",
            others.concat(),
            certs.display()
        ))?;
    }
    Ok(())
}

/// The nodes' addresses: consecutive ports from the base ports.
fn plan(args: &ClusterUp) -> Result<Vec<LocalNode>, Failure> {
    let port = |base: u16, id: u64| -> Result<SocketAddr, Failure> {
        let port = u16::try_from(u64::from(base) + id - 1).map_err(|_| "port numbers run past 65535")?;
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    };
    (1..=args.nodes)
        .map(|id| {
            Ok(LocalNode {
                id,
                raft: port(args.base_port, id)?,
                http: port(args.http_base_port, id)?,
                pid: 0,
            })
        })
        .collect()
}

/// Starts `node` in the background, logging to `<dir>/<id>.log`; returns its pid.
fn spawn(
    exe: &Path,
    dir: &Path,
    node: &LocalNode,
    all: &[LocalNode],
    certs: Option<&Path>,
    extra: &[String],
) -> Result<i32, Failure> {
    let LocalNode { id, raft, http, .. } = *node;
    let peers: Vec<String> =
        all.iter().filter(|other| other.id != id).map(|p| format!("{}={}", p.id, p.raft)).collect();
    let log = fs::File::create(log_path(dir, id))?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["--id", &id.to_string(), "--listen", &raft.to_string(), "--http", &http.to_string()])
        .args(["--data", &dir.join(id.to_string()).to_string_lossy()]);
    if !peers.is_empty() {
        command.args(["--peers", &peers.join(",")]);
    }
    match certs {
        Some(certs) => {
            command.args(certs::node_options(certs, id));
        }
        None => {
            command.arg("--insecure");
        }
    }
    let child = command
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0) // not stopped by the terminal's SIGHUP
        .spawn()
        .map_err(|e| format!("cannot start node {id}: {e}"))?;
    Ok(i32::try_from(child.id())?)
}

async fn status(dir: &Path) -> Result<(), Failure> {
    let state = read_state(dir)?
        .ok_or_else(|| format!("no cluster in {} (start one with `cluster up`)", dir.display()))?;
    print_table(&state, &reports(&client(dir, state.tls)?, &state).await)?;
    Ok(())
}

async fn down(args: ClusterDown, dir: PathBuf) -> Result<(), Failure> {
    let Some(state) = read_state(&dir)? else {
        say(format_args!("no cluster in {}", dir.display()))?;
        return Ok(());
    };
    for node in state.nodes.iter().filter(|node| alive(node.pid)) {
        signal(node.pid, Signal::TERM);
    }
    for _ in 0..50 {
        if !state.nodes.iter().any(|node| alive(node.pid)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in state.nodes.iter().filter(|node| alive(node.pid)) {
        say(format_args!("node {} did not stop within 5 s; killing it", node.id))?;
        signal(node.pid, Signal::KILL);
    }
    fs::remove_file(dir.join(STATE_FILE))?;
    if args.purge {
        fs::remove_dir_all(&dir)?;
        say(format_args!("stopped {} nodes and deleted {}", state.nodes.len(), dir.display()))?;
    } else {
        say(format_args!("stopped {} nodes; their data stays in {}", state.nodes.len(), dir.display()))?;
    }
    Ok(())
}

/// Prints a line; a closed stdout (`| head`) is an error, not a panic.
fn say(line: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

fn log_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("{id}.log"))
}

/// A client for the nodes' `/status`: HTTPS with the admin certificate when `tls`.
fn client(dir: &Path, tls: bool) -> Result<reqwest::Client, Failure> {
    let builder = if tls {
        let certs = dir.join(CERTS_DIR);
        let (cert, key) = certs::admin_client(&certs);
        crate::tls::client(&certs::ca(&certs), Some((&cert, &key)))?
    } else {
        reqwest::Client::builder()
    };
    Ok(builder.timeout(Duration::from_secs(1)).build()?)
}

/// Each node's `/status`, or `None` if it does not answer.
async fn reports(client: &reqwest::Client, state: &ClusterState) -> Vec<(NodeId, Option<Value>)> {
    let scheme = if state.tls { "https" } else { "http" };
    let mut reports = Vec::new();
    for node in &state.nodes {
        let url = format!("{scheme}://localhost:{}/status", node.http.port());
        let report = match client.get(url).send().await {
            Ok(response) => response.json::<Value>().await.ok(),
            Err(_) => None,
        };
        reports.push((node.id, report));
    }
    reports
}

fn print_table(state: &ClusterState, reports: &[(NodeId, Option<Value>)]) -> Result<(), Failure> {
    say(format_args!(
        "{:<5} {:<8} {:<16} {:<16} {:<13} {:>5} {:>7} {:>8} {:>8}",
        "node", "pid", "raft", "http", "role", "term", "leader", "commit", "applied"
    ))?;
    for (node, (_, report)) in state.nodes.iter().zip(reports) {
        let (role, term, leader, commit, applied) = match report {
            Some(r) => (
                r["role"].as_str().unwrap_or("?").to_string(),
                r["term"].to_string(),
                r["leader"].to_string(),
                r["commit_index"].to_string(),
                r["applied_index"].to_string(),
            ),
            None if alive(node.pid) => {
                ("unresponsive".into(), "-".into(), "-".into(), "-".into(), "-".into())
            }
            None => ("stopped".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        say(format_args!(
            "{:<5} {:<8} {:<16} {:<16} {:<13} {:>5} {:>7} {:>8} {:>8}",
            node.id,
            node.pid,
            node.raft.to_string(),
            node.http.to_string(),
            role,
            term,
            leader,
            commit,
            applied
        ))?;
    }
    Ok(())
}

fn read_state(dir: &Path) -> Result<Option<ClusterState>, Failure> {
    let path: PathBuf = dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(|e| format!("{} is damaged: {e}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
    }
}

fn write_state(dir: &Path, state: &ClusterState) -> Result<(), Failure> {
    fs::write(dir.join(STATE_FILE), serde_json::to_vec_pretty(state)?)?;
    Ok(())
}

fn alive(pid: i32) -> bool {
    Pid::from_raw(pid).is_some_and(|pid| test_kill_process(pid).is_ok())
}

fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, signal);
    }
}
