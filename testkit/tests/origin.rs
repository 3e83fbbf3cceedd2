//! The unit tests of the design this workspace descends from (ORIGIN §A), as scenarios.
//!
//! Their names are kept. Where the old design differs, the scenario checks what our protocol
//! does instead: a node never "shuts down" on removal, it steps down and stops voting; the
//! end of a node's input stream is a crash (the node stops; the cluster carries on).

use testkit::seq_test;

/// A one-node cluster elects itself and commits alone.
#[test]
fn single_node_leader() {
    seq_test! {
        cluster [1];
        advance election_timeout;
        expect 1 is leader;
        expect 1 term = 1;
        propose 1 "x=1" => committed on [1];
        expect 1 commit = 2;              // the leader's no-op, then the command
    };
}

/// An election timeout makes a follower a candidate that asks every peer for its vote.
#[test]
fn start_elections() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        timeout 1;
        expect 1 is candidate;
        expect 1 term = 1;
        expect 1 vote = 1;
        expect messages 1 -> * RequestVote = 2;
    };
    // With pre-vote the candidate first probes without raising its term.
    seq_test! {
        cluster [1, 2, 3];
        timeout 1;
        expect 1 is pre_candidate;
        expect 1 term = 0;
        expect messages 1 -> * PreVote = 2;
    };
}

/// A candidate with a majority of votes becomes leader and sends AppendEntries at once.
#[test]
fn win_elections() {
    seq_test! {
        cluster [1, 2, 3];
        timeout 1;
        deliver 1 -> 2;                   // pre-vote
        deliver 2 -> 1;                   // granted: a real election in term 1
        expect 1 is candidate;
        deliver 1 -> 2;
        deliver 2 -> 1;                   // one vote besides its own: a majority of three
        expect 1 is leader;
        expect 2 vote = 1;
        expect messages 1 -> * AppendEntries = 2;
    };
}

/// A follower rejects AppendEntries whose previous entry it does not hold and keeps its log;
/// the leader backs up until the logs match, then replaces the conflicting suffix.
#[test]
fn reject_append_entry() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        restore 1 term 2 log [1, 2, 2];
        restore 2 term 2 log [1, 1];
        restore 3 term 2 log [1, 2, 2];
        timeout 1;
        deliver 1 -> 3;
        deliver 3 -> 1;
        expect 1 is leader;               // term 3; its no-op is entry 4
        deliver 1 -> 2;                   // the vote request, then entry 4 after 3@2
        expect 2 log terms = [1, 1];      // rejected: node 2 has no entry 3
        settle;
        expect 2 log terms = [1, 2, 2, 3];
        expect logs equal;
    };
}

/// A candidate that hears from the leader of its term becomes its follower.
#[test]
fn step_down_on_append_entries() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        timeout 1;
        timeout 2;                        // two candidates in term 1
        deliver 1 -> 3;
        deliver 3 -> 1;                   // node 3 votes for node 1
        expect 1 is leader;
        expect 2 is candidate;
        deliver 1 -> 2;                   // the vote request, then AppendEntries of term 1
        expect 2 is follower;
        expect 2 leader = 1;
    };
}

/// A voter grants one vote per term, and grants the same candidate again.
#[test]
fn grant_vote() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        timeout 2;
        deliver 2 -> 1 RequestVote;
        expect 1 term = 1;
        expect 1 vote = 2;
        timeout 3;                        // another candidate in the same term
        deliver 3 -> 1 RequestVote;
        expect 1 vote = 2;
        deliver 1 -> 3;
        expect 3 is candidate;            // refused by node 1
        deliver 1 -> 2;
        expect 2 is leader;
    };
}

/// A voter refuses a candidate whose log is behind its own (Raft §5.4.1).
#[test]
fn outdated_log_vote() {
    seq_test! {
        cluster [1, 2, 3] with pre_vote=off;
        restore 1 term 2 log [1, 2];
        restore 2 term 2 log [1];
        restore 3 term 2 log [1, 2];
        timeout 2;
        deliver 2 -> 1;
        expect 1 term = 3;                // the term is adopted …
        expect 1 vote = none;             // … but not the candidate
        deliver 1 -> 2;
        expect 2 is candidate;
    };
}

/// A follower appends new entries, acknowledges them, and learns the commit index.
#[test]
fn accept_new_entries() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        propose 1 "x=1";
        deliver 1 -> 2 AppendEntries;
        expect 2 log = [noop, "x=1"];
        expect 2 commit = 1;
        expect messages 2 -> 1 AppendResponse = 1;
        deliver 2 -> 1;
        expect 1 commit = 2;
        deliver 1 -> 2;                   // the leader tells node 2 the new commit index
        expect 2 commit = 2;
        expect 2 kv "x" = "1";
    };
}

/// The leader commits once a majority stores an entry of its term, not before.
#[test]
fn commit_index() {
    seq_test! {
        cluster [1, 2, 3, 4, 5];
        elect 1;
        propose 1 "x=1";
        deliver 1 -> 2;
        deliver 2 -> 1;
        expect 1 commit = 1;              // two of five
        deliver 1 -> 3;
        deliver 3 -> 1;
        expect 1 commit = 2;              // three of five
        expect 1 applied = 2;
        expect op "x=1" committed;
    };
}

/// Idle heartbeats are empty; a follower that missed entries gets them again.
#[test]
fn heartbeats_with_payloads() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        advance heartbeat;
        expect messages 1 -> * Heartbeat = 2;   // idle: nothing to carry
        expect messages 1 -> * AppendEntries = 2;
        settle;
        propose 1 "x=1";
        expect messages 1 -> 3 AppendEntries = 1;
        drop 1 -> 3;                      // node 3 misses the entry
        settle;
        expect 3 last_index = 1;
        advance 3 * heartbeat;            // the next heartbeats find the gap and resend it
        expect 3 log = [noop, "x=1"];
        expect 3 commit = 2;
    };
}

/// A new voter joins: it receives the log and then counts in the quorum.
#[test]
fn add_node() {
    seq_test! {
        cluster [1, 2, 3] with spares=[4];
        elect 1;
        propose 1 "x=1" => committed on [1, 2, 3];
        change 1 add_voter 4 => ok;
        settle;
        expect [1, 2, 3, 4] voters = [1, 2, 3, 4];
        expect 4 kv "x" = "1";
        crash 2;
        crash 3;                          // 1 and 4 are not a majority of four
        propose 1 "y=1" => pending;
        restart 3;
        advance election_timeout;
        expect op "y=1" committed;
    };
}

/// A voter leaves: the others stop counting it.
#[test]
fn remove_node() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        change 1 remove 3 => ok;
        expect [1, 2] voters = [1, 2];
        crash 3;
        propose 1 "x=1" => committed on [1, 2];
    };
}

/// A leader that removes itself leads until the change commits, then steps down; it no
/// longer votes or campaigns, and the others elect a leader.
#[test]
fn shutdown_on_remove_node() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        change 1 remove 1 => ok;
        expect 1 is follower;
        expect [2, 3] voters = [2, 3];
        advance 5 * election_timeout;
        expect leader in [2, 3];
        expect 1 is follower;
        propose leader "x=1" => committed on [2, 3];
    };
}

/// A node whose input ends stops: its clients get no answer, the others carry on, and it
/// catches up when it runs again.
#[test]
fn stream_termination() {
    seq_test! {
        cluster [1, 2, 3];
        elect 1;
        propose 1 "x=1" as lost;
        crash 1;
        expect 1 down;
        expect op lost lost;
        advance 5 * election_timeout;
        expect leader in [2, 3];
        propose leader "y=1" => committed on [2, 3];
        restart 1;
        advance election_timeout;
        expect 1 kv "y" = "1";
    };
}

// ----- The original REPL's transcripts (prompt `AquaRaft>`), in the same words -------------

/// Its first transcript: three `addnode`s build a three-voter cluster from nothing. The first
/// node forms a cluster of its own and elects itself; the others join through the leader.
#[test]
fn the_original_repl_builds_a_cluster_node_by_node() {
    seq_test! {
        addnode first;
        addnode second;
        addnode third;
        diagnostics;
        pushpayload 123;
        expect leader = first;
        expect first voters = [first, second, third];
        expect op "123" committed;
        advance heartbeat;                // the followers learn the commit index
        expect logs equal;
        expect all kv "123" = "";         // a payload without `=` is a key with an empty value
        expect [second, third] is follower;
    };
}

/// Its second transcript: the leader cut off from both followers. There it stayed Leader next
/// to a new leader; here it steps down within an election timeout (check-quorum).
#[test]
fn the_original_repl_partition_elects_a_new_leader_and_the_old_one_steps_down() {
    seq_test! {
        addnode first;
        addnode second;
        addnode third;
        disconnect first second;
        disconnect first third;
        run 1s;                           // virtual time: let the timeouts happen
        diagnostics;
        expect first is not leader;
        expect first term = 1;            // pre-vote: cut off, it does not raise its term
        expect leader in [second, third];
        expect leader term = 2;
    };
}

/// Its queue: with `net queue`, messages on a cut link are held and delivered when the link is
/// restored. Here the entry `y=2` reaches `third` the moment the link works again, without
/// a new heartbeat.
#[test]
fn queued_messages_are_delivered_on_reconnect() {
    seq_test! {
        addnode first;
        addnode second;
        addnode third;
        net queue;
        disconnect first third;
        put y 2;                          // committed by first and second
        advance 100ms;                    // less than an election timeout
        expect messages first -> third AppendEntries >= 2;
        expect third kv "y" = "";
        connect first third;
        settle;                           // no time passes: only what was held arrives
        expect messages first -> third = 0;
        expect third kv "y" = "2";
        expect logs equal;
    };
}

/// By default a cut link loses what crosses it: after the same steps, `third` has nothing
/// until the next heartbeat brings the entry again.
#[test]
fn by_default_messages_on_a_cut_link_are_lost() {
    seq_test! {
        addnode first;
        addnode second;
        addnode third;
        disconnect first third;
        put y 2;
        advance 100ms;
        expect messages first -> third = 0;
        connect first third;
        settle;
        expect third kv "y" = "";
        advance heartbeat;
        expect third kv "y" = "2";
    };
}
