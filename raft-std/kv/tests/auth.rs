//! HTTPS, client authentication and roles on real `raft-kv` processes, with certificates made
//! by `raft-kv certs`: no credentials is 401, too small a role is 403 (so nobody but an admin
//! can add a voter), each role does what it may, and a node refuses to start without TLS
//! material unless `--insecure` is explicit.

mod common;

use std::time::Duration;

use common::{Cluster, KvApi};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(20);
/// A bearer token with the write role; the roles file holds only its SHA-256.
const TOKEN: &str = "s3cret-token-for-the-writer";
const TOKEN_SHA256: &str = "28c256ccb966a262df5862996cb167744d0d75c91369613e8bdb37a26418d5be";

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value, String) {
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, response.json().await.expect("a JSON body"), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_authenticated_and_need_the_role_for_what_they_do() {
    let mut cluster = Cluster::secure(3, &[], &["reader=read", "writer=write"]);
    let roles = cluster.certs().join("roles");
    let mut text = std::fs::read_to_string(&roles).unwrap();
    text.push_str(&format!("write token-sha256:{TOKEN_SHA256}\n"));
    std::fs::write(&roles, text).unwrap();
    cluster.launch_all();
    let api = cluster.api().clone();
    let leader = api.wait_for_leader(&[1, 2, 3], PATIENCE).await;
    let url = |path: &str| api.url(leader, path);
    let fake_voter = json!({ "id": 9, "addr": "203.0.113.9:7009" });

    // No credentials: 401 with a JSON error and a challenge, on every kind of endpoint.
    let anonymous = cluster.client_as(None);
    for request in [
        anonymous.get(url("/status")),
        anonymous.put(url("/kv/k")).body("v"),
        anonymous.post(url("/cluster/members")).json(&fake_voter),
        anonymous.get(url("/nowhere")),
    ] {
        let (status, body, challenge) = answer(request).await;
        assert_eq!(
            (status, body["code"].as_str(), challenge.as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"), "Bearer")
        );
    }
    // A wrong token: 401, and the token is not repeated.
    let (status, body, _) = answer(anonymous.get(url("/status")).bearer_auth("not-the-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("not-the-token"), "{body}");
    // Plain HTTP on the HTTPS port gets nothing.
    let plain =
        reqwest::Client::new().get(format!("http://{}/status", api.http_address(leader))).send().await;
    assert!(plain.map_or(true, |response| !response.status().is_success()));

    // The reader reads, and may not write or add a voter: 403, and nothing changes.
    let reader = api.with_client(cluster.client_as(Some("reader")));
    assert_eq!(reader.get(leader, "k", false).await.unwrap().status, StatusCode::NOT_FOUND);
    assert!(reader.status(leader).await.is_some());
    let refused = reader.put(leader, "k", "v").await.unwrap();
    assert_eq!((refused.status, &refused.body["code"]), (StatusCode::FORBIDDEN, &json!("forbidden")));
    assert!(refused.body["error"].as_str().unwrap().contains("needs the write role"), "{refused:?}");
    let refused = reader.post(leader, "/cluster/members", fake_voter.clone()).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(!refused.body.to_string().contains("reader"), "the identity is not echoed: {refused:?}");

    // The writer (by certificate or by token) writes, and may not change the membership.
    let writer = api.with_client(cluster.client_as(Some("writer")));
    assert_eq!(writer.put(leader, "k", "by certificate").await.unwrap().status, StatusCode::OK);
    let refused = writer.post(leader, "/cluster/members", fake_voter.clone()).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let (status, body, _) = answer(anonymous.put(url("/kv/t")).bearer_auth(TOKEN).body("by token")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = answer(anonymous.delete(url("/cluster/members/2")).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = api.status(leader).await.expect("the admin reads the status");
    assert_eq!(status["members"]["voters"], json!([1, 2, 3]), "no fake voter was added: {status}");

    // The admin does everything, over HTTPS with the generated client certificate.
    assert_eq!(api.get(leader, "t", false).await.unwrap().body["value"], "by token");
    let to = if leader == 1 { 2 } else { 1 };
    let moved = api.post(leader, "/cluster/transfer-leader", json!({ "to": to })).await.unwrap();
    assert_eq!((moved.status, &moved.body), (StatusCode::OK, &json!({ "leader": to })));
    assert!(api.metrics(to).await.unwrap().contains("raft_term"));
    assert!(cluster.log(1).contains("open-file limit"), "the limit is logged:\n{}", cluster.log(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_without_tls_unless_insecure_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raft-kv"))
        .args(["--id", "1", "--listen", &free(), "--http", &free()])
        .arg("--data")
        .arg(dir.path())
        .output()
        .expect("raft-kv runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no TLS material") && stderr.contains("--insecure"), "{stderr}");
    assert!(!dir.path().join("hard_state").exists(), "refused before touching the data directory");

    let cluster = Cluster::start(1, &[]);
    cluster.api().wait_for_leader(&[1], PATIENCE).await;
    let log = cluster.log(1);
    assert!(
        log.contains("WARN") && log.contains("--insecure: serving plain HTTP without authentication"),
        "{log}"
    );
}
