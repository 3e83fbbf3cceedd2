//! The firmware's scenario on the host: elect, commit 100 entries, isolate the leader, elect
//! another, heal, converge; the old leader catches up by log replication.

extern crate alloc;

mod support;

/// Commands to commit during the partition so that the old leader catches up by log
/// replication: fewer than `snapshot_every` (32), so the new leader keeps the entries it needs.
const REPLICATION_CATCH_UP: u64 = 20;

#[test]
fn elect_commit_isolate_heal_converge() {
    let outcome = support::run_scenario(REPLICATION_CATCH_UP);
    println!("{outcome:?}");
    assert!(outcome.is_ok(), "{outcome:?}");
}
