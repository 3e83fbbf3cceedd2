//! HTTPS with roles: a client with `write` submits but cannot lease or report; a `worker`
//! leases and reports but cannot submit; a worker cannot report or renew another identity's
//! lease; worker processes authenticate with a client certificate or a bearer token.

mod common;

use common::{task, Cluster, TasksApi, PATIENCE};
use reqwest::StatusCode;
use serde_json::json;

const TOKEN: &str = "worker-token-for-the-tests-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_keep_clients_and_workers_apart() {
    let mut cluster = Cluster::secure(3, &[], &["submitter=write", "reader=read", "w1=worker", "w2=worker"]);
    // A worker that authenticates with a bearer token: the roles file holds its digest.
    let digest = {
        let output = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(TOKEN.as_bytes())?;
                child.wait_with_output()
            })
            .expect("sha256sum runs");
        String::from_utf8(output.stdout).unwrap().split_whitespace().next().unwrap().to_string()
    };
    let roles = cluster.certs().join("roles");
    let mut text = std::fs::read_to_string(&roles).unwrap();
    text.push_str(&format!("worker token-sha256:{digest}\n"));
    std::fs::write(&roles, text).unwrap();
    cluster.launch_all();
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&api.ids(), PATIENCE).await;

    let submitter = api.with_client(cluster.client_as(Some("submitter")));
    let reader = api.with_client(cluster.client_as(Some("reader")));
    let w1 = api.with_client(cluster.client_as(Some("w1")));
    let w2 = api.with_client(cluster.client_as(Some("w2")));

    // Who may submit.
    let answer = submitter.submit(leader, &task(&["echo", "hi"])).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let id = answer.body["id"].as_str().unwrap().to_string();
    for (who, client) in [("worker", &w1), ("reader", &reader)] {
        let refused = client.submit(leader, &task(&["rm", "-rf", "/"])).await.unwrap();
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (StatusCode::FORBIDDEN, &json!("forbidden")),
            "{who}"
        );
        assert!(refused.body["error"].as_str().unwrap().contains("needs the write role"), "{refused:?}");
    }
    // Idempotency keys are scoped per identity: the same key from another client is another
    // task; from the same client again, the same task. (Cancelled at once: no worker runs them.)
    let admin = api.with_client(cluster.client_as(Some("admin")));
    let mut keyed = Vec::new();
    for (who, client) in [("submitter", &submitter), ("admin", &admin), ("submitter", &submitter)] {
        let request =
            client.client().post(client.url(leader, "/tasks")).header("idempotency-key", "nightly-1");
        let answer = client.send(request.json(&task(&["echo", "keyed"]))).await.unwrap();
        assert!(answer.status.is_success(), "{who}: {answer:?}");
        keyed.push((answer.status, answer.body["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(
        (keyed[0].0, keyed[1].0, keyed[2].0),
        (StatusCode::CREATED, StatusCode::CREATED, StatusCode::OK)
    );
    assert_ne!(keyed[0].1, keyed[1].1, "another identity's key is its own");
    assert_eq!(keyed[0].1, keyed[2].1, "the same identity's retry is the same task");
    for (_, keyed) in &keyed[..2] {
        assert_eq!(admin.delete(leader, &format!("/tasks/{keyed}")).await.unwrap().status, StatusCode::OK);
    }
    // Who may lease and report.
    let lease = json!({ "worker": "w1", "slots": 1, "request": 1 });
    for client in [&submitter, &reader] {
        let refused = client.post(leader, "/worker/lease", lease.clone()).await.unwrap();
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert!(refused.body["error"].as_str().unwrap().contains("needs the worker role"), "{refused:?}");
    }
    assert_eq!(reader.fetch(leader, &format!("/tasks/{id}")).await.unwrap().status, StatusCode::OK);
    assert_eq!(w1.fetch(leader, "/status").await.unwrap().status, StatusCode::OK, "workers read the status");

    let leased = w1.post(leader, "/worker/lease", lease).await.unwrap();
    assert_eq!(leased.status, StatusCode::OK, "{leased:?}");
    let epoch = leased.body["tasks"][0]["epoch"].as_u64().unwrap();
    // Another worker identity cannot renew or report w1's lease, nor use its name.
    let report = json!({ "task": id, "epoch": epoch, "result": { "outcome": "exited", "exit_code": 0, "stdout": "forged" } });
    let refused = w2.post(leader, "/worker/report", report.clone()).await.unwrap();
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (StatusCode::FORBIDDEN, &json!("not_lease_holder")),
        "{refused:?}"
    );
    let heartbeat = json!({ "worker": "w1", "leases": [{ "task": id, "epoch": epoch }] });
    let refused = w2.post(leader, "/worker/heartbeat", heartbeat).await.unwrap();
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (StatusCode::FORBIDDEN, &json!("worker_name_taken")),
        "{refused:?}"
    );
    let refused = submitter.post(leader, "/worker/report", report).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let cancelled = submitter.delete(leader, &format!("/tasks/{id}")).await.unwrap();
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");

    // Worker processes: one with the token, then w2 with its client certificate.
    let token_file = cluster.dir().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let ca = cluster.certs().join("ca.pem");
    let urls = cluster.urls();
    let by_token =
        ["--cluster", &urls, "--ca", &ca.to_string_lossy(), "--token-file", &token_file.to_string_lossy()]
            .map(String::from);
    cluster.start_worker_with("by-token", &by_token.iter().map(String::as_str).collect::<Vec<_>>());
    let mut done = 0;
    for worker in ["by-token", "w2"] {
        if worker == "w2" {
            cluster.kill_worker("by-token");
            cluster.start_worker("w2", 2, &[]);
        }
        let mut ids = Vec::new();
        for n in 0..3 {
            let answer = submitter.submit(leader, &task(&["echo", &n.to_string()])).await.unwrap();
            ids.push(answer.body["id"].as_str().unwrap().to_string());
        }
        done += ids.len();
        api.wait_for_count("done", done, PATIENCE).await;
        for id in &ids {
            let task = api.task(id).await;
            assert_eq!((&task["worker"], &task["state"]), (&json!(worker), &json!("done")), "{task}");
        }
    }
    // Without credentials, a worker gives up with the reason.
    cluster.start_worker_with("anonymous", &["--cluster", &urls, "--ca", &ca.to_string_lossy()]);
    let start = std::time::Instant::now();
    while cluster.worker_running("anonymous") {
        assert!(start.elapsed() < PATIENCE, "a worker without credentials keeps running");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        cluster.worker_log("anonymous").contains("refused this worker (401"),
        "{}",
        cluster.worker_log("anonymous")
    );
}
