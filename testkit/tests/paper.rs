//! Classic scenarios from the Raft paper and thesis (and etcd's tests of them).

use testkit::seq_test;

/// Figure 7: a new leader brings every follower's log — missing entries, extra uncommitted
/// entries, or both — in line with its own.
#[test]
fn figure_7_follower_logs() {
    seq_test! {
        cluster 7;
        restore 1 term 7 log [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];          // the leader-to-be
        restore 2 term 7 log [1, 1, 1, 4, 4, 5, 5, 6, 6];             // (a) missing one
        restore 3 term 7 log [1, 1, 1, 4];                            // (b) missing many
        restore 4 term 7 log [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6];       // (c) one extra
        restore 5 term 7 log [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7];    // (d) extra, later term
        restore 6 term 7 log [1, 1, 1, 4, 4, 4, 4];                   // (e) missing and extra
        restore 7 term 7 log [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3];       // (f) missing and extra
        elect 1;                          // (a), (b), (e), (f) vote for it; (c), (d) refuse
        expect 1 term = 8;
        settle;
        expect all log terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 8];
        expect all commit = 11;
    };
}

/// Figure 8 (a)–(d): an entry from an earlier term stored on a majority is not committed
/// by counting replicas, and a later leader may rightly overwrite it.
#[test]
fn figure_8_no_commit_of_an_earlier_term_by_counting() {
    seq_test! {
        cluster [1, 2, 3, 4, 5] with pre_vote=off, max_append_entries=1;
        // (b): S1 led term 2 and reached S2; S5 led term 3 and wrote index 2 alone.
        restore 1 term 3 log [1, 2];
        restore 2 term 3 log [1, 2];
        restore 3 term 3 log [1];
        restore 4 term 3 log [1];
        restore 5 term 3 log [1, 3];
        crash 5;
        // (c): S1 leads term 4 and replicates its term-2 entry to S3: a majority holds it.
        timeout 1;
        deliver 1 -> *;
        deliver * -> 1;
        expect 1 is leader;
        drop 1 -> 2 AppendEntries;
        drop 1 -> 4 AppendEntries;
        deliver 1 -> 3;                   // probe after 2@2: rejected
        deliver 3 -> 1;
        deliver 1 -> 3;                   // entry 2@2
        deliver 3 -> 1;
        expect 3 log terms = [1, 2];
        expect 1 commit = 0;              // 2@2 is on S1, S2, S3, but it is not from term 4
        // (d): S1 crashes; S5 wins with S2, S3 and S4 and overwrites index 2.
        crash 1;
        drop 1 -> *;
        restart 5;
        elect 5;
        settle;
        expect [2, 3, 4, 5] log terms = [1, 3, 5];
        expect [2, 3, 4, 5] commit = 3;
    };
}

/// Figure 8 (e): once the leader commits an entry of its own term, the earlier entry is
/// committed with it, and S5 can no longer win.
#[test]
fn figure_8_commit_through_a_current_term_entry() {
    seq_test! {
        cluster [1, 2, 3, 4, 5] with pre_vote=off;
        restore 1 term 3 log [1, 2];
        restore 2 term 3 log [1, 2];
        restore 3 term 3 log [1];
        restore 4 term 3 log [1];
        restore 5 term 3 log [1, 3];
        crash 5;
        elect 1;
        expect 1 commit = 3;              // its term-4 no-op commits 2@2 with it
        crash 1;
        restart 5;
        advance 10 * election_timeout;
        expect leader in [2, 3, 4];
        expect [2, 3, 4, 5] log terms = [1, 2, 4, 5];
    };
}

/// Two candidates split the votes of a term; at most one leader per term, and the cluster
/// settles on one leader.
#[test]
fn dueling_candidates() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        timeout 1;
        timeout 3;                        // both campaign in term 1
        deliver 1 -> 2 RequestVote;
        deliver 3 -> 2 RequestVote;       // node 2 already voted for node 1
        settle;
        expect leader = 1;
        expect 3 is follower;
        expect all term = 1;
    };
    seq_test! {
        cluster 4 with pre_vote=off;
        timeout 1;
        timeout 3;
        deliver 1 -> 2 RequestVote;
        deliver 3 -> 4 RequestVote;       // two votes each: nobody has three of four
        settle;
        expect no leader;
        advance 5 * election_timeout;     // randomized timeouts break the tie
        expect leader in [1, 2, 3, 4];
        expect all is not candidate;
    };
}

/// A node that was partitioned away rejoins. With pre-vote it cannot raise its term while
/// cut off, so the leader stays. (Raft thesis §9.6.)
#[test]
fn disruptive_rejoining_node_with_pre_vote() {
    seq_test! {
        cluster [1, 2, 3] with check_quorum=off;
        elect 1;
        isolate 3;
        advance 10 * election_timeout;
        expect 3 term = 1;                // pre-votes fail in isolation
        heal;
        advance 5 * election_timeout;
        expect leader = 1;
        expect all term = 1;
    };
}

/// Without pre-vote (and without check-quorum's lease), the rejoining node's higher term
/// deposes the healthy leader.
#[test]
fn disruptive_rejoining_node_without_pre_vote() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off, check_quorum=off;
        elect 1;
        isolate 3;
        advance 10 * election_timeout;
        expect 3 term > 5;                // it campaigned again and again
        heal;
        advance 5 * election_timeout;
        expect leader term > 5;           // a new term: the old leader was deposed
    };
}

/// A leader that cannot reach a quorum steps down (check-quorum, thesis §6.2); the majority
/// elects a new one.
#[test]
fn leader_steps_down_when_quorum_is_lost() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        isolate 1;
        advance election_timeout;
        expect 1 is not leader;
        advance 5 * election_timeout;
        expect leader in [2, 3];
        propose 1 "x=1" => failed NotLeader;
    };
}

/// Without pre-vote, a partitioned node stays a candidate and raises its term. Once healed,
/// check-quorum's lease keeps followers from voting for it, the leader learns its higher term
/// and steps down, and the cluster elects a leader again (etcd's
/// TestFreeStuckCandidateWithCheckQuorum).
#[test]
fn free_a_stuck_candidate_with_check_quorum() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        elect 1;
        isolate 3;
        advance 10 * election_timeout;
        expect 3 is candidate;
        expect 3 term > 1;
        heal;
        advance 10 * election_timeout;
        expect leader in [1, 2, 3];
        expect all is not candidate;
        propose leader "x=1" => committed on [1, 2, 3];
        expect logs equal;
    };
}
