//! Cluster time: the leader's clock, committed through the log.
//!
//! The state machine never reads a clock (replicas would disagree); it learns the time from
//! [`Command::Tick`]s, which only the leader proposes. While it leads, a node proposes
//! `Tick { now }` every `--lease-check-ms` while leases are held or tasks were queued or
//! finished since its last tick (so the times tasks show are that precise), and every 10 s
//! otherwise (for the retention of results and workers), where
//!
//! ```text
//! now = T + (this node's monotonic clock − its reading when it took over)
//! ```
//!
//! and `T` is the cluster time the state held when this node took over (read linearizably,
//! so it reflects every tick committed before). Hence:
//!
//! * every replica applies the same ticks at the same log positions, so they expire the same
//!   leases at the same points (the state machine keeps `max(now, tick)`: a tick from a
//!   deposed leader that commits late never moves time back);
//! * cluster time does not run faster than the leaders' monotonic clocks, whatever their wall
//!   clocks say: a new leader continues from `T`, not from its own idea of the date;
//! * while there is no leader, cluster time stands still, so no lease expires during an
//!   election: workers keep their leases if they renew them once a leader is back.

use std::time::Duration;

use raft_core::Role;
use raft_std::RaftNode;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::machine::{self, Command, Query, Retention, Summary};

/// How often the leader ticks while no lease is held.
const IDLE_TICK: Duration = Duration::from_secs(10);

/// The cluster time this node continues from, and when it read it.
struct Anchor {
    term: u64,
    cluster: u64,
    at: Instant,
}

impl Anchor {
    fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.at.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.cluster.saturating_add(elapsed)
    }
}

/// Proposes ticks while this node leads (see the module docs), until the node stops.
pub async fn run(node: RaftNode, summary: watch::Receiver<Summary>, every: Duration, retention: Retention) {
    let mut anchor: Option<Anchor> = None;
    let mut last_tick: Option<Instant> = None;
    // The counts at the last tick, to see whether tasks moved since.
    let mut ticked_at = Summary::default();
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Ok(status) = node.status().await else { return }; // the node stopped
        let diagnostics = status.diagnostics;
        if diagnostics.role != Role::Leader {
            anchor = None;
            continue;
        }
        if anchor.as_ref().is_none_or(|anchor| anchor.term != diagnostics.term) {
            match cluster_time(&node).await {
                Some(cluster) => {
                    tracing::info!(
                        term = diagnostics.term,
                        cluster_time_ms = cluster,
                        "leading: cluster time continues"
                    );
                    anchor = Some(Anchor { term: diagnostics.term, cluster, at: Instant::now() });
                }
                None => continue,
            }
        }
        let Some(anchor) = &anchor else { continue };
        let counts = Summary { now: 0, ..*summary.borrow() };
        let busy = counts.running > 0 || counts != ticked_at;
        let due = last_tick.is_none_or(|last| last.elapsed() >= IDLE_TICK);
        if !busy && !due {
            continue;
        }
        let tick = Command::Tick { now: anchor.now(), retention };
        match node.propose(machine::encode(&tick)).await {
            Ok(_) => {
                last_tick = Some(Instant::now());
                ticked_at = counts;
            }
            Err(error) => tracing::debug!(%error, "a tick was not committed"),
        }
    }
}

/// The cluster time of the state, read linearizably.
async fn cluster_time(node: &RaftNode) -> Option<u64> {
    match node.read(machine::encode(&Query::Summary)).await {
        Ok(answer) => {
            let summary: serde_json::Value = serde_json::from_slice(&answer).ok()?;
            summary["now_ms"].as_u64()
        }
        Err(error) => {
            tracing::debug!(%error, "cannot read the cluster time yet");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Admission, Outcome, Spec, TaskMachine};
    use raft_core::MemState;
    use raft_std::{ChannelNetwork, NodeConfig};

    const EVERY: Duration = Duration::from_millis(20);

    async fn propose(node: &RaftNode, command: &Command) -> Outcome {
        postcard::from_bytes(&node.propose(machine::encode(command)).await.unwrap().response).unwrap()
    }

    async fn get(node: &RaftNode, id: u64) -> serde_json::Value {
        serde_json::from_slice(&node.read_local(&machine::encode(&Query::Get { id })).await.unwrap()).unwrap()
    }

    /// Waits until every summary shows cluster time of at least `at_least`.
    async fn wait_for_time(summaries: &[watch::Receiver<Summary>], at_least: u64) {
        for summary in summaries {
            let mut summary = summary.clone();
            tokio::time::timeout(Duration::from_secs(10), summary.wait_for(|s| s.now >= at_least))
                .await
                .expect("cluster time advances")
                .unwrap();
        }
    }

    /// Three in-process nodes, each with its clock: time advances only through committed
    /// ticks, never goes back on any replica, continues across a leadership transfer, and
    /// expires an unrenewed lease the same way on every replica.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_time_is_committed_by_the_leader_and_continues_across_leaders() {
        let network = ChannelNetwork::new();
        let (mut nodes, mut summaries) = (Vec::new(), Vec::new());
        let violations = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        for id in 1..=3 {
            let mut config = NodeConfig::new(id);
            for peer in (1..=3).filter(|&peer| peer != id) {
                config.peers.insert(peer, format!("node-{peer}"));
            }
            let log = MemState::new(config.bootstrap());
            let machine = TaskMachine::default();
            let summary = machine.summary();
            let node = RaftNode::start(config, log, machine, network.join(id)).await.unwrap();
            tokio::spawn(run(node.clone(), summary.clone(), EVERY, Retention::default()));
            // Every replica's cluster time only ever grows.
            let mut watch = summary.clone();
            let violations = std::sync::Arc::clone(&violations);
            tokio::spawn(async move {
                let mut last = 0;
                while watch.changed().await.is_ok() {
                    let now = watch.borrow_and_update().now;
                    if now < last {
                        violations.lock().unwrap().push(format!("node {id}: from {last} to {now}"));
                    }
                    last = now;
                }
            });
            nodes.push(node);
            summaries.push(summary);
        }
        let spec = |max_attempts| Spec {
            command: vec!["true".into()],
            stdin: String::new(),
            timeout_ms: 1000,
            max_attempts,
        };
        let admission = Admission { max_tasks: 10, max_bytes: 1000 };
        // A task leased for a minute keeps the leader ticking every 20 ms.
        assert_eq!(
            propose(&nodes[0], &Command::Submit { spec: spec(1), admission }).await,
            Outcome::Submitted { id: 1 }
        );
        let lease = |lease_ms| Command::Lease {
            worker: "w".into(),
            owner: None,
            request: lease_ms,
            want: 1,
            lease_ms,
            max_workers: 10,
        };
        assert!(
            matches!(propose(&nodes[1], &lease(60_000)).await, Outcome::Leased { grants, .. } if grants.len() == 1)
        );
        wait_for_time(&summaries, 300).await;

        let leader = nodes[0].status().await.unwrap().diagnostics.leader.unwrap();
        let next = if leader == 1 { 2 } else { 1 };
        let before = summaries[(leader - 1) as usize].borrow().now;
        assert_eq!(nodes[0].transfer_leader(next).await.unwrap(), next);
        wait_for_time(&summaries, before + 300).await;

        // A lease of 200 ms that nobody renews expires, and the task (one attempt) fails on
        // every replica alike.
        assert_eq!(
            propose(&nodes[2], &Command::Submit { spec: spec(1), admission }).await,
            Outcome::Submitted { id: 2 }
        );
        assert!(
            matches!(propose(&nodes[2], &lease(200)).await, Outcome::Leased { grants, .. } if grants[0].id == 2)
        );
        let start = Instant::now();
        while get(&nodes[0], 2).await["state"] != "failed" {
            assert!(start.elapsed() < Duration::from_secs(10), "the lease never expired");
            tokio::time::sleep(EVERY).await;
        }
        let commit = nodes[0].status().await.unwrap().diagnostics.commit_index;
        for node in &nodes {
            let mut status = node.watch();
            status.wait_for(|s| s.diagnostics.applied_index >= commit).await.unwrap();
        }
        let views = [get(&nodes[0], 2).await, get(&nodes[1], 2).await, get(&nodes[2], 2).await];
        assert_eq!(views[0]["history"][0]["ended"], "lease_expired");
        assert_eq!(views[0]["state"], "failed");
        assert!(
            views.iter().all(|view| *view == views[0]),
            "the same expiry at the same time everywhere: {views:?}"
        );
        assert_eq!(get(&nodes[1], 1).await["state"], "running", "the minute-long lease holds");
        assert_eq!(*violations.lock().unwrap(), Vec::<String>::new(), "cluster time went back");
        for node in &nodes {
            node.shutdown().await;
        }
    }
}
