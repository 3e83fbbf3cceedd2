//! FileState against real files: what survives a restart, torn tails, corruption, truncation.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{Bytes, Config, Entry, HardState, LogId, LogStore, Membership, Payload, SnapshotMeta};
use raft_std::{FileState, FsyncPolicy, StorageError, StorageOptions};
use testkit::conformance::{check_log_store, StoreFactory};

mod logs;

/// FileState in a new temporary directory per store; a restart reopens the directory.
#[derive(Default)]
struct OnDisk {
    current: Option<(tempfile::TempDir, Membership)>,
}

impl StoreFactory for OnDisk {
    type Store = FileState;

    async fn fresh(&mut self, bootstrap: Membership) -> FileState {
        let dir = tempfile::tempdir().unwrap();
        let store = FileState::open(dir.path(), bootstrap.clone(), options()).unwrap();
        self.current = Some((dir, bootstrap));
        store
    }

    async fn restart(&mut self, store: FileState) -> FileState {
        drop(store);
        let (dir, bootstrap) = self.current.as_ref().expect("a store was made");
        FileState::open(dir.path(), bootstrap.clone(), options()).expect("the store reopens")
    }
}

#[tokio::test]
async fn file_state_conforms_to_the_log_store_contract() {
    check_log_store(OnDisk::default()).await;
}

type Store = FileState;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(Bytes::from(format!("command {index} of term {term}")).into()),
    }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| entry(term, index)).collect()
}

/// Small segments, so a few entries span several files.
fn options() -> StorageOptions {
    StorageOptions { fsync: FsyncPolicy::Always, segment_bytes: 256 }
}

fn open(dir: &Path) -> Result<Store, StorageError> {
    FileState::open(dir, Membership::new([1, 2, 3]), options())
}

/// A new store that has adopted term 3, as a node does before it stores entries.
async fn fresh(dir: &Path) -> Store {
    let mut store = open(dir).unwrap();
    store.save_hard_state(HardState { term: 3, vote: None }).await.unwrap();
    store
}

/// Every entry after the snapshot.
async fn stored_entries(store: &mut Store) -> Vec<Entry> {
    let state = store.load().await.unwrap();
    let first = state.snapshot.map_or(0, |s| s.meta.last.index) + 1;
    store.read_entries(first, state.last_index).await.unwrap()
}

/// Stages `data` as one chunk and installs it as the snapshot through `last`.
async fn install(store: &mut Store, last: LogId, data: &[u8]) -> SnapshotMeta {
    let meta = SnapshotMeta { last, membership: Membership::new([1, 2, 3]) };
    store.write_snapshot_chunk(0, data).await.unwrap();
    store.install_snapshot(&meta).await.unwrap();
    meta
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
    let commands: Vec<Bytes> = (1..=20).map(|i| Bytes::from(format!("command {i} of term 1"))).collect();
    let mut image = Vec::new();
    for command in &commands {
        image.extend_from_slice(&(command.len() as u32).to_le_bytes());
        image.extend_from_slice(command);
    }
    install(&mut store, LogId::new(1, 20), &image).await;
    assert!(segments(dir.path()).len() > 1, "small segments: the log spans several files");
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let initial = store.load().await.unwrap();
    assert_eq!(initial.hard_state, HardState { term: 2, vote: Some(3) });
    assert_eq!(
        initial.snapshot.as_ref().map(|s| (s.meta.last, s.size)),
        Some((LogId::new(1, 20), image.len() as u64))
    );
    assert_eq!(initial.bootstrap, Membership::new([1, 2, 3]));
    let mut expected = entries(1, 21..=30);
    expected.extend(entries(2, 31..=40));
    assert_eq!(stored_entries(&mut store).await, expected, "the entries after the snapshot survive");

    // A node started on it rebuilds its state machine from the snapshot.
    let mut machine: Vec<Bytes> = Vec::new();
    let node =
        raft_core::start(1, Config::default(), &mut open(dir.path()).unwrap(), &mut machine).await.unwrap();
    assert_eq!((node.applied_index(), node.last_log_id()), (20, LogId::new(2, 40)));
    assert_eq!(machine, commands);
}

#[tokio::test]
async fn the_bootstrap_configuration_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let mut store: Store = FileState::open(dir.path(), Membership::new([1]), options()).unwrap();
    assert_eq!(store.load().await.unwrap().bootstrap, Membership::new([1, 2, 3]));
}

#[tokio::test]
async fn missing_term_and_vote_or_bootstrap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(2, 1..=3)).await.unwrap();
    drop(store);
    fs::remove_file(dir.path().join("hard_state")).unwrap();
    let error = open(dir.path()).err().expect("a log without its term and vote is refused");
    assert!(matches!(&error, StorageError::Missing { path, .. } if path.ends_with("hard_state")), "{error}");
    assert!(error.to_string().contains("add the node to the cluster again"), "says what to do: {error}");

    let dir = tempfile::tempdir().unwrap();
    drop(fresh(dir.path()).await);
    fs::remove_file(dir.path().join("bootstrap")).unwrap();
    let error = open(dir.path()).err().expect("state without its bootstrap configuration is refused");
    assert!(matches!(&error, StorageError::Missing { path, .. } if path.ends_with("bootstrap")), "{error}");
}

fn open_logged(dir: &Path) -> (Result<Store, StorageError>, String) {
    let logs = logs::capture();
    let result = open(dir);
    (result, logs.text())
}

/// Writes `bytes` where the segment's records end, as a crash in the middle of an append
/// leaves them: segments are preallocated, so the records are followed by zeros (the last
/// record's payload ends in a letter, so the last non-zero byte ends it).
fn write_torn(segment: &Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let content = fs::read(segment).unwrap();
    let end = content.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    fs::OpenOptions::new().write(true).open(segment).unwrap().write_all_at(bytes, end as u64).unwrap();
}

#[tokio::test]
async fn segments_are_preallocated_and_unwritten_space_is_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    drop(store);
    let paths = segments(dir.path());
    let active = fs::metadata(paths.last().unwrap()).unwrap().len();
    assert!(active >= options().segment_bytes, "the active segment is preallocated: {active} bytes");
    // A crash after a segment was sealed but before its unused space was given back.
    fs::OpenOptions::new().append(true).open(&paths[0]).unwrap().write_all(&[0; 512]).unwrap();
    let (store, logs) = open_logged(dir.path());
    assert!(!logs.contains("WARN"), "zeros after the records are unwritten space, not damage: {logs}");
    assert_eq!(stored_entries(&mut store.unwrap()).await, entries(1, 1..=20));
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=10)).await.unwrap();
    drop(store);
    // A crash in the middle of appending entry 11: only part of its bytes reached the disk.
    let last = segments(dir.path()).pop().unwrap();
    let before = fs::read(&last).unwrap();
    write_torn(&last, &[7, 0, 0, 0, 1, 2]);

    let (store, logs) = open_logged(dir.path());
    let mut store = store.expect("a torn tail is repaired, not an error");
    assert!(logs.contains("WARN") && logs.contains("torn"), "the repair is reported: {logs}");
    assert_eq!(fs::read(&last).unwrap(), before, "the torn bytes are gone");
    assert_eq!(stored_entries(&mut store).await, entries(1, 1..=10));

    // The log continues where the valid part ends, and stays clean.
    store.write_log(None, &entries(1, 11..=12)).await.unwrap();
    drop(store);
    let (store, logs) = open_logged(dir.path());
    assert!(!logs.contains("WARN"), "{logs}");
    assert_eq!(stored_entries(&mut store.unwrap()).await, entries(1, 1..=12));
}

#[tokio::test]
async fn a_zero_filled_tail_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=3)).await.unwrap();
    drop(store);
    let last = segments(dir.path()).pop().unwrap();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[0; 100]).unwrap();
    let mut store = open(dir.path()).unwrap();
    assert_eq!(stored_entries(&mut store).await, entries(1, 1..=3));
}

#[tokio::test]
async fn corruption_before_the_tail_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    drop(store);
    let first = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    let damaged = 8 + 12 + 3; // inside the first record's payload
    bytes[damaged] ^= 0x40;
    fs::write(&first, &bytes).unwrap();

    let error = open(dir.path()).err().expect("corruption must not be repaired silently");
    let StorageError::Corrupt { path, offset, .. } = &error else { panic!("{error}") };
    assert_eq!((path, offset), (&first, &8));
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
    let mut store = fresh(dir.path()).await;
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
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    let before = segments(dir.path()).len();
    // A new leader overwrites a conflicting suffix from index 8.
    store.write_log(Some(8), &entries(2, 8..=10)).await.unwrap();
    assert!(segments(dir.path()).len() < before, "segments after the cut are removed");
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(1, 1..=7);
    expected.extend(entries(2, 8..=10));
    assert_eq!(stored_entries(&mut store).await, expected);
    // A cut exactly at a segment boundary, and one that removes everything.
    store.write_log(Some(1), &entries(3, 1..=2)).await.unwrap();
    drop(store);
    assert_eq!(stored_entries(&mut open(dir.path()).unwrap()).await, entries(3, 1..=2));
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
async fn installing_a_snapshot_replaces_a_conflicting_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=10)).await.unwrap();
    let data: Vec<u8> = (0..200u8).collect();
    let meta = SnapshotMeta { last: LogId::new(2, 12), membership: Membership::new([1, 2, 3]) };
    for (i, chunk) in data.chunks(64).enumerate() {
        store.write_snapshot_chunk(i as u64 * 64, chunk).await.unwrap();
    }
    store.install_snapshot(&meta).await.unwrap();
    store.write_log(None, &entries(2, 13..=14)).await.unwrap();
    drop(store);

    let mut store = open(dir.path()).unwrap();
    let initial = store.load().await.unwrap();
    assert_eq!(initial.snapshot.map(|s| (s.meta, s.size)), Some((meta, 200)));
    assert_eq!(stored_entries(&mut store).await, entries(2, 13..=14));
    assert_eq!(store.read_snapshot(190, 64).await.unwrap(), Bytes::copy_from_slice(&data[190..]));
}

#[tokio::test]
async fn a_damaged_snapshot_or_hard_state_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    install(&mut store, LogId::new(1, 4), b"state").await;
    drop(store);
    let snapshot = dir.path().join("snapshot-00000000000000000001-00000000000000000004.data");
    fs::write(&snapshot, b"State").unwrap();
    let error = open(dir.path()).err().expect("a damaged snapshot is reported");
    assert!(error.to_string().contains("snapshot-"), "{error}");
    fs::write(&snapshot, b"state").unwrap();
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
    let mut store: Store = FileState::open(dir.path(), Membership::new([1]), options.clone()).unwrap();
    store.save_hard_state(HardState { term: 1, vote: None }).await.unwrap();
    store.write_log(None, &entries(1, 1..=5)).await.unwrap();
    drop(store);
    let mut store: Store = FileState::open(dir.path(), Membership::new([1]), options).unwrap();
    assert_eq!(stored_entries(&mut store).await, entries(1, 1..=5));
}

/// A directory with term 3, entries 1..=20 over several segments and, if `snapshot` is
/// given, a snapshot through that index (which compacts the segments it covers).
async fn populated(snapshot: Option<u64>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh(dir.path()).await;
    store.write_log(None, &entries(1, 1..=20)).await.unwrap();
    if let Some(index) = snapshot {
        install(&mut store, LogId::new(1, index), b"state").await;
    }
    dir
}

fn missing(result: Result<Store, StorageError>, file: &str) {
    let error = result.err().expect("refused");
    assert!(
        matches!(&error, StorageError::Missing { path, .. } if path.to_string_lossy().ends_with(file)),
        "{file}: {error}"
    );
}

fn corrupt(result: Result<Store, StorageError>, file: &str, says: &str) {
    let error = result.err().expect("refused");
    let StorageError::Corrupt { path, .. } = &error else { panic!("{file}: {error}") };
    assert!(
        path.to_string_lossy().contains(file) && error.to_string().contains(says),
        "{file}, {says}: {error}"
    );
}

fn damage(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

fn snapshot_data(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with(".data"))
        .expect("a snapshot data file")
}

/// Each row of the table in `FileState`'s docs, in order.
#[tokio::test]
async fn every_missing_or_damaged_file_has_the_documented_outcome() {
    // None of the files: a new store writes term and vote, then the configuration.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    assert!(dir.path().join("hard_state").exists() && dir.path().join("bootstrap").exists());

    // hard_state missing next to a bootstrap configuration, a log or a snapshot.
    fs::remove_file(dir.path().join("hard_state")).unwrap();
    missing(open(dir.path()), "hard_state");
    for snapshot in [None, Some(12)] {
        let dir = populated(snapshot).await;
        fs::remove_file(dir.path().join("hard_state")).unwrap();
        missing(open(dir.path()), "hard_state");
    }
    // hard_state damaged.
    let dir = populated(None).await;
    damage(&dir.path().join("hard_state"));
    corrupt(open(dir.path()), "hard_state", "checksum");

    // bootstrap missing after a creation a crash interrupted (term 0, no vote, nothing else).
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    fs::remove_file(dir.path().join("bootstrap")).unwrap();
    let mut store = open(dir.path()).expect("written again");
    assert_eq!(store.load().await.unwrap().bootstrap, Membership::new([1, 2, 3]));
    // bootstrap missing with anything else there: a term, a log.
    drop(store);
    drop(fresh(dir.path()).await);
    fs::remove_file(dir.path().join("bootstrap")).unwrap();
    missing(open(dir.path()), "bootstrap");
    let dir = populated(None).await;
    fs::remove_file(dir.path().join("bootstrap")).unwrap();
    missing(open(dir.path()), "bootstrap");
    // bootstrap damaged.
    let dir = populated(None).await;
    damage(&dir.path().join("bootstrap"));
    corrupt(open(dir.path()), "bootstrap", "checksum");

    // A segment missing between others; the first ones missing with no snapshot covering them.
    let dir = populated(None).await;
    let paths = segments(dir.path());
    assert!(paths.len() >= 3, "{paths:?}");
    fs::remove_file(&paths[1]).unwrap();
    corrupt(open(dir.path()), "log", "segment starts at index");
    let dir = populated(None).await;
    fs::remove_file(&segments(dir.path())[0]).unwrap();
    corrupt(open(dir.path()), "log", "but the snapshot ends at 0");
    // A record damaged before the end of the log.
    let dir = populated(None).await;
    let first = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    bytes[8 + 12 + 3] ^= 0x40;
    fs::write(&first, bytes).unwrap();
    corrupt(open(dir.path()), "log", "checksum");
    // The last record incomplete: truncated.
    let dir = populated(None).await;
    let last = segments(dir.path()).pop().unwrap();
    write_torn(&last, &[9, 0, 0]);
    assert_eq!(open(dir.path()).unwrap().last_index().unwrap(), 20);
    // The newest segment missing: not detectable, the log is shorter.
    let dir = populated(None).await;
    fs::remove_file(segments(dir.path()).pop().unwrap()).unwrap();
    let last_index = open(dir.path()).unwrap().last_index().unwrap();
    assert!(last_index < 20, "opens with the shorter log: {last_index}");

    // The snapshot record missing: its data file is a leftover; a compacted log is refused,
    // an uncompacted one opens without a snapshot.
    let dir = populated(Some(12)).await;
    assert!(segments(dir.path())[0].to_string_lossy().ends_with(".log"));
    fs::remove_file(dir.path().join("snapshot")).unwrap();
    corrupt(open(dir.path()), "log", "but the snapshot ends at 0");
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".data")));
    let dir = populated(Some(1)).await;
    fs::remove_file(dir.path().join("snapshot")).unwrap();
    let mut store = open(dir.path()).expect("the log has everything");
    assert!(store.load().await.unwrap().snapshot.is_none());
    assert_eq!(stored_entries(&mut store).await, entries(1, 1..=20));
    // The snapshot record damaged.
    let dir = populated(Some(12)).await;
    damage(&dir.path().join("snapshot"));
    corrupt(open(dir.path()), "snapshot", "checksum");
    // The snapshot's data missing, or damaged.
    let dir = populated(Some(12)).await;
    fs::remove_file(snapshot_data(dir.path())).unwrap();
    missing(open(dir.path()), ".data");
    let dir = populated(Some(12)).await;
    damage(&snapshot_data(dir.path()));
    corrupt(open(dir.path()), ".data", "checksum");

    // Leftovers of a crash are removed.
    let dir = populated(Some(12)).await;
    let leftovers =
        ["hard_state.tmp", "snapshot.staged", "snapshot-00000000000000000009-00000000000000000099.data"];
    for name in leftovers {
        fs::write(dir.path().join(name), b"partial").unwrap();
    }
    drop(open(dir.path()).unwrap());
    for name in leftovers {
        assert!(!dir.path().join(name).exists(), "{name} removed");
    }
}
