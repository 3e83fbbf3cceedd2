//! `GET /metrics` on real `raft-kv` processes: the Prometheus text lists raft-std's series,
//! and their values move as the cluster works.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Cluster, KvApi, NodeId};

const PATIENCE: Duration = Duration::from_secs(20);
const WRITES: usize = 60;

/// The value of the first sample of `name` whose labels include each of `labels`, a
/// comma-separated list (`node="1",outcome="ok"`, in any order).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .find(|line| labels.split(',').all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls node `id`'s metrics until `name` (with `labels`) reaches `at_least`.
async fn wait_for(api: &Api, id: NodeId, name: &str, labels: &str, at_least: f64) -> String {
    let start = Instant::now();
    loop {
        let text = api.metrics(id).await.expect("metrics");
        if sample(&text, name, labels).is_some_and(|value| value >= at_least) {
            return text;
        }
        assert!(start.elapsed() < PATIENCE, "{name}{{{labels}}} stayed below {at_least}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_and_move() {
    let cluster = Cluster::start(3, &["--snapshot-every", "20"]);
    let api = cluster.api();
    let all = api.ids();
    let leader = api.wait_for_leader(&all, PATIENCE).await;

    let text = wait_for(api, leader, "raft_role", "", 3.0).await; // 3: leader
    let label = format!("node=\"{leader}\"");
    for name in ["raft_term", "raft_leader_changes_total", "raft_commit_index", "raft_applied_index"] {
        assert!(sample(&text, name, &label).is_some(), "{name} missing:\n{text}");
    }
    assert!(text.contains("# HELP raft_proposals_total"), "{text}");
    assert!(!text.contains("raft_log_append_seconds_count "), "every series names its node:\n{text}");
    let applied_before = sample(&text, "raft_applied_index", &label).unwrap_or(0.0);

    for i in 0..WRITES {
        api.put_until_acknowledged(all[i % all.len()], &format!("key-{i}"), "value", PATIENCE).await;
    }
    let text = wait_for(api, leader, "raft_applied_index", &label, applied_before + WRITES as f64).await;
    let ok = sample(&text, "raft_proposals_total", &format!("{label},outcome=\"ok\"")).unwrap_or(0.0);
    assert!(ok >= WRITES as f64, "every write counted as an ok proposal on the leader: {ok}\n{text}");
    let appends = sample(&text, "raft_log_append_seconds_count", &label).unwrap_or(0.0);
    let fsyncs = sample(&text, "raft_log_fsync_seconds_count", &label).unwrap_or(0.0);
    assert!(
        appends > 0.0 && fsyncs > 0.0,
        "log writes are timed: {appends} appends, {fsyncs} fsyncs\n{text}"
    );
    assert!(text.contains("raft_log_fsync_seconds_bucket{"), "latencies are histograms:\n{text}");
    let snapshots = sample(&text, "raft_snapshots_total", &label).unwrap_or(0.0);
    assert!(snapshots >= 1.0, "--snapshot-every 20 took snapshots: {snapshots}\n{text}");
    assert!(sample(&text, "raft_snapshot_seconds_count", &label).unwrap_or(0.0) >= 1.0, "{text}");

    // A follower reports too, under its own id.
    let follower = all.iter().copied().find(|&id| id != leader).expect("a follower");
    let text = wait_for(api, follower, "raft_applied_index", "", applied_before + WRITES as f64).await;
    assert_eq!(sample(&text, "raft_role", "").unwrap_or(-1.0), 0.0, "a follower: {text}");
    assert!(text.contains(&format!("node=\"{follower}\"")), "{text}");
}
