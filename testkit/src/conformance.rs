//! The [`LogStore`] conformance suite: one set of checks that every log store passes —
//! raft-core's `MemState` (growable or a fixed window), raft-std's `FileState`, raft-embassy's
//! flash store, and yours.
//!
//! ```
//! use testkit::conformance::{check_log_store, InMemory};
//!
//! futures::executor::block_on(check_log_store(InMemory));
//! ```
//!
//! Another store implements [`StoreFactory`] (a new store in a new directory or flash range;
//! reopening it on what it made durable) and runs the same call in its own tests.

use std::fmt;
use std::future::Future;

use raft_core::{
    advance, start, Bytes, Command, Config, Entry, Error, HardState, Incoming, Index, Instant, LogId,
    LogStore, MemState, Membership, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter,
    StateMachine,
};

/// Makes the stores under test, and restarts them.
pub trait StoreFactory {
    /// The log store under test.
    type Store: LogStore<Error: fmt::Debug>;

    /// A new, empty store created with the bootstrap configuration `bootstrap`.
    fn fresh(&mut self, bootstrap: Membership) -> impl Future<Output = Self::Store>;

    /// Drops `store` and opens a new one on exactly what it made durable (a process crash:
    /// anything not yet durable is lost).
    fn restart(&mut self, store: Self::Store) -> impl Future<Output = Self::Store>;
}

/// Stores for raft-core's [`MemState`], whose durable state is the value itself: a restart
/// keeps all of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct InMemory;

impl StoreFactory for InMemory {
    type Store = MemState;

    async fn fresh(&mut self, bootstrap: Membership) -> MemState {
        MemState::new(bootstrap)
    }

    async fn restart(&mut self, store: MemState) -> MemState {
        store
    }
}

/// Runs every check on stores `factory` makes (each check starts from an empty one). Panics
/// with a message naming the broken rule. Run it inside the runtime the store needs.
pub async fn check_log_store<F: StoreFactory>(mut factory: F) {
    let f = &mut factory;
    let bootstrap = || Membership::new([1, 2, 3]);
    let store = f.fresh(bootstrap()).await;
    a_new_store_is_empty_and_keeps_its_bootstrap(f, store).await;
    let store = f.fresh(bootstrap()).await;
    term_vote_and_entries_survive_a_restart(f, store).await;
    let store = f.fresh(bootstrap()).await;
    a_conflicting_suffix_is_replaced(f, store).await;
    let store = f.fresh(bootstrap()).await;
    a_write_that_leaves_a_gap_is_refused(store).await;
    let store = f.fresh(bootstrap()).await;
    a_snapshot_the_log_continues_keeps_the_suffix(f, store).await;
    let store = f.fresh(bootstrap()).await;
    a_snapshot_over_a_conflicting_suffix_discards_the_log(f, store).await;
    let store = f.fresh(bootstrap()).await;
    a_snapshot_past_the_log_end_discards_the_log(f, store).await;
    let store = f.fresh(bootstrap()).await;
    an_unfinished_snapshot_leaves_the_old_one(f, store).await;
    let store = f.fresh(Membership::new([1])).await;
    a_failing_state_machine_stops_the_node_and_loses_nothing(f, store).await;
}

fn entry(term: u64, index: Index) -> Entry {
    Entry { term, index, payload: Payload::Command(format!("{index}@{term}").into_bytes().into()) }
}

fn entries(term: u64, range: std::ops::RangeInclusive<Index>) -> Vec<Entry> {
    range.map(|index| entry(term, index)).collect()
}

fn meta(term: u64, index: Index) -> SnapshotMeta {
    SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1, 2, 3]) }
}

/// What the store holds: its last index and the entries after its snapshot.
async fn log_of<S: LogStore<Error: fmt::Debug>>(store: &mut S) -> (Index, Vec<Entry>) {
    let state = store.load().await.expect("load");
    let first = state.snapshot.map_or(0, |s| s.meta.last.index) + 1;
    let held = if first <= state.last_index {
        store.read_entries(first, state.last_index).await.expect("read the log")
    } else {
        Vec::new()
    };
    (state.last_index, held)
}

/// Stages `data` in chunks of three bytes and installs it as the snapshot `meta`.
async fn install<S: LogStore<Error: fmt::Debug>>(store: &mut S, meta: &SnapshotMeta, data: &[u8]) {
    store.write_snapshot_chunk(0, &data[..data.len().min(3)]).await.expect("stage a chunk");
    for (i, chunk) in data.chunks(3).enumerate().skip(1) {
        store.write_snapshot_chunk(i as u64 * 3, chunk).await.expect("stage a chunk");
    }
    store.install_snapshot(meta).await.expect("install the snapshot");
}

async fn snapshot_bytes<S: LogStore<Error: fmt::Debug>>(store: &mut S) -> Vec<u8> {
    let size = store.load().await.expect("load").snapshot.expect("a snapshot").size;
    let mut data = Vec::new();
    while (data.len() as u64) < size {
        let chunk = store.read_snapshot(data.len() as u64, 4).await.expect("read the snapshot");
        assert!(!chunk.is_empty(), "read_snapshot returned nothing before the snapshot's end");
        data.extend_from_slice(&chunk);
    }
    data
}

async fn a_new_store_is_empty_and_keeps_its_bootstrap<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    let state = store.load().await.expect("load");
    assert_eq!((state.hard_state, state.snapshot, state.last_index), (HardState::default(), None, 0));
    assert_eq!(state.bootstrap, Membership::new([1, 2, 3]), "the bootstrap configuration it was made with");
    let mut store = f.restart(store).await;
    assert_eq!(
        store.load().await.expect("load").bootstrap,
        Membership::new([1, 2, 3]),
        "kept across restarts"
    );
}

async fn term_vote_and_entries_survive_a_restart<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 2, vote: Some(3) }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=5)).await.expect("append");
    store.write_log(None, &entries(2, 6..=8)).await.expect("append");
    let mut store = f.restart(store).await;
    let state = store.load().await.expect("load");
    assert_eq!(state.hard_state, HardState { term: 2, vote: Some(3) }, "term and vote survive");
    let mut expected = entries(1, 1..=5);
    expected.extend(entries(2, 6..=8));
    assert_eq!(log_of(&mut store).await, (8, expected), "acknowledged entries survive");
}

async fn a_conflicting_suffix_is_replaced<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 3, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=6)).await.expect("append");
    store.write_log(Some(4), &entries(3, 4..=5)).await.expect("truncate and append");
    let mut expected = entries(1, 1..=3);
    expected.extend(entries(3, 4..=5));
    assert_eq!(log_of(&mut store).await, (5, expected.clone()), "the suffix from 4 is replaced");
    let mut store = f.restart(store).await;
    assert_eq!(log_of(&mut store).await, (5, expected), "and stays replaced");
    store.write_log(Some(2), &[]).await.expect("truncate only");
    assert_eq!(log_of(&mut store).await, (1, entries(1, 1..=1)), "a truncation without entries");
}

async fn a_write_that_leaves_a_gap_is_refused<S: LogStore<Error: fmt::Debug>>(mut store: S) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 1, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=3)).await.expect("append");
    assert!(store.write_log(None, &entries(1, 5..=6)).await.is_err(), "entries 5..=6 after 3 leave a gap");
    assert_eq!(log_of(&mut store).await, (3, entries(1, 1..=3)), "a refused write changes nothing");
    store.write_log(None, &entries(1, 4..=4)).await.expect("the store goes on after a refusal");
}

async fn a_snapshot_the_log_continues_keeps_the_suffix<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 2, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=6)).await.expect("append");
    let data = b"the state through 4";
    install(&mut store, &meta(1, 4), data).await;
    assert_eq!(log_of(&mut store).await, (6, entries(1, 5..=6)), "entries after the snapshot stay");
    let mut store = f.restart(store).await;
    let state = store.load().await.expect("load");
    let snapshot = state.snapshot.expect("the snapshot survives a restart");
    assert_eq!((snapshot.meta, snapshot.size), (meta(1, 4), data.len() as u64));
    assert_eq!(snapshot_bytes(&mut store).await, data, "its bytes read back in chunks");
    assert_eq!(log_of(&mut store).await, (6, entries(1, 5..=6)));
    store.write_log(None, &entries(2, 7..=7)).await.expect("the log continues after it");
}

async fn a_snapshot_over_a_conflicting_suffix_discards_the_log<F: StoreFactory>(
    f: &mut F,
    mut store: F::Store,
) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 3, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=6)).await.expect("append");
    install(&mut store, &meta(2, 4), b"the leader's state").await;
    assert_eq!(
        log_of(&mut store).await,
        (4, Vec::new()),
        "no conflicting suffix behind the snapshot (Raft §7)"
    );
    let mut store = f.restart(store).await;
    assert_eq!(log_of(&mut store).await, (4, Vec::new()), "not after a restart either");
    store.write_log(None, &entries(3, 5..=5)).await.expect("the log continues after the snapshot");
}

async fn a_snapshot_past_the_log_end_discards_the_log<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 3, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=2)).await.expect("append");
    install(&mut store, &meta(2, 9), b"").await;
    let mut store = f.restart(store).await;
    assert_eq!(log_of(&mut store).await, (9, Vec::new()), "the log starts after the snapshot");
    assert_eq!(store.load().await.expect("load").snapshot.map(|s| s.size), Some(0), "an empty snapshot");
    store.write_log(None, &entries(3, 10..=10)).await.expect("append after it");
}

async fn an_unfinished_snapshot_leaves_the_old_one<F: StoreFactory>(f: &mut F, mut store: F::Store) {
    store.load().await.expect("load");
    store.save_hard_state(HardState { term: 1, vote: None }).await.expect("save term and vote");
    store.write_log(None, &entries(1, 1..=4)).await.expect("append");
    install(&mut store, &meta(1, 2), b"old").await;
    store.write_snapshot_chunk(0, b"half of a ne").await.expect("stage");
    let mut store = f.restart(store).await;
    assert_eq!(snapshot_bytes(&mut store).await, b"old", "a crash while staging keeps the old snapshot");
    assert_eq!(log_of(&mut store).await, (4, entries(1, 3..=4)));
    install(&mut store, &meta(1, 3), b"new").await;
    assert_eq!(snapshot_bytes(&mut store).await, b"new", "staging begins again from offset 0");
}

/// A state machine that fails on the command `"poison"`.
#[derive(Default)]
struct Fragile(Vec<Bytes>);

impl StateMachine for Fragile {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        match &entry.payload {
            Payload::Command(command) if command == "poison" => Err(RestoreError("cannot apply this".into())),
            Payload::Command(command) => {
                self.0.push(command.to_bytes());
                Ok(Bytes::new())
            }
            _ => Ok(Bytes::new()),
        }
    }

    async fn query(&mut self, _: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(Bytes::new())
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        _: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        Ok(())
    }

    async fn restore(&mut self, _: &SnapshotMeta, _: &mut impl SnapshotReader) -> Result<(), RestoreError> {
        Ok(())
    }
}

async fn a_failing_state_machine_stops_the_node_and_loses_nothing<F: StoreFactory>(
    f: &mut F,
    mut store: F::Store,
) {
    let mut machine = Fragile::default();
    let mut node = start(1, Config::default(), &mut store, &mut machine).await.expect("start");
    node.step(Incoming::Tick(Instant::from_millis(0)));
    node.step(Incoming::Tick(Instant::from_millis(1_000)));
    let mut out = Vec::new();
    advance(&mut node, &mut store, &mut machine, &mut out).await.expect("elected");
    for (id, command) in [(1, "fine"), (2, "poison"), (3, "after")] {
        node.step(Incoming::Propose { id, command: Command::from(command) });
    }
    let stopped = advance(&mut node, &mut store, &mut machine, &mut out).await;
    assert!(matches!(stopped, Err(Error::StateMachine(_))), "the node stops with the machine's error");
    assert_eq!(machine.0, ["fine"], "nothing after the failing entry is applied");
    let mut store = f.restart(store).await;
    let (last, held) = log_of(&mut store).await;
    assert_eq!(last, 4, "the no-op and the three commands are durable: nothing is lost");
    assert_eq!(held[2].payload, Payload::Command(Command::from_static(b"poison")));
}
