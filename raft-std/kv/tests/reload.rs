//! Reloading without a restart, on a real `raft-kv` process polling every 100 ms
//! (`--tls-reload-ms`): a half-written certificate is ignored and the node keeps serving; a
//! certificate, key and client CA from a new CA are picked up by new handshakes while a
//! connection made before keeps working; a roles file that grants more takes effect (at the
//! HTTP edge and in the leader's check), and one with a mistake is ignored.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Cluster, KvApi};
use raft_service::certs::{self, NodeHosts, Plan};
use reqwest::StatusCode;

const PATIENCE: Duration = Duration::from_secs(20);
/// How often the node looks at its files.
const RELOAD: [&str; 2] = ["--tls-reload-ms", "100"];
/// A bearer token; the roles file holds only its SHA-256.
const TOKEN: &str = "s3cret-token-for-the-writer";
const TOKEN_SHA256: &str = "28c256ccb966a262df5862996cb167744d0d75c91369613e8bdb37a26418d5be";

/// An HTTPS client (a connection pool of its own) that trusts only the CA in `ca` and
/// presents the certificate and key in `dir` named `stem`.
fn client(ca: &Path, dir: &Path, stem: &str) -> reqwest::Client {
    let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
    raft_service::tls::client(ca, Some((&cert, &key)))
        .expect("an HTTPS client")
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTPS client")
}

/// `GET url` with `client`: the status, or the error (a refused handshake).
async fn get(client: &reqwest::Client, url: &str) -> Result<StatusCode, String> {
    client.get(url).send().await.map(|response| response.status()).map_err(|e| format!("{e:?}"))
}

/// Replaces `to` with a copy of `from` the safe way: a complete file renamed into place.
fn replace(from: &Path, to: &Path) {
    let staged = to.with_extension("staged");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

/// Waits until node `id`'s log holds a line with every one of `parts`; panics after `within`.
async fn wait_for_log(cluster: &Cluster, id: u64, parts: &[&str], within: Duration) -> String {
    let start = Instant::now();
    loop {
        let log = cluster.log(id);
        if let Some(line) = log.lines().find(|line| parts.iter().all(|part| line.contains(part))) {
            return line.to_string();
        }
        assert!(start.elapsed() < within, "no log line with {parts:?} within {within:?}:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `check` holds; panics with `what` after `within`.
async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    check: impl Fn() -> F,
) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_material_is_reloaded_and_a_half_written_certificate_is_ignored() {
    let mut cluster = Cluster::secure(1, &RELOAD, &[]);
    cluster.launch_all();
    let api = cluster.api().clone();
    api.wait_for_leader(&[1], PATIENCE).await;
    let url = api.url(1, "/status");
    let certs = cluster.certs().to_path_buf();
    // The first CA and admin identity, kept apart from the files the node reads.
    let first = cluster.dir().join("first");
    std::fs::create_dir(&first).unwrap();
    for name in ["ca.pem", "client.pem", "client-key.pem", "node-1.pem"] {
        std::fs::copy(certs.join(name), first.join(name)).unwrap();
    }
    let first_ca = first.join("ca.pem");
    // A connection made now, before any reload.
    let kept = client(&first_ca, &first, "client");
    assert_eq!(get(&kept, &url).await, Ok(StatusCode::OK));

    // A certificate file caught half-written is not loaded: the node keeps serving with the
    // certificate it has, and says which file is wrong.
    let node_cert = certs.join("node-1.pem");
    let pem = std::fs::read(&node_cert).unwrap();
    std::fs::write(&node_cert, &pem[..pem.len() / 2]).unwrap();
    let warning = wait_for_log(&cluster, 1, &["WARN", "cannot reload the HTTPS certificate"], PATIENCE).await;
    assert!(warning.contains(&node_cert.display().to_string()), "{warning}");
    assert_eq!(get(&client(&first_ca, &first, "client"), &url).await, Ok(StatusCode::OK));
    assert!(api.status(1).await.is_some(), "the node still serves");

    // A new CA: the node's certificate and key from it, and it as the client CA, each file
    // renamed into place.
    let second = cluster.dir().join("second");
    let plan = Plan {
        dir: second.clone(),
        cluster: "raft-kv".into(),
        nodes: vec![NodeHosts { id: 1, hosts: vec![] }],
        clients: vec![],
        days: 1,
    };
    certs::generate(&plan).unwrap();
    for (from, to) in [
        (certs::node_key(&second, 1), certs::node_key(&certs, 1)),
        (certs::node_cert(&second, 1), node_cert.clone()),
        (certs::ca(&second), certs::ca(&certs)),
    ] {
        replace(&from, &to);
    }
    let second_ca = second.join("ca.pem");
    let (ca, dir, at) = (&second_ca, &second, &url);
    wait_until("a client of the new CA is served", PATIENCE, || async move {
        get(&client(ca, dir, "client"), at).await == Ok(StatusCode::OK)
    })
    .await;
    wait_for_log(&cluster, 1, &["INFO", "reloaded the HTTPS certificate"], PATIENCE).await;

    // New handshakes: the old CA does not verify the node any more (nor does the node accept
    // the old CA's client certificates).
    let refused = get(&client(&first_ca, &first, "client"), &url).await;
    assert!(refused.is_err(), "a client trusting only the old CA connected: {refused:?}");
    let stranger = get(&client(&second_ca, &first, "client"), &url).await;
    assert!(stranger.is_err(), "a client certificate of the old CA was accepted: {stranger:?}");
    // The connection made before the reload is not cut.
    assert_eq!(get(&kept, &url).await, Ok(StatusCode::OK));
    // The Raft port's transport reloaded the same files, and the node still leads and writes.
    let writer = api.with_client(client(&second_ca, &second, "client"));
    assert_eq!(writer.put(1, "k", "after the rotation").await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roles_file_change_takes_effect_and_a_mistaken_one_is_ignored() {
    let mut cluster = Cluster::secure(1, &RELOAD, &["app=read"]);
    cluster.launch_all();
    let api = cluster.api().clone();
    api.wait_for_leader(&[1], PATIENCE).await;
    let app = api.with_client(cluster.client_as(Some("app")));
    let anonymous = cluster.client_as(None);
    let by_token = || anonymous.put(api.url(1, "/kv/t")).bearer_auth(TOKEN).body("by token");
    assert_eq!(app.put(1, "k", "v").await.unwrap().status, StatusCode::FORBIDDEN);
    assert_eq!(by_token().send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Grant the app write, and a token write: both take effect without a restart, at the HTTP
    // edge and in the leader's check of the proposal.
    let roles: PathBuf = certs::roles(cluster.certs());
    let text = std::fs::read_to_string(&roles).unwrap();
    assert!(text.contains("read cert:app\n"), "{text}");
    let granted =
        format!("{}write token-sha256:{TOKEN_SHA256}\n", text.replace("read cert:app", "write cert:app"));
    let staged = cluster.dir().join("roles.new");
    std::fs::write(&staged, &granted).unwrap();
    replace(&staged, &roles);
    let writer = &app;
    wait_until("the app may write", PATIENCE, || async move {
        writer.put(1, "k", "v").await.is_ok_and(|answer| answer.status == StatusCode::OK)
    })
    .await;
    assert_eq!(by_token().send().await.unwrap().status(), StatusCode::OK);
    wait_for_log(&cluster, 1, &["INFO", "reloaded the roles file"], PATIENCE).await;

    // A roles file with a mistake is not loaded: the roles stay as they were, and the warning
    // names the file and the line.
    std::fs::write(&staged, format!("{granted}superuser cert:app\n")).unwrap();
    replace(&staged, &roles);
    let warning = wait_for_log(&cluster, 1, &["WARN", "cannot reload the roles file"], PATIENCE).await;
    assert!(warning.contains(&roles.display().to_string()) && warning.contains("line"), "{warning}");
    assert_eq!(app.put(1, "k", "still").await.unwrap().status, StatusCode::OK);
    assert_eq!(by_token().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.get(1, "k", false).await.unwrap().body["value"], "still");
}
