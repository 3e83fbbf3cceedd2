//! FileState when the process runs out of file descriptors: a write that needs a new file
//! (term and vote are replaced through a new file) waits for descriptors instead of failing,
//! and succeeds once some are free. (Its own test binary: it lowers the process's limit.)

use std::time::Duration;

use raft_core::{HardState, LogStore, Membership};
use raft_std::{FileState, StorageOptions};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_file_descriptors_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileState::open(dir.path(), Membership::new([1]), StorageOptions::default()).unwrap();
    store.save_hard_state(HardState { term: 1, vote: None }).await.unwrap();

    // Leave this process a handful of descriptors, then take them all.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let limit = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(open + 16), maximum: limit.maximum }).unwrap();
    let mut fillers = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        fillers.push(file);
    }
    let write = tokio::spawn(async move {
        store.save_hard_state(HardState { term: 2, vote: Some(1) }).await.map(|()| store)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write waits while no descriptor is free");
    drop(fillers);
    let store = tokio::time::timeout(Duration::from_secs(5), write)
        .await
        .expect("done once descriptors are free")
        .unwrap()
        .expect("no storage error");
    setrlimit(Resource::Nofile, limit).unwrap();
    drop(store);
    let mut reopened = FileState::open(dir.path(), Membership::new([1]), StorageOptions::default()).unwrap();
    assert_eq!(reopened.load().await.unwrap().hard_state, HardState { term: 2, vote: Some(1) });
}
