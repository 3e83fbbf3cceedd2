//! Three nodes and three workers: 300 `echo N` tasks submitted through every node, and every
//! task done exactly once, with its output.
//!
//! `throughput` (ignored by default; a measurement, not a verdict) times how fast three
//! workers drain a queue of trivial tasks:
//! `cargo test --release -p raft-tasks --test many_tasks -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{attempts_ended, task, Cluster, TasksApi, PATIENCE};
use futures::future::join_all;

const TASKS: usize = 300;
const SUBMITTERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_is_done_exactly_once_with_its_output() {
    let mut cluster = Cluster::start(3, &["--lease-ms", "3000", "--lease-check-ms", "200"]);
    let api = cluster.api().clone();
    let all = api.ids();
    api.wait_for_leader(&all, PATIENCE).await;
    for worker in ["w1", "w2", "w3"] {
        cluster.start_worker(worker, 2, &[]);
    }

    let started = Instant::now();
    let submitters = (0..SUBMITTERS).map(|submitter| {
        let api = api.clone();
        async move {
            let mut ids = Vec::new();
            for n in (submitter..TASKS).step_by(SUBMITTERS) {
                let id = api.submit_until_accepted(&task(&["echo", &n.to_string()])).await;
                ids.push((n, id));
            }
            ids
        }
    });
    let ids: Vec<(usize, String)> = join_all(submitters).await.into_iter().flatten().collect();
    let submitted = started.elapsed();
    assert_eq!(ids.len(), TASKS);
    api.wait_for_count("done", TASKS, PATIENCE).await;
    let finished = started.elapsed();

    let mut workers = std::collections::BTreeMap::<String, usize>::new();
    for (n, id) in &ids {
        let task = api.task(id).await;
        assert_eq!(task["state"], "done", "{task}");
        assert_eq!(
            (&task["exit_code"], task["stdout"].as_str()),
            (&0.into(), Some(&*format!("{n}\n"))),
            "{task}"
        );
        assert_eq!(attempts_ended(&task, "done"), 1, "completed once: {task}");
        *workers.entry(task["worker"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(api.all_tasks(None).await.len(), TASKS, "no task appeared twice");
    // Each result was reported (and committed) once: count the workers' acknowledged reports.
    let reports: usize = ["w1", "w2", "w3"]
        .iter()
        .map(|w| {
            cluster
                .worker_log(w)
                .lines()
                .filter(|l| l.contains("reported") && l.contains("duplicate=false"))
                .count()
        })
        .sum();
    assert_eq!(reports, TASKS);
    eprintln!(
        "FIGURES: {TASKS} tasks submitted through 3 nodes in {submitted:.1?}, all done after {finished:.1?}; \
         by worker: {workers:?}"
    );
}

/// Tasks completed per second: `THROUGHPUT_TASKS` (default 2,000) `true` tasks queued first,
/// then three workers with `THROUGHPUT_SLOTS` slots each (default 4) drain the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture, in release"]
async fn throughput() {
    let tasks: usize = std::env::var("THROUGHPUT_TASKS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let slots = std::env::var("THROUGHPUT_SLOTS").unwrap_or_else(|_| "4".into());
    let retain = tasks.to_string();
    let mut cluster = Cluster::start(3, &["--retain-results", &retain]);
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&api.ids(), PATIENCE).await;
    let submitters = (0..SUBMITTERS).map(|submitter| {
        let api = api.clone();
        async move {
            for _ in (submitter..tasks).step_by(SUBMITTERS) {
                api.submit_until_accepted(&task(&["true"])).await;
            }
        }
    });
    let started = Instant::now();
    join_all(submitters).await;
    let submitted = started.elapsed();
    let before = api.status(leader).await.unwrap()["commit_index"].as_u64().unwrap();

    let started = Instant::now();
    for worker in ["w1", "w2", "w3"] {
        cluster.start_worker(worker, slots.parse().unwrap(), &[]);
    }
    api.wait_for_count("done", tasks, Duration::from_secs(600)).await;
    let drained = started.elapsed();
    let after = api.status(leader).await.unwrap()["commit_index"].as_u64().unwrap();
    eprintln!(
        "FIGURES: {tasks} tasks submitted in {submitted:.2?} ({:.0}/s); drained by 3 workers x {slots} slots in \
         {drained:.2?}: {:.0} tasks completed per second ({:.1} log entries per task)",
        tasks as f64 / submitted.as_secs_f64(),
        tasks as f64 / drained.as_secs_f64(),
        (after - before) as f64 / tasks as f64,
    );
}
