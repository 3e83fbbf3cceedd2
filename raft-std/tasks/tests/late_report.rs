//! A worker frozen (SIGSTOP) past its lease: the task goes back to the queue and another worker
//! finishes it; when the frozen worker resumes (SIGCONT), its report of the old lease is refused
//! with `409 lease_not_current`, and the recorded result stays the other worker's. The same
//! refusal, asked for directly over the API.

mod common;

use std::time::Duration;

use common::{attempts_ended, task, Cluster, TasksApi, PATIENCE};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_after_the_lease_expired_is_refused() {
    let mut cluster = Cluster::start(3, &["--lease-ms", "1000", "--lease-check-ms", "100"]);
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&api.ids(), PATIENCE).await;
    cluster.start_worker("w1", 1, &[]);
    // The program says when it starts; the first run is frozen only once it runs.
    let started = cluster.dir().join("started");
    let script = format!("echo >> {}; sleep 0.5; echo run by whoever", started.display());
    let id = api.submit_until_accepted(&task(&["sh", "-c", &script])).await;
    let running = api.wait_for_task(&id, PATIENCE, |t| t["state"] == "running").await;
    let first_epoch = running["lease"]["epoch"].as_u64().unwrap();
    assert_eq!(running["worker"], "w1");
    let start = std::time::Instant::now();
    while !started.exists() {
        assert!(start.elapsed() < PATIENCE, "the program never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    cluster.pause_worker("w1");
    let requeued = api.wait_for_task(&id, PATIENCE, |t| t["history"][0]["ended"] == "lease_expired").await;
    assert_eq!((&requeued["state"], &requeued["attempts"]), (&json!("queued"), &json!(1)), "{requeued}");
    // Meanwhile w1's program has finished: its result waits in the frozen worker.
    cluster.start_worker("w2", 1, &[]);
    let done = api.wait_for_task(&id, PATIENCE, |t| t["state"] == "done").await;
    assert_eq!((&done["worker"], &done["attempts"]), (&json!("w2"), &json!(2)), "{done}");

    cluster.resume_worker("w1");
    let start = std::time::Instant::now();
    while !cluster.worker_log("w1").contains("report refused") {
        assert!(start.elapsed() < PATIENCE, "w1 never reported: {}", cluster.worker_log("w1"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = cluster.worker_log("w1");
    let refusal = log.lines().find(|line| line.contains("report refused")).unwrap();
    assert!(
        refusal.contains(&format!("epoch={first_epoch}")) && refusal.contains("lease_not_current"),
        "{refusal}"
    );
    let task = api.task(&id).await;
    assert_eq!(
        (&task["worker"], &task["stdout"], &task["attempts"]),
        (&json!("w2"), &json!("run by whoever\n"), &json!(2))
    );
    assert_eq!(attempts_ended(&task, "done"), 1, "{task}");
    assert_eq!(task["history"][1]["ended"], "done");

    // Directly: a report naming the old epoch, to the leader and to a follower.
    let follower = api.ids().into_iter().find(|&id| id != leader).unwrap();
    for node in [leader, follower] {
        let late = json!({ "task": id, "epoch": first_epoch, "result": { "outcome": "exited", "exit_code": 0, "stdout": "forged" } });
        let answer = api.post(node, "/worker/report", late).await.unwrap();
        assert_eq!(
            (answer.status, &answer.body["code"]),
            (StatusCode::CONFLICT, &json!("lease_not_current")),
            "{answer:?}"
        );
        assert_eq!(answer.body["state"], "done");
        assert!(answer.body["error"].as_str().unwrap().contains("not recorded"));
    }
    assert_eq!(api.task(&id).await["stdout"], "run by whoever\n");
}
