//! The HTTP API (JSON). Writes sent to any node are carried out by the leader: a follower
//! forwards them over the Raft transport and answers once the leader has applied them.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use raft_core::{Membership, NodeId};
use raft_std::{Faults, RaftNode, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::cli::check_address;
use crate::machine::{self, Command, Outcome};

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Largest request body (a value), in bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

type Reply = Result<Json<Value>, ApiError>;

#[derive(Clone)]
struct Api {
    node: RaftNode,
    metrics: PrometheusHandle,
    /// Present when the node runs with `--fault-injection`.
    faults: Option<Faults>,
}

/// The service's routes.
pub fn router(node: RaftNode, metrics: PrometheusHandle, faults: Option<Faults>) -> Router {
    Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/kv/{key}/cas", post(compare_and_swap))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .route("/cluster/members", post(add_member))
        .route("/cluster/members/{id}", delete(remove_member))
        .route("/cluster/transfer-leader", post(transfer_leader))
        .route("/debug/partition", post(partition))
        .route("/debug/heal", post(heal))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see README")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Api { node, metrics, faults })
}

fn key_from(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = path?;
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!("keys are at most {MAX_KEY_BYTES} bytes")));
    }
    Ok(key)
}

/// Replicates `command` and returns its index and outcome.
async fn write(api: &Api, command: &Command) -> Result<(u64, Outcome), ApiError> {
    let applied = api.node.propose(machine::encode(command)).await?;
    let outcome = postcard::from_bytes(&applied.response).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "outcome_unknown",
            format!(
                "the write was applied at index {} but its outcome was lost; read the key to check",
                applied.index
            ),
        )
    })?;
    match outcome {
        Outcome::Invalid(reason) => {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "invalid_command", reason))
        }
        outcome => Ok((applied.index, outcome)),
    }
}

fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected outcome {outcome:?}"))
}

/// `PUT /kv/{key}`: the body is the value (UTF-8 text).
async fn put_key(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let key = key_from(path)?;
    let value = String::from_utf8(body?.to_vec())
        .map_err(|_| ApiError::bad_request("the value must be UTF-8 text"))?;
    match write(&api, &Command::Put { key: key.clone(), value }).await? {
        (index, Outcome::Put { previous }) => {
            Ok(Json(json!({ "key": key, "index": index, "previous": previous })))
        }
        (_, outcome) => Err(unexpected(outcome)),
    }
}

/// `DELETE /kv/{key}`.
async fn delete_key(State(api): State<Api>, path: Result<Path<String>, PathRejection>) -> Reply {
    let key = key_from(path)?;
    match write(&api, &Command::Delete { key: key.clone() }).await? {
        (index, Outcome::Delete { previous }) => {
            Ok(Json(json!({ "key": key, "index": index, "deleted": previous.is_some() })))
        }
        (_, outcome) => Err(unexpected(outcome)),
    }
}

/// Body of `POST /kv/{key}/cas`: `null` or a missing field means "absent".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    from: Option<String>,
    to: Option<String>,
}

/// `POST /kv/{key}/cas` with `{"from": old, "to": new}`: 200 if swapped, 409 with the current
/// value if not.
async fn compare_and_swap(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CasBody>, JsonRejection>,
) -> Reply {
    let key = key_from(path)?;
    let Json(CasBody { from, to }) = body?;
    match write(&api, &Command::Cas { key: key.clone(), from, to }).await? {
        (index, Outcome::Cas { swapped: true, current }) => {
            Ok(Json(json!({ "key": key, "index": index, "swapped": true, "value": current })))
        }
        (_, Outcome::Cas { swapped: false, current }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "cas_failed",
            "the key does not hold the expected value; nothing was changed",
        )
        .with("key", key)
        .with("current", current)),
        (_, outcome) => Err(unexpected(outcome)),
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Consistency {
    /// Reflects every write acknowledged before the read (confirmed with the leader).
    #[default]
    Linearizable,
    /// This node's current state: no round trip, may be behind.
    Stale,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    #[serde(default)]
    consistency: Consistency,
}

/// `GET /kv/{key}[?consistency=stale]`.
async fn get_key(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Reply {
    let key = key_from(path)?;
    let Query(ReadParams { consistency }) = params?;
    let query = machine::encode(&machine::Query::Get { key: key.clone() });
    let answer = match consistency {
        Consistency::Linearizable => api.node.read(query).await?,
        Consistency::Stale => api.node.read_local(&query).await?,
    };
    let value: Option<String> = postcard::from_bytes(&answer).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("bad answer: {e}"))
    })?;
    match value {
        Some(value) => Ok(Json(json!({ "key": key, "value": value }))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such key").with("key", key)),
    }
}

/// `GET /status`.
async fn status(State(api): State<Api>) -> Reply {
    let Status { diagnostics: d, links } = api.node.status().await?;
    Ok(Json(json!({
        "id": d.id,
        "role": d.role.to_string(),
        "term": d.term,
        "leader": d.leader,
        "vote": d.vote,
        "commit_index": d.commit_index,
        "applied_index": d.applied_index,
        "last_log_index": d.last_log.index,
        "last_log_term": d.last_log.term,
        "first_log_index": d.first_index,
        "members": members(&d.membership),
        "replication": d.peers,
        "links": links,
    })))
}

/// `GET /metrics`: the Prometheus text format.
async fn prometheus(State(api): State<Api>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], api.metrics.render())
}

fn members(membership: &Membership) -> Value {
    json!({ "voters": membership.voters, "learners": membership.learners, "outgoing_voters": membership.outgoing })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    id: NodeId,
    addr: String,
}

/// `POST /cluster/members` with `{"id": 4, "addr": "127.0.0.1:7004"}` (the new node's
/// `--listen` address; start it with `--join` first).
async fn add_member(State(api): State<Api>, body: Result<Json<NewMember>, JsonRejection>) -> Reply {
    let Json(NewMember { id, addr }) = body?;
    if id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    check_address(&addr).map_err(ApiError::bad_request)?;
    let membership = api.node.add_member(id, addr).await?;
    Ok(Json(json!({ "members": members(&membership) })))
}

/// `DELETE /cluster/members/{id}`.
async fn remove_member(State(api): State<Api>, path: Result<Path<NodeId>, PathRejection>) -> Reply {
    let Path(id) = path?;
    let membership = api.node.remove_member(id).await?;
    Ok(Json(json!({ "members": members(&membership) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    to: NodeId,
}

/// `POST /cluster/transfer-leader` with `{"to": 2}`.
async fn transfer_leader(State(api): State<Api>, body: Result<Json<Transfer>, JsonRejection>) -> Reply {
    let Json(Transfer { to }) = body?;
    let leader = api.node.transfer_leader(to).await?;
    Ok(Json(json!({ "leader": leader })))
}

fn faults(api: &Api) -> Result<&Faults, ApiError> {
    api.faults.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "fault injection is off (start the node with --fault-injection)",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Partition {
    peers: Vec<NodeId>,
}

/// `POST /debug/partition` with `{"peers": [2, 3]}`: drop all traffic between this node and
/// those peers (test hook).
async fn partition(State(api): State<Api>, body: Result<Json<Partition>, JsonRejection>) -> Reply {
    let Json(Partition { peers }) = body?;
    let faults = faults(&api)?;
    faults.isolate(api.node.id(), peers);
    Ok(Json(json!({ "blocked_links": faults.blocked_links() })))
}

/// `POST /debug/heal`: restore every link of this node (test hook).
async fn heal(State(api): State<Api>) -> Reply {
    faults(&api)?.heal();
    Ok(Json(json!({ "blocked_links": [] })))
}
