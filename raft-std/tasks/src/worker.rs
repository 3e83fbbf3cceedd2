//! `raft-tasks worker`: leases tasks from the cluster, runs each as a child process, renews
//! its leases while they run, and reports the results.
//!
//! * **Finding the leader.** The worker asks each node of `--cluster` for `/status` and sends
//!   its requests to the one that leads; any node would do (followers forward writes to the
//!   leader), so when none is known it uses any node that answers. After a failure (no answer,
//!   or a 5xx), it looks for the leader again.
//! * **Leasing.** One request asks for as many tasks as it has free slots and waits at the
//!   cluster (`--poll-ms`) until there is one. Each request carries a number the worker chose;
//!   asking again with the same number (after a lost answer) returns the same leases.
//! * **Running.** The command is run without a shell, in its own process group, with the task's
//!   stdin; stdout and stderr are captured up to `--max-output-bytes` each (the rest is read
//!   and dropped). After the task's timeout the group is killed (`timed_out`). When the program
//!   exits, whatever it left in its group is killed too. Children are set to be killed if the
//!   worker dies (`PR_SET_PDEATHSIG`), so a killed worker's tasks do not run on unattended.
//!   The program finds its task's id, its lease's epoch and its attempt in `RAFT_TASKS_TASK`,
//!   `RAFT_TASKS_EPOCH` and `RAFT_TASKS_ATTEMPT`, to make its own side effects idempotent or
//!   fenced (a task may run more than once).
//! * **Heartbeats.** While it holds leases, the worker renews them every `--heartbeat-ms` (at
//!   most a third of the cluster's lease). A heartbeat answers which leases are lost (expired,
//!   or the task cancelled): their programs are killed, and their results not reported.
//! * **Reporting.** A result is sent until a node gives a definite answer; repeating a report
//!   is safe (the cluster answers a duplicate). A report whose lease is no longer current is
//!   refused by the cluster (`409 lease_not_current`), and the worker logs the refusal.
//!
//! On SIGINT or SIGTERM the worker stops leasing, finishes the tasks it runs, reports them,
//! and exits; a second signal exits at once (the leases then expire).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_service::node::Failure;
use reqwest::StatusCode;
use rustix::process::{Pid, Signal};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::cli::WorkerArgs;

/// How long a worker waits for an answer to anything but a lease request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the worker waits for a program's output pipes to close after it exited.
const DRAIN_OUTPUT: Duration = Duration::from_secs(1);
/// Retry pauses after a failed request.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The cluster's lease, until a node says otherwise.
const DEFAULT_LEASE_MS: u64 = 5000;

/// The nodes, and which one the worker talks to.
struct Cluster {
    http: reqwest::Client,
    urls: Vec<String>,
    current: AtomicUsize,
    token: Option<String>,
}

/// An answer: status and JSON body.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl Cluster {
    fn new(args: &WorkerArgs) -> Result<Cluster, Failure> {
        let urls: Vec<String> =
            args.cluster.iter().map(|url| url.trim().trim_end_matches('/').to_string()).collect();
        let https = urls.iter().filter(|url| url.starts_with("https://")).count();
        let http = urls.iter().filter(|url| url.starts_with("http://")).count();
        if https + http != urls.len() || urls.is_empty() {
            return Err("--cluster takes http:// or https:// URLs of the nodes' HTTP API".into());
        }
        let builder = if https > 0 {
            if http > 0 {
                return Err("--cluster mixes http:// and https:// URLs".into());
            }
            let ca = args
                .ca
                .as_deref()
                .ok_or("https:// nodes need --ca, the CA that signed their certificates")?;
            let identity = args.cert.as_deref().zip(args.key.as_deref());
            raft_service::tls::client(ca, identity)?
        } else {
            if args.cert.is_some() || args.ca.is_some() {
                return Err("--ca, --cert and --key are for https:// nodes".into());
            }
            reqwest::Client::builder()
        };
        let token = match &args.token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
                Some(token.trim().to_string())
            }
            None => None,
        };
        let http = builder.connect_timeout(Duration::from_secs(2)).build()?;
        Ok(Cluster { http, urls, current: AtomicUsize::new(0), token })
    }

    fn url(&self, path: &str) -> String {
        let current = self.current.load(Ordering::Relaxed) % self.urls.len();
        format!("{}{path}", self.urls[current])
    }

    /// One attempt: `POST path` with `body` to the current node.
    async fn post(&self, path: &str, body: &Value, timeout: Duration) -> Result<Answer, String> {
        let mut request = self.http.post(self.url(path)).json(body).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// Posts until a node gives a definite answer (not a transport error, not a 5xx), looking
    /// for the leader again after each failure.
    async fn post_until_answered(&self, path: &str, body: &Value, timeout: Duration) -> Answer {
        let mut pause = BACKOFF_MIN;
        loop {
            match self.post(path, body, timeout).await {
                Ok(answer) if !answer.status.is_server_error() => return answer,
                Ok(answer) => {
                    tracing::debug!(path, status = %answer.status, code = answer.code(), "retrying");
                }
                Err(error) => tracing::debug!(path, %error, "no answer; retrying"),
            }
            self.find_leader().await;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(BACKOFF_MAX);
        }
    }

    /// Points the worker at the node that leads, or, if none says it does, at the next node.
    async fn find_leader(&self) {
        for (index, url) in self.urls.iter().enumerate() {
            let mut request = self.http.get(format!("{url}/status")).timeout(Duration::from_secs(1));
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let Ok(response) = request.send().await else { continue };
            let Ok(status) = response.json::<Value>().await else { continue };
            if status["role"] == "Leader" {
                if self.current.swap(index, Ordering::Relaxed) != index {
                    tracing::info!(node = url, "found the leader");
                }
                return;
            }
        }
        self.current.fetch_add(1, Ordering::Relaxed);
    }
}

/// A task as a lease gives it.
#[derive(Debug, Deserialize)]
struct Task {
    id: String,
    epoch: u64,
    attempt: u32,
    command: Vec<String>,
    stdin: String,
    timeout_ms: u64,
}

/// A lease this worker holds, and how to tell its run that the lease is lost.
struct Held {
    epoch: u64,
    lost: Arc<Notify>,
}

type HeldLeases = Arc<Mutex<BTreeMap<String, Held>>>;

/// Runs the worker until a signal.
pub async fn run(args: WorkerArgs) -> Result<(), Failure> {
    let cluster = Arc::new(Cluster::new(&args)?);
    let held: HeldLeases = Arc::default();
    let lease_ms = Arc::new(AtomicU64::new(DEFAULT_LEASE_MS));
    let slots = Arc::new(Semaphore::new(args.slots as usize));
    let (stop, mut stopping) = watch::channel(false);
    tokio::spawn(signals(stop));
    tracing::info!(name = args.name, slots = args.slots, nodes = ?cluster.urls, "worker starting");
    cluster.find_leader().await;
    tokio::spawn(heartbeats(
        Arc::clone(&cluster),
        args.name.clone(),
        Arc::clone(&held),
        Arc::clone(&lease_ms),
        args.heartbeat(),
    ));

    // Lease request numbers: unique to this process, and never reused by it.
    let mut request = request_base();
    let poll = Duration::from_millis(args.poll_ms);
    loop {
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit?,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(permit);
        }
        request += 1;
        let body = json!({ "worker": args.name, "slots": permits.len(), "request": request, "wait_ms": args.poll_ms });
        let answer = tokio::select! {
            answer = cluster.post_until_answered("/worker/lease", &body, poll + REQUEST_TIMEOUT) => answer,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        match answer.status {
            StatusCode::OK => {
                if let Some(ms) = answer.body["lease_ms"].as_u64() {
                    lease_ms.store(ms, Ordering::Relaxed);
                }
                let tasks: Vec<Task> = match serde_json::from_value(answer.body["tasks"].clone()) {
                    Ok(tasks) => tasks,
                    Err(error) => {
                        tracing::error!(%error, "a lease answer this worker does not understand");
                        tokio::time::sleep(BACKOFF_MAX).await;
                        continue;
                    }
                };
                for task in tasks {
                    let Some(permit) = permits.pop() else {
                        tracing::error!(task = task.id, "the cluster granted more tasks than asked for");
                        break;
                    };
                    let run = Run {
                        cluster: Arc::clone(&cluster),
                        held: Arc::clone(&held),
                        max_output: args.max_output_bytes,
                    };
                    tokio::spawn(run.task(task, permit));
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(format!(
                    "the cluster refused this worker ({} {}): {}",
                    answer.status.as_u16(),
                    answer.code(),
                    answer.error()
                )
                .into());
            }
            status => {
                tracing::warn!(%status, code = answer.code(), error = answer.error(), "lease refused; retrying in 1 s");
                tokio::time::sleep(BACKOFF_MAX).await;
            }
        }
    }
    tracing::info!("stopping: finishing the tasks in progress (signal again to exit now)");
    let _ = slots.acquire_many(args.slots).await;
    tracing::info!("every task reported; exiting");
    Ok(())
}

/// A start for this process's lease request numbers: the time and the process id.
fn request_base() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 48)) & !0xffff_ffff
}

/// Sets `stop` on the first SIGINT or SIGTERM, and exits on the second.
async fn signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if n > 0 {
            tracing::warn!("second signal: exiting without finishing the tasks in progress");
            std::process::exit(1);
        }
        let _ = stop.send(true);
    }
}

/// Renews the held leases; tells the runs of lost ones.
async fn heartbeats(
    cluster: Arc<Cluster>,
    name: String,
    held: HeldLeases,
    lease_ms: Arc<AtomicU64>,
    every: Duration,
) {
    loop {
        let third = Duration::from_millis(lease_ms.load(Ordering::Relaxed) / 3);
        tokio::time::sleep(every.min(third).max(Duration::from_millis(10))).await;
        let leases: Vec<Value> = held
            .lock()
            .unwrap()
            .iter()
            .map(|(task, held)| json!({ "task": task, "epoch": held.epoch }))
            .collect();
        if leases.is_empty() {
            continue;
        }
        let body = json!({ "worker": name, "leases": leases });
        let answer = match cluster.post("/worker/heartbeat", &body, REQUEST_TIMEOUT).await {
            Ok(answer) if answer.status == StatusCode::OK => answer,
            Ok(answer) => {
                tracing::warn!(status = %answer.status, code = answer.code(), error = answer.error(), "heartbeat failed");
                if answer.status.is_server_error() {
                    cluster.find_leader().await;
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed");
                cluster.find_leader().await;
                continue;
            }
        };
        if let Some(ms) = answer.body["lease_ms"].as_u64() {
            lease_ms.store(ms, Ordering::Relaxed);
        }
        let lost = answer.body["lost"].as_array().cloned().unwrap_or_default();
        let held = held.lock().unwrap();
        for lease in lost {
            let (Some(task), Some(epoch)) = (lease["task"].as_str(), lease["epoch"].as_u64()) else {
                continue;
            };
            if let Some(run) = held.get(task).filter(|run| run.epoch == epoch) {
                tracing::warn!(
                    task,
                    epoch,
                    "lease lost (it expired, or the task was cancelled): stopping its run"
                );
                run.lost.notify_one();
            }
        }
    }
}

/// What a task's run needs.
struct Run {
    cluster: Arc<Cluster>,
    held: HeldLeases,
    max_output: usize,
}

impl Run {
    /// Runs `task` under its lease and reports the result; frees the slot at the end.
    async fn task(self, task: Task, _slot: OwnedSemaphorePermit) {
        let lost = Arc::new(Notify::new());
        self.held
            .lock()
            .unwrap()
            .insert(task.id.clone(), Held { epoch: task.epoch, lost: Arc::clone(&lost) });
        tracing::info!(task = task.id, epoch = task.epoch, attempt = task.attempt, command = ?task.command, "running");
        match execute(&task, self.max_output, &lost).await {
            Some(result) => self.report(&task, result).await,
            None => tracing::info!(
                task = task.id,
                epoch = task.epoch,
                "run stopped: its lease was lost; not reporting"
            ),
        }
        let mut held = self.held.lock().unwrap();
        if held.get(&task.id).is_some_and(|held| held.epoch == task.epoch) {
            held.remove(&task.id);
        }
    }

    /// Sends the result until a node answers it. A result too large for the node's body
    /// limit (413) is sent again with its output cut to a quarter, until it fits.
    async fn report(&self, task: &Task, mut result: Value) {
        let answer = loop {
            let body = json!({ "task": task.id, "epoch": task.epoch, "result": result });
            let answer = self.cluster.post_until_answered("/worker/report", &body, REQUEST_TIMEOUT).await;
            if answer.status != StatusCode::PAYLOAD_TOO_LARGE || !shrink(&mut result) {
                break answer;
            }
            tracing::warn!(task = task.id, "the result is larger than the node takes: cutting its output");
        };
        if answer.status == StatusCode::OK {
            tracing::info!(
                task = task.id,
                epoch = task.epoch,
                state = answer.body["state"].as_str().unwrap_or("?"),
                duplicate = answer.body["duplicate"].as_bool().unwrap_or(false),
                "reported"
            );
        } else {
            tracing::warn!(
                task = task.id,
                epoch = task.epoch,
                status = answer.status.as_u16(),
                code = answer.code(),
                error = answer.error(),
                "report refused"
            );
        }
    }
}

/// Cuts the output of `result` to a quarter (marking it truncated); false if there was none
/// left to cut.
fn shrink(result: &mut Value) -> bool {
    let mut cut = false;
    for (stream, flag) in [("stdout", "stdout_truncated"), ("stderr", "stderr_truncated")] {
        let Some(text) = result[stream].as_str().filter(|text| !text.is_empty()) else { continue };
        let mut end = text.len() / 4;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        result[stream] = Value::from(&text[..end]);
        result[flag] = Value::from(true);
        cut = true;
    }
    cut
}

/// Why the worker killed a program.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout,
    LeaseLost,
}

/// Runs `task`'s command; returns the result to report, or `None` if the run was stopped
/// because its lease was lost.
async fn execute(task: &Task, max_output: usize, lost: &Notify) -> Option<Value> {
    let Some((program, arguments)) = task.command.split_first() else {
        return Some(json!({ "outcome": "cannot_start", "reason": "the command is empty" }));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RAFT_TASKS_TASK", &task.id)
        .env("RAFT_TASKS_EPOCH", task.epoch.to_string())
        .env("RAFT_TASKS_ATTEMPT", task.attempt.to_string())
        .process_group(0)
        .kill_on_drop(true);
    let parent = rustix::process::getpid();
    // SAFETY: between fork and exec the closure makes two system calls (prctl, getppid) and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("the worker exited"));
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return Some(json!({ "outcome": "cannot_start", "reason": error.to_string() })),
    };
    let group = child.id().and_then(|id| Pid::from_raw(id as i32));
    if let Some(mut stdin) = child.stdin.take() {
        let input = task.stdin.clone().into_bytes();
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await; // a program that does not read: fine
        });
    }
    let stdout = start_capture(child.stdout.take(), max_output);
    let stderr = start_capture(child.stderr.take(), max_output);
    let kill_group = || {
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    };

    let timeout = tokio::time::sleep(Duration::from_millis(task.timeout_ms));
    let (status, killed) = tokio::select! {
        status = child.wait() => (status, None),
        () = timeout => {
            kill_group();
            (child.wait().await, Some(Kill::Timeout))
        }
        () = lost.notified() => {
            kill_group();
            (child.wait().await, Some(Kill::LeaseLost))
        }
    };
    kill_group(); // whatever the program left behind in its group
    let (stdout, stdout_truncated) = collect(stdout).await;
    let (stderr, stderr_truncated) = collect(stderr).await;
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            return Some(
                json!({ "outcome": "cannot_start", "reason": format!("cannot wait for it: {error}") }),
            )
        }
    };
    let output = json!({
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
    });
    let by_us = status.signal() == Some(Signal::KILL.as_raw());
    let mut result = match (killed, status.code()) {
        (Some(Kill::LeaseLost), _) if by_us => return None,
        (Some(Kill::Timeout), _) if by_us => json!({ "outcome": "timed_out" }),
        // The program ended on its own before it was killed.
        (_, Some(code)) => json!({ "outcome": "exited", "exit_code": code }),
        (_, None) => json!({ "outcome": "signalled", "signal": status.signal().unwrap_or(0) }),
    };
    if let (Value::Object(result), Value::Object(output)) = (&mut result, output) {
        result.extend(output);
    }
    Some(result)
}

/// What a capture has kept so far, and whether it dropped anything.
type Captured = Arc<Mutex<(Vec<u8>, bool)>>;

/// Reads `pipe` to its end into `into`, keeping the first `max` bytes and noting whether more
/// came.
async fn capture(pipe: Option<impl AsyncRead + Unpin>, max: usize, into: Captured) {
    let Some(mut pipe) = pipe else { return };
    let mut buffer = vec![0; 16 << 10];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut captured = into.lock().unwrap();
                let (kept, truncated) = &mut *captured;
                let room = max - kept.len();
                *truncated |= n > room;
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
}

/// Starts capturing `pipe`.
fn start_capture(
    pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
    max: usize,
) -> (JoinHandle<()>, Captured) {
    let captured = Captured::default();
    (tokio::spawn(capture(pipe, max, Arc::clone(&captured))), captured)
}

/// A capture's text (invalid UTF-8 replaced) and whether it was cut, once its pipe closed or
/// [`DRAIN_OUTPUT`] passed (a process outside the program's group may hold the pipe open:
/// what came until then is kept, and marked truncated).
async fn collect((reader, captured): (JoinHandle<()>, Captured)) -> (String, bool) {
    let abort = reader.abort_handle();
    let closed = tokio::time::timeout(DRAIN_OUTPUT, reader).await.is_ok();
    abort.abort();
    let (kept, truncated) = std::mem::take(&mut *captured.lock().unwrap());
    (String::from_utf8_lossy(&kept).into_owned(), truncated || !closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(command: &[&str], stdin: &str, timeout_ms: u64) -> Task {
        Task {
            id: "1".into(),
            epoch: 1,
            attempt: 1,
            command: command.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.into(),
            timeout_ms,
        }
    }

    #[tokio::test]
    async fn programs_run_without_a_shell_with_stdin_caps_and_timeouts() {
        let never = Notify::new();
        let result = execute(&task(&["cat"], "hello", 5000), 1024, &never).await.unwrap();
        assert_eq!(
            (&result["outcome"], &result["exit_code"], &result["stdout"]),
            (&json!("exited"), &json!(0), &json!("hello"))
        );

        let result = execute(&task(&["echo", "$HOME;", "x"], "", 5000), 1024, &never).await.unwrap();
        assert_eq!(result["stdout"], "$HOME; x\n", "no shell expands anything");

        let script = "echo $RAFT_TASKS_TASK $RAFT_TASKS_EPOCH $RAFT_TASKS_ATTEMPT";
        let result = execute(&task(&["sh", "-c", script], "", 5000), 1024, &never).await.unwrap();
        assert_eq!(result["stdout"], "1 1 1\n");

        let result =
            execute(&task(&["sh", "-c", "echo oops >&2; exit 3"], "", 5000), 1024, &never).await.unwrap();
        assert_eq!((&result["exit_code"], &result["stderr"]), (&json!(3), &json!("oops\n")));

        let result =
            execute(&task(&["head", "-c", "100000", "/dev/zero"], "", 5000), 10, &never).await.unwrap();
        assert_eq!(
            (result["stdout"].as_str().unwrap().len(), &result["stdout_truncated"]),
            (10, &json!(true))
        );

        let started = std::time::Instant::now();
        let result = execute(&task(&["sleep", "10"], "", 200), 1024, &never).await.unwrap();
        assert_eq!(result["outcome"], "timed_out");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

        let result = execute(&task(&["/no/such/program"], "", 5000), 1024, &never).await.unwrap();
        assert_eq!(result["outcome"], "cannot_start");

        // A process that leaves the program's group keeps the pipe open: what came is kept.
        let script = "echo before; setsid sleep 5 & sleep 0.2; echo after";
        let started = std::time::Instant::now();
        let result = execute(&task(&["sh", "-c", script], "", 5000), 1024, &never).await.unwrap();
        assert_eq!((&result["exit_code"], &result["stdout"]), (&json!(0), &json!("before\nafter\n")));
        assert_eq!(result["stdout_truncated"], true);
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

        let result = execute(&task(&["sh", "-c", "kill -TERM $$"], "", 5000), 1024, &never).await.unwrap();
        assert_eq!((&result["outcome"], &result["signal"]), (&json!("signalled"), &json!(15)));
    }

    #[test]
    fn results_shrink_until_nothing_is_left() {
        let mut result = json!({ "outcome": "exited", "stdout": "x".repeat(100), "stderr": "é".repeat(10) });
        assert!(shrink(&mut result));
        assert_eq!(
            (result["stdout"].as_str().unwrap().len(), &result["stdout_truncated"]),
            (25, &json!(true))
        );
        assert_eq!(result["stderr"], "éé");
        while shrink(&mut result) {}
        assert_eq!((&result["stdout"], &result["stderr"]), (&json!(""), &json!("")));
        assert!(!shrink(&mut json!({ "outcome": "cannot_start", "reason": "x" })));
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_run() {
        let lost = Arc::new(Notify::new());
        let stop = Arc::clone(&lost);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.notify_one();
        });
        let started = std::time::Instant::now();
        assert_eq!(execute(&task(&["sleep", "10"], "", 20_000), 1024, &lost).await, None);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
