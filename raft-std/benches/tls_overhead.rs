//! What mutual TLS costs in write throughput: a three-node cluster in one process (RaftNode,
//! loopback sockets), 64 concurrent proposers of 100-byte commands, on the TCP transport and
//! on the TLS transport, side by side in one run, with the log in memory (MemState: the
//! transport's cost shows most) and on disk (FileState, fsync on every write).
//!
//! ```text
//! cargo bench -p raft-std --features tls --bench tls_overhead
//! ```
//!
//! Runs alternate between the transports (TCP, TLS, TCP, TLS, …) so that drift of a shared
//! machine falls on both. Without `--bench` (as `cargo test --benches` runs it) it only
//! checks, briefly, that both clusters take writes.

#[path = "../tests/pki/mod.rs"]
mod pki;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft_core::{Bytes, LogStore, MemState, NodeId};
use raft_std::{
    FileState, NodeConfig, RaftNode, StorageOptions, TcpConfig, TcpTransport, TlsTransport, Transport,
};

const PROPOSERS: usize = 64;
const COMMAND_BYTES: usize = 100;
const CLUSTER: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Tcp,
    Tls,
}

enum Either {
    Tcp(TcpTransport),
    Tls(TlsTransport),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Memory,
    Disk,
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (warm_up, measure, rounds) = if full {
        (Duration::from_secs(1), Duration::from_secs(4), 3)
    } else {
        (Duration::from_millis(100), Duration::from_millis(300), 1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    println!("3 nodes in one process, {PROPOSERS} concurrent proposers, {COMMAND_BYTES}-byte commands");
    for store in [Store::Memory, Store::Disk] {
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (slot, wire) in [Wire::Tcp, Wire::Tls].into_iter().enumerate() {
                let rate = runtime.block_on(run(wire, store, warm_up, measure));
                println!("  {store:?} round {}: {wire:?} {rate:>8.0} writes/s", round + 1);
                rates[slot].push(rate);
            }
        }
        let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
        let (tcp, tls) = (mean(&rates[0]), mean(&rates[1]));
        println!(
            "{store:?}: TCP {tcp:.0} writes/s, TLS {tls:.0} writes/s: TLS reaches {:.1}% of TCP's throughput \
             (costs {:.1}%)",
            100.0 * tls / tcp,
            100.0 * (1.0 - tls / tcp)
        );
        assert!(tcp > 0.0 && tls > 0.0, "both clusters take writes");
    }
}

/// Writes per second a fresh cluster on `wire` and `store` sustains.
async fn run(wire: Wire, store: Store, warm_up: Duration, measure: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = pki::Ca::new("bench CA");
    let ids: Vec<NodeId> = vec![1, 2, 3];
    let any_port = "127.0.0.1:0".parse().expect("an address");
    let mut transports = Vec::new();
    for &id in &ids {
        transports.push(match wire {
            Wire::Tcp => {
                Either::Tcp(TcpTransport::bind(id, TcpConfig::new(CLUSTER, any_port)).await.expect("TCP"))
            }
            Wire::Tls => {
                let config = pki::write(dir.path(), id, CLUSTER, any_port, ca.pem(), &ca.node(CLUSTER, id));
                Either::Tls(TlsTransport::bind(id, config).await.expect("TLS"))
            }
        });
    }
    let addresses: Vec<String> = transports
        .iter()
        .map(|transport| match transport {
            Either::Tcp(transport) => transport.local_addr().to_string(),
            Either::Tls(transport) => transport.local_addr().to_string(),
        })
        .collect();
    let mut nodes = Vec::new();
    for (&id, transport) in ids.iter().zip(transports) {
        let mut config = NodeConfig::new(id);
        config.raft.snapshot_every = 0; // the state machine's snapshots are not what is measured
        for (&peer, address) in ids.iter().zip(&addresses).filter(|(&peer, _)| peer != id) {
            config.peers.insert(peer, address.clone());
        }
        let dir = dir.path().join(id.to_string());
        nodes.push(match transport {
            Either::Tcp(transport) => start(config, store, dir, transport).await,
            Either::Tls(transport) => start(config, store, dir, transport).await,
        });
    }
    nodes[0].propose(Bytes::from("first")).await.expect("a leader");
    let leader = nodes[0].status().await.expect("a status").diagnostics.leader.expect("a leader");
    let leader = nodes.iter().find(|node| node.id() == leader).expect("the leader").clone();

    let (done, stop, counting) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let proposers: Vec<_> = (0..PROPOSERS)
        .map(|_| {
            let (node, done, stop, counting) =
                (leader.clone(), Arc::clone(&done), Arc::clone(&stop), Arc::clone(&counting));
            tokio::spawn(async move {
                let command = Bytes::from(vec![7u8; COMMAND_BYTES]);
                while !stop.load(Ordering::Relaxed) {
                    if node.propose(command.clone()).await.is_ok() && counting.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(warm_up).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    let writes = done.load(Ordering::Relaxed);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for proposer in proposers {
        proposer.await.expect("a proposer");
    }
    for node in nodes {
        node.shutdown().await;
    }
    writes as f64 / took.as_secs_f64()
}

/// Starts a node on `transport`, with its log in memory or in `dir` (fsync on every write).
async fn start(
    config: NodeConfig,
    store: Store,
    dir: std::path::PathBuf,
    transport: impl Transport,
) -> RaftNode {
    match store {
        Store::Memory => launch(config.clone(), MemState::new(config.bootstrap()), transport).await,
        Store::Disk => {
            let log = FileState::open(&dir, config.bootstrap(), StorageOptions::default()).expect("a store");
            launch(config, log, transport).await
        }
    }
}

async fn launch(config: NodeConfig, log: impl LogStore + 'static, transport: impl Transport) -> RaftNode {
    RaftNode::start(config, log, Vec::<Bytes>::new(), transport).await.expect("the node starts")
}
