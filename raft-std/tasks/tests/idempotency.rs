//! Idempotent submission: a submission retried with the same `Idempotency-Key` — here once
//! through a follower, then through the leader, as a client does whose answer was lost — is
//! answered with the same task, and only one is queued; the key reused for another task is
//! refused with 409; malformed keys with 400.

mod common;

use common::{task, Answer, Api, Cluster, NodeId, TasksApi, PATIENCE};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `POST /tasks` on node `node` with these `Idempotency-Key` header values.
async fn submit_keyed(api: &Api, node: NodeId, keys: &[&[u8]], body: &Value) -> Answer {
    let mut request = api.client().post(api.url(node, "/tasks")).json(body);
    for &key in keys {
        request = request.header("idempotency-key", reqwest::header::HeaderValue::from_bytes(key).unwrap());
    }
    api.send(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submission_with_the_same_key_is_one_task() {
    let cluster = Cluster::start(3, &[]);
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&api.ids(), PATIENCE).await;
    let follower = api.ids().into_iter().find(|&id| id != leader).unwrap();
    let body = json!({ "command": ["echo", "once"], "stdin": "in", "timeout_ms": 5000 });

    // The first try, through a follower (which forwards it): created.
    let key: &[u8] = b"order-7f3a 2026-12-01";
    let first = submit_keyed(&api, follower, &[key], &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let id = first.body["id"].as_str().unwrap().to_string();
    // The retry, through the leader: the same task, nothing new.
    let retry = submit_keyed(&api, leader, &[key], &body).await;
    assert_eq!(
        (retry.status, &retry.body),
        (StatusCode::OK, &json!({ "id": id, "duplicate": true })),
        "{retry:?}"
    );
    let tasks = api.all_tasks(None).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(
        (&tasks[0]["id"], &tasks[0]["idempotency_key"]),
        (&json!(id), &json!("order-7f3a 2026-12-01"))
    );

    // The same key for another task: refused, nothing queued.
    for changed in [
        json!({ "command": ["echo", "twice"], "stdin": "in", "timeout_ms": 5000 }),
        json!({ "command": ["echo", "once"], "stdin": "other", "timeout_ms": 5000 }),
        json!({ "command": ["echo", "once"], "stdin": "in" }),
        json!({ "command": ["echo", "once"], "stdin": "in", "timeout_ms": 5000, "max_attempts": 1 }),
    ] {
        let refused = submit_keyed(&api, follower, &[key], &changed).await;
        assert_eq!(
            (refused.status, &refused.body["code"], &refused.body["id"]),
            (StatusCode::CONFLICT, &json!("idempotency_key_reused"), &json!(id)),
            "{changed}: {refused:?}"
        );
    }
    // Still the same task once it is cancelled (it is kept, with its key).
    assert_eq!(api.delete(leader, &format!("/tasks/{id}")).await.unwrap().status, StatusCode::OK);
    let retry = submit_keyed(&api, follower, &[key], &body).await;
    assert_eq!((retry.status, &retry.body["id"]), (StatusCode::OK, &json!(id)), "{retry:?}");

    // Another key, or none, is another task.
    let other = submit_keyed(&api, leader, &[b"order-8"], &body).await;
    assert_eq!(other.status, StatusCode::CREATED, "{other:?}");
    assert_ne!(other.body["id"], json!(id));
    let unkeyed = api.submit(follower, &body).await.unwrap();
    assert_eq!(unkeyed.status, StatusCode::CREATED, "{unkeyed:?}");
    assert_eq!(api.all_tasks(None).await.len(), 3);

    // Malformed keys: 400, nothing queued.
    let long = vec![b'k'; 129];
    for keys in [&[b"" as &[u8]][..], &[&long], &[b"caf\xc3\xa9"], &[b"tab\there"], &[b"a", b"b"]] {
        let refused = submit_keyed(&api, follower, keys, &task(&["echo"])).await;
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_idempotency_key")),
            "{keys:?}: {refused:?}"
        );
        assert!(refused.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{refused:?}");
    }
    let longest = submit_keyed(&api, leader, &[&long[..128]], &task(&["echo"])).await;
    assert_eq!(longest.status, StatusCode::CREATED, "{longest:?}");
    assert_eq!(api.all_tasks(None).await.len(), 4);

    // Every node holds the same single task for the key.
    for node in api.ids() {
        let view = api.fetch(node, &format!("/tasks/{id}")).await.unwrap();
        assert_eq!(view.body["idempotency_key"], json!("order-7f3a 2026-12-01"), "node {node}: {view:?}");
        assert!(!cluster.log(node).contains("panicked"), "node {node}: {}", cluster.log(node));
    }
}
