//! Bad input gets a 4xx with a JSON error, never a panic: empty commands, huge stdin, unknown
//! and malformed ids, bad filters, a full queue, reports for leases that are not current, and
//! cancelling what has finished.

mod common;

use common::{task, Cluster, TasksApi, PATIENCE};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_errors() {
    let cluster = Cluster::start(3, &["--max-queued", "3", "--max-stdin-bytes", "1000"]);
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&api.ids(), PATIENCE).await;
    let follower = api.ids().into_iter().find(|&id| id != leader).unwrap();
    let client = reqwest::Client::new();

    let expect = |answer: common::Answer, status: StatusCode, code: &str| {
        assert_eq!((answer.status, answer.body["code"].as_str()), (status, Some(code)), "{answer:?}");
        assert!(answer.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer:?}");
    };
    let submit = |body: Value| {
        let api = api.clone();
        async move { api.submit(follower, &body).await.unwrap() }
    };
    expect(submit(json!({ "command": [] })).await, StatusCode::BAD_REQUEST, "empty_command");
    expect(submit(json!({ "command": [""] })).await, StatusCode::BAD_REQUEST, "invalid_task");
    expect(submit(json!({ "command": ["a\u{0}b"] })).await, StatusCode::BAD_REQUEST, "invalid_task");
    expect(
        submit(json!({ "command": ["cat"], "stdin": "x".repeat(1001) })).await,
        StatusCode::BAD_REQUEST,
        "stdin_too_large",
    );
    expect(
        submit(json!({ "command": ["x".repeat(20_000)] })).await,
        StatusCode::BAD_REQUEST,
        "command_too_large",
    );
    expect(
        submit(json!({ "command": ["cat"], "timeout_ms": 0 })).await,
        StatusCode::BAD_REQUEST,
        "invalid_timeout",
    );
    expect(
        submit(json!({ "command": ["cat"], "max_attempts": 0 })).await,
        StatusCode::BAD_REQUEST,
        "invalid_task",
    );
    expect(
        submit(json!({ "command": ["cat"], "max_attempts": 101 })).await,
        StatusCode::BAD_REQUEST,
        "invalid_task",
    );
    expect(submit(json!({ "command": "echo hi" })).await, StatusCode::UNPROCESSABLE_ENTITY, "bad_request");
    expect(
        submit(json!({ "command": ["cat"], "shell": true })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_request",
    );
    // A body past the HTTP limit (1 MiB): refused before it is read.
    let huge = json!({ "command": ["cat"], "stdin": "x".repeat(2 << 20) });
    expect(submit(huge).await, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let answer =
        client.post(api.url(leader, "/tasks")).body("{not json").header("content-type", "application/json");
    let answer = api.send(answer).await.unwrap();
    expect(answer, StatusCode::BAD_REQUEST, "bad_request");

    // Ids and filters.
    expect(api.fetch(leader, "/tasks/999").await.unwrap(), StatusCode::NOT_FOUND, "not_found");
    expect(api.fetch(follower, "/tasks/abc").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/tasks/0").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.delete(leader, "/tasks/999").await.unwrap(), StatusCode::NOT_FOUND, "not_found");
    expect(api.fetch(leader, "/tasks?state=sleeping").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/tasks?limit=0").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/tasks?limit=100000").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/tasks?after=x").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/tasks?colour=red").await.unwrap(), StatusCode::BAD_REQUEST, "bad_request");
    expect(api.fetch(leader, "/nowhere").await.unwrap(), StatusCode::NOT_FOUND, "not_found");
    let answer = api.send(client.put(api.url(leader, "/tasks"))).await.unwrap();
    expect(answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // The routes every service shares answer the same way.
    expect(
        api.fetch(leader, "/cluster/compact").await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // A full queue: 429, and room again once a task is cancelled.
    let ids: Vec<String> = [0, 1, 2].iter().map(|n| n.to_string()).collect();
    let mut queued = Vec::new();
    for n in &ids {
        queued.push(api.submit_until_accepted(&task(&["echo", n])).await);
    }
    let full = submit(task(&["echo", "3"])).await;
    expect(full, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    let cancelled = api.delete(follower, &format!("/tasks/{}", queued[0])).await.unwrap();
    assert_eq!(
        (cancelled.status, &cancelled.body["previous"]),
        (StatusCode::OK, &json!("queued")),
        "{cancelled:?}"
    );
    expect(
        api.delete(leader, &format!("/tasks/{}", queued[0])).await.unwrap(),
        StatusCode::CONFLICT,
        "already_finished",
    );
    assert_eq!(submit(task(&["echo", "3"])).await.status, StatusCode::CREATED);

    // Worker endpoints.
    let post = |path: &'static str, body: Value| {
        let api = api.clone();
        async move { api.post(leader, path, body).await.unwrap() }
    };
    let exited = json!({ "outcome": "exited", "exit_code": 0 });
    expect(
        post("/worker/report", json!({ "task": "999", "epoch": 1, "result": exited })).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let not_leased = json!({ "task": queued[1], "epoch": 1, "result": exited });
    let answer = post("/worker/report", not_leased).await;
    expect(answer, StatusCode::CONFLICT, "lease_not_current");
    let bad_outcome = json!({ "task": queued[1], "epoch": 1, "result": { "outcome": "vanished" } });
    expect(post("/worker/report", bad_outcome).await, StatusCode::UNPROCESSABLE_ENTITY, "bad_request");
    expect(
        post("/worker/lease", json!({ "worker": "w", "slots": 0, "request": 1 })).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    expect(
        post("/worker/lease", json!({ "worker": "w w", "slots": 1, "request": 1 })).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let bad_lease = json!({ "worker": "w", "leases": [{ "task": "x", "epoch": 1 }] });
    expect(post("/worker/heartbeat", bad_lease).await, StatusCode::BAD_REQUEST, "bad_request");
    // A real lease, then a report with the wrong epoch, then the right one, then again.
    let leased = post("/worker/lease", json!({ "worker": "w", "slots": 1, "request": 1 })).await;
    assert_eq!(leased.status, StatusCode::OK, "{leased:?}");
    let grant = &leased.body["tasks"][0];
    let (id, epoch) = (grant["id"].as_str().unwrap(), grant["epoch"].as_u64().unwrap());
    let wrong = json!({ "task": id, "epoch": epoch + 1000, "result": exited });
    expect(post("/worker/report", wrong).await, StatusCode::CONFLICT, "lease_not_current");
    let right = json!({ "task": id, "epoch": epoch, "result": exited });
    let answer = post("/worker/report", right.clone()).await;
    assert_eq!((answer.status, &answer.body["duplicate"]), (StatusCode::OK, &json!(false)), "{answer:?}");
    let answer = post("/worker/report", right).await;
    assert_eq!((answer.status, &answer.body["duplicate"]), (StatusCode::OK, &json!(true)), "{answer:?}");
    expect(
        api.delete(leader, &format!("/tasks/{id}")).await.unwrap(),
        StatusCode::CONFLICT,
        "already_finished",
    );

    // Nothing panicked: every node still serves, and no log mentions a panic.
    for id in api.ids() {
        assert!(api.status(id).await.is_some(), "node {id} serves");
        assert!(!cluster.log(id).contains("panicked"), "node {id}: {}", cluster.log(id));
    }
}
