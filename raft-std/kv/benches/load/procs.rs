//! The clusters under load: three `raft-kv` (plain or TLS) or three `etcd` processes on
//! loopback, each node a child process that is killed when its guard is dropped (and, should
//! this process die without unwinding, by the kernel: `PR_SET_PDEATHSIG`).

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::workload::{tls_connector, Endpoint};

/// Which service a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `raft-kv --insecure`: plain HTTP for clients, plain TCP between nodes.
    RaftKv,
    /// The same binary secure by default: HTTPS with client certificates, mutual TLS between
    /// nodes, certificates made by `raft-kv certs`.
    RaftKvTls,
    Etcd,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::RaftKv, Kind::RaftKvTls, Kind::Etcd];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RaftKv => "raft-kv",
            Kind::RaftKvTls => "raft-kv-tls",
            Kind::Etcd => "etcd",
        }
    }
}

/// One node's process. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Node {
    child: Child,
    /// Where the node serves clients (raft-kv's HTTP API, etcd's client URL).
    pub client: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("exited with {status}")),
            Err(e) => Err(format!("cannot wait for it: {e}")),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running three-node cluster. Dropping it kills the nodes, then deletes their data (after a
/// panic, it prints the end of each node's log and keeps the directory).
pub struct Cluster {
    pub kind: Kind,
    // Declared before `dir`: the processes die before their data directory is removed.
    pub nodes: Vec<Node>,
    /// Index in `nodes` of the leader found at start.
    pub leader: usize,
    http: reqwest::Client,
    /// raft-kv-tls: the load clients' TLS (the admin client certificate, the cluster's CA).
    tls: Option<tokio_rustls::TlsConnector>,
    /// Deleted on drop, except after a panic.
    dir: Option<tempfile::TempDir>,
}

/// What a node says about itself.
struct NodeStatus {
    /// Its id (etcd: member id).
    me: String,
    leader: Option<String>,
    /// How far it has applied (raft-kv: applied index; etcd: store revision).
    applied: u64,
}

/// How to start the clusters.
pub struct Launch {
    /// Parent of each cluster's temporary data directory (on a real disk: fsync must cost).
    pub root: PathBuf,
    pub raft_kv: PathBuf,
    pub raft_kv_args: Vec<String>,
    pub etcd: Option<PathBuf>,
    pub etcd_args: Vec<String>,
}

/// `count` distinct free loopback ports (every probe listener is held until all are chosen).
fn free_ports(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound address")).collect()
}

/// Makes a CA, certificates for nodes 1 to 3 and the admin client, and a roles file in `dir`
/// with `raft-kv certs`.
fn make_certs(raft_kv: &Path, dir: &Path) {
    let out = Command::new(raft_kv)
        .arg("certs")
        .arg("--dir")
        .arg(dir)
        .args(["--node", "1", "--node", "2", "--node", "3"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} certs: {e}", raft_kv.display()));
    assert!(
        out.status.success(),
        "{} certs failed ({}): {}",
        raft_kv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `command` as a child that the kernel kills if this process dies.
fn spawn(mut command: Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("a log file");
    command.stdin(Stdio::null()).stdout(file.try_clone().expect("a log file")).stderr(file);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent. The death signal
    // fires when the spawning thread exits; every node is spawned from the main thread (the
    // benchmark runs on a current-thread runtime), which lives until the process ends.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

impl Cluster {
    /// Starts a three-node cluster of `kind` in a fresh directory and waits for a leader that
    /// accepts a write.
    pub async fn start(kind: Kind, launch: &Launch) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix(&format!("load-{}-", kind.name()))
            .tempdir_in(&launch.root)
            .expect("a temporary directory");
        let ports = free_ports(6);
        let (peer, client) = ports.split_at(3);
        let certs = dir.path().join("certs");
        if kind == Kind::RaftKvTls {
            make_certs(&launch.raft_kv, &certs);
        }
        let mut nodes = Vec::new();
        for i in 0..3 {
            let id = i + 1;
            let data = dir.path().join(format!("node{id}"));
            let log = dir.path().join(format!("node{id}.log"));
            let mut command;
            match kind {
                Kind::RaftKv | Kind::RaftKvTls => {
                    let others: Vec<String> =
                        (0..3).filter(|&j| j != i).map(|j| format!("{}={}", j + 1, peer[j])).collect();
                    command = Command::new(&launch.raft_kv);
                    command
                        .args(["--id", &id.to_string(), "--listen", &peer[i].to_string()])
                        .args(["--http", &client[i].to_string(), "--peers", &others.join(",")])
                        .arg("--data")
                        .arg(&data);
                    if kind == Kind::RaftKv {
                        // Plain HTTP, as etcd's side serves it: raft-kv vs etcd compares the
                        // stores, raft-kv-tls vs raft-kv what TLS costs.
                        command.arg("--insecure");
                    } else {
                        // HTTPS for clients and mutual TLS on the Raft port.
                        command.args(raft_service::certs::node_options(&certs, id as u64));
                    }
                    command.args(&launch.raft_kv_args);
                }
                Kind::Etcd => {
                    let cluster: Vec<String> =
                        (0..3).map(|j| format!("n{}=http://{}", j + 1, peer[j])).collect();
                    command = Command::new(launch.etcd.as_ref().expect("an etcd binary"));
                    command
                        .args(["--name", &format!("n{id}")])
                        .arg("--data-dir")
                        .arg(&data)
                        .args(["--listen-peer-urls", &format!("http://{}", peer[i])])
                        .args(["--initial-advertise-peer-urls", &format!("http://{}", peer[i])])
                        .args(["--listen-client-urls", &format!("http://{}", client[i])])
                        .args(["--advertise-client-urls", &format!("http://{}", client[i])])
                        .args(["--initial-cluster", &cluster.join(",")])
                        .args(["--initial-cluster-token", "load-bench", "--initial-cluster-state", "new"])
                        .args(&launch.etcd_args);
                }
            }
            let child = spawn(command, &log);
            nodes.push(Node { child, client: client[i], data, log });
        }
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy();
        let mut tls = None;
        if kind == Kind::RaftKvTls {
            let read = |name: &str| std::fs::read(certs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut identity = read("client.pem");
            identity.extend(read("client-key.pem"));
            http = http
                .use_rustls_tls()
                .add_root_certificate(
                    reqwest::Certificate::from_pem(&read("ca.pem")).expect("a CA certificate"),
                )
                .identity(reqwest::Identity::from_pem(&identity).expect("the admin client's identity"));
            tls = Some(tls_connector(&certs));
        }
        let http = http.build().expect("an HTTP client");
        let mut cluster = Cluster { kind, nodes, leader: 0, http, tls, dir: Some(dir) };
        cluster.leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
        cluster
    }

    /// Where (and how) the load clients reach the leader.
    pub fn leader(&self) -> Endpoint {
        Endpoint { addr: self.nodes[self.leader].client, tls: self.tls.clone() }
    }

    /// `http` or `https`.
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(Node::pid).collect()
    }

    pub fn check_alive(&mut self) -> Result<(), String> {
        let kind = self.kind.name();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.check_alive().map_err(|e| format!("{kind} node {}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// What node `i` reports. raft-kv: `GET /status`; etcd: `POST /v3/maintenance/status`.
    async fn status(&self, i: usize) -> Option<NodeStatus> {
        let node = &self.nodes[i];
        match self.kind {
            Kind::RaftKv | Kind::RaftKvTls => {
                let url = format!("{}://{}/status", self.scheme(), node.client);
                let s: Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
                Some(NodeStatus {
                    me: s["id"].as_u64()?.to_string(),
                    leader: s["leader"].as_u64().map(|id| id.to_string()),
                    applied: s["applied_index"].as_u64()?,
                })
            }
            Kind::Etcd => {
                // The JSON gateway writes 64-bit integers as strings.
                let url = format!("http://{}/v3/maintenance/status", node.client);
                let s: Value = self.http.post(url).json(&json!({})).send().await.ok()?.json().await.ok()?;
                Some(NodeStatus {
                    me: s["header"]["member_id"].as_str()?.to_string(),
                    leader: s["leader"].as_str().filter(|l| *l != "0").map(str::to_string),
                    applied: s["header"]["revision"].as_str()?.parse().ok()?,
                })
            }
        }
    }

    /// Polls every node until exactly one leads and all follow it, then writes one key
    /// through it. Panics after `within`.
    async fn wait_for_leader(&mut self, within: Duration) -> usize {
        let start = Instant::now();
        loop {
            if let Err(e) = self.check_alive() {
                panic!("{e}");
            }
            let mut statuses = Vec::new();
            for i in 0..self.nodes.len() {
                statuses.push(self.status(i).await);
            }
            let leads = |s: &Option<NodeStatus>| s.as_ref().is_some_and(|s| s.leader.as_ref() == Some(&s.me));
            let leaders: Vec<usize> = (0..statuses.len()).filter(|&i| leads(&statuses[i])).collect();
            if let [leader] = leaders[..] {
                let id = statuses[leader].as_ref().map(|s| s.me.clone());
                let agreed = statuses.iter().all(|s| s.as_ref().is_some_and(|s| s.leader == id));
                if agreed && self.probe_write(leader).await {
                    return leader;
                }
            }
            assert!(start.elapsed() < within, "{}: no leader within {within:?}", self.kind.name());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn probe_write(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        let request = match self.kind {
            Kind::RaftKv | Kind::RaftKvTls => {
                self.http.put(format!("{}://{}/kv/probe", self.scheme(), node.client)).body("probe")
            }
            Kind::Etcd => self
                .http
                .post(format!("http://{}/v3/kv/put", node.client))
                .json(&json!({ "key": "cHJvYmU=", "value": "cHJvYmU=" })),
        };
        request.send().await.is_ok_and(|r| r.status().is_success())
    }

    /// Waits until every node has applied as far as the leader (compared twice in a row, 500 ms
    /// apart, so a quiet cluster is seen). Gives up after `within`.
    pub async fn wait_until_converged(&self, within: Duration) -> bool {
        let start = Instant::now();
        let mut previous = None;
        while start.elapsed() < within {
            let mut positions = Vec::new();
            for i in 0..self.nodes.len() {
                positions.push(self.status(i).await.map(|s| s.applied));
            }
            let same = positions.iter().all(|p| p.is_some() && *p == positions[0]);
            if same && previous.is_some() && previous == positions[0] {
                return true;
            }
            previous = if same { positions[0] } else { None };
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
}

impl Drop for Cluster {
    /// After a panic, shows the end of each node's log and keeps the data directory.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let _ = node.child.kill();
            let _ = node.child.wait();
            let log = std::fs::read(&node.log).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "---- last lines of {} node {}'s log ({} bytes) ----",
                self.kind.name(),
                i + 1,
                log.len()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(dir) = self.dir.take() {
            eprintln!("data and logs kept in {}", dir.keep().display());
        }
    }
}

/// CPU time (user + system, all threads) that process `pid` has used, in seconds, from
/// `/proc/<pid>/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state is field 3, so utime (14) and stime (15) are at positions 11 and 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Resident memory of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes of all files under `path`.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
