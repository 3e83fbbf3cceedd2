//! Safety of configuration changes under partitions. Election Safety (one leader per term)
//! is checked after every step of every scenario; these scenarios make it hard to keep.

use testkit::seq_test;

/// The joint configuration C_old,new reaches only some nodes before the cluster splits into
/// an old-majority side and a new-majority side. Neither side may elect a leader alone: the
/// joint configuration needs both majorities, and node 2, still in C_old, cannot win without
/// node 1, whose log is longer. After healing, one leader finishes the change.
#[test]
fn no_two_leaders_while_a_joint_configuration_is_active() {
    seq_test! {
        cluster [1, 2, 3] with spares=[4, 5];
        elect 1;
        cut 1 -> 2;                       // node 2 never hears of the change
        cut 3 -> 1;                       // node 3's acknowledgements are lost
        change 1 replace [3, 4, 5] as joint;
        settle;                           // C_old,new reaches 3, 4 and 5 but cannot commit
        expect [1, 3, 4, 5] outgoing = [1, 2, 3];
        expect 2 voters = [1, 2, 3];
        expect op joint pending;
        partition [1, 2] | [3, 4, 5];
        advance 20 * election_timeout;
        expect no leader;
        heal;
        advance 10 * election_timeout;
        expect leader in [3, 4, 5];
        expect op joint failed LeadershipLost;   // node 1 stepped down; others finished it
        expect [3, 4, 5] voters = [3, 4, 5];
        expect [3, 4, 5] outgoing = [];
        propose leader "x=1" => committed on [3, 4, 5];
    };
}

/// Old and new configurations share node 3 only. With the joint configuration on every node
/// but not committed, the side holding a majority of both halves elects a leader; the other
/// side cannot.
#[test]
fn a_joint_configuration_needs_both_majorities() {
    seq_test! {
        cluster [1, 2, 3] with spares=[4, 5];
        elect 1;
        cut 2 -> 1;
        cut 3 -> 1;                       // C_old's acknowledgements are lost
        change 1 replace [3, 4, 5] as joint;
        settle;
        expect all outgoing = [1, 2, 3];
        crash 1;
        heal;
        partition [2, 3, 4] | [5];        // {2, 3} of C_old and {3, 4} of C_new
        advance 20 * election_timeout;
        expect leader in [2, 3, 4];
        heal;
        restart 1;
        advance 10 * election_timeout;
        expect op joint lost;
        expect [3, 4, 5] voters = [3, 4, 5];
        expect [3, 4, 5] outgoing = [];
    };
}

/// A change committed by the majority side of a partition holds after healing: the removed
/// node cannot vote its way back, and a later election keeps the new configuration.
#[test]
fn a_change_committed_under_a_partition_survives_healing() {
    seq_test! {
        cluster 5;
        elect 1;
        partition [1, 2, 3] | [4, 5];
        change 1 remove 5 => ok;
        propose 1 "x=1" => committed on [1, 2, 3];
        heal;
        advance 5 * election_timeout;
        expect [1, 2, 3, 4] voters = [1, 2, 3, 4];
        crash leader;                     // a new election under the new configuration
        advance 10 * election_timeout;
        expect leader in [1, 2, 3, 4];
        expect leader voters = [1, 2, 3, 4];
        propose leader "y=1" => committed;
        expect 4 kv "x" = "1";
    };
}
