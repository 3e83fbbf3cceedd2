//! A harness for tests against real `raft-kv` processes on loopback: free ports, temporary data
//! directories, SIGKILL and restart ([`Cluster`]), and a client for the service's HTTP API
//! ([`Api`]) that tasks can share while the cluster's processes come and go.
#![allow(dead_code)] // each test binary uses its own subset of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

pub type NodeId = u64;

/// The processes of a cluster. Dropping it kills them; if the test failed, the tail of each
/// node's log is printed.
pub struct Cluster {
    dir: tempfile::TempDir,
    raft: BTreeMap<NodeId, SocketAddr>,
    children: BTreeMap<NodeId, Child>,
    extra_args: Vec<String>,
    /// Each node's `--peers` and own arguments, as last launched (restarts reuse them).
    launches: BTreeMap<NodeId, (Vec<NodeId>, Vec<String>)>,
    api: Api,
}

/// The HTTP API of every node. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: BTreeMap<NodeId, SocketAddr>,
    running: Arc<Mutex<BTreeSet<NodeId>>>,
    client: reqwest::Client,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Cluster {
    /// Starts nodes `1..=size` as a new cluster; `extra_args` go to every node.
    pub fn start(size: u64, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::new(size, extra_args);
        let ids = cluster.api.ids();
        for &id in &ids {
            cluster.launch(id, &ids, &[]);
        }
        cluster
    }

    /// Chooses ports and a data directory for nodes `1..=size` without starting any;
    /// `extra_args` will go to every node.
    pub fn new(size: u64, extra_args: &[&str]) -> Cluster {
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
            dir: tempfile::tempdir().expect("a temporary directory"),
            raft,
            children: BTreeMap::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            launches: BTreeMap::new(),
            api: Api { http, running: Arc::default(), client },
        }
    }

    pub fn api(&self) -> &Api {
        &self.api
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
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
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
            .expect("raft-kv starts");
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

    /// Kills node `id` and starts it again as it was last launched.
    pub fn restart(&mut self, id: NodeId) {
        self.kill(id);
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
    pub fn ids(&self) -> Vec<NodeId> {
        self.http.keys().copied().collect()
    }

    /// The nodes whose process runs.
    pub fn running(&self) -> Vec<NodeId> {
        self.running.lock().unwrap().iter().copied().collect()
    }

    pub fn url(&self, id: NodeId, path: &str) -> String {
        format!("http://{}{path}", self.http[&id])
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.json().await.map_err(|e| e.to_string())?;
        Ok(Answer { status, body })
    }

    pub async fn put(&self, id: NodeId, key: &str, value: &str) -> Result<Answer, String> {
        self.send(self.client.put(self.url(id, &format!("/kv/{key}"))).body(value.to_string())).await
    }

    /// A linearizable read, or a local (stale) one.
    pub async fn get(&self, id: NodeId, key: &str, stale: bool) -> Result<Answer, String> {
        let consistency = if stale { "?consistency=stale" } else { "" };
        self.send(self.client.get(self.url(id, &format!("/kv/{key}{consistency}")))).await
    }

    pub async fn post(&self, id: NodeId, path: &str, body: Value) -> Result<Answer, String> {
        self.send(self.client.post(self.url(id, path)).json(&body)).await
    }

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

    /// Writes `key` through node `id`, retrying while the cluster answers 503 or the node is
    /// unreachable (a put of the same value is idempotent). Returns the write's log index.
    pub async fn put_until_acknowledged(&self, id: NodeId, key: &str, value: &str, within: Duration) -> u64 {
        let start = Instant::now();
        loop {
            match self.put(id, key, value).await {
                Ok(answer) if answer.status == StatusCode::OK => {
                    return answer.body["index"].as_u64().expect("an index");
                }
                Ok(answer) => assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}"),
                Err(_) => {}
            }
            assert!(start.elapsed() < within, "{key} not acknowledged within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
