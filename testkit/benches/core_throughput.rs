//! Core throughput: the pure protocol, three nodes in one thread, side by side with tikv's
//! `raft` crate (raft-rs 0.7).
//!
//! Both run the same workload with in-memory storage and messages delivered in a loop: the
//! leader receives `B` proposals (each with its own freshly allocated payload), then every
//! node's output is carried out until the cluster is quiet (persist, deliver, apply), and
//! again, until every node has applied `N` entries. Both persist before they send what
//! depends on it, apply committed entries, and compact their logs every 50,000 entries.
//! raft-rs runs with pre-vote and check-quorum and, for batched rows, its own batching (all
//! `B` entries in one propose message, `batch_append`). Figures: entries committed and
//! applied on all three nodes per second of the benchmark thread's CPU time, and bytes
//! allocated per entry (a counting global allocator). Each row is the median of three runs.
//!
//! Our side runs twice: through the executor ([`raft_core::advance`] with a `MemState` and a
//! state machine that counts, as every adapter runs it, and as raft-rs's side appends to its
//! `MemStorage`), and as the bare `Node`, whose entries are only copied into a `Vec`.
//!
//! Run with `cargo bench -p testkit --bench core_throughput`. For profiling, arguments narrow
//! the run down: `-- [executor | node | raft-rs ...] [PAYLOAD/BATCH...]`, e.g.
//! `-- executor 1024/64`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Counts every byte allocated, to report allocation per entry.
struct CountingAllocator;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const NODES: [u64; 3] = [1, 2, 3];
/// Logs are compacted once they hold this many applied entries beyond the last snapshot.
const COMPACT_EVERY: u64 = 50_000;

/// One row of the table.
#[derive(Clone, Copy)]
struct Workload {
    payload: usize,
    batch: u64,
    entries: u64,
}

/// A measurement: entries per second and bytes allocated per entry.
#[derive(Clone, Copy)]
struct Figure {
    per_second: f64,
    bytes_per_entry: u64,
}

/// Runs `work` and measures it: entries per second of CPU time on this thread (the benchmark
/// is single-threaded, so on an idle machine this equals wall time; on a shared one it leaves
/// out the time spent waiting for a core), and bytes allocated per entry.
fn measure(entries: u64, work: impl FnOnce()) -> Figure {
    let allocated = ALLOCATED.load(Relaxed);
    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    work();
    let wall = start.elapsed().as_secs_f64();
    let seconds = match (cpu_start, thread_cpu_ns()) {
        (Some(before), Some(after)) => (after - before) as f64 / 1e9,
        _ => wall,
    };
    Figure {
        per_second: entries as f64 / seconds,
        bytes_per_entry: (ALLOCATED.load(Relaxed) - allocated) / entries,
    }
}

/// CPU time this thread has run so far, in nanoseconds (Linux).
fn thread_cpu_ns() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

fn median(mut figures: Vec<Figure>) -> Figure {
    figures.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    figures[figures.len() / 2]
}

mod ours {
    use super::*;
    use raft_core::{
        Command, Config, Entry, Incoming, InitialState, Membership, Message, Node, Payload, Role,
        SnapshotInfo,
    };

    struct Cluster {
        nodes: Vec<Node>,
        /// Each node's durable log (what a `LogStore` would hold).
        stored: Vec<Vec<Entry>>,
        applied: Vec<u64>,
        wire: VecDeque<(u64, u64, Message)>,
    }

    impl Cluster {
        fn new() -> Self {
            let nodes = NODES
                .iter()
                .map(|&id| {
                    let initial =
                        InitialState { bootstrap: Membership::new(NODES), ..InitialState::default() };
                    let config = Config {
                        seed: id,
                        max_inflight: 256,
                        snapshot_every: COMPACT_EVERY,
                        ..Config::default()
                    };
                    let mut node = Node::new(id, config, initial).expect("valid configuration");
                    node.step(Incoming::Tick(raft_core::Instant(0)));
                    node
                })
                .collect();
            Cluster { nodes, stored: vec![Vec::new(); 3], applied: vec![0; 3], wire: VecDeque::new() }
        }

        /// Carries out every node's Ready and delivers every message until all are quiet.
        fn pump(&mut self) {
            loop {
                let mut busy = false;
                for (i, node) in self.nodes.iter_mut().enumerate() {
                    if !node.has_ready() {
                        continue;
                    }
                    busy = true;
                    let ready = node.take_ready();
                    let stored = &mut self.stored[i];
                    if let Some(from) = ready.truncate_from {
                        stored.retain(|e| e.index < from);
                    }
                    stored.extend_from_slice(ready.entries);
                    self.wire.extend(ready.messages.into_iter().map(|(to, m)| (NODES[i], to, m)));
                    self.applied[i] +=
                        ready.apply.iter().filter(|e| matches!(e.payload, Payload::Command(_))).count()
                            as u64;
                    if let Some(meta) = ready.take_snapshot {
                        let through = meta.last.index;
                        node.snapshot_taken(SnapshotInfo { meta, size: 0 });
                        stored.retain(|e| e.index > through);
                    }
                }
                while let Some((from, to, message)) = self.wire.pop_front() {
                    busy = true;
                    self.nodes[(to - 1) as usize].step(Incoming::Message { from, message });
                }
                if !busy {
                    return;
                }
            }
        }
    }

    pub fn run(work: Workload) -> Figure {
        let mut cluster = Cluster::new();
        cluster.nodes[0].step(Incoming::Tick(raft_core::Instant(1_000)));
        cluster.pump();
        assert_eq!(cluster.nodes[0].role(), Role::Leader);
        let template = vec![7u8; work.payload];
        let mut id = 0;
        measure(work.entries, || {
            while cluster.applied.iter().min().copied().unwrap_or(0) < work.entries {
                for _ in 0..work.batch {
                    id += 1;
                    let command = Command::copy_from_slice(&template);
                    cluster.nodes[0].step(Incoming::Propose { id, command });
                }
                cluster.pump();
            }
        })
    }
}

/// Our side through the executor: each node's Ready is carried out by [`raft_core::advance`]
/// against a [`MemState`](raft_core::MemState) and a state machine that counts commands, as
/// every runtime adapter does (and as raft-rs's side appends to its `MemStorage`).
mod executor {
    use super::*;
    use raft_core::{
        advance, Command, Config, Incoming, InitialState, MemState, Membership, Node, Outgoing, Role,
    };
    use testkit::CommandCounter;

    /// Polls a future that never waits (in-memory storage) once, without an executor.
    fn ready_now<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        match std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("in-memory storage never waits"),
        }
    }

    struct Cluster {
        nodes: Vec<Node>,
        logs: Vec<MemState>,
        machines: Vec<CommandCounter>,
        out: Vec<Outgoing>,
        wire: VecDeque<(u64, u64, raft_core::Message)>,
    }

    impl Cluster {
        fn new() -> Self {
            let nodes = NODES
                .iter()
                .map(|&id| {
                    let initial =
                        InitialState { bootstrap: Membership::new(NODES), ..InitialState::default() };
                    let config = Config {
                        seed: id,
                        max_inflight: 256,
                        snapshot_every: COMPACT_EVERY,
                        ..Config::default()
                    };
                    let mut node = Node::new(id, config, initial).expect("valid configuration");
                    node.step(Incoming::Tick(raft_core::Instant(0)));
                    node
                })
                .collect();
            Cluster {
                nodes,
                logs: NODES.iter().map(|_| MemState::new(Membership::new(NODES))).collect(),
                machines: NODES.iter().map(|_| CommandCounter::default()).collect(),
                out: Vec::new(),
                wire: VecDeque::new(),
            }
        }

        fn applied(&self) -> u64 {
            self.machines.iter().map(CommandCounter::count).min().unwrap_or(0)
        }

        /// Carries out every node's Ready and delivers every message until all are quiet.
        fn pump(&mut self) {
            loop {
                let mut busy = false;
                for (i, node) in self.nodes.iter_mut().enumerate() {
                    if !node.has_ready() {
                        continue;
                    }
                    busy = true;
                    let (log, machine) = (&mut self.logs[i], &mut self.machines[i]);
                    ready_now(advance(node, log, machine, &mut self.out)).expect("in-memory storage");
                    for output in self.out.drain(..) {
                        if let Outgoing::Send { to, message } = output {
                            self.wire.push_back((NODES[i], to, message));
                        }
                    }
                }
                while let Some((from, to, message)) = self.wire.pop_front() {
                    busy = true;
                    self.nodes[(to - 1) as usize].step(Incoming::Message { from, message });
                }
                if !busy {
                    return;
                }
            }
        }
    }

    pub fn run(work: Workload) -> Figure {
        let mut cluster = Cluster::new();
        cluster.nodes[0].step(Incoming::Tick(raft_core::Instant(1_000)));
        cluster.pump();
        assert_eq!(cluster.nodes[0].role(), Role::Leader);
        let template = vec![7u8; work.payload];
        let mut id = 0;
        measure(work.entries, || {
            while cluster.applied() < work.entries {
                for _ in 0..work.batch {
                    id += 1;
                    let command = Command::copy_from_slice(&template);
                    cluster.nodes[0].step(Incoming::Propose { id, command });
                }
                cluster.pump();
            }
        })
    }
}

mod raft_rs {
    use super::*;
    use raft::prelude::{ConfState, Entry, Message, MessageType, RawNode};
    use raft::storage::MemStorage;
    use raft::Storage;

    struct Cluster {
        nodes: Vec<RawNode<MemStorage>>,
        applied: Vec<u64>,
        wire: VecDeque<Message>,
    }

    impl Cluster {
        fn new(batch_append: bool) -> Self {
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let nodes = NODES
                .iter()
                .map(|&id| {
                    let config = raft::Config {
                        id,
                        election_tick: 10,
                        heartbeat_tick: 1,
                        pre_vote: true,
                        check_quorum: true,
                        max_inflight_msgs: 256,
                        max_size_per_msg: 1 << 20,
                        batch_append,
                        ..raft::Config::default()
                    };
                    let storage = MemStorage::new_with_conf_state(ConfState::from((NODES.to_vec(), vec![])));
                    RawNode::new(&config, storage, &logger).expect("valid configuration")
                })
                .collect();
            Cluster { nodes, applied: vec![0; 3], wire: VecDeque::new() }
        }

        /// The raft-rs Ready loop: send what may go at once, persist, send what had to wait
        /// for persistence, apply, advance.
        fn pump(&mut self) {
            loop {
                let mut busy = false;
                for (i, node) in self.nodes.iter_mut().enumerate() {
                    if !node.has_ready() {
                        continue;
                    }
                    busy = true;
                    let mut ready = node.ready();
                    self.wire.extend(ready.take_messages());
                    let committed = ready.take_committed_entries();
                    self.applied[i] += committed.iter().filter(|e| !e.data.is_empty()).count() as u64;
                    if !ready.entries().is_empty() {
                        node.mut_store().wl().append(ready.entries()).expect("in-memory append");
                    }
                    if let Some(hard_state) = ready.hs() {
                        node.mut_store().wl().set_hardstate(hard_state.clone());
                    }
                    self.wire.extend(ready.take_persisted_messages());
                    let mut light = node.advance(ready);
                    if let Some(commit) = light.commit_index() {
                        node.mut_store().wl().mut_hard_state().set_commit(commit);
                    }
                    self.wire.extend(light.take_messages());
                    let committed = light.take_committed_entries();
                    self.applied[i] += committed.iter().filter(|e| !e.data.is_empty()).count() as u64;
                    node.advance_apply();
                    compact(node);
                }
                while let Some(message) = self.wire.pop_front() {
                    busy = true;
                    let to = message.to;
                    self.nodes[(to - 1) as usize].step(message).expect("a valid message");
                }
                if !busy {
                    return;
                }
            }
        }
    }

    fn compact(node: &mut RawNode<MemStorage>) {
        let applied = node.raft.raft_log.applied;
        let first = node.store().first_index().expect("in-memory storage");
        if applied >= first + COMPACT_EVERY {
            node.mut_store().wl().compact(applied).expect("compacting applied entries");
        }
    }

    pub fn run(work: Workload) -> Figure {
        let mut cluster = Cluster::new(work.batch > 1);
        cluster.nodes[0].campaign().expect("campaign");
        cluster.pump();
        let template = vec![7u8; work.payload];
        measure(work.entries, || {
            while cluster.applied.iter().min().copied().unwrap_or(0) < work.entries {
                if work.batch == 1 {
                    cluster.nodes[0].propose(vec![], template.clone()).expect("leader accepts");
                } else {
                    let mut propose = Message::default();
                    propose.set_msg_type(MessageType::MsgPropose);
                    propose.from = 1;
                    let entries: Vec<Entry> = (0..work.batch)
                        .map(|_| Entry { data: template.clone().into(), ..Entry::default() })
                        .collect();
                    propose.entries = entries.into();
                    cluster.nodes[0].step(propose).expect("leader accepts");
                }
                cluster.pump();
            }
        })
    }
}

/// Command line: `[executor | node | raft-rs ...] [PAYLOAD/BATCH...]` narrows the run to some
/// sides and rows; no arguments runs everything.
struct Args {
    sides: Vec<String>,
    rows: Vec<(usize, u64)>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args { sides: Vec::new(), rows: Vec::new() };
        // `cargo bench` passes `--bench`; flags are not ours.
        for arg in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
            let usage = "usage: core_throughput [executor | node | raft-rs ...] [PAYLOAD/BATCH...]";
            match arg.as_str() {
                "executor" | "node" | "raft-rs" => args.sides.push(arg),
                row => {
                    let (payload, batch) = row.split_once('/').expect(usage);
                    args.rows.push((payload.parse().expect(usage), batch.parse().expect(usage)));
                }
            }
        }
        args
    }

    /// Measures `side` on `work` (median of three runs), if selected.
    fn run(&self, side: &str, work: Workload, run: fn(Workload) -> Figure) -> Figure {
        if self.sides.is_empty() || self.sides.iter().any(|s| s == side) {
            median((0..3).map(|_| run(work)).collect())
        } else {
            Figure { per_second: f64::NAN, bytes_per_entry: 0 }
        }
    }
}

fn main() {
    let args = Args::parse();
    let rows = [
        Workload { payload: 16, batch: 1, entries: 200_000 },
        Workload { payload: 16, batch: 64, entries: 2_000_000 },
        Workload { payload: 16, batch: 1024, entries: 2_000_000 },
        Workload { payload: 1024, batch: 1, entries: 100_000 },
        Workload { payload: 1024, batch: 64, entries: 500_000 },
        Workload { payload: 1024, batch: 1024, entries: 500_000 },
    ];
    println!("Core throughput: 3 nodes in one thread, in-memory storage, entries committed and applied");
    println!("on all three nodes per CPU-second (median of 3 runs) and bytes allocated per entry. raft-core");
    println!("through the executor (MemState, a counting state machine), and its bare Node (no storage).\n");
    println!(
        "| payload | batch | raft-core | raft-core Node | raft-rs 0.7 | ratio | Node ratio \
         | raft-core B/entry | Node B/entry | raft-rs B/entry |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let selected =
        rows.into_iter().filter(|w| args.rows.is_empty() || args.rows.contains(&(w.payload, w.batch)));
    for work in selected {
        let executor = args.run("executor", work, executor::run);
        let node = args.run("node", work, ours::run);
        let theirs = args.run("raft-rs", work, raft_rs::run);
        println!(
            "| {} B | {} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x | {} | {} | {} |",
            work.payload,
            work.batch,
            executor.per_second,
            node.per_second,
            theirs.per_second,
            executor.per_second / theirs.per_second,
            node.per_second / theirs.per_second,
            executor.bytes_per_entry,
            node.bytes_per_entry,
            theirs.bytes_per_entry,
        );
    }
}
