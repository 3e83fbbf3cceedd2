//! Certificate rotation under load: a three-node cluster on the TLS transport takes writes
//! while its CA is rotated (the new CA added to every CA file, each node given a certificate
//! from it, the old CA removed), the transports picking up each change by themselves; every
//! acknowledged write is on every node afterwards, and writes go on once only the new CA is
//! trusted.
#![cfg(feature = "tls")]

mod pki;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pki::Ca;
use raft_core::{Bytes, MemState, NodeId};
use raft_std::{NodeConfig, RaftNode, TlsTransport};

const CLUSTER: &str = "rotation";
const WRITERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_while_certificates_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let ids: Vec<NodeId> = vec![1, 2, 3];
    let any_port = "127.0.0.1:0".parse().unwrap();

    let mut transports = Vec::new();
    for &id in &ids {
        let mut config =
            pki::write(dir.path(), id, CLUSTER, any_port, old_ca.pem(), &old_ca.node(CLUSTER, id));
        config.reload_every = Duration::from_millis(100);
        transports.push(TlsTransport::bind(id, config).await.expect("the transport starts"));
    }
    let addresses: Vec<String> = transports.iter().map(|t| t.local_addr().to_string()).collect();
    let mut nodes = Vec::new();
    for (&id, transport) in ids.iter().zip(transports) {
        let mut config = NodeConfig::new(id);
        for (&peer, address) in ids.iter().zip(&addresses).filter(|(&peer, _)| peer != id) {
            config.peers.insert(peer, address.clone());
        }
        let log = MemState::new(config.bootstrap());
        nodes.push(RaftNode::start(config, log, Vec::<Bytes>::new(), transport).await.unwrap());
    }
    nodes[0].propose(Bytes::from("first")).await.expect("a leader is elected over TLS");

    // Writers through every node, recording what was acknowledged (and when).
    let acknowledged = Arc::new(Mutex::new(Vec::<(Instant, Bytes)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (node, acknowledged, stop) =
                (nodes[writer % 3].clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut failed = 0;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let command = Bytes::from(format!("w{writer}-{n}"));
                    match node.propose(command.clone()).await {
                        Ok(_) => acknowledged.lock().unwrap().push((Instant::now(), command)),
                        Err(error) => {
                            if failed == 0 {
                                eprintln!("writer {writer}: {error}");
                            }
                            failed += 1
                        }
                    }
                }
                failed
            })
        })
        .collect();

    let phase = Duration::from_millis(700);
    tokio::time::sleep(phase).await;
    let bundle = format!("{}{}", old_ca.pem(), new_ca.pem());
    for &id in &ids {
        pki::write(dir.path(), id, CLUSTER, any_port, &bundle, &old_ca.node(CLUSTER, id));
    }
    tokio::time::sleep(phase).await;
    for &id in &ids {
        pki::write(dir.path(), id, CLUSTER, any_port, &bundle, &new_ca.node(CLUSTER, id));
    }
    tokio::time::sleep(phase).await;
    for &id in &ids {
        pki::write(dir.path(), id, CLUSTER, any_port, new_ca.pem(), &new_ca.node(CLUSTER, id));
    }
    let only_new_ca = Instant::now() + Duration::from_millis(500); // every node has reloaded by then
    tokio::time::sleep(phase * 2).await;
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for writer in writers {
        failed += writer.await.unwrap();
    }

    // Every acknowledged write is on every node.
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    let after = acknowledged.iter().filter(|(at, _)| *at > only_new_ca).count();
    eprintln!(
        "FIGURES: {} writes acknowledged ({after} with only the new CA trusted), {failed} failed, during 3 rotations",
        acknowledged.len()
    );
    assert!(after > 50, "writes went on with only the new CA trusted: {after}");
    let last = nodes[0].propose(Bytes::from("last")).await.expect("the cluster still writes").index;
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.status().await.unwrap().diagnostics.applied_index < last {
            assert!(Instant::now() < deadline, "node {} does not catch up", node.id());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut applied = BTreeSet::new();
        for position in 0u64.. {
            let command = node.read_local(&position.to_le_bytes()).await.unwrap();
            if command.is_empty() {
                break;
            }
            applied.insert(command);
        }
        let lost: Vec<_> = acknowledged.iter().filter(|(_, command)| !applied.contains(command)).collect();
        assert!(lost.is_empty(), "node {} lost {} acknowledged writes", node.id(), lost.len());
    }
    for node in nodes {
        node.shutdown().await;
    }
}
