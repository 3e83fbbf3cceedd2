//! `raft-kv cluster up|status|down`: a local cluster on loopback ports, so a new user has a
//! working cluster with one command.
//!
//! `up` starts one background `raft-kv` process per node (its own process group, so closing
//! the terminal does not stop it) and records them in `<dir>/cluster.json`; each node keeps its
//! data in `<dir>/<id>/` and logs to `<dir>/<id>.log`.

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

use crate::cli::{ClusterCommand, ClusterDown, ClusterUp};

const STATE_FILE: &str = "cluster.json";

type Failure = Box<dyn std::error::Error>;

/// What `up` started.
#[derive(Serialize, Deserialize)]
struct ClusterState {
    nodes: Vec<LocalNode>,
}

#[derive(Serialize, Deserialize)]
struct LocalNode {
    id: NodeId,
    raft: SocketAddr,
    http: SocketAddr,
    pid: i32,
}

/// Runs a `cluster` subcommand.
pub async fn run(command: ClusterCommand) -> Result<(), Failure> {
    match command {
        ClusterCommand::Up(args) => up(args).await,
        ClusterCommand::Status(args) => status(&args.dir).await,
        ClusterCommand::Down(args) => down(args).await,
    }
}

async fn up(args: ClusterUp) -> Result<(), Failure> {
    let dir = args.dir.dir.clone();
    if let Some(state) = read_state(&dir)? {
        if state.nodes.iter().any(|node| alive(node.pid)) {
            return Err(format!(
                "a cluster is already running in {}; stop it with `raft-kv cluster down`",
                dir.display()
            )
            .into());
        }
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut nodes = plan(&args)?;
    let exe = std::env::current_exe()?;
    for index in 0..nodes.len() {
        let pid = spawn(&exe, &dir, &nodes[index], &nodes)?;
        nodes[index].pid = pid;
    }
    let state = ClusterState { nodes };
    write_state(&dir, &state)?;
    say(format_args!("started {} nodes in {}; waiting for a leader…", args.nodes, dir.display()))?;
    let client = client()?;
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
    let http = state.nodes[0].http;
    say(format_args!(
        "\ntry:\n  curl -X PUT http://{http}/kv/hello -d world\n  curl http://{http}/kv/hello"
    ))?;
    say(format_args!("  raft-kv cluster status --dir {0}\n  raft-kv cluster down --dir {0}", dir.display()))?;
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
fn spawn(exe: &Path, dir: &Path, node: &LocalNode, all: &[LocalNode]) -> Result<i32, Failure> {
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
    let child = command
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
        .ok_or_else(|| format!("no cluster in {} (start one with `raft-kv cluster up`)", dir.display()))?;
    print_table(&state, &reports(&client()?, &state).await)?;
    Ok(())
}

async fn down(args: ClusterDown) -> Result<(), Failure> {
    let dir = args.dir.dir;
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

fn client() -> Result<reqwest::Client, Failure> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?)
}

/// Each node's `/status`, or `None` if it does not answer.
async fn reports(client: &reqwest::Client, state: &ClusterState) -> Vec<(NodeId, Option<Value>)> {
    let mut reports = Vec::new();
    for node in &state.nodes {
        let url = format!("http://{}/status", node.http);
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
