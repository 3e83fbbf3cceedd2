//! The firmware's scenario with a longer partition: the new leader compacts away the entries
//! the old leader lacks, so the old leader catches up by InstallSnapshot, which also replaces
//! the entry it appended while isolated.

extern crate alloc;

mod support;

#[test]
fn an_isolated_leader_catches_up_by_snapshot() {
    let outcome = support::run_scenario(support::cluster::SNAPSHOT_CATCH_UP);
    println!("{outcome:?}");
    assert!(outcome.is_ok(), "{outcome:?}");
}
