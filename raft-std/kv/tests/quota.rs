//! The quota on real `raft-kv` processes: writes that would grow the store past
//! `--quota-bytes` answer 507 on every node, reads and deletes still work, `/status` shows the
//! alarm on every replica (and after a restart from a snapshot), and deleting clears it.

mod common;

use std::time::Duration;

use common::{Api, Cluster, KvApi, NodeId};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(20);
const QUOTA: u64 = 10_000;

/// Node `id`'s `quota` in `/status`, once it has applied everything the leader committed.
async fn quota(api: &Api, leader: NodeId, id: NodeId) -> Value {
    let commit = api.status(leader).await.expect("a status")["commit_index"].as_u64().unwrap();
    api.wait_for_applied(&[id], commit, PATIENCE).await;
    api.status(id).await.expect("a status")["quota"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_quota_are_refused_until_keys_are_deleted() {
    let mut cluster = Cluster::start(3, &["--quota-bytes", &QUOTA.to_string(), "--snapshot-every", "5"]);
    let api = cluster.api().clone();
    let all = api.ids();
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    let value = "v".repeat(996); // 1,000 bytes with a 4-byte key

    let mut stored = 0;
    let refused = loop {
        let answer = api.put(all[stored % 3], &format!("key{stored}"), &value).await.expect("an answer");
        if answer.status != StatusCode::OK {
            break answer;
        }
        stored += 1;
        assert!(stored <= 10, "the quota never refused a write");
    };
    assert_eq!(stored, 10, "10 × 1,000 bytes fit in 10,000");
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (StatusCode::INSUFFICIENT_STORAGE, &json!("quota_exceeded"))
    );
    assert_eq!(
        (refused.body["used_bytes"].as_u64(), refused.body["quota_bytes"].as_u64()),
        (Some(10_000), Some(QUOTA))
    );

    // Every replica decided the same: the alarm is up everywhere; reads still work.
    for &id in &all {
        assert_eq!(
            quota(&api, leader, id).await,
            json!({ "used_bytes": 10_000, "quota_bytes": QUOTA, "alarm": true })
        );
        assert_eq!(api.get(id, "key3", true).await.unwrap().body["value"], json!(value));
    }
    // While the alarm is up, growth is refused even if it would fit... after a delete it is not.
    let small = api.put(leader, "tiny", "").await.unwrap();
    assert_eq!(small.status, StatusCode::INSUFFICIENT_STORAGE, "{small:?}");
    // A restarted node rebuilds the alarm from its snapshot and log.
    cluster.restart(3);
    assert_eq!(quota(&api, leader, 3).await["alarm"], true);

    let deleted = api.delete(leader, "/kv/key0").await.expect("an answer");
    assert_eq!(deleted.status, StatusCode::OK, "deletes work past the quota: {deleted:?}");
    for &id in &all {
        assert_eq!(
            quota(&api, leader, id).await,
            json!({ "used_bytes": 9_000, "quota_bytes": QUOTA, "alarm": false })
        );
    }
    assert_eq!(api.put(leader, "again", &value[..900]).await.unwrap().status, StatusCode::OK);

    // The body limit still holds: more than 1 MiB is 413.
    let huge = api.put(leader, "huge", &"x".repeat((1 << 20) + 1)).await.unwrap();
    assert_eq!((huge.status, &huge.body["code"]), (StatusCode::PAYLOAD_TOO_LARGE, &json!("body_too_large")));
}
