//! Membership changes, learners, leadership transfer, linearizable reads and snapshots.

use testkit::seq_test;

/// Single-server changes: a voter joins, another leaves.
#[test]
fn membership_add_and_remove() {
    seq_test! {
        cluster [1, 2, 3] with spares=[4];
        elect 1;
        propose 1 "x=1" => committed on [1, 2, 3];
        change 1 add_voter 4 => ok;
        change 1 remove 2 => ok;
        settle;
        expect [1, 3, 4] voters = [1, 3, 4];
        expect 4 kv "x" = "1";
        crash 2;
        propose 1 "y=2" => committed on [1, 3, 4];
        change 1 add_voter 4 => failed Invalid;
        change 1 remove 2 => failed Invalid;
    };
}

/// Joint consensus: the voters are replaced in two steps, C_old,new then C_new, and one
/// change at a time.
#[test]
fn membership_joint_replace_voters() {
    seq_test! {
        cluster [1, 2, 3] with spares=[4, 5];
        elect 1;
        change 1 replace [3, 4, 5] as joint;
        expect 1 voters = [3, 4, 5];
        expect 1 outgoing = [1, 2, 3];    // joint: both majorities decide
        change 1 add_voter 2 => failed ChangeInProgress;
        settle;
        expect [3, 4, 5] voters = [3, 4, 5];
        expect [3, 4, 5] outgoing = [];
        expect op joint ok;
        expect 1 is follower;             // it left the configuration and stepped down
        advance 5 * election_timeout;
        expect leader in [3, 4, 5];
        propose leader "x=1" => committed on [3, 4, 5];
    };
}

/// A learner receives the log but never votes or campaigns; promoted, it becomes a voter.
#[test]
fn learner_replicates_without_voting() {
    seq_test! {
        cluster [1, 2, 3] with learners=[4];
        elect 1;
        propose 1 "x=1" => committed on [1, 2, 3, 4];
        isolate 4;
        advance 10 * election_timeout;
        expect 4 is follower;             // a learner never campaigns
        expect 4 term = 1;
        heal;
        crash 2;
        crash 3;
        propose 1 "y=1" => pending;       // the learner does not count for the quorum
        restart 2;
        change 1 promote 4;
        advance election_timeout;
        expect op "y=1" committed;
        expect [1, 2, 4] voters = [1, 2, 3, 4];
        expect [1, 2, 4] learners = [];
    };
}

/// Leadership transfer: the target catches up, receives TimeoutNow, and wins at once.
#[test]
fn leadership_transfer() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        propose 1 "x=1" => committed on [1, 2, 3];
        transfer 1 to 3 => ok;
        expect leader = 3;
        expect 3 term = 2;
        propose 3 "y=1" => committed on [1, 2, 3];
        transfer 3 to 9 => failed NotVoter;
        transfer 2 to 1 => failed NotLeader;
    };
}

/// ReadIndex: reads on the leader and on followers see every write acknowledged before
/// them; an isolated old leader cannot answer.
#[test]
fn read_index_reads() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        propose 1 "x=1" => committed on [1];
        read 1 "x" => "1";
        read 2 "x" => "1";                // forwarded to the leader for a read index
        read 3 "missing" => "";
        isolate 1;
        read 1 "x" => failed LeadershipLost;
        advance 5 * election_timeout;
        propose leader "x=2" => committed;
        read leader "x" => "2";
        heal;
        advance election_timeout;
        check;                            // the history is linearizable
    };
}

/// A follower that fell behind a compacted log catches up through InstallSnapshot, sent in
/// chunks.
#[test]
fn snapshot_to_a_lagging_follower() {
    seq_test! {
        cluster [1, 2, 3] with snapshot_chunk=8;
        elect 1;
        isolate 3;
        propose 1 "a=1" => committed on [1, 2];
        propose 1 "b=2" => committed on [1, 2];
        propose 1 "c=3" => committed on [1, 2];
        compact 1;
        expect 1 first_index = 5;
        heal;
        advance 2 * election_timeout;
        expect 3 first_index = 5;         // it holds the snapshot, not the entries
        expect 3 kv "b" = "2";
        expect all applied = 4;
        propose 1 "d=4" => committed on [1, 2, 3];
        expect logs equal;
    };
}

/// Snapshots taken by policy (`snapshot_every`) survive a restart: the state machine is
/// rebuilt from the snapshot and the entries after it.
#[test]
fn restart_from_a_snapshot() {
    seq_test! {
        cluster [1, 2, 3] with snapshot_every=3;
        elect 1;
        propose 1 "a=1" => committed on [1, 2, 3];
        propose 1 "b=2" => committed on [1, 2, 3];
        propose 1 "c=3" => committed on [1, 2, 3];
        expect 2 first_index = 4;
        crash 2;
        restart 2;
        advance election_timeout;
        expect 2 kv "a" = "1";
        expect 2 kv "c" = "3";
        expect 2 applied = 4;
    };
}
