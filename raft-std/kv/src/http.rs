//! The key-value API (JSON): `/kv/…` and `/status`; raft-service adds `/metrics` and the admin
//! API. Writes sent to any node are carried out by the leader: a follower forwards them over
//! the Raft transport and answers once the leader has applied them.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use raft_service::auth::Caller;
use raft_service::consistency::ReadParams;
use raft_service::routes::status_fields;
use raft_service::ApiError;
use raft_std::RaftNode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::machine::{self, Command, Outcome, Usage};

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;

type Reply = Result<Json<Value>, ApiError>;

#[derive(Clone)]
struct Kv {
    node: RaftNode,
    /// `--quota-bytes`: carried by every write this node accepts.
    quota: u64,
}

/// The service's own routes.
pub fn router(node: RaftNode, quota: u64) -> Router {
    Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/kv/{key}/cas", post(compare_and_swap))
        .route("/status", get(status))
        .with_state(Kv { node, quota })
}

fn key_from(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = path?;
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!("keys are at most {MAX_KEY_BYTES} bytes")));
    }
    Ok(key)
}

/// Replicates `command` and returns its index and outcome.
async fn write(kv: &Kv, caller: Option<Caller>, command: &Command) -> Result<(u64, Outcome), ApiError> {
    let applied = Caller::on(caller, &kv.node).propose(machine::encode(command)).await?;
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
        Outcome::QuotaExceeded { used, quota } => Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota_exceeded",
            format!(
                "the store holds {used} bytes of keys and values, and this write would grow it while it is \
                 past its {quota}-byte quota or its quota alarm is raised; nothing was changed. Delete keys \
                 to make room (reads and deletes still work)"
            ),
        )
        .with("used_bytes", used)
        .with("quota_bytes", quota)),
        outcome => Ok((applied.index, outcome)),
    }
}

fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected outcome {outcome:?}"))
}

/// `PUT /kv/{key}`: the body is the value (UTF-8 text).
async fn put_key(
    State(kv): State<Kv>,
    caller: Option<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let key = key_from(path)?;
    let value = String::from_utf8(body?.to_vec())
        .map_err(|_| ApiError::bad_request("the value must be UTF-8 text"))?;
    match write(&kv, caller, &Command::PutWithin { key: key.clone(), value, quota: kv.quota }).await? {
        (index, Outcome::Put { previous }) => {
            Ok(Json(json!({ "key": key, "index": index, "previous": previous })))
        }
        (_, outcome) => Err(unexpected(outcome)),
    }
}

/// `DELETE /kv/{key}`.
async fn delete_key(
    State(kv): State<Kv>,
    caller: Option<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let key = key_from(path)?;
    match write(&kv, caller, &Command::Delete { key: key.clone() }).await? {
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
    State(kv): State<Kv>,
    caller: Option<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CasBody>, JsonRejection>,
) -> Reply {
    let key = key_from(path)?;
    let Json(CasBody { from, to }) = body?;
    match write(&kv, caller, &Command::CasWithin { key: key.clone(), from, to, quota: kv.quota }).await? {
        (index, Outcome::Cas { swapped: true, current }) => {
            Ok(Json(json!({ "key": key, "index": index, "swapped": true, "value": current })))
        }
        (_, Outcome::Cas { swapped: false, current }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "cas_failed",
            "the key does not hold the expected value; nothing was changed",
        )
        .with("current", current)),
        (_, outcome) => Err(unexpected(outcome)),
    }
}

/// `GET /kv/{key}[?consistency=stale]`.
async fn get_key(
    State(kv): State<Kv>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Reply {
    let key = key_from(path)?;
    let Query(ReadParams { consistency }) = params?;
    let query = machine::encode(&machine::Query::Get { key: key.clone() });
    let answer = consistency.read(&kv.node, query).await?;
    let value: Option<String> = decode(&answer)?;
    match value {
        Some(value) => Ok(Json(json!({ "key": key, "value": value }))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such key")),
    }
}

fn decode<T: serde::de::DeserializeOwned>(answer: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(answer).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("bad answer from the store: {e}"),
        )
    })
}

/// `GET /status`: the node's state, and the store's size against this node's quota.
async fn status(State(kv): State<Kv>) -> Reply {
    let mut fields = status_fields(&kv.node.status().await?);
    let usage: Usage = decode(&kv.node.read_local(&machine::encode(&machine::Query::Usage)).await?)?;
    let quota = json!({ "used_bytes": usage.bytes, "quota_bytes": kv.quota, "alarm": usage.alarm });
    fields.insert("quota".into(), quota);
    Ok(Json(Value::Object(fields)))
}
