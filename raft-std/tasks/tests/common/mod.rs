//! raft-tasks' test harness: raft-service's process harness
//! ([`raft_service::test_support`]: free ports, temporary data directories, SIGKILL, SIGTERM and
//! restart, plain HTTP or HTTPS with certificates made by `raft-tasks certs`) running the
//! `raft-tasks` binary, worker processes (`raft-tasks worker`) that tests can SIGKILL, SIGSTOP
//! and SIGCONT, and the task requests ([`TasksApi`]).
#![allow(dead_code)] // each test binary uses its own subset of the harness

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_service::test_support;
pub use raft_service::test_support::{Answer, Api, NodeId};
use reqwest::StatusCode;
use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};

pub const PROGRAM: &str = env!("CARGO_BIN_EXE_raft-tasks");
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `raft-tasks` node processes of a cluster, and its worker processes. Dropping it kills
/// them all; if the test failed, the tail of each worker's log is printed (and each node's).
pub struct Cluster {
    nodes: test_support::Cluster,
    workers: BTreeMap<String, Child>,
    /// Each worker's arguments, as last started.
    worker_args: BTreeMap<String, Vec<String>>,
}

impl Cluster {
    /// Starts nodes `1..=size` as a new cluster serving plain HTTP (`--insecure`);
    /// `extra_args` go to every node.
    pub fn start(size: u64, extra_args: &[&str]) -> Cluster {
        Cluster::wrap(test_support::Cluster::start(PROGRAM, size, extra_args))
    }

    /// Chooses ports and a data directory for nodes `1..=size`, which will serve HTTPS, and
    /// makes certificates with `raft-tasks certs` for them, the admin and `clients`
    /// (`NAME=ROLE`). Starts no node.
    pub fn secure(size: u64, extra_args: &[&str], clients: &[&str]) -> Cluster {
        Cluster::wrap(test_support::Cluster::secure(PROGRAM, size, extra_args, clients))
    }

    fn wrap(nodes: test_support::Cluster) -> Cluster {
        Cluster { nodes, workers: BTreeMap::new(), worker_args: BTreeMap::new() }
    }

    /// The nodes' base URLs, comma-separated, for `worker --cluster`.
    pub fn urls(&self) -> String {
        let api = self.nodes.api();
        api.ids().into_iter().map(|id| api.url(id, "")).collect::<Vec<_>>().join(",")
    }

    fn worker_log_path(&self, name: &str) -> PathBuf {
        self.nodes.dir().join(format!("worker-{name}.log"))
    }

    /// Starts worker `name` with `slots` slots, renewing every 100 ms, polling for 1 s at a
    /// time; over HTTPS, with the client certificate `client-<name>.pem`. `extra_args` go last.
    pub fn start_worker(&mut self, name: &str, slots: u32, extra_args: &[&str]) {
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--cluster".into(),
            self.urls(),
            "--name".into(),
            name.into(),
            "--slots".into(),
            slots.to_string(),
            "--heartbeat-ms".into(),
            "100".into(),
            "--poll-ms".into(),
            "1000".into(),
        ];
        if self.urls().starts_with("https") {
            let certs = self.nodes.certs();
            for (flag, file) in [
                ("--ca", "ca.pem".to_string()),
                ("--cert", format!("client-{name}.pem")),
                ("--key", format!("client-{name}-key.pem")),
            ] {
                args.push(flag.into());
                args.push(certs.join(file).to_string_lossy().into_owned());
            }
        }
        args.extend(extra_args.iter().map(|arg| arg.to_string()));
        self.launch_worker(name, args);
    }

    /// Starts worker `name` with exactly these arguments after `worker --name NAME`.
    pub fn start_worker_with(&mut self, name: &str, args: &[&str]) {
        let mut all: Vec<String> = vec!["worker".into(), "--name".into(), name.into()];
        all.extend(args.iter().map(|arg| arg.to_string()));
        self.launch_worker(name, all);
    }

    fn launch_worker(&mut self, name: &str, args: Vec<String>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.worker_log_path(name))
            .expect("a log file");
        let child = Command::new(PROGRAM)
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("the worker starts");
        self.workers.insert(name.to_string(), child);
        self.worker_args.insert(name.to_string(), args);
    }

    /// What worker `name` has logged so far.
    pub fn worker_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.worker_log_path(name)).unwrap_or_default()
    }

    fn signal_worker(&self, name: &str, signal: Signal) {
        let pid = Pid::from_child(&self.workers[name]);
        kill_process(pid, signal).expect("the worker is running");
    }

    /// SIGKILL: the worker dies at once (its programs with it).
    pub fn kill_worker(&mut self, name: &str) {
        if let Some(mut child) = self.workers.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the worker freezes (its programs run on).
    pub fn pause_worker(&self, name: &str) {
        self.signal_worker(name, Signal::STOP);
    }

    /// SIGCONT.
    pub fn resume_worker(&self, name: &str) {
        self.signal_worker(name, Signal::CONT);
    }

    /// Whether worker `name` still runs.
    pub fn worker_running(&mut self, name: &str) -> bool {
        self.workers.get_mut(name).is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Deref for Cluster {
    type Target = test_support::Cluster;

    fn deref(&self) -> &Self::Target {
        &self.nodes
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.nodes
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in &names {
            // A paused worker must be resumed to die of SIGKILL promptly everywhere.
            let _ = kill_process(Pid::from_child(&self.workers[name]), Signal::CONT);
            self.kill_worker(name);
        }
        if std::thread::panicking() {
            for name in self.worker_args.keys() {
                let log = self.worker_log(name);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- last lines of worker {name}'s log ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A task's body for `POST /tasks`: `command`, and the rest of `fields`.
pub fn task(command: &[&str]) -> Value {
    json!({ "command": command })
}

/// The task requests.
#[allow(async_fn_in_trait)] // test code: no Send bound needed by callers
pub trait TasksApi {
    /// `POST /tasks` on node `id`.
    async fn submit(&self, id: NodeId, body: &Value) -> Result<Answer, String>;

    /// Submits through the running nodes in turn until one accepts (201); returns the id.
    /// Retries only answers that prove nothing was queued (no answer at all, `no_leader`).
    async fn submit_until_accepted(&self, body: &Value) -> String;

    /// `GET /tasks/{task}` on the first running node that answers (linearizable).
    async fn task(&self, task: &str) -> Value;

    /// Every task, through the pages of `GET /tasks` on the first running node that answers.
    async fn all_tasks(&self, state: Option<&str>) -> Vec<Value>;

    /// `GET /workers`.
    async fn workers(&self) -> Value;

    /// Polls `GET /tasks/{task}` until `done(task)`; panics after `within`.
    async fn wait_for_task(&self, task: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value;

    /// Polls until `count` tasks are in `state`; panics after `within`.
    async fn wait_for_count(&self, state: &str, count: usize, within: Duration);
}

impl TasksApi for Api {
    async fn submit(&self, id: NodeId, body: &Value) -> Result<Answer, String> {
        self.post(id, "/tasks", body.clone()).await
    }

    async fn submit_until_accepted(&self, body: &Value) -> String {
        let start = Instant::now();
        for n in 0.. {
            let running = self.running();
            let node = running[n % running.len()];
            match self.submit(node, body).await {
                Ok(answer) if answer.status == StatusCode::CREATED => {
                    return answer.body["id"].as_str().expect("an id").to_string();
                }
                Ok(answer) if answer.body["code"] == "no_leader" => {}
                Ok(answer) => panic!("a submission was refused: {answer:?}"),
                Err(_) => {}
            }
            assert!(start.elapsed() < PATIENCE, "no node accepted a task within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!()
    }

    async fn task(&self, task: &str) -> Value {
        get_from_any(self, &format!("/tasks/{task}")).await
    }

    async fn all_tasks(&self, state: Option<&str>) -> Vec<Value> {
        let mut tasks = Vec::new();
        let mut after = String::new();
        loop {
            let mut path = format!("/tasks?limit=1000{after}");
            if let Some(state) = state {
                path.push_str(&format!("&state={state}"));
            }
            let page = get_from_any(self, &path).await;
            tasks.extend(page["tasks"].as_array().expect("a list").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return tasks,
            }
        }
    }

    async fn workers(&self) -> Value {
        get_from_any(self, "/workers").await
    }

    async fn wait_for_task(&self, task: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let view = self.task(task).await;
            if done(&view) {
                return view;
            }
            assert!(start.elapsed() < within, "task {task} not as expected within {within:?}: {view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_count(&self, state: &str, count: usize, within: Duration) {
        let start = Instant::now();
        loop {
            let found = self.all_tasks(Some(state)).await.len();
            if found >= count {
                return;
            }
            assert!(start.elapsed() < within, "only {found} of {count} tasks {state} within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `GET path` on the running nodes in turn until one answers 200 or 404; returns the body.
async fn get_from_any(api: &Api, path: &str) -> Value {
    let start = Instant::now();
    for n in 0.. {
        let running = api.running();
        let node = running[n % running.len()];
        match api.fetch(node, path).await {
            Ok(answer) if answer.status == StatusCode::OK => return answer.body,
            Ok(answer) if answer.status == StatusCode::NOT_FOUND => return Value::Null,
            Ok(answer) => {
                assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "GET {path}: {answer:?}")
            }
            Err(_) => {}
        }
        assert!(start.elapsed() < PATIENCE, "no node answered GET {path} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// The attempts of a task view that ended as `how`.
pub fn attempts_ended(task: &Value, how: &str) -> usize {
    task["history"].as_array().map_or(0, |history| history.iter().filter(|a| a["ended"] == how).count())
}
