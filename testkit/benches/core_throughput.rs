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
//! applied on all three nodes per second, and bytes allocated per entry (a counting global
//! allocator). Each row is the median of three runs.
//!
//! Run with `cargo bench -p testkit --bench core_throughput`.

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

/// Runs `work` (which returns the entries applied on every node) and measures it.
fn measure(entries: u64, work: impl FnOnce()) -> Figure {
    let allocated = ALLOCATED.load(Relaxed);
    let start = Instant::now();
    work();
    let seconds = start.elapsed().as_secs_f64();
    Figure {
        per_second: entries as f64 / seconds,
        bytes_per_entry: (ALLOCATED.load(Relaxed) - allocated) / entries,
    }
}

fn median(mut figures: Vec<Figure>) -> Figure {
    figures.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    figures[figures.len() / 2]
}

mod ours {
    use super::*;
    use raft_core::{
        Bytes, Config, Entry, Incoming, InitialState, Membership, Message, Node, Payload, Role, SnapshotInfo,
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
                    let command = Bytes::copy_from_slice(&template);
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

fn main() {
    let rows = [
        Workload { payload: 16, batch: 1, entries: 200_000 },
        Workload { payload: 16, batch: 64, entries: 2_000_000 },
        Workload { payload: 16, batch: 1024, entries: 2_000_000 },
        Workload { payload: 1024, batch: 1, entries: 100_000 },
        Workload { payload: 1024, batch: 64, entries: 500_000 },
        Workload { payload: 1024, batch: 1024, entries: 500_000 },
    ];
    println!("Core throughput: 3 nodes in one thread, in-memory storage, entries committed and applied");
    println!("on all three nodes per second (median of 3 runs) and bytes allocated per entry.\n");
    println!("| payload | batch | raft-core | raft-rs 0.7 | ratio | raft-core B/entry | raft-rs B/entry |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for work in rows {
        let ours = median((0..3).map(|_| ours::run(work)).collect());
        let theirs = median((0..3).map(|_| raft_rs::run(work)).collect());
        println!(
            "| {} B | {} | {:.0} | {:.0} | {:.2}x | {} | {} |",
            work.payload,
            work.batch,
            ours.per_second,
            theirs.per_second,
            ours.per_second / theirs.per_second,
            ours.bytes_per_entry,
            theirs.bytes_per_entry,
        );
    }
}
