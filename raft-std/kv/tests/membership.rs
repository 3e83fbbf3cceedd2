//! Growing a cluster from one `raft-kv` process: nodes started with `--join` are added through
//! `POST /cluster/members`, leadership is handed over, and the founder is removed.

mod common;

use std::time::Duration;

use common::Cluster;
use reqwest::StatusCode;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_grows_to_three_hands_over_and_leaves() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.launch(1, &[], &[]);
    let api = cluster.api().clone();
    assert_eq!(api.wait_for_leader(&[1], PATIENCE).await, 1);
    api.put_until_acknowledged(1, "founded", "by 1", PATIENCE).await;

    // Nodes 2 and 3 start empty and wait; each is added through a different node.
    for (id, via) in [(2, 1), (3, 2)] {
        cluster.launch(id, &[1, 2, 3], &["--join"]);
        let addr = cluster.raft_address(id).to_string();
        let added =
            api.post(via, "/cluster/members", json!({ "id": id, "addr": addr })).await.expect("an answer");
        assert_eq!(added.status, StatusCode::OK, "{added:?}");
        assert!(added.body["members"]["voters"].as_array().unwrap().contains(&json!(id)), "{added:?}");
    }
    assert_eq!(api.wait_for_leader(&[1, 2, 3], PATIENCE).await, 1);
    let index = api.put_until_acknowledged(3, "grown", "yes", PATIENCE).await;
    api.wait_for_applied(&[1, 2, 3], index, PATIENCE).await;
    let answer = api.get(3, "founded", true).await.expect("a local read");
    assert_eq!(answer.body["value"], "by 1", "the new node received the whole history");

    // Hand leadership to node 2, then remove the founder.
    let moved = api.post(3, "/cluster/transfer-leader", json!({ "to": 2 })).await.expect("an answer");
    assert_eq!((moved.status, &moved.body), (StatusCode::OK, &json!({ "leader": 2 })));
    let removed = api.delete(3, "/cluster/members/1").await.expect("an answer");
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");
    assert_eq!(removed.body["members"]["voters"], json!([2, 3]));
    cluster.kill(1);
    assert_eq!(api.wait_for_leader(&[2, 3], PATIENCE).await, 2);
    api.put_until_acknowledged(3, "without the founder", "yes", PATIENCE).await;

    // A member added at runtime restarts and finds its peers again.
    cluster.restart(3);
    let index = api.put_until_acknowledged(2, "after restart", "yes", PATIENCE).await;
    api.wait_for_applied(&[3], index, PATIENCE).await;

    // Bad requests are refused with a JSON error.
    for (body, code) in [
        (json!({ "id": 0, "addr": "127.0.0.1:1" }), StatusCode::BAD_REQUEST),
        (json!({ "id": 5, "addr": "no port" }), StatusCode::BAD_REQUEST),
        (json!({ "id": 5 }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let refused = api.post(2, "/cluster/members", body).await.expect("an answer");
        assert_eq!(refused.status, code, "{refused:?}");
        assert!(refused.body["error"].is_string(), "{refused:?}");
    }
    let refused = api.delete(2, "/cluster/members/9").await.expect("an answer");
    assert_eq!((refused.status, &refused.body["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_change")));
    let refused = api.delete(2, "/cluster/members/nine").await.expect("an answer");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    let refused = api.post(2, "/cluster/transfer-leader", json!({ "to": 7 })).await.expect("an answer");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
}
