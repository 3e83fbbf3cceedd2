//! A tuitest session, saved with `save`. The test replays it exactly (same seed, same
//! commands) and checks that the cluster ends where the session did.

use testkit::seq_test;

#[test]
fn leader_partitioned() {
    seq_test! {
        cluster [1, 2, 3] with { seed=0 };
        run 1s;
        put x 1;
        partition 3 | 1,2;
        put y 2 on 3;
        put y 3;
        heal;
        run 1s;
        get y;
        // Where the session ended.
        expect 1 is leader;
        expect 1 term = 2;
        expect 1 commit = 4;
        expect 2 is follower;
        expect 2 term = 2;
        expect 2 commit = 4;
        expect 3 is follower;
        expect 3 term = 2;
        expect 3 commit = 4;
        expect leader = 1;
        expect op "x=1" committed;
        expect op "y=2" failed Superseded;
        expect op "y=3" committed;
        expect op "read y" "3";
    };
}
