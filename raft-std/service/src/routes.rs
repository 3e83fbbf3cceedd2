//! The routes every service has: the node's status, `/metrics`, and the admin API
//! (membership, leadership, compaction, fault injection).
//!
//! Membership changes cannot leave the voters without a reachable quorum: before a change,
//! the leader's view of which peers answered lately (`recently_active` in its replication
//! state) is checked, and a change after which fewer voters than a quorum would be reachable
//! is refused with `409 quorum_at_risk`, unless the request says `?force=true`. New voters are
//! added learner-first ([`RaftNode::add_member`]), so a node that does not answer is never
//! promoted. The check needs the leader's view, so a follower refuses unforced membership
//! changes with `503 not_leader`, naming the leader.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use raft_core::{Diagnostics, Membership, NodeId, NodeSet, Role};
use raft_std::{Faults, RaftNode, Status};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::auth::Caller;
use crate::cli::check_address;

/// What the shared routes work on.
#[derive(Clone)]
pub struct Node {
    /// The running node.
    pub raft: RaftNode,
    /// The metrics recorder's handle, for `/metrics`.
    pub metrics: PrometheusHandle,
    /// Present when the node runs with `--fault-injection`.
    pub faults: Option<Faults>,
}

/// `router` answering, with a JSON error, a path it has no route for (404 `not_found`) and
/// a method a route does not take (405 `method_not_allowed`): for the service's routes and
/// the shared ones alike.
pub(crate) fn with_fallbacks(router: Router) -> Router {
    router
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
}

/// `GET /metrics`, `POST /cluster/members`, `DELETE /cluster/members/{id}`,
/// `POST /cluster/transfer-leader`, `POST /cluster/compact`, `POST /debug/partition` and
/// `POST /debug/heal`. Merge them into the service's router; `/status` is the service's own
/// (start from [`status_fields`]).
pub fn shared(node: Node) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/cluster/members", post(add_member))
        .route("/cluster/members/{id}", delete(remove_member))
        .route("/cluster/transfer-leader", post(transfer_leader))
        .route("/cluster/compact", post(compact))
        .route("/debug/partition", post(partition))
        .route("/debug/heal", post(heal))
        .with_state(node)
}

/// The fields of `GET /status` every service shows.
pub fn status_fields(status: &Status) -> Map<String, Value> {
    let Status { diagnostics: d, links } = status;
    let fields = json!({
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
    });
    match fields {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

type Reply = Result<Json<Value>, ApiError>;

/// `GET /metrics`: the Prometheus text format.
async fn prometheus(State(node): State<Node>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.metrics.render())
}

fn members(membership: &Membership) -> Value {
    json!({ "voters": membership.voters, "learners": membership.learners, "outgoing_voters": membership.outgoing })
}

/// `?force=true`: skip the reachable-quorum check.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Force {
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    id: NodeId,
    addr: String,
}

/// `POST /cluster/members[?force=true]` with `{"id": 4, "addr": "127.0.0.1:7004"}` (the new
/// node's `--listen` address; start it with `--join` first).
async fn add_member(
    State(node): State<Node>,
    caller: Option<Caller>,
    force: Result<Query<Force>, QueryRejection>,
    body: Result<Json<NewMember>, JsonRejection>,
) -> Reply {
    let Query(Force { force }) = force?;
    let Json(NewMember { id, addr }) = body?;
    if id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    check_address(&addr).map_err(ApiError::bad_request)?;
    if !force {
        let voters_after = |leader: &Diagnostics| {
            let mut voters = leader.membership.voters.clone();
            voters.insert(id);
            voters
        };
        // The newcomer is promoted only once it answers: count it as reachable.
        check_quorum_patiently(&node, voters_after, Some(id)).await?;
    }
    let membership = Caller::on(caller, &node.raft).add_member(id, addr).await?;
    Ok(Json(json!({ "members": members(&membership) })))
}

/// `DELETE /cluster/members/{id}[?force=true]`.
async fn remove_member(
    State(node): State<Node>,
    caller: Option<Caller>,
    path: Result<Path<NodeId>, PathRejection>,
    force: Result<Query<Force>, QueryRejection>,
) -> Reply {
    let Path(id) = path?;
    let Query(Force { force }) = force?;
    if !force {
        let voters_after = |leader: &Diagnostics| {
            let mut voters = leader.membership.voters.clone();
            voters.remove(&id);
            voters
        };
        check_quorum_patiently(&node, voters_after, None).await?;
    }
    let membership = Caller::on(caller, &node.raft).remove_member(id).await?;
    Ok(Json(json!({ "members": members(&membership) })))
}

/// How long a membership change waits for the leader's view of its peers to show a quorum
/// that answers: a leader elected moments ago has not heard from every peer yet.
const QUORUM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks `voters` against the leader's view of which peers answer, giving a young view
/// [`QUORUM_PATIENCE`] to fill in before refusing.
async fn check_quorum_patiently(
    node: &Node,
    voters: impl Fn(&Diagnostics) -> NodeSet,
    newcomer: Option<NodeId>,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + QUORUM_PATIENCE;
    let mut status = node.raft.watch();
    loop {
        let leader = leader_view(node).await?;
        let verdict = check_quorum(&leader, &voters(&leader), newcomer);
        if verdict.is_ok() || tokio::time::Instant::now() >= deadline {
            return verdict;
        }
        // The view is republished as the leader hears from its peers (at least every second).
        let _ = tokio::time::timeout_at(deadline, status.changed()).await;
    }
}

/// This node's diagnostics, if it leads; otherwise a refusal that names the leader.
async fn leader_view(node: &Node) -> Result<Diagnostics, ApiError> {
    let diagnostics = node.raft.status().await?.diagnostics;
    if diagnostics.role == Role::Leader {
        return Ok(diagnostics);
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_leader",
        "membership changes are checked against the leader's view of which voters answer: send this to the \
         leader (see `leader` in /status), or add ?force=true to skip the check",
    )
    .with("leader", json!(diagnostics.leader)))
}

/// Refuses `voters` unless a quorum of them answered the leader lately (`newcomer` is
/// counted as answering).
fn check_quorum(leader: &Diagnostics, voters: &NodeSet, newcomer: Option<NodeId>) -> Result<(), ApiError> {
    let answering = |id: NodeId| {
        id == leader.id
            || Some(id) == newcomer
            || leader.peers.iter().any(|peer| peer.id == id && peer.recently_active)
    };
    let reachable: Vec<NodeId> = voters.iter().copied().filter(|&id| answering(id)).collect();
    let quorum = voters.len() / 2 + 1;
    if reachable.len() >= quorum {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "quorum_at_risk",
        format!(
            "after this change {} of the {} voters would be reachable, fewer than the {quorum} a quorum needs, \
             so the cluster could not commit or elect a leader; bring the unreachable voters back first, or \
             add ?force=true if you are sure",
            reachable.len(),
            voters.len()
        ),
    )
    .with("voters_after", json!(voters))
    .with("reachable", json!(reachable)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    to: NodeId,
}

/// `POST /cluster/transfer-leader` with `{"to": 2}`.
async fn transfer_leader(
    State(node): State<Node>,
    caller: Option<Caller>,
    body: Result<Json<Transfer>, JsonRejection>,
) -> Reply {
    let Json(Transfer { to }) = body?;
    let leader = Caller::on(caller, &node.raft).transfer_leader(to).await?;
    Ok(Json(json!({ "leader": leader })))
}

/// `POST /cluster/compact`: snapshot this node's state now and compact its log, freeing the
/// disk space of the entries the snapshot covers.
async fn compact(State(node): State<Node>) -> Reply {
    let covered = node.raft.compact().await?;
    Ok(Json(json!({ "snapshot_index": covered })))
}

fn faults(node: &Node) -> Result<&Faults, ApiError> {
    node.faults.as_ref().ok_or_else(|| {
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
async fn partition(State(node): State<Node>, body: Result<Json<Partition>, JsonRejection>) -> Reply {
    let Json(Partition { peers }) = body?;
    let faults = faults(&node)?;
    faults.isolate(node.raft.id(), peers);
    Ok(Json(json!({ "blocked_links": faults.blocked_links() })))
}

/// `POST /debug/heal`: restore every link of this node (test hook).
async fn heal(State(node): State<Node>) -> Reply {
    faults(&node)?.heal();
    Ok(Json(json!({ "blocked_links": [] })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogId, PeerDiagnostics, ReplicationState};

    fn leader(voters: &[NodeId], active: &[NodeId]) -> Diagnostics {
        Diagnostics {
            id: 1,
            role: Role::Leader,
            term: 2,
            vote: Some(1),
            leader: Some(1),
            membership: Membership::new(voters.iter().copied()),
            last_log: LogId::new(2, 10),
            first_index: 1,
            commit_index: 10,
            applied_index: 10,
            peers: voters
                .iter()
                .filter(|&&id| id != 1)
                .map(|&id| PeerDiagnostics {
                    id,
                    match_index: 10,
                    next_index: 11,
                    state: ReplicationState::Replicate,
                    recently_active: active.contains(&id),
                    lost_entries: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_change_needs_a_reachable_quorum_after_it() {
        let three = leader(&[1, 2, 3], &[2]); // node 3 is down
        assert!(check_quorum(&three, &[1, 2].into(), None).is_ok(), "removing the dead node is fine");
        let refused = check_quorum(&three, &[1, 3].into(), None).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (StatusCode::CONFLICT, "quorum_at_risk"));
        assert!(check_quorum(&three, &[1, 2, 3, 4].into(), Some(4)).is_ok(), "3 of 4 answer");
        let two_down = leader(&[1, 2, 3, 4, 5], &[2]);
        assert!(
            check_quorum(&two_down, &[1, 2, 3, 4, 5, 6].into(), Some(6)).is_err(),
            "3 of 6 is not a quorum"
        );
    }
}
