//! Finding: frames carrying the largest terms, sent to a running cluster over its (plain TCP)
//! Raft port by someone who knows the cluster id and claims a member's id. Three `raft-kv`
//! processes get vote requests, pre-votes and leadership-transfer votes with term `u64::MAX`
//! and `MAX_TERM + 1`, and TimeoutNow with those terms; writes still commit, and still do
//! after every node restarts (no node persisted an impossible term).
//!
//! Plain TCP takes the claimed id (the test shows it: the handshake is welcomed); raft-core
//! drops the messages as out of range. The TLS transport refuses such a connection outright
//! (raft-std's `tests/tls.rs`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Api, Cluster, KvApi, NodeId};
use raft_core::{LogId, Message, RequestVote, MAX_TERM};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(20);

/// raft-std's handshake, as an attacker writes it.
#[derive(Serialize)]
struct Hello {
    protocol: u32,
    cluster: String,
    from: NodeId,
    to: NodeId,
}

#[derive(Deserialize)]
enum Answer {
    Welcome,
    Refused(String),
}

/// raft-std's frame (its first variant), after the frame version byte.
#[derive(Serialize)]
enum Frame {
    Raft(Message),
}

/// raft-std's frame format version.
const FRAME_VERSION: u8 = 2;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len()).expect("a small frame").to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Every frame with a term past the ceiling.
fn max_term_frames() -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    for term in [u64::MAX, MAX_TERM + 1] {
        for (pre_vote, transfer) in [(false, false), (true, false), (false, true), (true, true)] {
            let last_log = LogId::new(term, u64::MAX);
            messages.push(Message::RequestVote(RequestVote { term, last_log, pre_vote, transfer }));
        }
        messages.push(Message::TimeoutNow { term });
    }
    messages
        .into_iter()
        .map(|message| {
            let mut body = vec![FRAME_VERSION];
            body.extend(postcard::to_allocvec(&Frame::Raft(message)).expect("encodable"));
            framed(&body)
        })
        .collect()
}

/// Connects to node `to` at `address` claiming to be member `from`, and sends every frame.
async fn forge(address: SocketAddr, from: NodeId, to: NodeId) {
    let mut stream = TcpStream::connect(address).await.expect("the Raft port");
    let hello = Hello { protocol: 1, cluster: "raft-kv".into(), from, to };
    stream.write_all(&framed(&postcard::to_allocvec(&hello).expect("encodable"))).await.unwrap();
    let len = stream.read_u32().await.expect("an answer");
    let mut body = vec![0; len.min(4096) as usize];
    stream.read_exact(&mut body).await.expect("an answer");
    match postcard::from_bytes(&body).expect("an answer") {
        Answer::Welcome => {} // plain TCP takes the claim
        Answer::Refused(reason) => panic!("node {to} refused the claim: {reason}"),
    }
    for frame in max_term_frames() {
        stream.write_all(&frame).await.expect("the frame is taken");
    }
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Writes through every node, and checks that no node's term went anywhere near the ceiling.
async fn writes_commit(api: &Api, round: &str) {
    for id in api.ids() {
        api.put_until_acknowledged(id, &format!("{round}-{id}"), "committed", PATIENCE).await;
    }
    for id in api.ids() {
        let term = api.status(id).await.and_then(|s| s["term"].as_u64()).expect("a status");
        assert!(term < 1000, "node {id} is at term {term}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_term_frames_leave_the_cluster_writing_across_restarts() {
    let mut cluster = Cluster::start(3, &["--fsync", "never"]);
    let api = cluster.api().clone();
    let all = api.ids();
    api.wait_for_leader(&all, PATIENCE).await;
    writes_commit(&api, "before").await;

    for &to in &all {
        let from = all.iter().copied().find(|&id| id != to).expect("another member");
        forge(cluster.raft_address(to), from, to).await;
    }
    writes_commit(&api, "after").await;

    for &id in &all {
        cluster.restart(id);
    }
    api.wait_for_leader(&all, PATIENCE).await;
    writes_commit(&api, "restarted").await;
    for round in ["before", "after"] {
        for &id in &all {
            let answer = api.get(id, &format!("{round}-{id}"), false).await.expect("a read");
            assert_eq!(answer.body["value"], "committed", "{round}-{id} survived the restarts");
        }
    }
}
