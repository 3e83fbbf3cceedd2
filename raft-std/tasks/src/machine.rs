//! The replicated task queue: tasks, their leases and their results. Commands travel through
//! the log as postcard; queries are answered as JSON.
//!
//! # Transitions
//!
//! ```text
//!             Submit                 Lease (epoch e)            Report (epoch e)
//!   (none) ──────────▶ queued ───────────────────────▶ running ─────────────────▶ done | failed | timed_out
//!                        ▲                               │
//!                        └──── lease of e expired ───────┤  (attempts < max_attempts)
//!                                                        └──── lease of e expired ──▶ failed (attempts = max_attempts)
//!   queued | running ── Cancel ──▶ cancelled
//! ```
//!
//! `attempts` counts the leases a task was given. Every lease has an epoch, a number drawn
//! from one counter that only grows, so no two leases ever share one. A task that runs holds
//! exactly one lease; a heartbeat renews it and a report ends it only if it names that lease's
//! epoch (and comes from the identity that took the lease). A report naming an older epoch —
//! from a worker whose lease expired, and whose task went back to the queue and perhaps to
//! another worker — is refused ([`Refusal::LeaseNotCurrent`]). This fencing makes a task's
//! completion happen once: the first accepted report ends the lease, and with it every
//! chance for another report to be accepted. A report repeated with the epoch that finished
//! the task is answered as a duplicate, so a worker may retry a report whose answer it lost.
//!
//! # Time
//!
//! Time is not an input of this state machine: applying a command never reads a clock, or
//! replicas would disagree. The only time it knows is **cluster time**, in milliseconds,
//! carried by [`Command::Tick`]s that the leader proposes (see `clock.rs`): the leader's
//! monotonic clock, continued from the cluster time last committed when it took over, so
//! cluster time never steps back (a tick older than the current time changes nothing) and
//! does not run faster than real time; while there is no leader it stands still.
//!
//! A lease is renewed (taken, or named by a heartbeat) without a time: its clock starts at the
//! first tick applied after the renewal, and it expires at the first tick that is
//! `lease_ms` of cluster time later. Every replica applies the same ticks after the same
//! renewals, so every replica expires the same leases at the same log position. A lease thus
//! lasts at least `lease_ms` of the leader's time after the tick following its renewal, and at
//! most that plus the interval between ticks; while no leader ticks, no lease expires, which
//! gives workers the election to find the new leader.
//!
//! # Idempotent submission
//!
//! A submission may carry an idempotency key ([`Command::SubmitKeyed`]), scoped to the
//! identity that submitted it (the caller's name, which the accepting node writes into the
//! command as it does a worker's for leases; `None`, one scope shared by everyone, on nodes
//! that authenticate nobody). While a task submitted with the same key in the same scope is
//! kept — queued, running, or finished and not yet dropped by the retention limits — a
//! submission with that key creates nothing: it is answered with that task's id
//! ([`Outcome::AlreadySubmitted`]) if it asks for the same task (the same [`Spec::digest`]),
//! and refused ([`Refusal::KeyReused`]) if not. The key lives on the task record and goes with
//! it; the index from keys to tasks is rebuilt from the tasks on restore, so it is never
//! larger than the tasks kept. A retry after its task was dropped queues a new task.

use std::collections::{BTreeMap, BTreeSet};

use raft_core::{
    Bytes, Entry, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

/// A task's id: its position in submission order, from 1.
pub type TaskId = u64;
/// A lease's fencing epoch.
pub type Epoch = u64;

/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Most tasks one lease request takes.
pub const MAX_WANT: u32 = 64;
/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// A digest (SHA-256) of what a submission asks for: see [`Spec::digest`].
pub type Digest = [u8; 32];

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// What the program reads on its standard input.
    pub stdin: String,
    /// How long the program may run before the worker kills it.
    pub timeout_ms: u64,
    /// How many leases the task may be given before it fails.
    pub max_attempts: u32,
}

impl Spec {
    /// The bytes the task holds while unfinished (its arguments and its input).
    pub fn bytes(&self) -> u64 {
        let arguments: usize = self.command.iter().map(|argument| argument.len() + 1).sum();
        (arguments + self.stdin.len()) as u64
    }

    /// Why the task cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match self.command.first() {
            None => return Err("the command is empty: give at least the program to run".into()),
            Some(program) if program.is_empty() => return Err("the program's name is empty".into()),
            Some(_) => {}
        }
        if self.command.iter().any(|argument| argument.contains('\0')) {
            return Err("arguments may not contain NUL bytes".into());
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(format!("max_attempts must be between 1 and {MAX_ATTEMPTS}"));
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be positive".into());
        }
        Ok(())
    }

    /// The digest of the task asked for — program, arguments, stdin, timeout and attempts, as
    /// the accepting node resolved them (defaults filled in) — that an idempotency key is bound
    /// to: a retry must ask for the same task. It hashes the spec's postcard encoding, so a
    /// field added to [`Spec`] changes digests (a retry across that upgrade would be refused).
    pub fn digest(&self) -> Digest {
        let digest = ring::digest::digest(&ring::digest::SHA256, &encode(self));
        let mut bytes = Digest::default();
        bytes.copy_from_slice(digest.as_ref());
        bytes
    }
}

/// Why `key` cannot be an idempotency key, if it cannot: it must be 1 to [`MAX_KEY_BYTES`]
/// printable ASCII bytes (space to `~`).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!("an idempotency key is 1 to {MAX_KEY_BYTES} bytes long"));
    }
    if !key.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
        return Err("an idempotency key is printable ASCII (space to ~)".into());
    }
    Ok(())
}

/// The idempotency key of a submission, and what it was bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// The identity that submitted (the keys' scope): the caller's name, `None` on nodes that
    /// authenticate nobody.
    pub owner: Option<String>,
    /// The key the client chose (see [`check_key`]).
    pub key: String,
    /// The task it asked for ([`Spec::digest`]).
    pub digest: Digest,
}

/// The bounds on unfinished tasks, put into each submit by the node that accepted it (its
/// `--max-queued` and `--max-queued-bytes`), so every replica decides the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// Most tasks queued or running.
    pub max_tasks: u64,
    /// Most bytes of arguments and input held by tasks queued or running.
    pub max_bytes: u64,
}

/// How many finished tasks, and for how long, the state keeps their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Most finished tasks kept; the oldest go first.
    pub max_results: u64,
    /// Finished tasks are dropped this long (cluster time) after they finished.
    pub max_age_ms: u64,
    /// Workers that hold no lease are forgotten this long (cluster time) after they were
    /// last heard from.
    pub forget_workers_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_results: 1000, max_age_ms: 3_600_000, forget_workers_ms: 600_000 }
    }
}

/// What a worker captured of a program's output (already cut to the node's cap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// How a run ended, as its worker reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunResult {
    /// The program exited with this code: the task is `done` (whatever the code).
    Exited { code: i32, output: Output },
    /// A signal the worker did not send ended the program: `failed`.
    Signalled { signal: i32, output: Output },
    /// The program outlived its timeout and the worker killed it: `timed_out`.
    TimedOut { output: Output },
    /// The program could not be started (no such file, not executable …): `failed`.
    CannotStart { reason: String },
}

/// A write, replicated through the log. New variants go at the end (postcard numbers them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Queue a task.
    Submit { spec: Spec, admission: Admission },
    /// Give worker `worker` up to `want` queued tasks, each under a new lease of `lease_ms`.
    /// `request` identifies the request: repeating it returns the same leases instead of new
    /// ones (a worker retries a request whose answer it lost).
    Lease { worker: String, owner: Option<String>, request: u64, want: u32, lease_ms: u64, max_workers: u64 },
    /// Worker `worker` is alive and still runs these leases: renew them.
    Heartbeat { worker: String, owner: Option<String>, leases: Vec<(TaskId, Epoch)>, max_workers: u64 },
    /// The run under lease `epoch` of task `task` ended.
    Report { task: TaskId, epoch: Epoch, owner: Option<String>, result: RunResult },
    /// Cancel a task that has not finished.
    Cancel { task: TaskId },
    /// Cluster time is `now` (see the module docs): expire leases, drop old results, forget
    /// silent workers.
    Tick { now: u64, retention: Retention },
    /// Queue a task unless one with the same idempotency key (in the same owner's scope) is
    /// kept: then answer with it (see the module docs). A variant of its own, so a submission
    /// without a key stays a [`Command::Submit`] that nodes of earlier versions apply.
    SubmitKeyed { spec: Spec, admission: Admission, idempotency: Idempotency },
}

/// A task as it is given to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: TaskId,
    pub epoch: Epoch,
    pub attempt: u32,
    pub command: Vec<String>,
    pub stdin: String,
    pub timeout_ms: u64,
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The task is not valid (see [`Spec::check`]).
    InvalidSpec(String),
    /// `unfinished` tasks are queued or running, the most the admitting node allows.
    QueueFull { unfinished: u64, max: u64 },
    /// Unfinished tasks hold `bytes` bytes; this one would take them past `max`.
    QueueBytesFull { bytes: u64, max: u64 },
    /// The cluster knows `max` workers already.
    TooManyWorkers { max: u64 },
    /// Another identity uses this worker name.
    WorkerNameTaken,
    /// No task has this id (never submitted, or its result was dropped).
    UnknownTask,
    /// The report's lease is not the task's current one: it expired, or the task was
    /// cancelled. `state` is the task's state now.
    LeaseNotCurrent { state: TaskState },
    /// The lease is current, but held by another identity.
    NotLeaseHolder,
    /// The task has finished already.
    AlreadyFinished { state: TaskState },
    /// Task `id` was submitted with this idempotency key (by the same identity), for another
    /// task: another command, stdin, timeout or attempts.
    KeyReused { id: TaskId },
}

/// What a command did, for its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Submitted {
        id: TaskId,
    },
    Leased {
        lease_ms: u64,
        grants: Vec<Grant>,
    },
    /// A heartbeat: the leases it named that are not current any more (their runs should stop).
    Renewed {
        lost: Vec<(TaskId, Epoch)>,
    },
    /// A report was recorded (or had been: `duplicate`), and the task is now in `state`.
    Reported {
        state: TaskState,
        duplicate: bool,
    },
    Cancelled {
        previous: TaskState,
    },
    Ticked {
        expired: u64,
        requeued: u64,
        dropped: u64,
    },
    Refused(Refusal),
    /// The command did not decode (never produced by this service's own API).
    Invalid(String),
    /// A keyed submission whose key names task `id`, submitted before for the same task:
    /// nothing was queued.
    AlreadySubmitted {
        id: TaskId,
    },
}

/// A task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Running,
    Done,
    Failed,
    TimedOut,
    Cancelled,
}

impl TaskState {
    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::TimedOut => "timed_out",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<TaskState> {
        [
            TaskState::Queued,
            TaskState::Running,
            TaskState::Done,
            TaskState::Failed,
            TaskState::TimedOut,
            TaskState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.name() == name)
    }
}

/// A read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// One task, in full: JSON, or `null`.
    Get { id: TaskId },
    /// Tasks after `after` in id order, in `state` if given, at most `limit`, without their
    /// output: `{"tasks": [...], "next": cursor or null}`.
    List { state: Option<TaskState>, after: TaskId, limit: u32 },
    /// The workers: `{"workers": [...]}`.
    Workers,
    /// Counts and cluster time: [`Summary`] as JSON.
    Summary,
}

/// Counts the node's HTTP layer and clock watch (published after every command).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
    pub unfinished_bytes: u64,
    pub workers: u64,
    /// Cluster time, in milliseconds.
    pub now: u64,
}

/// A lease: who runs the task, under which epoch, renewed when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    epoch: Epoch,
    worker: String,
    owner: Option<String>,
    /// Cluster time of the first tick after the last renewal; `None` until that tick.
    renewed_at: Option<u64>,
    lease_ms: u64,
}

/// One lease of a task, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Attempt {
    epoch: Epoch,
    worker: String,
    started_at: u64,
    ended_at: Option<u64>,
    /// `None` while it runs; then a state name, or `lease_expired`.
    ended: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Task {
    spec: Spec,
    /// The size of the input, kept when the input itself is dropped at the end.
    stdin_bytes: u64,
    state: TaskState,
    lease: Option<Lease>,
    attempts: u32,
    /// The worker of the current or last lease.
    worker: Option<String>,
    submitted_at: u64,
    finished_at: Option<u64>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    output: Option<Output>,
    /// Why the task failed, timed out or was cancelled.
    reason: Option<String>,
    /// The epoch whose report finished the task.
    finished_epoch: Option<Epoch>,
    history: Vec<Attempt>,
    /// The idempotency key it was submitted with. Not in the state's own encoding: a
    /// snapshot carries the keys after the state (see `build_snapshot`), so snapshots taken
    /// before keys existed still restore.
    #[serde(skip)]
    idempotency: Option<Idempotency>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Worker {
    owner: Option<String>,
    last_seen: u64,
    tasks: BTreeSet<TaskId>,
    /// The last lease request that was given tasks, and the leases it got.
    last_lease: Option<(u64, Vec<(TaskId, Epoch)>)>,
}

/// Everything that is replicated (and snapshotted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    now: u64,
    next_id: TaskId,
    next_epoch: Epoch,
    tasks: BTreeMap<TaskId, Task>,
    /// Queued tasks, oldest first (a task that goes back to the queue keeps its place).
    queue: BTreeSet<TaskId>,
    running: BTreeSet<TaskId>,
    /// Finished tasks, by (finished at, id): the oldest results go first.
    finished: BTreeSet<(u64, TaskId)>,
    unfinished_bytes: u64,
    workers: BTreeMap<String, Worker>,
    retention: Retention,
    /// The task of each idempotency key, by (owner, key): an index of the tasks' keys, so it
    /// holds no more than they do; rebuilt from them on restore.
    #[serde(skip)]
    keys: BTreeMap<(Option<String>, String), TaskId>,
}

impl Default for State {
    fn default() -> Self {
        State {
            now: 0,
            next_id: 1,
            next_epoch: 1,
            tasks: BTreeMap::new(),
            queue: BTreeSet::new(),
            running: BTreeSet::new(),
            finished: BTreeSet::new(),
            unfinished_bytes: 0,
            workers: BTreeMap::new(),
            retention: Retention::default(),
            keys: BTreeMap::new(),
        }
    }
}

/// The task runner's state machine. It publishes a [`Summary`] after every command, which the
/// HTTP layer (long-polling lease requests) and the leader's clock watch.
#[derive(Debug)]
pub struct TaskMachine {
    state: State,
    summary: watch::Sender<Summary>,
}

impl Default for TaskMachine {
    fn default() -> Self {
        TaskMachine { state: State::default(), summary: watch::Sender::new(Summary::default()) }
    }
}

impl TaskMachine {
    /// A watch of the counts, updated after every command.
    pub fn summary(&self) -> watch::Receiver<Summary> {
        self.summary.subscribe()
    }

    fn publish(&self) {
        let state = &self.state;
        let summary = Summary {
            queued: state.queue.len() as u64,
            running: state.running.len() as u64,
            finished: state.finished.len() as u64,
            unfinished_bytes: state.unfinished_bytes,
            workers: state.workers.len() as u64,
            now: state.now,
        };
        self.summary.send_if_modified(|old| std::mem::replace(old, summary) != summary);
    }
}

impl State {
    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Submit { spec, admission } => self.submit(spec, admission, None),
            Command::SubmitKeyed { spec, admission, idempotency } => {
                self.submit(spec, admission, Some(idempotency))
            }
            Command::Lease { worker, owner, request, want, lease_ms, max_workers } => {
                self.lease(worker, owner, request, want, lease_ms, max_workers)
            }
            Command::Heartbeat { worker, owner, leases, max_workers } => {
                self.heartbeat(worker, owner, leases, max_workers)
            }
            Command::Report { task, epoch, owner, result } => self.report(task, epoch, owner, result),
            Command::Cancel { task } => self.cancel(task),
            Command::Tick { now, retention } => self.tick(now, retention),
        }
    }

    fn submit(&mut self, spec: Spec, admission: Admission, idempotency: Option<Idempotency>) -> Outcome {
        if let Some(idempotency) = &idempotency {
            if let Err(reason) = check_key(&idempotency.key) {
                return Outcome::Refused(Refusal::InvalidSpec(reason));
            }
            // Before the bounds: a retry of a kept task succeeds even when the queue is full.
            let scoped = (idempotency.owner.clone(), idempotency.key.clone());
            if let Some(&id) = self.keys.get(&scoped) {
                let task = &self.tasks[&id];
                let same = task.idempotency.as_ref().is_some_and(|kept| kept.digest == idempotency.digest);
                return if same {
                    Outcome::AlreadySubmitted { id }
                } else {
                    Outcome::Refused(Refusal::KeyReused { id })
                };
            }
        }
        if let Err(reason) = spec.check() {
            return Outcome::Refused(Refusal::InvalidSpec(reason));
        }
        let unfinished = (self.queue.len() + self.running.len()) as u64;
        if unfinished >= admission.max_tasks {
            return Outcome::Refused(Refusal::QueueFull { unfinished, max: admission.max_tasks });
        }
        let bytes = spec.bytes();
        if self.unfinished_bytes.saturating_add(bytes) > admission.max_bytes {
            return Outcome::Refused(Refusal::QueueBytesFull {
                bytes: self.unfinished_bytes,
                max: admission.max_bytes,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.unfinished_bytes += bytes;
        let task = Task {
            stdin_bytes: spec.stdin.len() as u64,
            spec,
            state: TaskState::Queued,
            lease: None,
            attempts: 0,
            worker: None,
            submitted_at: self.now,
            finished_at: None,
            exit_code: None,
            signal: None,
            output: None,
            reason: None,
            finished_epoch: None,
            history: Vec::new(),
            idempotency,
        };
        if let Some(idempotency) = &task.idempotency {
            self.keys.insert((idempotency.owner.clone(), idempotency.key.clone()), id);
        }
        self.tasks.insert(id, task);
        self.queue.insert(id);
        Outcome::Submitted { id }
    }

    /// Finds or registers worker `name` for `owner`.
    fn worker(
        &mut self,
        name: &str,
        owner: &Option<String>,
        max_workers: u64,
    ) -> Result<&mut Worker, Refusal> {
        if !self.workers.contains_key(name) {
            if self.workers.len() as u64 >= max_workers {
                return Err(Refusal::TooManyWorkers { max: max_workers });
            }
            let worker = Worker {
                owner: owner.clone(),
                last_seen: self.now,
                tasks: BTreeSet::new(),
                last_lease: None,
            };
            self.workers.insert(name.to_string(), worker);
        }
        let now = self.now;
        let worker = self.workers.get_mut(name).expect("inserted above");
        if worker.owner != *owner {
            return Err(Refusal::WorkerNameTaken);
        }
        worker.last_seen = now;
        Ok(worker)
    }

    fn lease(
        &mut self,
        name: String,
        owner: Option<String>,
        request: u64,
        want: u32,
        lease_ms: u64,
        max_workers: u64,
    ) -> Outcome {
        let worker = match self.worker(&name, &owner, max_workers) {
            Ok(worker) => worker,
            Err(refusal) => return Outcome::Refused(refusal),
        };
        // The same request again: the leases it was given, those still current.
        if let Some((last, leases)) = &worker.last_lease {
            if *last == request {
                let leases = leases.clone();
                let grants = leases
                    .into_iter()
                    .filter_map(|(id, epoch)| {
                        let task = self.tasks.get(&id)?;
                        let lease = task.lease.as_ref().filter(|lease| lease.epoch == epoch)?;
                        Some(grant(id, task, lease))
                    })
                    .collect();
                return Outcome::Leased { lease_ms, grants };
            }
        }
        let ids: Vec<TaskId> = self.queue.iter().copied().take(want.min(MAX_WANT) as usize).collect();
        let mut grants = Vec::with_capacity(ids.len());
        for id in ids {
            self.queue.remove(&id);
            self.running.insert(id);
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            let task = self.tasks.get_mut(&id).expect("queued tasks exist");
            let lease =
                Lease { epoch, worker: name.clone(), owner: owner.clone(), renewed_at: None, lease_ms };
            task.state = TaskState::Running;
            task.attempts += 1;
            task.worker = Some(name.clone());
            task.history.push(Attempt {
                epoch,
                worker: name.clone(),
                started_at: self.now,
                ended_at: None,
                ended: None,
            });
            grants.push(grant(id, task, &lease));
            task.lease = Some(lease);
        }
        let worker = self.workers.get_mut(&name).expect("registered above");
        worker.tasks.extend(grants.iter().map(|grant| grant.id));
        if !grants.is_empty() {
            worker.last_lease = Some((request, grants.iter().map(|g| (g.id, g.epoch)).collect()));
        }
        Outcome::Leased { lease_ms, grants }
    }

    fn heartbeat(
        &mut self,
        name: String,
        owner: Option<String>,
        leases: Vec<(TaskId, Epoch)>,
        max_workers: u64,
    ) -> Outcome {
        if let Err(refusal) = self.worker(&name, &owner, max_workers) {
            return Outcome::Refused(refusal);
        }
        let mut lost = Vec::new();
        for (id, epoch) in leases {
            let lease = self.tasks.get_mut(&id).and_then(|task| task.lease.as_mut());
            match lease {
                Some(lease) if lease.epoch == epoch && lease.owner == owner && lease.worker == name => {
                    lease.renewed_at = None; // the lease's clock restarts at the next tick
                }
                _ => lost.push((id, epoch)),
            }
        }
        Outcome::Renewed { lost }
    }

    fn report(&mut self, id: TaskId, epoch: Epoch, owner: Option<String>, result: RunResult) -> Outcome {
        let Some(task) = self.tasks.get_mut(&id) else { return Outcome::Refused(Refusal::UnknownTask) };
        let Some(lease) = task.lease.as_ref().filter(|lease| lease.epoch == epoch) else {
            if task.finished_epoch == Some(epoch) {
                return Outcome::Reported { state: task.state, duplicate: true };
            }
            return Outcome::Refused(Refusal::LeaseNotCurrent { state: task.state });
        };
        if lease.owner != owner {
            return Outcome::Refused(Refusal::NotLeaseHolder);
        }
        let (state, ended) = match result {
            RunResult::Exited { code, output } => {
                task.exit_code = Some(code);
                task.output = Some(output);
                (TaskState::Done, "done")
            }
            RunResult::Signalled { signal, output } => {
                task.signal = Some(signal);
                task.reason = Some(format!("the program was killed by signal {signal}"));
                task.output = Some(output);
                (TaskState::Failed, "failed")
            }
            RunResult::TimedOut { output } => {
                task.reason = Some(format!(
                    "the program ran longer than its timeout of {} ms and was killed",
                    task.spec.timeout_ms
                ));
                task.output = Some(output);
                (TaskState::TimedOut, "timed_out")
            }
            RunResult::CannotStart { reason } => {
                task.reason = Some(format!("the program could not be started: {reason}"));
                (TaskState::Failed, "failed")
            }
        };
        task.finished_epoch = Some(epoch);
        self.end_lease(id, ended);
        self.finish(id, state);
        Outcome::Reported { state, duplicate: false }
    }

    fn cancel(&mut self, id: TaskId) -> Outcome {
        let Some(task) = self.tasks.get_mut(&id) else { return Outcome::Refused(Refusal::UnknownTask) };
        let previous = task.state;
        match previous {
            TaskState::Queued => {
                self.queue.remove(&id);
            }
            TaskState::Running => self.end_lease(id, "cancelled"),
            state => return Outcome::Refused(Refusal::AlreadyFinished { state }),
        }
        let task = self.tasks.get_mut(&id).expect("looked up above");
        task.reason = Some("cancelled".into());
        self.finish(id, TaskState::Cancelled);
        Outcome::Cancelled { previous }
    }

    fn tick(&mut self, now: u64, retention: Retention) -> Outcome {
        self.now = self.now.max(now);
        self.retention = retention;
        let now = self.now;
        let (mut expired, mut requeued) = (0, 0);
        let running: Vec<TaskId> = self.running.iter().copied().collect();
        for id in running {
            let task = self.tasks.get_mut(&id).expect("running tasks exist");
            let lease = task.lease.as_mut().expect("running tasks hold a lease");
            let Some(renewed_at) = lease.renewed_at else {
                lease.renewed_at = Some(now);
                continue;
            };
            if now.saturating_sub(renewed_at) < lease.lease_ms {
                continue;
            }
            expired += 1;
            let worker = lease.worker.clone();
            self.end_lease(id, "lease_expired");
            let task = self.tasks.get_mut(&id).expect("looked up above");
            if task.attempts >= task.spec.max_attempts {
                task.reason = Some(format!(
                    "no worker finished the task in {} attempts: the lease of each expired (the last on worker {worker:?})",
                    task.attempts
                ));
                self.finish(id, TaskState::Failed);
            } else {
                task.state = TaskState::Queued;
                self.queue.insert(id);
                requeued += 1;
            }
        }
        let dropped = self.drop_old_results();
        let forget = retention.forget_workers_ms;
        self.workers
            .retain(|_, worker| !worker.tasks.is_empty() || now.saturating_sub(worker.last_seen) < forget);
        Outcome::Ticked { expired, requeued, dropped }
    }

    /// Ends task `id`'s lease (it must hold one), recording how in its history.
    fn end_lease(&mut self, id: TaskId, how: &str) {
        let task = self.tasks.get_mut(&id).expect("the task exists");
        let lease = task.lease.take().expect("the task holds a lease");
        if let Some(attempt) = task.history.iter_mut().rev().find(|attempt| attempt.epoch == lease.epoch) {
            attempt.ended_at = Some(self.now);
            attempt.ended = Some(how.to_string());
        }
        self.running.remove(&id);
        if let Some(worker) = self.workers.get_mut(&lease.worker) {
            worker.tasks.remove(&id);
        }
    }

    /// Moves task `id` (queued or running, no longer in the queue or holding a lease) to the
    /// finished state `state`, and applies the retention limits.
    fn finish(&mut self, id: TaskId, state: TaskState) {
        let task = self.tasks.get_mut(&id).expect("the task exists");
        self.unfinished_bytes = self.unfinished_bytes.saturating_sub(task.spec.bytes());
        task.spec.stdin = String::new(); // not needed any more; its size stays in stdin_bytes
        task.state = state;
        task.finished_at = Some(self.now);
        self.finished.insert((self.now, id));
        self.drop_old_results();
    }

    /// Drops the results past the retention limits; returns how many.
    fn drop_old_results(&mut self) -> u64 {
        let mut dropped = 0;
        while let Some(&(finished_at, id)) = self.finished.first() {
            let too_many = self.finished.len() as u64 > self.retention.max_results;
            let too_old = self.now.saturating_sub(finished_at) >= self.retention.max_age_ms;
            if !too_many && !too_old {
                break;
            }
            self.finished.pop_first();
            if let Some(Task { idempotency: Some(idempotency), .. }) = self.tasks.remove(&id) {
                self.keys.remove(&(idempotency.owner, idempotency.key));
            }
            dropped += 1;
        }
        dropped
    }

    fn answer(&self, query: Query) -> Value {
        match query {
            Query::Get { id } => self.tasks.get(&id).map_or(Value::Null, |task| view(id, task, true)),
            Query::List { state, after, limit } => {
                let mut matching = self
                    .tasks
                    .range(after.saturating_add(1)..)
                    .filter(|(_, task)| state.is_none_or(|state| task.state == state));
                let page: Vec<(&TaskId, &Task)> = matching.by_ref().take(limit as usize).collect();
                // The cursor is the last id listed, if more follow: the next page starts after it.
                let next = match (matching.next(), page.last()) {
                    (Some(_), Some((id, _))) => Some(id.to_string()),
                    _ => None,
                };
                let tasks: Vec<Value> = page.into_iter().map(|(&id, task)| view(id, task, false)).collect();
                json!({ "tasks": tasks, "next": next })
            }
            Query::Workers => {
                let workers: Vec<Value> = self
                    .workers
                    .iter()
                    .map(|(name, worker)| {
                        json!({
                            "name": name,
                            "last_heartbeat_ms": worker.last_seen,
                            "since_last_heartbeat_ms": self.now.saturating_sub(worker.last_seen),
                            "tasks": worker.tasks.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({ "workers": workers, "now_ms": self.now })
            }
            Query::Summary => json!({
                "queued": self.queue.len(),
                "running": self.running.len(),
                "finished": self.finished.len(),
                "unfinished_bytes": self.unfinished_bytes,
                "workers": self.workers.len(),
                "now_ms": self.now,
                "next_epoch": self.next_epoch,
            }),
        }
    }
}

fn grant(id: TaskId, task: &Task, lease: &Lease) -> Grant {
    Grant {
        id,
        epoch: lease.epoch,
        attempt: task.attempts,
        command: task.spec.command.clone(),
        stdin: task.spec.stdin.clone(),
        timeout_ms: task.spec.timeout_ms,
    }
}

/// A task as the API shows it; with its output and history if `full`.
fn view(id: TaskId, task: &Task, full: bool) -> Value {
    let mut view = json!({
        "id": id.to_string(),
        "state": task.state.name(),
        "command": task.spec.command,
        "stdin_bytes": task.stdin_bytes,
        "timeout_ms": task.spec.timeout_ms,
        "max_attempts": task.spec.max_attempts,
        "idempotency_key": task.idempotency.as_ref().map(|idempotency| &idempotency.key),
        "attempts": task.attempts,
        "worker": task.worker,
        "exit_code": task.exit_code,
        "signal": task.signal,
        "reason": task.reason,
        "submitted_at_ms": task.submitted_at,
        "finished_at_ms": task.finished_at,
        "lease": task.lease.as_ref().map(|lease| json!({ "epoch": lease.epoch, "worker": lease.worker })),
    });
    if full {
        let output = task.output.clone().unwrap_or_default();
        let history: Vec<Value> = task
            .history
            .iter()
            .enumerate()
            .map(|(n, attempt)| {
                json!({
                    "attempt": n + 1,
                    "epoch": attempt.epoch,
                    "worker": attempt.worker,
                    "started_at_ms": attempt.started_at,
                    "ended_at_ms": attempt.ended_at,
                    "ended": attempt.ended,
                })
            })
            .collect();
        let fields = [
            ("stdout", json!(output.stdout)),
            ("stderr", json!(output.stderr)),
            ("stdout_truncated", json!(output.stdout_truncated)),
            ("stderr_truncated", json!(output.stderr_truncated)),
            ("history", json!(history)),
        ];
        if let Value::Object(map) = &mut view {
            map.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
        }
    }
    view
}

impl StateMachine for TaskMachine {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        let Payload::Command(command) = &entry.payload else { return Ok(Bytes::new()) };
        let outcome = match postcard::from_bytes(command) {
            Ok(command) => self.state.execute(command),
            Err(e) => Outcome::Invalid(e.to_string()),
        };
        self.publish();
        Ok(encode(&outcome))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, RestoreError> {
        let answer = match postcard::from_bytes(query) {
            Ok(query) => self.state.answer(query),
            Err(_) => Value::Null,
        };
        Ok(Bytes::from(answer.to_string()))
    }

    /// The state, then the idempotency keys of its tasks (`[(id, key)]`): the state's own
    /// encoding is what it was before keys existed, so either version restores the other's
    /// snapshots (an earlier one ignores the keys; this one restores an earlier snapshot's
    /// tasks without keys).
    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        let keys: Vec<(TaskId, &Idempotency)> = self
            .state
            .tasks
            .iter()
            .filter_map(|(&id, task)| Some((id, task.idempotency.as_ref()?)))
            .collect();
        out.write(&encode(&self.state)).await?;
        Ok(out.write(&encode(&keys)).await?)
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let snapshot = from.read_to_end().await?;
        let damaged = |e: postcard::Error| RestoreError(e.to_string());
        let (mut state, rest) = postcard::take_from_bytes::<State>(&snapshot).map_err(damaged)?;
        let keys: Vec<(TaskId, Idempotency)> =
            if rest.is_empty() { Vec::new() } else { postcard::from_bytes(rest).map_err(damaged)? };
        for (id, idempotency) in keys {
            let task = state.tasks.get_mut(&id).ok_or_else(|| {
                RestoreError(format!(
                    "the snapshot holds an idempotency key of task {id}, which it does not hold"
                ))
            })?;
            state.keys.insert((idempotency.owner.clone(), idempotency.key.clone()), id);
            task.idempotency = Some(idempotency);
        }
        self.state = state;
        self.publish();
        Ok(())
    }
}

/// postcard encodes these types into a `Vec` without error.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(value).expect("postcard encodes these types into a Vec"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::collections::VecDeque;

    const LEASE: u64 = 1000;
    const ROOMY: Admission = Admission { max_tasks: 100, max_bytes: 1 << 20 };
    const KEEP: Retention =
        Retention { max_results: 100, max_age_ms: 1_000_000, forget_workers_ms: 1_000_000 };

    fn spec(program: &str) -> Spec {
        Spec {
            command: vec![program.into(), "x".into()],
            stdin: "in".into(),
            timeout_ms: 1000,
            max_attempts: 2,
        }
    }

    fn run(machine: &mut TaskMachine, command: Command) -> Outcome {
        let entry = Entry { term: 1, index: 1, payload: Payload::Command(encode(&command).into()) };
        postcard::from_bytes(&block_on(machine.apply(&entry)).unwrap()).unwrap()
    }

    fn submit(machine: &mut TaskMachine, spec: Spec) -> TaskId {
        match run(machine, Command::Submit { spec, admission: ROOMY }) {
            Outcome::Submitted { id } => id,
            other => panic!("{other:?}"),
        }
    }

    fn lease_as(worker: &str, owner: Option<&str>, request: u64, want: u32) -> Command {
        Command::Lease {
            worker: worker.into(),
            owner: owner.map(Into::into),
            request,
            want,
            lease_ms: LEASE,
            max_workers: 2,
        }
    }

    fn grants(machine: &mut TaskMachine, worker: &str, request: u64, want: u32) -> Vec<Grant> {
        match run(machine, lease_as(worker, None, request, want)) {
            Outcome::Leased { lease_ms: LEASE, grants } => grants,
            other => panic!("{other:?}"),
        }
    }

    fn heartbeat(worker: &str, owner: Option<&str>, leases: &[(TaskId, Epoch)]) -> Command {
        Command::Heartbeat {
            worker: worker.into(),
            owner: owner.map(Into::into),
            leases: leases.to_vec(),
            max_workers: 2,
        }
    }

    fn tick(now: u64) -> Command {
        Command::Tick { now, retention: KEEP }
    }

    fn exited(code: i32, stdout: &str) -> RunResult {
        RunResult::Exited { code, output: Output { stdout: stdout.into(), ..Output::default() } }
    }

    fn report(task: TaskId, epoch: Epoch, result: RunResult) -> Command {
        Command::Report { task, epoch, owner: None, result }
    }

    fn get(machine: &mut TaskMachine, id: TaskId) -> Value {
        let answer = block_on(machine.query(&encode(&Query::Get { id }))).unwrap();
        serde_json::from_slice(&answer).unwrap()
    }

    fn refused(outcome: Outcome) -> Refusal {
        match outcome {
            Outcome::Refused(refusal) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_task_is_queued_leased_and_done() {
        let mut machine = TaskMachine::default();
        let summary = machine.summary();
        let id = submit(&mut machine, spec("echo"));
        assert_eq!(id, 1);
        assert_eq!(get(&mut machine, id)["state"], "queued");
        assert_eq!(summary.borrow().queued, 1);
        let grants = grants(&mut machine, "w1", 7, 4);
        assert_eq!(grants.len(), 1);
        let grant = &grants[0];
        assert_eq!((grant.id, grant.attempt, grant.stdin.as_str()), (id, 1, "in"));
        assert_eq!(grant.command, ["echo", "x"]);
        let task = get(&mut machine, id);
        assert_eq!(
            (&task["state"], &task["worker"], &task["attempts"]),
            (&json!("running"), &json!("w1"), &json!(1))
        );
        assert_eq!(
            *summary.borrow(),
            Summary { running: 1, workers: 1, unfinished_bytes: 9, ..Summary::default() }
        );
        assert_eq!(
            run(&mut machine, report(id, grant.epoch, exited(0, "x\n"))),
            Outcome::Reported { state: TaskState::Done, duplicate: false }
        );
        let task = get(&mut machine, id);
        assert_eq!(
            (&task["state"], &task["exit_code"], &task["stdout"]),
            (&json!("done"), &json!(0), &json!("x\n"))
        );
        assert_eq!(task["history"][0]["ended"], "done");
        assert_eq!(task["lease"], Value::Null);
        assert_eq!(summary.borrow().finished, 1);
        assert_eq!(summary.borrow().unfinished_bytes, 0);
        // The same report again (its answer was lost): a duplicate, nothing changes.
        assert_eq!(
            run(&mut machine, report(id, grant.epoch, exited(1, "other"))),
            Outcome::Reported { state: TaskState::Done, duplicate: true }
        );
        assert_eq!(get(&mut machine, id)["stdout"], "x\n");
    }

    #[test]
    fn other_ends_of_a_run() {
        let mut machine = TaskMachine::default();
        let results = [
            (RunResult::Signalled { signal: 9, output: Output::default() }, "failed", "signal 9"),
            (RunResult::TimedOut { output: Output::default() }, "timed_out", "timeout of 1000 ms"),
            (RunResult::CannotStart { reason: "No such file".into() }, "failed", "could not be started"),
            (exited(3, ""), "done", ""),
        ];
        for (result, state, reason) in results {
            let id = submit(&mut machine, spec("prog"));
            let epoch = grants(&mut machine, "w", id, 1)[0].epoch;
            assert!(matches!(
                run(&mut machine, report(id, epoch, result)),
                Outcome::Reported { duplicate: false, .. }
            ));
            let task = get(&mut machine, id);
            assert_eq!(task["state"], state);
            assert!(task["reason"].as_str().unwrap_or_default().contains(reason), "{task}");
        }
    }

    #[test]
    fn invalid_tasks_are_refused() {
        let mut machine = TaskMachine::default();
        let cases = [
            Spec { command: vec![], ..spec("x") },
            Spec { command: vec![String::new()], ..spec("x") },
            Spec { command: vec!["a\0b".into()], ..spec("x") },
            Spec { max_attempts: 0, ..spec("x") },
            Spec { max_attempts: MAX_ATTEMPTS + 1, ..spec("x") },
            Spec { timeout_ms: 0, ..spec("x") },
        ];
        for spec in cases {
            let refusal =
                refused(run(&mut machine, Command::Submit { spec: spec.clone(), admission: ROOMY }));
            assert!(matches!(refusal, Refusal::InvalidSpec(_)), "{spec:?}: {refusal:?}");
        }
        assert_eq!(machine.summary().borrow().queued, 0);
        let garbage =
            Entry { term: 1, index: 1, payload: Payload::Command(Bytes::from_static(b"\xff\xff").into()) };
        let outcome: Outcome = postcard::from_bytes(&block_on(machine.apply(&garbage)).unwrap()).unwrap();
        assert!(matches!(outcome, Outcome::Invalid(_)));
    }

    #[test]
    fn the_queue_is_bounded_by_count_and_bytes() {
        let mut machine = TaskMachine::default();
        let two = Admission { max_tasks: 2, max_bytes: 1 << 20 };
        for _ in 0..2 {
            assert!(matches!(
                run(&mut machine, Command::Submit { spec: spec("a"), admission: two }),
                Outcome::Submitted { .. }
            ));
        }
        assert_eq!(
            refused(run(&mut machine, Command::Submit { spec: spec("a"), admission: two })),
            Refusal::QueueFull { unfinished: 2, max: 2 }
        );
        // Running tasks count as unfinished; a finished one makes room.
        let grant = grants(&mut machine, "w", 1, 1).remove(0);
        assert!(matches!(
            refused(run(&mut machine, Command::Submit { spec: spec("a"), admission: two })),
            Refusal::QueueFull { .. }
        ));
        run(&mut machine, report(grant.id, grant.epoch, exited(0, "")));
        assert!(matches!(
            run(&mut machine, Command::Submit { spec: spec("a"), admission: two }),
            Outcome::Submitted { .. }
        ));

        let mut machine = TaskMachine::default();
        let small = Admission { max_tasks: 100, max_bytes: 20 };
        assert!(matches!(
            run(&mut machine, Command::Submit { spec: spec("a"), admission: small }),
            Outcome::Submitted { .. }
        ));
        assert_eq!(
            refused(run(&mut machine, Command::Submit { spec: spec("abcdefghijklm"), admission: small })),
            Refusal::QueueBytesFull { bytes: 6, max: 20 }
        );
    }

    #[test]
    fn leases_go_in_order_with_new_epochs_and_repeat_for_the_same_request() {
        let mut machine = TaskMachine::default();
        let ids: Vec<TaskId> = (0..5).map(|_| submit(&mut machine, spec("a"))).collect();
        let first = grants(&mut machine, "w1", 1, 2);
        assert_eq!(first.iter().map(|g| g.id).collect::<Vec<_>>(), ids[..2]);
        let second = grants(&mut machine, "w2", 1, 2);
        assert_eq!(second.iter().map(|g| g.id).collect::<Vec<_>>(), ids[2..4]);
        let epochs: Vec<Epoch> = first.iter().chain(&second).map(|g| g.epoch).collect();
        assert!(epochs.windows(2).all(|pair| pair[0] < pair[1]), "{epochs:?}");
        // The same request again: the same leases, nothing new.
        assert_eq!(grants(&mut machine, "w1", 1, 2), first);
        assert_eq!(machine.summary().borrow().queued, 1);
        // A request wanting none, or more than there are.
        assert!(grants(&mut machine, "w1", 2, 0).is_empty());
        assert_eq!(grants(&mut machine, "w1", 3, 50).len(), 1);
        assert!(grants(&mut machine, "w1", 4, 50).is_empty());
        // One request takes at most MAX_WANT.
        for _ in 0..MAX_WANT + 1 {
            submit(&mut machine, spec("a"));
        }
        assert_eq!(grants(&mut machine, "w2", 2, u32::MAX).len(), MAX_WANT as usize);
    }

    #[test]
    fn workers_are_bounded_and_their_names_bound_to_their_identity() {
        let mut machine = TaskMachine::default();
        submit(&mut machine, spec("a"));
        assert!(matches!(run(&mut machine, lease_as("w1", Some("cert:a"), 1, 0)), Outcome::Leased { .. }));
        assert_eq!(
            refused(run(&mut machine, lease_as("w1", Some("cert:b"), 2, 1))),
            Refusal::WorkerNameTaken
        );
        assert_eq!(refused(run(&mut machine, lease_as("w1", None, 2, 1))), Refusal::WorkerNameTaken);
        assert_eq!(
            refused(run(&mut machine, heartbeat("w1", Some("cert:b"), &[]))),
            Refusal::WorkerNameTaken
        );
        assert!(matches!(run(&mut machine, heartbeat("w2", None, &[])), Outcome::Renewed { .. }));
        assert_eq!(
            refused(run(&mut machine, lease_as("w3", None, 1, 1))),
            Refusal::TooManyWorkers { max: 2 }
        );
        assert_eq!(
            refused(run(&mut machine, heartbeat("w3", None, &[]))),
            Refusal::TooManyWorkers { max: 2 }
        );
        assert_eq!(machine.summary().borrow().queued, 1, "nothing was leased");
        // Silent workers without leases are forgotten, and their names free again.
        let forget = Retention { forget_workers_ms: 500, ..KEEP };
        run(&mut machine, Command::Tick { now: 400, retention: forget });
        assert_eq!(machine.summary().borrow().workers, 2);
        run(&mut machine, Command::Tick { now: 500, retention: forget });
        assert_eq!(machine.summary().borrow().workers, 0);
        assert!(matches!(run(&mut machine, lease_as("w1", Some("cert:b"), 3, 1)), Outcome::Leased { .. }));
    }

    #[test]
    fn a_lease_expires_lease_ms_after_the_tick_that_follows_its_renewal() {
        let mut machine = TaskMachine::default();
        let id = submit(&mut machine, spec("a"));
        run(&mut machine, tick(10_000));
        let grant = grants(&mut machine, "w1", 1, 1).remove(0);
        run(&mut machine, tick(20_000)); // the lease's clock starts here, not at 10,000
        run(&mut machine, tick(20_999));
        assert_eq!(get(&mut machine, id)["state"], "running");
        // A heartbeat restarts the clock at the next tick.
        assert_eq!(
            run(&mut machine, heartbeat("w1", None, &[(id, grant.epoch)])),
            Outcome::Renewed { lost: vec![] }
        );
        run(&mut machine, tick(21_500));
        run(&mut machine, tick(22_499));
        assert_eq!(get(&mut machine, id)["state"], "running");
        // Time never goes back: an old tick changes nothing.
        run(&mut machine, tick(5));
        assert_eq!(machine.summary().borrow().now, 22_499);
        assert_eq!(run(&mut machine, tick(22_500)), Outcome::Ticked { expired: 1, requeued: 1, dropped: 0 });
        let task = get(&mut machine, id);
        assert_eq!(
            (&task["state"], &task["attempts"], &task["lease"]),
            (&json!("queued"), &json!(1), &Value::Null)
        );
        assert_eq!(task["history"][0]["ended"], "lease_expired");

        // The late report of the expired lease is refused, before and after the task is leased again.
        assert_eq!(
            refused(run(&mut machine, report(id, grant.epoch, exited(0, "late")))),
            Refusal::LeaseNotCurrent { state: TaskState::Queued }
        );
        let again = grants(&mut machine, "w2", 1, 1).remove(0);
        assert_eq!((again.id, again.attempt), (id, 2));
        assert!(again.epoch > grant.epoch);
        assert_eq!(
            refused(run(&mut machine, report(id, grant.epoch, exited(0, "late")))),
            Refusal::LeaseNotCurrent { state: TaskState::Running }
        );
        // Its heartbeat learns that the lease is lost.
        assert_eq!(
            run(&mut machine, heartbeat("w1", None, &[(id, grant.epoch)])),
            Outcome::Renewed { lost: vec![(id, grant.epoch)] }
        );
        assert_eq!(
            run(&mut machine, report(id, again.epoch, exited(0, "on time"))),
            Outcome::Reported { state: TaskState::Done, duplicate: false }
        );
        let task = get(&mut machine, id);
        assert_eq!(
            (&task["stdout"], &task["attempts"], &task["worker"]),
            (&json!("on time"), &json!(2), &json!("w2"))
        );
        let ended: Vec<&Value> = task["history"].as_array().unwrap().iter().map(|a| &a["ended"]).collect();
        assert_eq!(ended, [&json!("lease_expired"), &json!("done")]);
        // Once finished, even the late report gets no further.
        assert_eq!(
            refused(run(&mut machine, report(id, grant.epoch, exited(0, "late")))),
            Refusal::LeaseNotCurrent { state: TaskState::Done }
        );
    }

    #[test]
    fn a_task_fails_after_max_attempts() {
        let mut machine = TaskMachine::default();
        let id = submit(&mut machine, spec("a")); // max_attempts 2
        for (attempt, now) in [(1, 0), (2, 10_000)] {
            let grant = grants(&mut machine, "w", attempt, 1).remove(0);
            assert_eq!(grant.attempt, attempt as u32);
            run(&mut machine, tick(now));
            run(&mut machine, tick(now + LEASE));
        }
        let task = get(&mut machine, id);
        assert_eq!((&task["state"], &task["attempts"]), (&json!("failed"), &json!(2)));
        assert!(task["reason"].as_str().unwrap().contains("2 attempts"), "{task}");
        assert!(grants(&mut machine, "w", 3, 1).is_empty());
        assert_eq!(machine.summary().borrow().running, 0);
    }

    #[test]
    fn heartbeats_renew_only_current_leases_of_their_holder() {
        let mut machine = TaskMachine::default();
        let id = submit(&mut machine, spec("a"));
        let grant = grants(&mut machine, "w1", 1, 1).remove(0);
        let lost = |outcome| match outcome {
            Outcome::Renewed { lost } => lost,
            other => panic!("{other:?}"),
        };
        assert_eq!(lost(run(&mut machine, heartbeat("w1", None, &[(id, grant.epoch)]))), []);
        assert_eq!(
            lost(run(&mut machine, heartbeat("w1", None, &[(id, grant.epoch + 1)]))),
            [(id, grant.epoch + 1)]
        );
        assert_eq!(lost(run(&mut machine, heartbeat("w1", None, &[(99, 1)]))), [(99, 1)]);
        assert_eq!(lost(run(&mut machine, heartbeat("w2", None, &[(id, grant.epoch)]))), [(id, grant.epoch)]);
        // Only w1's heartbeat counted: without more, the lease expires.
        run(&mut machine, tick(1));
        run(&mut machine, tick(1 + LEASE));
        assert_eq!(get(&mut machine, id)["state"], "queued");
    }

    #[test]
    fn reports_are_fenced_by_epoch_and_identity() {
        let mut machine = TaskMachine::default();
        let id = submit(&mut machine, spec("a"));
        let Outcome::Leased { grants, .. } = run(&mut machine, lease_as("w1", Some("cert:w1"), 1, 1)) else {
            panic!()
        };
        let epoch = grants[0].epoch;
        let as_owner = |owner: Option<&str>, epoch| Command::Report {
            task: id,
            epoch,
            owner: owner.map(Into::into),
            result: exited(0, ""),
        };
        assert_eq!(refused(run(&mut machine, as_owner(Some("cert:w2"), epoch))), Refusal::NotLeaseHolder);
        assert_eq!(refused(run(&mut machine, as_owner(None, epoch))), Refusal::NotLeaseHolder);
        assert_eq!(
            refused(run(&mut machine, as_owner(Some("cert:w1"), epoch + 1))),
            Refusal::LeaseNotCurrent { state: TaskState::Running }
        );
        assert_eq!(refused(run(&mut machine, report(404, 1, exited(0, ""))),), Refusal::UnknownTask);
        assert_eq!(get(&mut machine, id)["state"], "running", "no refused report changed anything");
        assert!(matches!(
            run(&mut machine, as_owner(Some("cert:w1"), epoch)),
            Outcome::Reported { duplicate: false, .. }
        ));
    }

    #[test]
    fn cancelling_queued_running_finished_and_unknown_tasks() {
        let mut machine = TaskMachine::default();
        let queued = submit(&mut machine, spec("a"));
        let running = submit(&mut machine, spec("b"));
        let done = submit(&mut machine, spec("c"));
        run(&mut machine, Command::Cancel { task: queued }); // before any lease: skipped by leases
        let leased = grants(&mut machine, "w", 1, 2);
        assert_eq!(leased.iter().map(|g| g.id).collect::<Vec<_>>(), [running, done]);
        run(&mut machine, report(done, leased[1].epoch, exited(0, "")));

        assert_eq!(get(&mut machine, queued)["state"], "cancelled");
        assert_eq!(
            run(&mut machine, Command::Cancel { task: running }),
            Outcome::Cancelled { previous: TaskState::Running }
        );
        let task = get(&mut machine, running);
        assert_eq!(
            (&task["state"], &task["history"][0]["ended"]),
            (&json!("cancelled"), &json!("cancelled"))
        );
        // The worker learns that its lease is gone, and its report is refused.
        assert_eq!(
            run(&mut machine, heartbeat("w", None, &[(running, leased[0].epoch)])),
            Outcome::Renewed { lost: vec![(running, leased[0].epoch)] }
        );
        assert_eq!(
            refused(run(&mut machine, report(running, leased[0].epoch, exited(0, "")))),
            Refusal::LeaseNotCurrent { state: TaskState::Cancelled }
        );
        for id in [queued, running, done] {
            assert!(matches!(
                refused(run(&mut machine, Command::Cancel { task: id })),
                Refusal::AlreadyFinished { .. }
            ));
        }
        assert_eq!(refused(run(&mut machine, Command::Cancel { task: 99 })), Refusal::UnknownTask);
        let summary = *machine.summary().borrow();
        assert_eq!(
            (summary.queued, summary.running, summary.finished, summary.unfinished_bytes),
            (0, 0, 3, 0)
        );
    }

    #[test]
    fn old_results_are_dropped_by_count_and_age() {
        let mut machine = TaskMachine::default();
        let retention = Retention { max_results: 2, max_age_ms: 1000, forget_workers_ms: 1_000_000 };
        run(&mut machine, Command::Tick { now: 0, retention });
        let ids: Vec<TaskId> = (0..3).map(|_| submit(&mut machine, spec("a"))).collect();
        for &id in &ids {
            run(&mut machine, Command::Cancel { task: id });
        }
        assert_eq!(get(&mut machine, ids[0]), Value::Null, "the oldest of three goes");
        assert_eq!(get(&mut machine, ids[1])["state"], "cancelled");
        assert_eq!(
            run(&mut machine, Command::Tick { now: 999, retention }),
            Outcome::Ticked { expired: 0, requeued: 0, dropped: 0 }
        );
        assert_eq!(
            run(&mut machine, Command::Tick { now: 1000, retention }),
            Outcome::Ticked { expired: 0, requeued: 0, dropped: 2 }
        );
        assert_eq!(machine.summary().borrow().finished, 0);
        assert_eq!(refused(run(&mut machine, Command::Cancel { task: ids[2] })), Refusal::UnknownTask);
        // Ids are never reused.
        assert_eq!(submit(&mut machine, spec("a")), 4);
    }

    #[test]
    fn listing_pages_through_tasks_by_state() {
        let mut machine = TaskMachine::default();
        for _ in 0..5 {
            submit(&mut machine, spec("a"));
        }
        run(&mut machine, Command::Cancel { task: 2 });
        let list = |machine: &mut TaskMachine, state, after, limit| -> Value {
            let answer = block_on(machine.query(&encode(&Query::List { state, after, limit }))).unwrap();
            serde_json::from_slice(&answer).unwrap()
        };
        let ids = |page: &Value| -> Vec<String> {
            page["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
        };
        let page = list(&mut machine, Some(TaskState::Queued), 0, 2);
        assert_eq!((ids(&page), &page["next"]), (vec!["1".to_string(), "3".into()], &json!("3")));
        let page = list(&mut machine, Some(TaskState::Queued), 3, 2);
        assert_eq!((ids(&page), &page["next"]), (vec!["4".to_string(), "5".into()], &Value::Null));
        assert_eq!(ids(&list(&mut machine, None, 0, 10)).len(), 5);
        assert_eq!(ids(&list(&mut machine, Some(TaskState::Cancelled), 0, 10)), ["2"]);
        assert!(
            list(&mut machine, None, 0, 10)["tasks"][0].get("stdout").is_none(),
            "lists leave out output"
        );
    }

    fn keyed(spec: Spec, owner: Option<&str>, key: &str) -> Command {
        let idempotency =
            Idempotency { owner: owner.map(Into::into), key: key.into(), digest: spec.digest() };
        Command::SubmitKeyed { spec, admission: ROOMY, idempotency }
    }

    fn snapshot(machine: &mut TaskMachine) -> Vec<u8> {
        let mut image = Vec::new();
        block_on(machine.build_snapshot(&SnapshotMeta::default(), &mut image)).unwrap();
        image
    }

    fn try_restore(image: Vec<u8>) -> Result<TaskMachine, RestoreError> {
        let mut machine = TaskMachine::default();
        block_on(machine.restore(&SnapshotMeta::default(), &mut VecDeque::from([Bytes::from(image)])))?;
        Ok(machine)
    }

    fn restored(image: Vec<u8>) -> TaskMachine {
        try_restore(image).unwrap()
    }

    #[test]
    fn a_keyed_submission_repeated_answers_its_task_and_queues_nothing() {
        let mut machine = TaskMachine::default();
        let Outcome::Submitted { id } = run(&mut machine, keyed(spec("a"), None, "order-1")) else {
            panic!()
        };
        assert_eq!(run(&mut machine, keyed(spec("a"), None, "order-1")), Outcome::AlreadySubmitted { id });
        assert_eq!(machine.summary().borrow().queued, 1, "nothing new queued");
        assert_eq!(machine.state.next_id, id + 1, "no id spent");
        assert_eq!(get(&mut machine, id)["idempotency_key"], "order-1");
        // While it runs and once it has finished, too; and even when the queue is full.
        let grant = grants(&mut machine, "w", 1, 1).remove(0);
        assert_eq!(run(&mut machine, keyed(spec("a"), None, "order-1")), Outcome::AlreadySubmitted { id });
        run(&mut machine, report(id, grant.epoch, exited(0, "")));
        let full = Admission { max_tasks: 0, max_bytes: 0 };
        let Command::SubmitKeyed { spec: again, idempotency, .. } = keyed(spec("a"), None, "order-1") else {
            panic!()
        };
        assert_eq!(
            run(&mut machine, Command::SubmitKeyed { spec: again, admission: full, idempotency }),
            Outcome::AlreadySubmitted { id }
        );
        assert_eq!(machine.summary().borrow().finished, 1);
        assert_eq!(machine.state.tasks.len(), 1);
        // Keys are scoped per identity: another owner's same key is another task; so is a
        // submission without a key.
        let Outcome::Submitted { id: theirs } =
            run(&mut machine, keyed(spec("a"), Some("cert:b"), "order-1"))
        else {
            panic!()
        };
        assert_ne!(theirs, id);
        assert_eq!(
            run(&mut machine, keyed(spec("a"), Some("cert:b"), "order-1")),
            Outcome::AlreadySubmitted { id: theirs }
        );
        assert_ne!(submit(&mut machine, spec("a")), id);
        assert_eq!(get(&mut machine, theirs + 1)["idempotency_key"], Value::Null);
        // Bad keys are refused (the HTTP layer refuses them first).
        for bad in [String::new(), "x".repeat(MAX_KEY_BYTES + 1), "tab\there".into(), "é".into()] {
            assert!(
                matches!(refused(run(&mut machine, keyed(spec("a"), None, &bad))), Refusal::InvalidSpec(_)),
                "{bad:?}"
            );
        }
        let longest = format!(" !{}", "~".repeat(MAX_KEY_BYTES - 2));
        assert!(matches!(run(&mut machine, keyed(spec("a"), None, &longest)), Outcome::Submitted { .. }));
    }

    #[test]
    fn a_key_reused_for_another_task_is_refused() {
        let mut machine = TaskMachine::default();
        let Outcome::Submitted { id } = run(&mut machine, keyed(spec("a"), None, "k")) else { panic!() };
        let others = [
            spec("b"),
            Spec { command: vec!["a".into(), "x".into(), "y".into()], ..spec("a") },
            Spec { stdin: "other".into(), ..spec("a") },
            Spec { timeout_ms: 2000, ..spec("a") },
            Spec { max_attempts: 3, ..spec("a") },
        ];
        for other in &others {
            assert_eq!(
                refused(run(&mut machine, keyed(other.clone(), None, "k"))),
                Refusal::KeyReused { id }
            );
        }
        assert_eq!((machine.summary().borrow().queued, machine.state.next_id), (1, id + 1));
        // Still refused once the task has finished and its stdin is dropped: the digest stays.
        run(&mut machine, Command::Cancel { task: id });
        assert_eq!(refused(run(&mut machine, keyed(spec("b"), None, "k"))), Refusal::KeyReused { id });
        assert_eq!(run(&mut machine, keyed(spec("a"), None, "k")), Outcome::AlreadySubmitted { id });
    }

    #[test]
    fn a_key_is_free_again_once_its_task_is_dropped() {
        let mut machine = TaskMachine::default();
        let retention = Retention { max_results: 1, max_age_ms: 1000, forget_workers_ms: 1_000_000 };
        run(&mut machine, Command::Tick { now: 0, retention });
        let Outcome::Submitted { id: first } = run(&mut machine, keyed(spec("a"), None, "k1")) else {
            panic!()
        };
        let Outcome::Submitted { id: second } = run(&mut machine, keyed(spec("a"), None, "k2")) else {
            panic!()
        };
        run(&mut machine, Command::Cancel { task: first });
        run(&mut machine, Command::Cancel { task: second }); // past max_results: the first goes
        assert_eq!(get(&mut machine, first), Value::Null);
        assert_eq!(machine.state.keys.len(), 1, "its key went with it");
        let Outcome::Submitted { id: again } = run(&mut machine, keyed(spec("b"), None, "k1")) else {
            panic!("a retry after the task was dropped queues a new task")
        };
        assert!(again > second);
        // By age, too.
        assert_eq!(run(&mut machine, keyed(spec("a"), None, "k2")), Outcome::AlreadySubmitted { id: second });
        run(&mut machine, Command::Tick { now: 1000, retention });
        assert_eq!(get(&mut machine, second), Value::Null);
        assert!(matches!(run(&mut machine, keyed(spec("a"), None, "k2")), Outcome::Submitted { .. }));
        assert_eq!(machine.state.keys.len(), 2, "k1 and the new k2, both queued");
    }

    #[test]
    fn keys_survive_a_snapshot_and_older_snapshots_restore_without_them() {
        let mut machine = TaskMachine::default();
        let Outcome::Submitted { id: mine } = run(&mut machine, keyed(spec("a"), Some("cert:a"), "k")) else {
            panic!()
        };
        let Outcome::Submitted { id: done } = run(&mut machine, keyed(spec("b"), None, "k")) else {
            panic!()
        };
        let grant = grants(&mut machine, "w", 1, 2).remove(1);
        run(&mut machine, report(done, grant.epoch, exited(0, "")));
        submit(&mut machine, spec("c"));

        let mut copy = restored(snapshot(&mut machine));
        assert_eq!(copy.state, machine.state, "tasks, their keys and the index restored");
        assert_eq!(
            run(&mut copy, keyed(spec("a"), Some("cert:a"), "k")),
            Outcome::AlreadySubmitted { id: mine }
        );
        assert_eq!(run(&mut copy, keyed(spec("b"), None, "k")), Outcome::AlreadySubmitted { id: done });
        assert_eq!(refused(run(&mut copy, keyed(spec("c"), None, "k"))), Refusal::KeyReused { id: done });
        assert_eq!(get(&mut copy, mine)["idempotency_key"], "k");

        // A snapshot of a version before keys is the state's encoding alone: it restores, and
        // its tasks have no keys.
        let old = restored(encode(&machine.state).to_vec());
        assert_eq!(old.state.tasks.len(), 3);
        assert!(old.state.keys.is_empty() && old.state.tasks.values().all(|task| task.idempotency.is_none()));
        // A key naming a task the snapshot does not hold is damage.
        let mut image = encode(&State::default()).to_vec();
        let orphan = Idempotency { owner: None, key: "k".into(), digest: [0; 32] };
        image.extend_from_slice(&encode(&vec![(7u64, orphan)]));
        assert!(try_restore(image).is_err());
    }

    /// Applies `commands` to a fresh machine, snapshotting and restoring it into a new one
    /// every `restore_every` commands; returns its state and the commands' outcomes.
    fn replay(commands: &[Command], restore_every: usize) -> (State, Vec<Outcome>) {
        let mut machine = TaskMachine::default();
        let mut outcomes = Vec::with_capacity(commands.len());
        for (n, command) in commands.iter().enumerate() {
            outcomes.push(run(&mut machine, command.clone()));
            if restore_every > 0 && n % restore_every == 0 {
                machine = restored(snapshot(&mut machine));
            }
            check_invariants(&machine.state);
        }
        (machine.state, outcomes)
    }

    fn check_invariants(state: &State) {
        assert!(state.queue.is_disjoint(&state.running));
        let mut bytes = 0;
        for (id, task) in &state.tasks {
            assert_eq!(task.state == TaskState::Queued, state.queue.contains(id), "{task:?}");
            assert_eq!(task.state == TaskState::Running, state.running.contains(id), "{task:?}");
            assert_eq!(task.lease.is_some(), task.state == TaskState::Running, "{task:?}");
            assert_eq!(task.attempts as usize, task.history.len());
            assert!(task.attempts <= task.spec.max_attempts);
            let done = task.history.iter().filter(|a| a.ended.as_deref() == Some("done")).count();
            assert!(done <= 1, "completed twice: {task:?}");
            if !matches!(task.state, TaskState::Queued | TaskState::Running) {
                assert!(state.finished.contains(&(task.finished_at.unwrap(), *id)));
            } else {
                bytes += task.spec.bytes();
            }
        }
        assert_eq!(state.unfinished_bytes, bytes);
        let finished =
            state.tasks.values().filter(|t| !matches!(t.state, TaskState::Queued | TaskState::Running));
        assert_eq!(state.finished.len(), finished.count());
        for (name, worker) in &state.workers {
            for id in &worker.tasks {
                assert_eq!(state.tasks[id].lease.as_ref().map(|l| l.worker.as_str()), Some(name.as_str()));
            }
        }
        // The key index is exactly the kept tasks' keys (so no two share one).
        let keys: Vec<((Option<String>, String), TaskId)> = state
            .tasks
            .iter()
            .filter_map(|(&id, task)| {
                let idempotency = task.idempotency.as_ref()?;
                Some(((idempotency.owner.clone(), idempotency.key.clone()), id))
            })
            .collect();
        assert_eq!(state.keys.len(), keys.len(), "two kept tasks share a key");
        assert!(keys.iter().all(|(key, id)| state.keys.get(key) == Some(id)), "{:?}", state.keys);
    }

    /// Random commands (some valid, many refused) keep the invariants, and a machine restored
    /// from snapshots along the way ends in the same state as one that never was.
    #[test]
    fn random_histories_keep_the_invariants_and_survive_snapshots() {
        let mut seed = 0x5eed_u64;
        let mut next = move |bound: u64| {
            // SplitMix64
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % bound
        };
        let retention = Retention { max_results: 10, max_age_ms: 5000, forget_workers_ms: 3000 };
        let mut commands = Vec::new();
        let mut now = 0;
        for _ in 0..3000 {
            let worker = format!("w{}", next(4));
            let command = match next(7) {
                0 | 1 => {
                    let spec = Spec { max_attempts: 1 + next(3) as u32, ..spec("a") };
                    let admission = Admission { max_tasks: 20, max_bytes: 150 };
                    // Half with one of a few keys, of two owners: duplicates, reuses, new tasks.
                    match next(4) {
                        0 | 1 => Command::Submit { spec, admission },
                        owner => {
                            let idempotency = Idempotency {
                                owner: (owner == 3).then(|| "cert:c".to_string()),
                                key: format!("k{}", next(6)),
                                digest: spec.digest(),
                            };
                            Command::SubmitKeyed { spec, admission, idempotency }
                        }
                    }
                }
                2 => Command::Lease {
                    worker,
                    owner: None,
                    request: next(5),
                    want: next(4) as u32,
                    lease_ms: 100 + next(500),
                    max_workers: 3,
                },
                3 => Command::Heartbeat {
                    worker,
                    owner: None,
                    leases: (0..next(3)).map(|_| (next(40), next(60))).collect(),
                    max_workers: 3,
                },
                4 => report(next(40), next(60), exited(next(2) as i32, "out")),
                5 => Command::Cancel { task: next(40) },
                _ => {
                    now += next(300);
                    Command::Tick { now: now.saturating_sub(next(100)), retention }
                }
            };
            commands.push(command);
        }
        let (straight, outcomes) = replay(&commands, 0);
        assert_eq!(replay(&commands, 97), (straight.clone(), outcomes.clone()));
        assert!(straight.next_epoch > 50 && straight.next_id > 50, "the history did things: {straight:?}");
        let count =
            |matches: fn(&Outcome) -> bool| outcomes.iter().filter(|outcome| matches(outcome)).count();
        let duplicates = count(|outcome| matches!(outcome, Outcome::AlreadySubmitted { .. }));
        let reused = count(|outcome| matches!(outcome, Outcome::Refused(Refusal::KeyReused { .. })));
        assert!(
            duplicates > 20 && reused > 20,
            "keys were repeated: {duplicates} duplicates, {reused} reused"
        );
    }

    #[test]
    fn a_damaged_snapshot_is_an_error() {
        let mut machine = TaskMachine::default();
        let restored = block_on(
            machine.restore(&SnapshotMeta::default(), &mut VecDeque::from([Bytes::from_static(b"\xff")])),
        );
        assert!(restored.is_err());
    }
}
