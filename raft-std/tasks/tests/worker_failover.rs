//! A worker SIGKILLed in the middle of its tasks: its leases expire, its tasks go back to the
//! queue and finish on the other workers, and their `attempts` and history show it.

mod common;

use std::time::{Duration, Instant};

use common::{attempts_ended, task, Cluster, TasksApi, PATIENCE};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_tasks_are_reassigned_and_finish() {
    let mut cluster = Cluster::start(3, &["--lease-ms", "1000", "--lease-check-ms", "100"]);
    let api = cluster.api().clone();
    api.wait_for_leader(&api.ids(), PATIENCE).await;
    for worker in ["w1", "w2", "w3"] {
        cluster.start_worker(worker, 2, &[]);
    }
    // Each run that gets to its end appends its number to `finished`.
    let finished = cluster.dir().join("finished");
    let mut ids = Vec::new();
    for n in 0..12 {
        let script = format!("sleep 1.5; echo {n} >> {}; echo {n}", finished.display());
        let id = api.submit_until_accepted(&task(&["sh", "-c", &script])).await;
        ids.push((n, id));
    }

    // Wait until w1 runs tasks, then kill it.
    let start = Instant::now();
    let held: Vec<String> = loop {
        let workers = api.workers().await;
        let w1 = workers["workers"].as_array().unwrap().iter().find(|w| w["name"] == "w1").cloned();
        let tasks: Vec<String> = w1
            .map(|w| w["tasks"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        if !tasks.is_empty() {
            break tasks;
        }
        assert!(start.elapsed() < PATIENCE, "w1 never ran a task: {workers}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    cluster.kill_worker("w1");
    let killed = Instant::now();
    eprintln!("killed w1 while it held tasks {held:?}");

    for id in &held {
        let task = api.wait_for_task(id, PATIENCE, |t| t["attempts"] == 2).await;
        eprintln!("task {id} went back to the queue {:?} after the kill: {}", killed.elapsed(), task);
    }
    api.wait_for_count("done", ids.len(), PATIENCE).await;
    for (n, id) in &ids {
        let task: Value = api.task(id).await;
        assert_eq!(
            (&task["state"], task["stdout"].as_str()),
            (&json!("done"), Some(&*format!("{n}\n"))),
            "{task}"
        );
        assert_eq!(attempts_ended(&task, "done"), 1, "{task}");
        let history = task["history"].as_array().unwrap();
        if held.contains(id) || task["attempts"] != 1 {
            // A task w1 held (or was being given as it died): its lease expired, another
            // worker ran it.
            assert_eq!(task["attempts"], 2, "{task}");
            assert_eq!(
                (&history[0]["worker"], &history[0]["ended"]),
                (&json!("w1"), &json!("lease_expired"))
            );
            assert_ne!(task["worker"], "w1", "{task}");
        }
    }
    // The dead worker's programs died with it (PR_SET_PDEATHSIG): each task ran to its end
    // once, even those w1 had started.
    tokio::time::sleep(Duration::from_secs(2)).await; // past the end of any orphan
    let mut runs: Vec<usize> =
        std::fs::read_to_string(&finished).unwrap().lines().map(|line| line.parse().unwrap()).collect();
    runs.sort();
    assert_eq!(runs, (0..12).collect::<Vec<_>>(), "every program ran to its end exactly once");
}
