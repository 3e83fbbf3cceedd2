//! Three `raft-kv` processes on loopback: 1,000 writes through every node, the leader killed
//! with SIGKILL and restarted, then 20 kill/restart cycles under a steady write load — and not
//! one acknowledged write lost.
//!
//! Run with `--nocapture` to see the figures (writes, cycles, time to a new leader).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Cluster, KvApi, NodeId};
use reqwest::StatusCode;

const WRITES: usize = 1_000;
const CYCLES: usize = 20;
const WRITERS: usize = 16;
const PATIENCE: Duration = Duration::from_secs(20);

/// Writes acknowledged (200) with their value, and writes whose outcome is unknown (an error,
/// or a 503 around a leader crash).
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<String, String>,
    unknown: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_leader_crashes() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3, &[]);
    let api = cluster.api().clone();
    let all = api.ids();
    let first = api.wait_for_leader(&all, PATIENCE).await;
    eprintln!("leader {first} elected after {:?}", started.elapsed());

    // 1,000 writes, round-robin over the three nodes (followers forward to the leader).
    let phase = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (api, all) = (api.clone(), all.clone());
        writers.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (writer..WRITES).step_by(WRITERS) {
                let (key, value) = (format!("key-{i}"), format!("value-{i}"));
                last = last.max(api.put_until_acknowledged(all[i % all.len()], &key, &value, PATIENCE).await);
            }
            last
        }));
    }
    let mut last_index = 0;
    for writer in writers {
        last_index = last_index.max(writer.await.expect("a writer"));
    }
    eprintln!("{WRITES} writes through 3 nodes acknowledged in {:?}", phase.elapsed());
    api.wait_for_applied(&all, last_index, PATIENCE).await;
    for i in (0..WRITES).step_by(7) {
        let answer = api.get(all[i % all.len()], &format!("key-{i}"), false).await.expect("a read");
        assert_eq!(
            (answer.status, answer.body["value"].as_str()),
            (StatusCode::OK, Some(&*format!("value-{i}")))
        );
    }

    // Kill the leader: a new one is elected and serves; the old one restarts and catches up.
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    cluster.kill(leader);
    let survivors: Vec<NodeId> = all.iter().copied().filter(|&id| id != leader).collect();
    let failover = Instant::now();
    let next = api.wait_for_leader(&survivors, PATIENCE).await;
    eprintln!("killed leader {leader}; node {next} leads after {:?}", failover.elapsed());
    let index = api.put_until_acknowledged(survivors[0], "after-crash", "yes", PATIENCE).await;
    cluster.restart(leader);
    api.wait_for_applied(&[leader], index, PATIENCE).await;
    let answer = api.get(leader, "after-crash", true).await.expect("a local read");
    assert_eq!(answer.body["value"], "yes", "the restarted node caught up");
    let answer = api.get(leader, "key-0", true).await.expect("a local read");
    assert_eq!(answer.body["value"], "value-0", "the restarted node kept what it had");

    // 20 cycles: writers keep writing through the running nodes while leaders are killed and
    // restarted.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_load(w, api.clone(), Arc::clone(&ledger), Arc::clone(&stop))))
        .collect();
    let mut failovers = Vec::new();
    let phase = Instant::now();
    for cycle in 0..CYCLES {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let leader = api.wait_for_leader(&all, PATIENCE).await;
        cluster.kill(leader);
        let survivors: Vec<NodeId> = all.iter().copied().filter(|&id| id != leader).collect();
        let failover = Instant::now();
        let next = api.wait_for_leader(&survivors, PATIENCE).await;
        failovers.push(failover.elapsed());
        cluster.restart(leader);
        // Wait until the restarted node follows someone, so the next kill leaves a quorum.
        let start = Instant::now();
        while api.status(leader).await.is_none_or(|s| s["leader"].is_null()) {
            assert!(start.elapsed() < PATIENCE, "restarted node {leader} found no leader (cycle {cycle})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("cycle {cycle}: killed leader {leader}; node {next} led after {:?}", failovers[cycle]);
    }
    stop.store(true, Ordering::Relaxed);
    for writer in load {
        writer.await.expect("a writer");
    }
    let cycles_took = phase.elapsed();

    // Every acknowledged write is on every node.
    let leader = api.wait_for_leader(&all, PATIENCE).await;
    let commit = api.status(leader).await.and_then(|s| s["commit_index"].as_u64()).expect("a status");
    api.wait_for_applied(&all, commit, PATIENCE).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.acknowledged.len() > 100, "the load made progress: {}", ledger.acknowledged.len());
    for (key, value) in &ledger.acknowledged {
        for &node in &all {
            let answer = api.get(node, key, true).await.expect("a local read");
            assert_eq!(
                answer.body["value"].as_str(),
                Some(value.as_str()),
                "node {node} lost acknowledged {key}"
            );
        }
    }
    for i in 0..WRITES {
        let answer = api.get(all[i % 3], &format!("key-{i}"), true).await.expect("a local read");
        assert_eq!(answer.body["value"].as_str(), Some(&*format!("value-{i}")), "key-{i} was lost");
    }
    failovers.sort();
    let average = failovers.iter().sum::<Duration>() / failovers.len() as u32;
    eprintln!(
        "FIGURES: {WRITES} initial writes; {CYCLES} leader kill/restart cycles in {cycles_took:.1?} with {} acknowledged \
         and {} unknown writes, none lost; time to a new leader: min {:.0?}, median {:.0?}, average {average:.0?}, \
         max {:.0?}; total {:.1?}",
        ledger.acknowledged.len(),
        ledger.unknown,
        failovers[0],
        failovers[failovers.len() / 2],
        failovers[failovers.len() - 1],
        started.elapsed(),
    );
}

/// Writes unique keys through the running nodes in turn until `stop`, recording outcomes.
async fn write_load(writer: usize, api: Api, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let running = api.running();
        let node = running[n % running.len()];
        let (key, value) = (format!("load-{writer}-{n}"), format!("value-{writer}-{n}"));
        let answer = api.put(node, &key, &value).await;
        let mut ledger = ledger.lock().unwrap();
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => {
                ledger.acknowledged.insert(key, value);
            }
            _ => ledger.unknown += 1,
        }
        n += 1;
    }
}
