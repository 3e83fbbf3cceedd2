//! The task runner's API (JSON): `/tasks…` for clients, `/worker/…` for workers, `/workers`
//! and `/status`; raft-service adds `/metrics` and the admin API. Writes sent to any node are
//! carried out by the leader: a follower forwards them over the Raft transport and answers
//! once the leader has applied them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use raft_service::auth::{Caller, Role};
use raft_service::consistency::{Consistency, ReadParams};
use raft_service::routes::status_fields;
use raft_service::ApiError;
use raft_std::RaftNode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::{worker_name, TasksArgs};
use crate::machine::{
    self, Command, Epoch, Grant, Idempotency, Outcome, Output, Refusal, RunResult, Spec, Summary, TaskId,
    TaskState, MAX_WANT,
};

/// Longest a lease request waits for a task to be queued.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Most tasks one page of `GET /tasks` lists.
const MAX_PAGE: u32 = 1000;
/// Tasks per page when the request does not say.
const DEFAULT_PAGE: u32 = 100;
/// Longest reason a worker may give for not starting a program.
const MAX_REASON_BYTES: usize = 4096;
/// Most leases one heartbeat names.
const MAX_HEARTBEAT_LEASES: usize = 4096;

type Reply = Result<Json<Value>, ApiError>;

#[derive(Clone)]
struct App {
    node: RaftNode,
    summary: watch::Receiver<Summary>,
    settings: Arc<TasksArgs>,
}

/// The service's own routes.
pub fn router(node: RaftNode, summary: watch::Receiver<Summary>, settings: Arc<TasksArgs>) -> Router {
    Router::new()
        .route("/tasks", post(submit).get(list))
        .route("/tasks/{id}", get(get_task).delete(cancel))
        .route("/workers", get(workers))
        .route("/worker/lease", post(lease))
        .route("/worker/heartbeat", post(heartbeat))
        .route("/worker/report", post(report))
        .route("/status", get(status))
        .with_state(App { node, summary, settings })
}

/// Replicates `command` on behalf of `caller` and returns its outcome; refusals become errors.
async fn write(app: &App, caller: Option<Caller>, command: &Command) -> Result<Outcome, ApiError> {
    let applied = Caller::on(caller, &app.node).propose(machine::encode(command)).await?;
    let outcome = postcard::from_bytes(&applied.response).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "outcome_unknown",
            format!("the command was applied at index {} but its outcome was lost", applied.index),
        )
    })?;
    match outcome {
        Outcome::Invalid(reason) => {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "invalid_command", reason))
        }
        Outcome::Refused(refusal) => Err(refused(refusal)),
        outcome => Ok(outcome),
    }
}

/// The answer to a refused command.
fn refused(refusal: Refusal) -> ApiError {
    use StatusCode as S;
    match refusal {
        Refusal::InvalidSpec(reason) => ApiError::new(S::BAD_REQUEST, "invalid_task", reason),
        Refusal::QueueFull { unfinished, max } => ApiError::new(
            S::TOO_MANY_REQUESTS,
            "queue_full",
            format!("{unfinished} tasks are queued or running, the most this cluster takes; retry once some finish"),
        )
        .with("unfinished", unfinished)
        .with("max_queued", max),
        Refusal::QueueBytesFull { bytes, max } => ApiError::new(
            S::TOO_MANY_REQUESTS,
            "queue_bytes_full",
            format!(
                "tasks queued or running hold {bytes} bytes of commands and input, and this one would take them \
                 past {max}; retry once some finish"
            ),
        )
        .with("unfinished_bytes", bytes)
        .with("max_queued_bytes", max),
        Refusal::TooManyWorkers { max } => ApiError::new(
            S::TOO_MANY_REQUESTS,
            "too_many_workers",
            format!("the cluster tracks {max} workers already; idle ones are forgotten after --forget-workers-ms"),
        ),
        Refusal::WorkerNameTaken => ApiError::new(
            S::FORBIDDEN,
            "worker_name_taken",
            "another identity uses this worker name; choose another --name",
        ),
        Refusal::UnknownTask => not_found(),
        Refusal::LeaseNotCurrent { state } => ApiError::new(
            S::CONFLICT,
            "lease_not_current",
            "this lease is not the task's current one (it expired, or the task was cancelled); the result was \
             not recorded",
        )
        .with("state", state.name()),
        Refusal::NotLeaseHolder => ApiError::new(
            S::FORBIDDEN,
            "not_lease_holder",
            "the lease is held by another identity; the result was not recorded",
        ),
        Refusal::AlreadyFinished { state } => {
            ApiError::new(S::CONFLICT, "already_finished", "the task has finished already; nothing changed")
                .with("state", state.name())
        }
        Refusal::KeyReused { id } => ApiError::new(
            S::CONFLICT,
            "idempotency_key_reused",
            format!(
                "this Idempotency-Key was used for task {id}, which asked for another command, stdin, timeout or \
                 max_attempts; nothing was queued: use a new key for a new task"
            ),
        )
        .with("id", id.to_string()),
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such task (never submitted, or its result was dropped)",
    )
}

fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected outcome {outcome:?}"))
}

/// A task id from the API: the decimal number, as a string.
fn task_id(text: &str) -> Result<TaskId, ApiError> {
    text.parse::<TaskId>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| ApiError::bad_request("a task id is a positive integer (as a string)"))
}

/// The identity that made the request, when the node authenticates clients.
fn owner(caller: &Option<Caller>) -> Option<String> {
    caller.as_ref().map(|Caller(name)| name.to_string())
}

/// The role a client needs for a proposal, checked again by the leader
/// ([`Roles::authorizer`](raft_service::auth::Roles::authorizer)): submitting and cancelling
/// need `write`; leasing, renewing and reporting `worker`; cluster time is the leader's own
/// (`admin`, for a client that tried).
pub(crate) fn role_needed(proposal: &[u8]) -> Role {
    match postcard::from_bytes(proposal) {
        Ok(Command::Submit { .. } | Command::SubmitKeyed { .. } | Command::Cancel { .. }) => Role::Write,
        Ok(Command::Lease { .. } | Command::Heartbeat { .. } | Command::Report { .. }) => Role::Worker,
        Ok(Command::Tick { .. }) => Role::Admin,
        // The state machine refuses it anyway.
        Err(_) => Role::Write,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    command: Vec<String>,
    #[serde(default)]
    stdin: String,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
}

/// The header that carries a submission's idempotency key (the IETF httpapi draft's name).
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The submission's idempotency key, if it has one: the header's value, byte for byte.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let bad = |reason: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_idempotency_key", reason);
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(bad("give one Idempotency-Key header, not several".into()));
    }
    let key = value.to_str().map_err(|_| bad("an idempotency key is printable ASCII (space to ~)".into()))?;
    machine::check_key(key).map_err(bad)?;
    Ok(Some(key.to_string()))
}

/// `POST /tasks` with `{"command": [...], "stdin", "timeout_ms", "max_attempts"}`: `201 {"id"}`;
/// with an `Idempotency-Key` header that a kept task was submitted with (by the same
/// identity), `200 {"id", "duplicate": true}` and nothing queued, or `409
/// idempotency_key_reused` if that task was another.
async fn submit(
    State(app): State<App>,
    caller: Option<Caller>,
    headers: HeaderMap,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let key = idempotency_key(&headers)?;
    let settings = &app.settings;
    if body.command.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_command",
            "the command is empty: give the program and its arguments, e.g. [\"echo\", \"hello\"]",
        ));
    }
    let command_bytes: usize = body.command.iter().map(|argument| argument.len() + 1).sum();
    if command_bytes > settings.max_command_bytes {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "command_too_large",
            format!(
                "the command takes {command_bytes} bytes; this node takes at most {}",
                settings.max_command_bytes
            ),
        ));
    }
    if body.stdin.len() > settings.max_stdin_bytes {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "stdin_too_large",
            format!(
                "stdin is {} bytes; this node takes at most {}",
                body.stdin.len(),
                settings.max_stdin_bytes
            ),
        ));
    }
    let timeout_ms = body.timeout_ms.unwrap_or(settings.default_timeout_ms);
    if timeout_ms == 0 || timeout_ms > settings.max_timeout_ms {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_timeout",
            format!("timeout_ms must be between 1 and {}", settings.max_timeout_ms),
        ));
    }
    let spec = Spec {
        command: body.command,
        stdin: body.stdin,
        timeout_ms,
        max_attempts: body.max_attempts.unwrap_or(settings.default_max_attempts),
    };
    spec.check().map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, "invalid_task", reason))?;
    let admission = settings.admission();
    let command = match key {
        None => Command::Submit { spec, admission },
        Some(key) => {
            let idempotency = Idempotency { owner: owner(&caller), key, digest: spec.digest() };
            Command::SubmitKeyed { spec, admission, idempotency }
        }
    };
    match write(&app, caller, &command).await? {
        Outcome::Submitted { id } => Ok((StatusCode::CREATED, Json(json!({ "id": id.to_string() })))),
        Outcome::AlreadySubmitted { id } => {
            Ok((StatusCode::OK, Json(json!({ "id": id.to_string(), "duplicate": true }))))
        }
        outcome => Err(unexpected(outcome)),
    }
}

async fn read(app: &App, query: &machine::Query, consistency: Consistency) -> Result<Value, ApiError> {
    let answer = consistency.read(&app.node, machine::encode(query)).await?;
    serde_json::from_slice(&answer).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("bad answer from the state: {e}"),
        )
    })
}

/// `GET /tasks/{id}[?consistency=stale]`.
async fn get_task(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Reply {
    let Path(id) = path?;
    let id = task_id(&id)?;
    let Query(ReadParams { consistency }) = params?;
    match read(&app, &machine::Query::Get { id }, consistency).await? {
        Value::Null => Err(not_found()),
        task => Ok(Json(task)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    state: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    consistency: Consistency,
}

/// `GET /tasks[?state=S][&limit=N][&after=ID]`: `{"tasks": [...], "next": ID or null}`.
async fn list(State(app): State<App>, params: Result<Query<ListParams>, QueryRejection>) -> Reply {
    let Query(params) = params?;
    let state = match params.state.as_deref() {
        None => None,
        Some(name) => Some(TaskState::parse(name).ok_or_else(|| {
            ApiError::bad_request("state is one of queued, running, done, failed, timed_out, cancelled")
        })?),
    };
    let after = match params.after.as_deref() {
        None => 0,
        Some(after) => task_id(after)?,
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit is between 1 and {MAX_PAGE}")));
    }
    Ok(Json(read(&app, &machine::Query::List { state, after, limit }, params.consistency).await?))
}

/// `DELETE /tasks/{id}`: cancels a queued or running task.
async fn cancel(
    State(app): State<App>,
    caller: Option<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let Path(id) = path?;
    let id = task_id(&id)?;
    match write(&app, caller, &Command::Cancel { task: id }).await? {
        Outcome::Cancelled { previous } => {
            Ok(Json(json!({ "id": id.to_string(), "state": "cancelled", "previous": previous.name() })))
        }
        outcome => Err(unexpected(outcome)),
    }
}

/// `GET /workers`.
async fn workers(State(app): State<App>, params: Result<Query<ReadParams>, QueryRejection>) -> Reply {
    let Query(ReadParams { consistency }) = params?;
    Ok(Json(read(&app, &machine::Query::Workers, consistency).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    worker: String,
    slots: u32,
    /// Chosen by the worker; repeating a request returns what it got.
    request: u64,
    #[serde(default)]
    wait_ms: u64,
}

fn grant_json(grant: Grant) -> Value {
    json!({
        "id": grant.id.to_string(),
        "epoch": grant.epoch,
        "attempt": grant.attempt,
        "command": grant.command,
        "stdin": grant.stdin,
        "timeout_ms": grant.timeout_ms,
    })
}

/// `POST /worker/lease` with `{"worker", "slots", "request", "wait_ms"}`: up to `slots`
/// queued tasks, each under a new lease; waits up to `wait_ms` (at most 20 s) for one.
async fn lease(
    State(app): State<App>,
    caller: Option<Caller>,
    body: Result<Json<LeaseBody>, JsonRejection>,
) -> Reply {
    let Json(LeaseBody { worker, slots, request, wait_ms }) = body?;
    worker_name(&worker).map_err(ApiError::bad_request)?;
    if !(1..=MAX_WANT).contains(&slots) {
        return Err(ApiError::bad_request(format!("slots is between 1 and {MAX_WANT}")));
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms).min(MAX_WAIT);
    let command = Command::Lease {
        worker,
        owner: owner(&caller),
        request,
        want: slots,
        lease_ms: app.settings.lease_ms,
        max_workers: app.settings.max_workers,
    };
    let mut summary = app.summary.clone();
    loop {
        let queued = summary.borrow_and_update().queued;
        // Ask when there is something to take, and at the deadline in any case (which tells
        // the cluster the worker is alive).
        let last = Instant::now() >= deadline;
        if queued > 0 || last {
            match write(&app, caller.clone(), &command).await? {
                Outcome::Leased { lease_ms, grants } if !grants.is_empty() || last => {
                    let tasks: Vec<Value> = grants.into_iter().map(grant_json).collect();
                    return Ok(Json(json!({ "lease_ms": lease_ms, "tasks": tasks })));
                }
                Outcome::Leased { .. } => {} // others took them first: wait for more
                outcome => return Err(unexpected(outcome)),
            }
        }
        let _ = tokio::time::timeout_at(deadline, summary.changed()).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseRef {
    task: String,
    epoch: Epoch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    worker: String,
    leases: Vec<LeaseRef>,
}

/// `POST /worker/heartbeat` with `{"worker", "leases": [{"task", "epoch"}]}`: renews the
/// leases that are current; answers those that are not (`lost`), whose runs should stop.
async fn heartbeat(
    State(app): State<App>,
    caller: Option<Caller>,
    body: Result<Json<HeartbeatBody>, JsonRejection>,
) -> Reply {
    let Json(HeartbeatBody { worker, leases }) = body?;
    worker_name(&worker).map_err(ApiError::bad_request)?;
    if leases.len() > MAX_HEARTBEAT_LEASES {
        return Err(ApiError::bad_request(format!(
            "a heartbeat names at most {MAX_HEARTBEAT_LEASES} leases"
        )));
    }
    let leases = leases
        .into_iter()
        .map(|lease| Ok((task_id(&lease.task)?, lease.epoch)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let command =
        Command::Heartbeat { worker, owner: owner(&caller), leases, max_workers: app.settings.max_workers };
    match write(&app, caller.clone(), &command).await? {
        Outcome::Renewed { lost } => {
            let lost: Vec<Value> = lost
                .into_iter()
                .map(|(task, epoch)| json!({ "task": task.to_string(), "epoch": epoch }))
                .collect();
            Ok(Json(json!({ "lost": lost, "lease_ms": app.settings.lease_ms })))
        }
        outcome => Err(unexpected(outcome)),
    }
}

/// How a run ended, as a worker reports it.
#[derive(Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum ResultBody {
    Exited {
        exit_code: i32,
        #[serde(flatten)]
        output: OutputBody,
    },
    Signalled {
        signal: i32,
        #[serde(flatten)]
        output: OutputBody,
    },
    TimedOut {
        #[serde(flatten)]
        output: OutputBody,
    },
    CannotStart {
        reason: String,
    },
}

#[derive(Deserialize, Default)]
struct OutputBody {
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    stdout_truncated: bool,
    #[serde(default)]
    stderr_truncated: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    task: String,
    epoch: Epoch,
    result: ResultBody,
}

/// `text` cut to at most `max` bytes, at a character boundary, and whether it was cut.
fn cut(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

impl OutputBody {
    fn into_output(self, max: usize) -> Output {
        let (stdout, stdout_cut) = cut(self.stdout, max);
        let (stderr, stderr_cut) = cut(self.stderr, max);
        Output {
            stdout,
            stderr,
            stdout_truncated: self.stdout_truncated || stdout_cut,
            stderr_truncated: self.stderr_truncated || stderr_cut,
        }
    }
}

/// `POST /worker/report` with `{"task", "epoch", "result": {"outcome": "exited", "exit_code",
/// "stdout", "stderr", ...}}`: records the result if the lease is current.
async fn report(
    State(app): State<App>,
    caller: Option<Caller>,
    body: Result<Json<ReportBody>, JsonRejection>,
) -> Reply {
    let Json(ReportBody { task, epoch, result }) = body?;
    let id = task_id(&task)?;
    let max = app.settings.max_output_bytes;
    let result = match result {
        ResultBody::Exited { exit_code, output } => {
            RunResult::Exited { code: exit_code, output: output.into_output(max) }
        }
        ResultBody::Signalled { signal, output } => {
            RunResult::Signalled { signal, output: output.into_output(max) }
        }
        ResultBody::TimedOut { output } => RunResult::TimedOut { output: output.into_output(max) },
        ResultBody::CannotStart { reason } => {
            RunResult::CannotStart { reason: cut(reason, MAX_REASON_BYTES).0 }
        }
    };
    let command = Command::Report { task: id, epoch, owner: owner(&caller), result };
    match write(&app, caller.clone(), &command).await? {
        Outcome::Reported { state, duplicate } => {
            Ok(Json(json!({ "id": id.to_string(), "state": state.name(), "duplicate": duplicate })))
        }
        outcome => Err(unexpected(outcome)),
    }
}

/// `GET /status`: the node's state, and the task counts of this node's state.
async fn status(State(app): State<App>) -> Reply {
    let mut fields = status_fields(&app.node.status().await?);
    let tasks = read(&app, &machine::Query::Summary, Consistency::Stale).await?;
    fields.insert("tasks".into(), tasks);
    fields.insert("lease_ms".into(), json!(app.settings.lease_ms));
    Ok(Json(Value::Object(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo".into(), 2), ("h".to_string(), true));
        assert_eq!(cut("héllo".into(), 3), ("hé".to_string(), true));
        assert_eq!(cut("hi".into(), 2), ("hi".to_string(), false));
        let output =
            OutputBody { stdout: "abc".into(), stderr: "d".into(), ..OutputBody::default() }.into_output(2);
        assert_eq!(
            (output.stdout.as_str(), output.stdout_truncated, output.stderr_truncated),
            ("ab", true, false)
        );
    }

    #[test]
    fn task_ids_are_positive_integers() {
        assert_eq!(task_id("42").unwrap(), 42);
        for bad in ["0", "-1", "x", "", "18446744073709551616"] {
            assert_eq!(task_id(bad).unwrap_err().status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
