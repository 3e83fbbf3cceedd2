//! A harness for tests against a service's real processes on loopback (cargo feature
//! `test-support`): free ports, temporary data directories, SIGKILL, SIGTERM and restart,
//! plain HTTP (`--insecure`) or HTTPS with certificates made by the program's own `certs`
//! subcommand ([`Cluster`]), and a client for the shared HTTP API ([`Api`]) that tasks can
//! share while the cluster's processes come and go. A service's tests add their own requests
//! on top (raft-kv's `put` and `get`, raft-tasks' tasks and workers).
//!
//! Every node runs `program` (the service's binary, `env!("CARGO_BIN_EXE_<name>")` in its
//! tests) with `--id`, `--listen`, `--http`, `--peers`, `--data` and the TLS options or
//! `--insecure`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

/// A node's id.
pub type NodeId = u64;

/// The processes of a cluster. Dropping it kills them; if the test failed, the tail of each
/// node's log is printed.
pub struct Cluster {
    program: PathBuf,
    dir: tempfile::TempDir,
    raft: BTreeMap<NodeId, SocketAddr>,
    children: BTreeMap<NodeId, Child>,
    extra_args: Vec<String>,
    /// Each node's `--peers` and own arguments, as last launched (restarts reuse them).
    launches: BTreeMap<NodeId, (Vec<NodeId>, Vec<String>)>,
    /// Where `<program> certs` put the TLS material, for a cluster that serves HTTPS.
    certs: Option<PathBuf>,
    /// Nodes started with a lowered open-file limit (soft and hard).
    fd_limits: BTreeMap<NodeId, u64>,
    api: Api,
}

/// The HTTP API of every node. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    scheme: &'static str,
    http: BTreeMap<NodeId, SocketAddr>,
    running: Arc<Mutex<BTreeSet<NodeId>>>,
    client: reqwest::Client,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The body, parsed as JSON.
    pub body: Value,
}

impl Cluster {
    /// Starts nodes `1..=size` as a new cluster serving plain HTTP (`--insecure`);
    /// `extra_args` go to every node.
    pub fn start(program: impl Into<PathBuf>, size: u64, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::new(program, size, extra_args);
        cluster.launch_all();
        cluster
    }

    /// Starts nodes `1..=size` as a new cluster serving HTTPS (see [`Cluster::secure`]).
    pub fn start_secure(
        program: impl Into<PathBuf>,
        size: u64,
        extra_args: &[&str],
        clients: &[&str],
    ) -> Cluster {
        let mut cluster = Cluster::secure(program, size, extra_args, clients);
        cluster.launch_all();
        cluster
    }

    /// Chooses ports and a data directory for nodes `1..=size`, which will serve HTTPS, and
    /// makes certificates with `<program> certs` for them, the admin client and `clients`
    /// (`NAME=ROLE`); the API client presents the admin certificate. Starts no node.
    pub fn secure(program: impl Into<PathBuf>, size: u64, extra_args: &[&str], clients: &[&str]) -> Cluster {
        let mut cluster = Cluster::with_scheme(program.into(), size, extra_args, "https");
        let certs = cluster.dir.path().join("certs");
        let mut command = Command::new(&cluster.program);
        command.arg("certs").arg("--dir").arg(&certs);
        for id in cluster.api.ids() {
            command.args(["--node", &id.to_string()]);
        }
        for client in clients {
            command.args(["--client", client]);
        }
        let made = command.output().expect("the certs subcommand runs");
        assert!(made.status.success(), "certs: {}", String::from_utf8_lossy(&made.stderr));
        cluster.certs = Some(certs);
        cluster.api.client = cluster.client_as(Some("admin"));
        cluster
    }

    /// Starts every node as a new cluster.
    pub fn launch_all(&mut self) {
        let ids = self.api.ids();
        for &id in &ids {
            self.launch(id, &ids, &[]);
        }
    }
    /// Chooses ports and a data directory for nodes `1..=size` without starting any;
    /// `extra_args` will go to every node, which serve plain HTTP (`--insecure`).
    pub fn new(program: impl Into<PathBuf>, size: u64, extra_args: &[&str]) -> Cluster {
        let mut args = vec!["--insecure"];
        args.extend_from_slice(extra_args);
        Cluster::with_scheme(program.into(), size, &args, "http")
    }

    fn with_scheme(program: PathBuf, size: u64, extra_args: &[&str], scheme: &'static str) -> Cluster {
        // Hold every probe listener until all ports are chosen, so no port is handed out twice.
        let listeners: Vec<TcpListener> =
            (0..2 * size).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
        let mut ports = listeners.iter().map(|l| l.local_addr().expect("a bound address"));
        let (mut raft, mut http) = (BTreeMap::new(), BTreeMap::new());
        for id in 1..=size {
            raft.insert(id, ports.next().expect("a port"));
            http.insert(id, ports.next().expect("a port"));
        }
        drop(listeners);
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        Cluster {
            program,
            dir: tempfile::tempdir().expect("a temporary directory"),
            raft,
            children: BTreeMap::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            launches: BTreeMap::new(),
            certs: None,
            fd_limits: BTreeMap::new(),
            api: Api { scheme, http, running: Arc::default(), client },
        }
    }

    /// The directory of the TLS material (`ca.pem`, `client-<name>.pem` …).
    pub fn certs(&self) -> &Path {
        self.certs.as_deref().expect("a cluster started with start_secure")
    }

    /// An HTTPS client that trusts the cluster's CA and presents the certificate of client
    /// `name` (`admin`: `client.pem`; another: `client-<name>.pem`), or none.
    pub fn client_as(&self, name: Option<&str>) -> reqwest::Client {
        let certs = self.certs();
        let ca = std::fs::read(certs.join("ca.pem")).expect("ca.pem");
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a CA certificate"))
            .timeout(Duration::from_secs(10));
        if let Some(name) = name {
            let stem = if name == "admin" { "client".to_string() } else { format!("client-{name}") };
            let mut pem = std::fs::read(certs.join(format!("{stem}.pem"))).expect("a client certificate");
            pem.extend(std::fs::read(certs.join(format!("{stem}-key.pem"))).expect("a client key"));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("a client identity"));
        }
        builder.build().expect("an HTTPS client")
    }

    /// Starts node `id`, at its next launch, with this open-file limit (soft and hard), as
    /// `ulimit -n` would.
    pub fn limit_open_files(&mut self, id: NodeId, limit: u64) {
        self.fd_limits.insert(id, limit);
    }

    /// What node `id` has logged so far.
    pub fn log(&self, id: NodeId) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// Node `id`'s process id.
    pub fn pid(&self, id: NodeId) -> u32 {
        self.children[&id].id()
    }

    /// Whether node `id`'s process is still running.
    pub fn is_running(&mut self, id: NodeId) -> bool {
        self.children.get_mut(&id).is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The nodes' HTTP API.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The temporary directory that holds the nodes' data, logs and certificates (removed
    /// when the cluster is dropped); a test may keep its own files there too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("{id}.log"))
    }

    /// The address node `id` listens on for peers.
    pub fn raft_address(&self, id: NodeId) -> SocketAddr {
        self.raft[&id]
    }

    /// Starts node `id` with `--peers` listing the others of `peers`, and `args`.
    pub fn launch(&mut self, id: NodeId, peers: &[NodeId], args: &[&str]) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.launches.insert(id, (peers.to_vec(), args.clone()));
        let peers: Vec<String> = peers
            .iter()
            .filter(|&&other| other != id)
            .map(|other| format!("{other}={}", self.raft[other]))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("a log file");
        let mut command = Command::new(&self.program);
        if let Some(certs) = &self.certs {
            command.args(crate::certs::node_options(certs, id));
        }
        if let Some(&limit) = self.fd_limits.get(&id) {
            let limit = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
            // SAFETY: setrlimit is a single system call, safe between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let child = command
            .args(["--id", &id.to_string(), "--listen", &self.raft[&id].to_string()])
            .args(["--http", &self.api.http[&id].to_string()])
            .args(if peers.is_empty() { vec![] } else { vec!["--peers".to_string(), peers.join(",")] })
            .args(["--data", &self.dir.path().join(id.to_string()).to_string_lossy()])
            .args(&self.extra_args)
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("the node's program starts");
        self.children.insert(id, child);
        self.api.running.lock().unwrap().insert(id);
    }

    /// SIGKILL: no shutdown, no flush; only what was fsynced survives.
    pub fn kill(&mut self, id: NodeId) {
        self.api.running.lock().unwrap().remove(&id);
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the node to exit (a clean shutdown); SIGKILL if it has not
    /// exited within 10 s. Returns whether it exited on its own.
    pub fn terminate(&mut self, id: NodeId) -> bool {
        self.api.running.lock().unwrap().remove(&id);
        let Some(mut child) = self.children.remove(&id) else { return true };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills node `id` and starts it again as it was last launched.
    pub fn restart(&mut self, id: NodeId) {
        self.kill(id);
        self.relaunch(id);
    }

    /// Starts node `id`, which is not running, again as it was last launched.
    pub fn relaunch(&mut self, id: NodeId) {
        let (peers, args) = self.launches[&id].clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.launch(id, &peers, &args);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.api.ids() {
            self.kill(id);
        }
        if std::thread::panicking() {
            for id in self.launches.keys() {
                let log = std::fs::read_to_string(self.log_path(*id)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of node {id}'s log ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Api {
    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.http.keys().copied().collect()
    }

    /// The nodes whose process runs.
    pub fn running(&self) -> Vec<NodeId> {
        self.running.lock().unwrap().iter().copied().collect()
    }

    /// The URL of `path` on node `id`.
    pub fn url(&self, id: NodeId, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.http[&id])
    }

    /// The address node `id` serves HTTP on.
    pub fn http_address(&self, id: NodeId) -> SocketAddr {
        self.http[&id]
    }

    /// The same API through another client (another identity).
    pub fn with_client(&self, client: reqwest::Client) -> Api {
        Api { client, ..self.clone() }
    }

    /// The HTTP client the API uses.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads its JSON answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.json().await.map_err(|e| e.to_string())?;
        Ok(Answer { status, body })
    }

    /// `GET path` on node `id`.
    pub async fn fetch(&self, id: NodeId, path: &str) -> Result<Answer, String> {
        self.send(self.client.get(self.url(id, path))).await
    }

    /// `POST path` on node `id` with a JSON body.
    pub async fn post(&self, id: NodeId, path: &str, body: Value) -> Result<Answer, String> {
        self.send(self.client.post(self.url(id, path)).json(&body)).await
    }

    /// `DELETE path` on node `id`.
    pub async fn delete(&self, id: NodeId, path: &str) -> Result<Answer, String> {
        self.send(self.client.delete(self.url(id, path))).await
    }

    /// `GET /metrics` of node `id`, as text.
    pub async fn metrics(&self, id: NodeId) -> Result<String, String> {
        let response = self.client.get(self.url(id, "/metrics")).send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("/metrics answered {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    }

    /// `GET /status` of node `id`, if it answers 200 within a second.
    pub async fn status(&self, id: NodeId) -> Option<Value> {
        let answer =
            self.send(self.client.get(self.url(id, "/status")).timeout(Duration::from_secs(1))).await;
        answer.ok().filter(|a| a.status == StatusCode::OK).map(|a| a.body)
    }

    /// Polls `/status` of `among` until one of them leads and all of them follow it. Panics
    /// after `within`.
    pub async fn wait_for_leader(&self, among: &[NodeId], within: Duration) -> NodeId {
        let start = Instant::now();
        loop {
            let mut statuses = Vec::new();
            for &id in among {
                statuses.push((id, self.status(id).await));
            }
            let leaders: Vec<NodeId> = statuses
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s["role"] == "Leader"))
                .map(|(id, _)| *id)
                .collect();
            if let [leader] = leaders[..] {
                let agreed =
                    statuses.iter().all(|(_, s)| s.as_ref().is_some_and(|s| s["leader"] == json!(leader)));
                if agreed {
                    return leader;
                }
            }
            assert!(
                start.elapsed() < within,
                "no agreed leader among {among:?} within {within:?}: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until every node in `among` has applied at least `index`. Panics after `within`.
    pub async fn wait_for_applied(&self, among: &[NodeId], index: u64, within: Duration) {
        let start = Instant::now();
        for &id in among {
            loop {
                let applied = self.status(id).await.and_then(|s| s["applied_index"].as_u64()).unwrap_or(0);
                if applied >= index {
                    break;
                }
                assert!(
                    start.elapsed() < within,
                    "node {id} applied only {applied} of {index} within {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
