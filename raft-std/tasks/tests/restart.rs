//! The whole cluster stopped (SIGTERM) and restarted, then killed (SIGKILL) and restarted:
//! every task's state — done, failed, timed out, cancelled, queued, running — is recovered
//! from disk (snapshots and the log after them), and the queue goes on.

mod common;

use common::{task, Cluster, TasksApi, PATIENCE};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_survives_a_full_restart() {
    // A long lease: nothing expires while the states are compared.
    let mut cluster = Cluster::start(3, &["--lease-ms", "60000", "--snapshot-every", "25"]);
    let api = cluster.api().clone();
    let all = api.ids();
    api.wait_for_leader(&all, PATIENCE).await;
    cluster.start_worker("w1", 2, &[]);
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(api.submit_until_accepted(&task(&["echo", &n.to_string()])).await);
    }
    ids.push(api.submit_until_accepted(&task(&["false"])).await);
    ids.push(api.submit_until_accepted(&task(&["/no/such/program"])).await);
    ids.push(api.submit_until_accepted(&json!({ "command": ["sleep", "5"], "timeout_ms": 100 })).await);
    api.wait_for_count("done", 31, PATIENCE).await;
    api.wait_for_count("failed", 1, PATIENCE).await;
    api.wait_for_count("timed_out", 1, PATIENCE).await;
    // Two running (w1 has two slots), then queued ones, one of them cancelled.
    for _ in 0..2 {
        ids.push(api.submit_until_accepted(&task(&["sleep", "600"])).await);
    }
    api.wait_for_count("running", 2, PATIENCE).await;
    cluster.kill_worker("w1");
    for _ in 0..3 {
        ids.push(api.submit_until_accepted(&task(&["echo", "later"])).await);
    }
    let cancelled = ids.last().unwrap().clone();
    assert_eq!(api.delete(all[0], &format!("/tasks/{cancelled}")).await.unwrap().body["previous"], "queued");

    let before = snapshot(&api, &ids).await;
    let states: Vec<&str> = before.iter().map(|t| t["state"].as_str().unwrap()).collect();
    for state in ["done", "failed", "timed_out", "cancelled", "queued", "running"] {
        assert!(states.contains(&state), "{state} is among the states kept: {states:?}");
    }
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    let first_index = api.status(leader).await.unwrap()["first_log_index"].as_u64().unwrap();
    assert!(first_index > 1, "snapshots compacted the log (first index {first_index})");

    for (how, stop) in [("SIGTERM", true), ("SIGKILL", false)] {
        for &id in &all {
            if stop {
                assert!(cluster.terminate(id), "node {id} stops on SIGTERM");
            } else {
                cluster.kill(id);
            }
        }
        for &id in &all {
            cluster.relaunch(id);
        }
        api.wait_for_leader(&all, PATIENCE).await;
        assert_eq!(snapshot(&api, &ids).await, before, "after {how} and a restart, every task is as it was");
        eprintln!("after {how}: {} tasks recovered", ids.len());
    }

    // And the queue goes on.
    cluster.start_worker("w2", 2, &[]);
    api.wait_for_count("done", 33, PATIENCE).await;
}

/// Every task of `ids` in full.
async fn snapshot(api: &common::Api, ids: &[String]) -> Vec<Value> {
    let mut tasks = Vec::new();
    for id in ids {
        tasks.push(api.task(id).await);
    }
    tasks
}
