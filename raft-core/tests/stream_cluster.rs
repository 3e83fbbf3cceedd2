//! Three nodes driven through the stream API on a single-threaded executor, with virtual time:
//! elect a leader, commit 100 entries on every node, restart a follower from what it persisted.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::{FutureExt, StreamExt};
use raft_core::{
    Clock, Command, Config, Entry, Event, HardState, Incoming, Index, Instant, LogState, LogStore, MemState,
    MemStateError, Membership, NodeId, Outgoing, RaftStreamExt, Role, SnapshotMeta,
};

/// MemState's futures complete at once; resolving them here keeps no lock across an await.
fn now<T>(future: impl Future<Output = T>) -> T {
    future.now_or_never().expect("MemState never waits")
}

/// A MemState that the test can inspect and reboot while a node runs on it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MemState>>);

impl LogStore for Shared {
    type Error = MemStateError;
    async fn load(&mut self) -> Result<LogState, MemStateError> {
        now(self.0.lock().unwrap().load())
    }
    async fn read_entries(&mut self, from: Index, to: Index) -> Result<Vec<Entry>, MemStateError> {
        now(self.0.lock().unwrap().read_entries(from, to))
    }
    async fn save_hard_state(&mut self, state: HardState) -> Result<(), MemStateError> {
        now(self.0.lock().unwrap().save_hard_state(state))
    }
    async fn write_log(&mut self, from: Option<Index>, entries: &[Entry]) -> Result<(), MemStateError> {
        now(self.0.lock().unwrap().write_log(from, entries))
    }
    async fn write_snapshot_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), MemStateError> {
        now(self.0.lock().unwrap().write_snapshot_chunk(offset, data))
    }
    async fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), MemStateError> {
        now(self.0.lock().unwrap().install_snapshot(meta))
    }
    async fn read_snapshot(&mut self, offset: u64, len: usize) -> Result<Bytes, MemStateError> {
        now(self.0.lock().unwrap().read_snapshot(offset, len))
    }
}

/// The commands a node applied, readable while it runs.
#[derive(Clone, Default)]
struct Applied(Arc<Mutex<Vec<Bytes>>>);

impl raft_core::StateMachine for Applied {
    type Error = raft_core::RestoreError;
    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, Self::Error> {
        let mut machine = self.0.lock().unwrap().clone();
        let response = now(machine.apply(entry))?;
        *self.0.lock().unwrap() = machine;
        Ok(response)
    }
    async fn query(&mut self, query: &[u8]) -> Result<Bytes, Self::Error> {
        let mut machine = self.0.lock().unwrap().clone();
        now(machine.query(query))
    }
    async fn build_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        out: &mut impl raft_core::SnapshotWriter,
    ) -> Result<(), Self::Error> {
        let mut machine = self.0.lock().unwrap().clone();
        machine.build_snapshot(meta, out).await
    }
    async fn restore(
        &mut self,
        meta: &SnapshotMeta,
        from: &mut impl raft_core::SnapshotReader,
    ) -> Result<(), Self::Error> {
        let mut machine = Vec::new();
        machine.restore(meta, from).await?;
        *self.0.lock().unwrap() = machine;
        Ok(())
    }
}

#[derive(Default)]
struct Observed {
    roles: BTreeMap<NodeId, (Role, Option<NodeId>)>,
    committed: BTreeMap<u64, Result<Index, String>>,
}

struct Cluster {
    pool: LocalPool,
    inboxes: Rc<RefCell<BTreeMap<NodeId, UnboundedSender<Incoming>>>>,
    stores: BTreeMap<NodeId, (Shared, Applied)>,
    observed: Rc<RefCell<Observed>>,
    now: u64,
}

impl Cluster {
    fn new(ids: &[NodeId]) -> Self {
        let mut cluster = Cluster {
            pool: LocalPool::new(),
            inboxes: Rc::default(),
            stores: BTreeMap::new(),
            observed: Rc::default(),
            now: 0,
        };
        for &id in ids {
            let store = Shared(Arc::new(Mutex::new(MemState::new(Membership::new(ids.iter().copied())))));
            cluster.start(id, store);
        }
        cluster
    }

    /// Runs node `id` on `store`: its outgoing messages go straight into the peers' inboxes.
    fn start(&mut self, id: NodeId, store: Shared) {
        let (sender, inbox) = unbounded();
        sender.unbounded_send(Incoming::Tick(Instant(self.now))).unwrap();
        self.inboxes.borrow_mut().insert(id, sender);
        let machine = Applied::default();
        self.stores.insert(id, (store.clone(), machine.clone()));
        let inboxes = Rc::clone(&self.inboxes);
        let observed = Rc::clone(&self.observed);
        let mut events = inbox.into_raft_events(id, (store, machine));
        self.pool
            .spawner()
            .spawn_local(async move {
                while let Some(output) = events.next().await {
                    match output.expect("MemState never fails") {
                        Outgoing::Send { to, message } => {
                            if let Some(peer) = inboxes.borrow().get(&to) {
                                let _ = peer.unbounded_send(Incoming::Message { from: id, message });
                            }
                        }
                        Outgoing::Event(Event::RoleChanged { role, leader, .. }) => {
                            observed.borrow_mut().roles.insert(id, (role, leader));
                        }
                        Outgoing::Event(Event::Proposal { id: request, result }) => {
                            let result = result.map(|a| a.index).map_err(|e| e.to_string());
                            observed.borrow_mut().committed.insert(request, result);
                        }
                        Outgoing::Event(_) => {}
                    }
                }
            })
            .unwrap();
    }

    fn stop(&mut self, id: NodeId) {
        self.inboxes.borrow_mut().remove(&id); // closing the inbox ends the node's stream
        self.pool.run_until_stalled();
    }

    fn send(&self, id: NodeId, input: Incoming) {
        self.inboxes.borrow()[&id].unbounded_send(input).unwrap();
    }

    /// Advances virtual time in 10 ms ticks until `done` holds (or a time limit passes).
    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Cluster) -> bool) {
        let end = self.now + limit_ms;
        while self.now < end {
            self.pool.run_until_stalled();
            if done(self) {
                return;
            }
            self.now += 10;
            let senders: Vec<_> = self.inboxes.borrow().values().cloned().collect();
            for sender in senders {
                let _ = sender.unbounded_send(Incoming::Tick(Instant(self.now)));
            }
        }
        panic!("condition not reached within {limit_ms} ms of virtual time");
    }

    fn leader(&self) -> Option<NodeId> {
        let observed = self.observed.borrow();
        let leaders: Vec<NodeId> =
            observed.roles.iter().filter(|(_, (role, _))| *role == Role::Leader).map(|(&id, _)| id).collect();
        let everyone_agrees = leaders.len() == 1
            && self
                .inboxes
                .borrow()
                .keys()
                .all(|id| observed.roles.get(id).is_some_and(|r| r.1 == Some(leaders[0])));
        everyone_agrees.then(|| leaders[0])
    }

    fn applied(&self, id: NodeId) -> Vec<Bytes> {
        self.stores[&id].1 .0.lock().unwrap().clone()
    }
}

#[test]
fn three_nodes_elect_commit_100_entries_and_restart_a_follower() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.run_until(5_000, |c| c.leader().is_some());
    let leader = cluster.leader().unwrap();

    let commands: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("entry-{i}"))).collect();
    for (request, command) in commands.iter().enumerate() {
        cluster.send(leader, Incoming::Propose { id: request as u64, command: command.clone().into() });
    }
    cluster.run_until(5_000, |c| (1..=3).all(|id| c.applied(id).len() == 100));
    for id in 1..=3 {
        assert_eq!(cluster.applied(id), commands, "node {id} applied the same commands in order");
    }
    let committed = cluster.observed.borrow().committed.clone();
    assert_eq!(committed.len(), 100);
    assert!(committed.values().all(|r| r.is_ok()), "every proposal was acknowledged");

    // Restart a follower from what it persisted: its log survives, its state machine is
    // rebuilt by applying the committed entries again.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    cluster.stop(follower);
    let durable = cluster.stores[&follower].0 .0.lock().unwrap().clone();
    assert_eq!(durable.entries().count(), 101, "no-op plus 100 commands are durable");
    cluster.start(follower, Shared(Arc::new(Mutex::new(durable))));
    assert!(cluster.applied(follower).is_empty(), "the state machine itself is not durable");

    let more: Vec<Bytes> = (100..110).map(|i| Bytes::from(format!("entry-{i}"))).collect();
    for (i, command) in more.iter().enumerate() {
        cluster.send(leader, Incoming::Propose { id: 1_000 + i as u64, command: command.clone().into() });
    }
    cluster.run_until(5_000, |c| c.applied(follower).len() == 110);
    let all: Vec<Bytes> = commands.iter().chain(&more).cloned().collect();
    assert_eq!(cluster.applied(follower), all);
    assert_eq!(cluster.leader(), Some(leader), "the restart did not disturb the leader");
}

#[test]
fn stream_termination_when_input_ends() {
    let log: MemState = MemState::new(Membership::new([1, 2, 3]));
    let inputs = futures::stream::iter([Incoming::Tick(Instant(0)), Incoming::Diagnostics]);
    let state = (log, Vec::<Bytes>::new());
    let outputs: Vec<_> = futures::executor::block_on(inputs.into_raft_events(1, state).collect());
    assert!(matches!(outputs.last(), Some(Ok(Outgoing::Event(Event::Diagnostics(_))))));
}

/// A log store that fails every write: the stream reports the error and ends.
struct Broken;

impl LogStore for Broken {
    type Error = &'static str;
    async fn load(&mut self) -> Result<LogState, &'static str> {
        Ok(LogState { bootstrap: Membership::new([1]), ..LogState::default() })
    }
    async fn read_entries(&mut self, _: Index, _: Index) -> Result<Vec<Entry>, &'static str> {
        Ok(Vec::new())
    }
    async fn save_hard_state(&mut self, _: HardState) -> Result<(), &'static str> {
        Err("disk full")
    }
    async fn write_log(&mut self, _: Option<Index>, _: &[Entry]) -> Result<(), &'static str> {
        Err("disk full")
    }
    async fn write_snapshot_chunk(&mut self, _: u64, _: &[u8]) -> Result<(), &'static str> {
        Err("disk full")
    }
    async fn install_snapshot(&mut self, _: &SnapshotMeta) -> Result<(), &'static str> {
        Err("disk full")
    }
    async fn read_snapshot(&mut self, _: u64, _: usize) -> Result<Bytes, &'static str> {
        Err("no snapshot")
    }
}

#[test]
fn storage_errors_end_the_stream() {
    let ticks = (0..20).map(|i| Incoming::Tick(Instant(i * 100)));
    let events = futures::stream::iter(ticks).into_raft_events(1, (Broken, Vec::<Bytes>::new()));
    let outputs: Vec<_> = futures::executor::block_on(events.collect());
    let last = outputs.last().unwrap();
    assert!(matches!(last, Err(raft_core::Error::Storage("disk full"))), "{last:?}");
    assert_eq!(outputs.iter().filter(|o| o.is_err()).count(), 1);
}

/// Virtual time that jumps to each deadline the driver sleeps until, up to `limit`; past it,
/// the timer never fires (only input wakes the node).
struct JumpingClock {
    now: Arc<AtomicU64>,
    limit: u64,
}

impl Clock for JumpingClock {
    fn now(&self) -> Instant {
        Instant(self.now.load(Ordering::SeqCst))
    }
    async fn sleep_until(&mut self, deadline: Instant) {
        if deadline.0 <= self.limit {
            self.now.fetch_max(deadline.0, Ordering::SeqCst);
        } else {
            std::future::pending::<()>().await
        }
    }
}

#[test]
fn with_a_clock_the_node_wakes_at_its_deadlines_without_ticks() {
    let clock = JumpingClock { now: Arc::default(), limit: 2_000 };
    let time = Arc::clone(&clock.now);
    let (inputs, inbox) = unbounded::<Incoming>();
    let state = (MemState::new(Membership::new([1])), Vec::<Bytes>::new());
    let mut events = inbox.into_raft_events_with_clock(1, state, Config::default(), clock);
    futures::executor::block_on(async {
        loop {
            let output = events.next().await.unwrap().unwrap();
            if matches!(output, Outgoing::Event(Event::RoleChanged { role: Role::Leader, .. })) {
                break;
            }
        }
        let elected_at = time.load(Ordering::SeqCst);
        assert!((150..300).contains(&elected_at), "elected at its election deadline, {elected_at} ms");
        inputs.unbounded_send(Incoming::Propose { id: 9, command: Command::from_static(b"x") }).unwrap();
        loop {
            if let Outgoing::Event(Event::Proposal { id: 9, result }) = events.next().await.unwrap().unwrap()
            {
                assert!(result.is_ok());
                break;
            }
        }
    });
}

#[test]
fn events_round_trip_through_postcard() {
    let event = Outgoing::Send { to: 2, message: raft_core::Message::TimeoutNow { term: 4 } };
    let bytes = postcard::to_allocvec(&event).unwrap();
    assert_eq!(postcard::from_bytes::<Outgoing>(&bytes).unwrap(), event);
    let incoming = Incoming::Propose { id: 1, command: Command::from_static(b"x") };
    let bytes = postcard::to_allocvec(&incoming).unwrap();
    assert_eq!(postcard::from_bytes::<Incoming>(&bytes).unwrap(), incoming);
}

#[test]
fn the_event_stream_is_send_when_its_parts_are() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let state = (MemState::new(Membership::new([1])), Vec::<Bytes>::new());
    let (_sender, inbox) = unbounded::<Incoming>();
    let events = inbox.into_raft_events(1, state);
    assert_send(&events);
}
