//! FileState against real files: what survives a restart, torn tails, corruption, truncation.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{
    Bytes, Entry, HardState, LogId, Membership, Payload, PersistentState, Snapshot, SnapshotMeta,
};
use raft_std::{FileState, FsyncPolicy, StorageError, StorageOptions};

mod logs;

type Store = FileState<Vec<Bytes>>;

fn entry(term: u64, index: u64) -> Entry {
    Entry { term, index, payload: Payload::Command(Bytes::from(format!("command {index} of term {term}"))) }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| entry(term, index)).collect()
}

/// Small segments, so a few entries span several files.
fn options() -> StorageOptions {
    StorageOptions { fsync: FsyncPolicy::Always, segment_bytes: 256 }
}

fn open(dir: &Path) -> Result<Store, StorageError> {
    FileState::open(dir, Membership::new([1, 2, 3]), Vec::new(), options())
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn a_restart_keeps_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.load().await.unwrap();
    store.save_hard_state(HardState { term: 2, vote: Some(3) }).await.unwrap();
    store.write_log(None, &entries(1, 1..=30)).await.unwrap();
    store.write_log(None, &entries(2, 31..=40)).await.unwrap();
    for entry in entries(1, 1..=20) {
        store.apply(&entry).await.unwrap();
    }
    let snapshot = store
        .snapshot(SnapshotMeta { last: LogId::new(1, 20), membership: Membership::new([1, 2, 3]) })
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last.index, 20);
    assert!(segments(dir.path()).len() > 1, "small segments: the log spans several files");
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let initial = store.load().await.unwrap();
    assert_eq!(initial.hard_state, HardState { term: 2, vote: Some(3) });
    assert_eq!(initial.snapshot.as_ref().map(|s| s.meta.last), Some(LogId::new(1, 20)));
    let mut expected = entries(1, 21..=30);
    expected.extend(entries(2, 31..=40));
    assert_eq!(initial.entries, expected, "the entries after the snapshot survive");
    assert_eq!(initial.applied, 20, "the state machine is rebuilt from the snapshot");
    assert_eq!(store.reader().with(Vec::len).unwrap(), 20);
    assert_eq!(initial.bootstrap, Membership::new([1, 2, 3]));
}

#[tokio::test]
async fn the_bootstrap_configuration_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let mut store: Store = FileState::open(dir.path(), Membership::new([1]), Vec::new(), options()).unwrap();
    assert_eq!(store.load().await.unwrap().bootstrap, Membership::new([1, 2, 3]));
}

fn open_logged(dir: &Path) -> (Result<Store, StorageError>, String) {
    let logs = logs::capture();
    let result = open(dir);
    (result, logs.text())
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=10)).await.unwrap();
    drop(store);
    // A crash in the middle of appending entry 11: only part of its bytes reached the disk.
    let last = segments(dir.path()).pop().unwrap();
    let length = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[7, 0, 0, 0, 1, 2]).unwrap();

    let (store, logs) = open_logged(dir.path());
    let mut store = store.expect("a torn tail is repaired, not an error");
    assert!(logs.contains("WARN") && logs.contains("torn"), "the repair is reported: {logs}");
    assert_eq!(fs::metadata(&last).unwrap().len(), length, "the torn bytes are gone");
    assert_eq!(store.load().await.unwrap().entries, entries(1, 1..=10));

    // The log continues where the valid part ends, and stays clean.
    store.write_log(None, &entries(1, 11..=12)).await.unwrap();
    drop(store);
    let (store, logs) = open_logged(dir.path());
    assert!(!logs.contains("WARN"), "{logs}");
    assert_eq!(store.unwrap().load().await.unwrap().entries, entries(1, 1..=12));
}

#[tokio::test]
async fn a_zero_filled_tail_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=3)).await.unwrap();
    drop(store);
    let last = segments(dir.path()).pop().unwrap();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[0; 100]).unwrap();
    let mut store = open(dir.path()).unwrap();
    assert_eq!(store.load().await.unwrap().entries, entries(1, 1..=3));
}

#[tokio::test]
async fn corruption_before_the_tail_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    drop(store);
    let first = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    let damaged = 8 + 12 + 3; // inside the first record's payload
    bytes[damaged] ^= 0x40;
    fs::write(&first, &bytes).unwrap();

    let error = open(dir.path()).err().expect("corruption must not be repaired silently");
    let StorageError::Corrupt { path, offset, .. } = &error else { panic!("{error}") };
    assert_eq!((path, *offset), (&first, 8));
    let message = error.to_string();
    assert!(message.contains(&*first.to_string_lossy()) && message.contains("offset 8"), "{message}");

    // The same damage in the last record of the last segment is a torn write, not corruption;
    // but in a record followed by others it is corruption even in the last segment.
    bytes[damaged] ^= 0x40;
    fs::write(&first, &bytes).unwrap();
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    assert!(bytes.len() > 8 + 2 * 12, "the last segment holds at least two records");
    bytes[8 + 12 + 1] ^= 0x40;
    fs::write(&last, &bytes).unwrap();
    assert!(matches!(open(dir.path()), Err(StorageError::Corrupt { .. })));
}

#[tokio::test]
async fn a_missing_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    drop(store);
    let paths = segments(dir.path());
    assert!(paths.len() >= 3);
    fs::remove_file(&paths[1]).unwrap();
    let error = open(dir.path()).err().expect("a gap in the log is corruption");
    assert!(error.to_string().contains("segment starts at index"), "{error}");
}

#[tokio::test]
async fn truncation_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    let before = segments(dir.path()).len();
    // A new leader overwrites a conflicting suffix from index 8.
    store.write_log(Some(8), &entries(2, 8..=10)).await.unwrap();
    assert!(segments(dir.path()).len() < before, "segments after the cut are removed");
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(1, 1..=7);
    expected.extend(entries(2, 8..=10));
    assert_eq!(store.load().await.unwrap().entries, expected);
    // A cut exactly at a segment boundary, and one that removes everything.
    store.write_log(Some(1), &entries(3, 1..=2)).await.unwrap();
    drop(store);
    assert_eq!(open(dir.path()).unwrap().load().await.unwrap().entries, entries(3, 1..=2));
}

#[tokio::test]
async fn appends_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=3)).await.unwrap();
    let error = store.write_log(None, &entries(1, 5..=6)).await.unwrap_err();
    assert!(matches!(error, StorageError::Gap { expected: 4, got: 5 }), "{error}");
}

#[tokio::test]
async fn installing_a_snapshot_replaces_the_state_and_a_conflicting_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.write_log(None, &entries(1, 1..=10)).await.unwrap();
    let leader_state: Vec<Bytes> = (0..12).map(|i| Bytes::from(format!("leader {i}"))).collect();
    let snapshot = Snapshot {
        meta: SnapshotMeta { last: LogId::new(2, 12), membership: Membership::new([1, 2, 3]) },
        data: raft_core::StateMachine::snapshot(&leader_state),
    };
    store.install_snapshot(&snapshot).await.unwrap();
    store.write_log(None, &entries(2, 13..=14)).await.unwrap();
    assert_eq!(store.reader().applied_index().unwrap(), 12);
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let initial = store.load().await.unwrap();
    assert_eq!(initial.snapshot, Some(snapshot));
    assert_eq!(initial.entries, entries(2, 13..=14));
    assert_eq!(store.reader().with(Clone::clone).unwrap(), leader_state);
}

#[tokio::test]
async fn a_damaged_snapshot_or_hard_state_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    store.save_hard_state(HardState { term: 1, vote: None }).await.unwrap();
    drop(store);
    let path = dir.path().join("hard_state");
    let mut bytes = fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&path, bytes).unwrap();
    let error = open(dir.path()).err().expect("damage is reported");
    assert!(error.to_string().contains("hard_state"), "{error}");
}

#[tokio::test]
async fn fsync_can_be_turned_off_for_tests() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions { fsync: FsyncPolicy::Never, ..StorageOptions::default() };
    let mut store: Store =
        FileState::open(dir.path(), Membership::new([1]), Vec::new(), options.clone()).unwrap();
    store.write_log(None, &entries(1, 1..=5)).await.unwrap();
    drop(store);
    let mut store: Store = FileState::open(dir.path(), Membership::new([1]), Vec::new(), options).unwrap();
    assert_eq!(store.load().await.unwrap().entries, entries(1, 1..=5));
}
