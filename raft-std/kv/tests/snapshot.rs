//! Snapshots between real `raft-kv` processes: with `--snapshot-every 50` the leader compacts
//! its log, so a follower that was down catches up by installing a snapshot, and a restarted
//! node rebuilds its store from its own snapshot plus the log after it.

mod common;

use std::time::Duration;

use common::{Cluster, KvApi, NodeId};
use reqwest::StatusCode;

const PATIENCE: Duration = Duration::from_secs(20);
const KEYS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, &["--snapshot-every", "50"]);
    let api = cluster.api().clone();
    let all = api.ids();
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    let lagging: NodeId = all.iter().copied().find(|&id| id != leader).expect("a follower");
    cluster.kill(lagging);

    let mut writers = Vec::new();
    for writer in 0..8 {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (writer..KEYS).step_by(8) {
                last = last.max(
                    api.put_until_acknowledged(leader, &format!("key-{i}"), &i.to_string(), PATIENCE).await,
                );
            }
            last
        }));
    }
    let mut last = 0;
    for writer in writers {
        last = last.max(writer.await.expect("a writer"));
    }
    let status = api.status(leader).await.expect("a status");
    assert!(status["first_log_index"].as_u64() > Some(1), "the leader compacted its log: {status}");

    cluster.restart(lagging);
    api.wait_for_applied(&[lagging], last, PATIENCE).await;
    let status = api.status(lagging).await.expect("a status");
    assert!(status["first_log_index"].as_u64() > Some(1), "the follower installed a snapshot: {status}");
    for i in [0, KEYS / 2, KEYS - 1] {
        let answer = api.get(lagging, &format!("key-{i}"), true).await.expect("a local read");
        assert_eq!((answer.status, answer.body["value"].as_str()), (StatusCode::OK, Some(&*i.to_string())));
    }

    // Every node restarts from its snapshot and log and still serves every key.
    for &id in &all {
        cluster.restart(id);
    }
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    let index = api.put_until_acknowledged(leader, "after", "restart", PATIENCE).await;
    api.wait_for_applied(&all, index, PATIENCE).await;
    for &id in &all {
        for i in 0..KEYS {
            let answer = api.get(id, &format!("key-{i}"), true).await.expect("a local read");
            assert_eq!(answer.body["value"].as_str(), Some(&*i.to_string()), "node {id} lost key-{i}");
        }
    }
}
