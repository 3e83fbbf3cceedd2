//! Minimal scenarios for raft-core bugs found by the simulator.
//!
//! Each names the chaos seeds that exposed the bug, the rule it breaks and where the fault
//! lies; the testkit README lists them too. All are fixed; each scenario guards its fix.

use raft_core::Config;
use testkit::{seq_test, ClusterOptions, Simulator};

/// Fixed in raft-core 5fe8dad. Found by chaos seeds 125, 151, 153, 159 (Durability).
///
/// An old leader proposes `x=lost` at index 3, is cut off, and a new leader puts its no-op at
/// index 3 and compacts its log. When the old leader receives the new leader's snapshot,
/// `Node::install_snapshot` (raft-core/src/node/follower.rs) reports the proposal as
/// committed because the node's *own* log still holds it at index 3 — but the snapshot's
/// history holds the no-op there. The client was told its write committed; it never applied.
#[test]
fn snapshot_install_does_not_acknowledge_a_replaced_proposal() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        propose 1 "a=1" => committed on [1, 2, 3];
        isolate 1;
        propose 1 "x=lost" as lost;       // index 3, on node 1 only
        elect 2;                          // node 2's no-op takes index 3
        propose 2 "b=2" => committed on [2, 3];
        compact 2;                        // node 2 keeps only a snapshot through index 4
        heal;
        advance election_timeout;         // node 1 catches up through the snapshot
        expect 1 kv "b" = "2";
        expect 1 kv "x" = "";
        expect op lost failed;            // never applied: Superseded or OutcomeUnknown
    };
}

/// Fixed in raft-core 22ac26c. Found by chaos seeds 238, 720, 1879 (Election Safety, Leader
/// Completeness, State Machine Safety).
///
/// `Node::snapshot_taken` (raft-core/src/node/snapshot.rs) compacted configuration entries
/// out of the log without moving their configuration into `base_membership`. When a
/// follower later truncated a conflicting suffix, `refresh_membership` found no
/// configuration entry in the window and fell back to the stale bootstrap configuration.
/// Nodes then disagreed on who votes; in chaos runs this elected two leaders in one term.
#[test]
fn compaction_keeps_the_configuration() {
    seq_test! {
        cluster [1, 2, 3, 4, 5] with spares=[6];
        elect 1;
        change 1 add_learner 6 => ok;
        propose 1 "a=1" => committed on [1, 2, 3, 4, 5];
        partition [1, 2] | [3, 4, 5, 6];
        propose 1 "x=1";                  // reaches node 2 only: never committed
        settle;
        compact 2;                        // the configuration entry leaves node 2's log
        crash 1;
        heal;
        elect 3;                          // node 3's no-op replaces x=1 on node 2
        settle;
        expect 2 log terms = [2];
        expect 2 learners = [6];          // node 2 reverted to its bootstrap configuration
    };
}

/// Fixed in raft-core ff37a50. Found by chaos seeds 490, 928, 1562 (Ready contract).
///
/// `Incoming::Compact` records a snapshot request for the applied index at once
/// (`request_snapshot`, raft-core/src/node/snapshot.rs). The next `take_ready` then commits
/// and hands out more entries to apply (here the C_new entry of a joint change, which a
/// single-voter configuration commits alone) in the same `Ready`. The driver applies them,
/// then snapshots a state machine that is past the snapshot's `last` index, so installing
/// that snapshot replays those entries a second time.
#[test]
fn snapshot_request_matches_the_applied_state() {
    seq_test! {
        cluster [1, 2];
        elect 1;
        change 1 replace [1];             // joint {1} & {1, 2}, then C_new {1}
        settle;                           // C_new is appended but not yet committed
        compact 1;                        // Ready: apply C_new, and snapshot "through" C_joint
    };
}

/// Fixed in raft-core ff37a50. Found by chaos seeds 3, 42, 63, 92, 93 … (Liveness; about 10 % of seeds).
///
/// A leader removes itself (`remove 1`) and loses leadership (check-quorum) before the new
/// configuration commits. Node 1 holds the only copy of the configuration `{2}`, so node 2
/// (still in `{1, 2}`) needs node 1's vote, which node 1 refuses because its log is longer.
/// Node 1 never campaigns because `election_timeout` (raft-core/src/node/election.rs) skips
/// nodes that are not voters of their latest configuration. The Raft thesis §4.2.2 says a
/// server not in its latest configuration must still start elections until that
/// configuration is committed. The cluster stays leaderless forever.
#[test]
fn a_removed_leader_still_campaigns_until_its_removal_commits() {
    seq_test! {
        cluster [1, 2];
        elect 1;
        cut 1 -> 2;
        change 1 remove 1;                // {2} exists only on node 1
        advance 5 * election_timeout;     // node 1 steps down: it cannot reach node 2
        heal;
        advance 20 * election_timeout;
        expect leader in [1, 2];
    };
}

/// Fixed in raft-core ff37a50. Found by chaos seed 14370 once the bugs above were patched locally
/// (Linearizability).
///
/// With `lease_reads`, a leader serves reads from its lease (`queue_read`,
/// raft-core/src/node/read.rs) even after it sent `TimeoutNow`. Voters grant the transfer
/// target's vote without the lease check (`request.transfer`), so a new leader commits a
/// write while the old leader still serves the old value: a stale read. The Raft thesis §6.4.1
/// requires a leader to stop using its lease when it hands over leadership.
#[test]
fn no_lease_reads_after_handing_over_leadership() {
    seq_test! {
        cluster [1, 2, 3] with lease_reads;
        elect 1;
        propose 1 "x=1" => committed on [1, 2, 3];
        read 1 "x" => "1";                // a heartbeat round gives node 1 its lease
        cut 2 -> 1;
        cut 3 -> 1;                       // node 1 hears nothing from now on
        transfer 1 to 2;
        settle;                           // node 2 takes over in term 2
        propose 2 "x=2" => committed on [2, 3];
        read 1 "x";                       // node 1 answers "1" from its lease
        heal;
        advance 2 * election_timeout;
        check;                            // the read of "1" after x=2 committed is stale
    };
}

/// Fixed in raft-core ff37a50. Found by chaos seed 6482 once the bugs above were patched locally
/// (Leader Completeness).
///
/// The single-server membership change bug (Ongaro, raft-dev, 2015). Leader 1 appends
/// C1 = {1, 2, 3} and is cut off before it commits. Leader 2 of term 2, still in
/// C0 = {1, 2, 3, 4}, at once appends C2 = {2, 3, 4}, which commits with node 4 alone — C1
/// and C2 have disjoint majorities. Node 1 then wins term 3 in C1 with node 3's vote,
/// without the entries committed in term 2. `check_change` (raft-core/src/node/reconfig.rs)
/// must refuse a change until the leader has committed an entry of its own term.
#[test]
fn no_membership_change_before_the_leader_commits_in_its_term() {
    seq_test! {
        cluster 4 with pre_vote=off, check_quorum=off;
        elect 1;
        propose 1 "a=1" => committed on [1, 2, 3, 4];
        isolate 1;
        change 1 remove 4;                // C1 = {1, 2, 3}, on node 1 only
        timeout 2;
        deliver 2 -> *;
        deliver * -> 2;
        expect 2 is leader;               // term 2, with the votes of 3 and 4 in C0
        cut 2 -> 3;                       // node 3 hears nothing of term 2
        change 2 remove 1;                // C2 = {2, 3, 4}: should wait for term 2 to commit
        propose 2 "x=1";
        settle;                           // x=1 commits with node 4 alone
        partition [1, 3] | [2, 4];
        elect 1;                          // C1: node 3's vote suffices; x=1 is missing
    };
}

/// Fixed in raft-core ff37a50. Found while checking the crash points by hand (Log Matching); with the
/// other open bugs patched, CI chaos seeds 69 and 204 hit it too (Ready contract).
///
/// A `Ready` that installs a snapshot whose last entry the follower's log does not hold is
/// persisted in two steps: the store's snapshot install (which, then, discarded only the
/// entries up to the snapshot), then the log write with `truncate_from`. A crash between them leaves the
/// old, conflicting suffix behind the snapshot; after restart node 1's log holds 3@3 right
/// after the snapshot's 2@2, although 3@3 was written after 2@1. (When the suffix's term is
/// lower than the snapshot's, `Node::new` drops it instead, and the node's log no longer
/// matches its storage: the next log write leaves a gap.) Raft §7: "if the existing log
/// does not contain the snapshot's last entry, discard the entire log". Either the contract
/// must say so (and every store follow: today's `LogStore::install_snapshot` does, checked by
/// testkit's conformance suite), or the `Ready` must truncate before it installs.
#[test]
fn a_crash_inside_a_snapshot_install_leaves_no_foreign_suffix() {
    seq_test! {
        cluster 5 with pre_vote=off, check_quorum=off, max_append_entries=1;
        restore 1 term 3 log [1, 1, 3, 3];
        restore 2 term 3 log [1];
        restore 3 term 3 log [1, 2];
        restore 4 term 3 log [1];
        restore 5 term 3 log [1];
        isolate 1;
        isolate 2;
        elect 3;                          // term 4: 2@2, then its no-op 3@4, commit
        connect 3 <-> 2;
        advance heartbeat;
        deliver 3 -> 2;                   // probe after 2@2: rejected
        deliver 2 -> 3;
        deliver 3 -> 2;                   // 2@2 with leader commit 3: node 2 commits 2
        compact 2;                        // node 2's snapshot ends at 2@2
        heal;
        isolate 1;
        settle;
        crash 3;
        elect 2;                          // term 5; its snapshot is its log's start
        crash 1 at after_snapshot;
        heal;
        advance 3 * heartbeat;            // node 1 gets the snapshot and crashes inside
        restart 1;                        // its log: 2@2 (snapshot), then 3@3 and 4@3
    };
}

/// Fixed in raft-core ff37a50 (performance; found by measuring chaos runs).
///
/// With `check_quorum` off, a leader never moves its check-quorum deadline, and
/// `Node::next_deadline` (`LeaderState::next_deadline`, raft-core/src/node/leader.rs) keeps
/// returning it: a virtual-time driver that ticks at the deadline ticks every millisecond,
/// ten times more work than needed.
#[test]
fn a_leader_without_check_quorum_asks_for_ticks_only_when_needed() {
    let config = Config { check_quorum: false, ..Config::default() };
    let mut sim = Simulator::new(ClusterOptions { config, ..ClusterOptions::new([1, 2, 3]) }).unwrap();
    sim.advance(2_000).unwrap();
    let leader = sim.leader().and_then(|id| sim.node(id)).expect("a leader");
    assert!(
        leader.next_deadline() > leader.now(),
        "the leader's next deadline {:?} is not after its clock {:?}",
        leader.next_deadline(),
        leader.now()
    );
}
