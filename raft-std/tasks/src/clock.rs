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
