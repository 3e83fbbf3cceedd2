//! A network partition between real `raft-kv` processes, made with the transport's fault hook
//! (`--fault-injection`, `POST /debug/partition`): the isolated leader refuses writes with 503
//! in bounded time, the majority elects a leader and goes on, and after healing every node
//! converges on the majority's history.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, KvApi, NodeId};
use reqwest::StatusCode;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);
/// The nodes' `--request-timeout-ms`.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minority_refuses_writes_and_the_majority_goes_on() {
    let cluster = Cluster::start(3, &["--fault-injection", "--request-timeout-ms", "1500"]);
    let api = cluster.api();
    let all = api.ids();
    let old = api.wait_for_leader(&all, PATIENCE).await;
    api.put_until_acknowledged(old, "before", "1", PATIENCE).await;
    let majority: Vec<NodeId> = all.iter().copied().filter(|&id| id != old).collect();

    // Cut the leader off from both followers (each side drops the other's traffic).
    let cut = api.post(old, "/debug/partition", json!({ "peers": majority })).await.expect("partition");
    assert_eq!(cut.status, StatusCode::OK, "{cut:?}");
    for &id in &majority {
        api.post(id, "/debug/partition", json!({ "peers": [old] })).await.expect("partition");
    }

    // The minority side answers 503 within a bounded time: a write cannot commit, and a
    // linearizable read cannot be confirmed.
    let start = Instant::now();
    let refused = api.put(old, "minority", "lost").await.expect("an answer");
    let waited = start.elapsed();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused:?}");
    assert!(waited < REQUEST_TIMEOUT + Duration::from_secs(1), "answered after {waited:?}");
    let read = api.get(old, "before", false).await.expect("an answer");
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE, "{read:?}");
    let stale = api.get(old, "before", true).await.expect("an answer");
    assert_eq!(stale.body["value"], "1", "a stale read is still served locally");
    eprintln!("isolated leader {old} refused a write with 503 after {waited:?}: {}", refused.body);

    // The majority elects a leader and accepts writes through both of its nodes.
    let start = Instant::now();
    let new = api.wait_for_leader(&majority, PATIENCE).await;
    eprintln!("majority elected node {new} after {:?}", start.elapsed());
    for &id in &majority {
        api.put_until_acknowledged(id, &format!("majority-{id}"), "kept", PATIENCE).await;
    }
    let status = api.status(old).await.expect("the old leader answers");
    assert_ne!(status["role"], "Leader", "check-quorum made the isolated leader step down: {status}");

    // Heal: the old leader rejoins, follows the new leader and catches up; its unacknowledged
    // write from the minority side was never applied anywhere.
    for &id in &all {
        api.post(id, "/debug/heal", json!({})).await.expect("heal");
    }
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    assert!(majority.contains(&leader), "a node with the whole log leads: {leader}");
    let index = api.put_until_acknowledged(old, "after-heal", "1", PATIENCE).await;
    api.wait_for_applied(&all, index, PATIENCE).await;
    for &id in &all {
        for key in
            majority.iter().map(|m| format!("majority-{m}")).chain(["before".into(), "after-heal".into()])
        {
            let answer = api.get(id, &key, true).await.expect("a local read");
            assert_eq!(answer.status, StatusCode::OK, "node {id} misses {key}");
        }
        let answer = api.get(id, "minority", true).await.expect("a local read");
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "node {id} applied a write that never committed");
    }
}
