//! The leader SIGKILLed while tasks run: no task is lost or completed twice, the workers go on
//! with the new leader (their leases stay valid if renewed in time), and tasks submitted after
//! the failover finish too.

mod common;

use std::time::Duration;

use common::{attempts_ended, task, Cluster, TasksApi, PATIENCE};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_is_lost_or_completed_twice_when_the_leader_dies() {
    let mut cluster = Cluster::start(3, &["--lease-ms", "2000", "--lease-check-ms", "100"]);
    let api = cluster.api().clone();
    let all = api.ids();
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    for worker in ["w1", "w2", "w3"] {
        cluster.start_worker(worker, 2, &[]);
    }
    let sleepy = |n: usize| task(&["sh", "-c", &format!("sleep 0.3; echo {n}")]);
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push((n, api.submit_until_accepted(&sleepy(n)).await));
    }
    api.wait_for_count("done", 6, PATIENCE).await;
    let running = api.all_tasks(Some("running")).await.len();
    assert!(running > 0, "tasks run when the leader dies");
    cluster.kill(leader);
    eprintln!("killed leader {leader} with {running} tasks running");

    let survivors: Vec<_> = all.iter().copied().filter(|&id| id != leader).collect();
    let next = api.wait_for_leader(&survivors, PATIENCE).await;
    eprintln!("node {next} leads");
    let later = join_all((40..60).map(|n| {
        let api = api.clone();
        async move { (n, api.submit_until_accepted(&sleepy(n)).await) }
    }))
    .await;
    ids.extend(later);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.relaunch(leader);

    api.wait_for_count("done", ids.len(), Duration::from_secs(60)).await;
    let mut expired = 0;
    for (n, id) in &ids {
        let task = api.task(id).await;
        assert_eq!(
            (&task["state"], task["stdout"].as_str()),
            (&json!("done"), Some(&*format!("{n}\n"))),
            "{task}"
        );
        assert_eq!(attempts_ended(&task, "done"), 1, "completed once: {task}");
        expired += attempts_ended(&task, "lease_expired");
    }
    assert_eq!(api.all_tasks(None).await.len(), ids.len(), "nothing submitted twice");
    for worker in ["w1", "w2", "w3"] {
        assert!(cluster.worker_running(worker), "{worker} carried on");
    }
    let done_after: usize = ["w1", "w2", "w3"]
        .iter()
        .map(|w| cluster.worker_log(w).lines().filter(|l| l.contains("reported")).count())
        .sum();
    eprintln!(
        "FIGURES: {} tasks done, {expired} leases expired across the failover, {done_after} reports",
        ids.len()
    );
    // Every node, the restarted one too, holds the same results.
    let commit = api.status(next).await.unwrap()["commit_index"].as_u64().unwrap();
    api.wait_for_applied(&all, commit, PATIENCE).await;
    for &node in &all {
        for (n, id) in ids.iter().step_by(7) {
            let answer = api.fetch(node, &format!("/tasks/{id}?consistency=stale")).await.unwrap();
            assert_eq!(answer.body["stdout"], format!("{n}\n"), "node {node}: {answer:?}");
        }
    }
}
