//! Membership changes on real `raft-kv` processes: a cluster grows from one node (nodes started
//! with `--join`, added through `POST /cluster/members`), hands over leadership and removes its
//! founder; and changes that would leave the voters without a reachable quorum are refused.

mod common;

use std::time::Duration;

use common::{Cluster, KvApi};
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

    // Nodes 2 and 3 start empty and wait; each is added through the leader (a follower refuses,
    // since the quorum check needs the leader's view of who answers).
    cluster.launch(3, &[1, 2, 3], &["--join"]);
    for (id, via) in [(2, 1), (3, 1)] {
        if id == 2 {
            cluster.launch(id, &[1, 2, 3], &["--join"]);
        }
        let addr = cluster.raft_address(id).to_string();
        let added =
            api.post(via, "/cluster/members", json!({ "id": id, "addr": addr })).await.expect("an answer");
        assert_eq!(added.status, StatusCode::OK, "{added:?}");
        assert!(added.body["members"]["voters"].as_array().unwrap().contains(&json!(id)), "{added:?}");
    }
    let refused = api.post(2, "/cluster/members", json!({ "id": 4, "addr": "127.0.0.1:1" })).await.unwrap();
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("not_leader"))
    );
    assert_eq!(refused.body["leader"], 1, "{refused:?}");
    assert_eq!(api.wait_for_leader(&[1, 2, 3], PATIENCE).await, 1);
    let index = api.put_until_acknowledged(3, "grown", "yes", PATIENCE).await;
    api.wait_for_applied(&[1, 2, 3], index, PATIENCE).await;
    let answer = api.get(3, "founded", true).await.expect("a local read");
    assert_eq!(answer.body["value"], "by 1", "the new node received the whole history");

    // Hand leadership to node 2, then remove the founder.
    let moved = api.post(3, "/cluster/transfer-leader", json!({ "to": 2 })).await.expect("an answer");
    assert_eq!((moved.status, &moved.body), (StatusCode::OK, &json!({ "leader": 2 })));
    let removed = api.delete(2, "/cluster/members/1").await.expect("an answer");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_cannot_leave_the_voters_without_a_reachable_quorum() {
    let mut cluster = Cluster::start(3, &["--catch-up-timeout-ms", "2000"]);
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&[1, 2, 3], PATIENCE).await;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();

    // A voter nobody runs is added as a learner and never promoted: the cluster goes on.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let added =
        api.post(leader, "/cluster/members", json!({ "id": 4, "addr": nobody })).await.expect("an answer");
    assert_eq!(
        (added.status, &added.body["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("catch_up_timeout"))
    );
    let status = api.status(leader).await.expect("a status");
    assert_eq!(
        (&status["members"]["voters"], &status["members"]["learners"]),
        (&json!([1, 2, 3]), &json!([4]))
    );
    api.put_until_acknowledged(leader, "with a dead learner", "yes", PATIENCE).await;
    let removed = api.delete(leader, "/cluster/members/4").await.expect("an answer");
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");

    // One follower dies: removing the other one would leave 1 of 2 voters reachable.
    cluster.kill(followers[0]);
    let start = std::time::Instant::now();
    loop {
        let status = api.status(leader).await.expect("the leader answers");
        let replication = status["replication"].as_array().cloned().unwrap_or_default();
        let dead = replication.iter().find(|peer| peer["id"] == json!(followers[0]));
        if dead.is_some_and(|peer| peer["recently_active"] == json!(false)) {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the leader never noticed node {} died: {status}", followers[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = api.delete(leader, &format!("/cluster/members/{}", followers[1])).await.expect("an answer");
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (StatusCode::CONFLICT, &json!("quorum_at_risk")),
        "{refused:?}"
    );
    assert!(refused.body["error"].as_str().unwrap().contains("?force=true"), "{refused:?}");
    let status = api.status(leader).await.expect("a status");
    assert_eq!(status["members"]["voters"], json!([1, 2, 3]), "nothing changed");

    // Removing the dead voter keeps a reachable quorum; the cluster still commits.
    let removed = api.delete(leader, &format!("/cluster/members/{}", followers[0])).await.expect("an answer");
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");
    let mut voters = vec![leader, followers[1]];
    voters.sort();
    assert_eq!(removed.body["members"]["voters"], json!(voters));
    api.put_until_acknowledged(followers[1], "after the removal", "yes", PATIENCE).await;
}
