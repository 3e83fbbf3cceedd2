//! A node of a three-node cluster loses power at sampled points of its flash writes, reboots
//! from flash and must rejoin: the cluster converges, every command acknowledged as committed
//! is applied once on every node, and the node's restored term is no lower than any term it
//! had announced.
//!
//! The cluster runs in a small deterministic simulator (virtual time in 5 ms rounds, messages
//! delivered the next round unless a link is cut). Node 1 keeps its log in a `FlashLog` over a
//! simulated flash that loses power after `k` bytes of work; nodes 2 and 3 use raft-core's
//! `MemState`. Every node's state machine is in RAM, rebuilt from the snapshot at boot. The scenario isolates node 1 (its entries as an isolated leader are
//! truncated later, or it catches up by InstallSnapshot), then the leader of the day.

#[path = "../src/sim_flash.rs"]
mod sim_flash;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as WallClock;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::executor::block_on;
use futures::stream::{Stream, StreamExt};
use futures::task::noop_waker;
use raft_core::{
    Bytes, Config, Entry, Event, Incoming, Index, Instant, LogStore, MemState, Membership, Message, NodeId,
    Outgoing, Payload, ProposeError, RaftStreamExt, RestoreError, Role, SnapshotMeta, SnapshotReader,
    SnapshotWriter, StateMachine, Term,
};
use raft_embassy::{FlashLog, FlashLogConfig};
use sim_flash::SimFlash;

const PAGES: usize = 24;
const ROUND_MS: u64 = 5;
const END_MS: u64 = 6_000;
const PROPOSALS_UNTIL_MS: u64 = 4_000;

/// The applied command ids, in order; a query answers all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Applied(Vec<u64>);

impl Applied {
    fn to_bytes(&self) -> Bytes {
        self.0.iter().flat_map(|id| id.to_le_bytes()).collect::<Vec<u8>>().into()
    }
}

impl StateMachine for Applied {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        if let Payload::Command(command) = &entry.payload {
            if let Ok(id) = <[u8; 8]>::try_from(&command[..]) {
                self.0.push(u64::from_le_bytes(id));
            }
        }
        Ok(Bytes::new())
    }

    async fn query(&mut self, _query: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(self.to_bytes())
    }

    /// Written in pieces of up to 100 ids, to stage in more than one flash chunk.
    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        for ids in self.0.chunks(100) {
            let piece: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            out.write(&piece).await?;
        }
        Ok(())
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let snapshot = from.read_to_end().await?;
        if !snapshot.len().is_multiple_of(8) {
            return Err(RestoreError("a list of u64".into()));
        }
        self.0 = snapshot.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        Ok(())
    }
}

type Outputs = Pin<Box<dyn Stream<Item = Result<Outgoing, String>>>>;

struct Node {
    id: NodeId,
    inbox: UnboundedSender<Incoming>,
    outputs: Outputs,
}

fn config(id: NodeId) -> Config {
    // Snapshot chunks of 200 bytes: node 1 stages the leader's snapshots over several Readys.
    Config {
        snapshot_every: 8,
        seed: id,
        max_append_entries: 4,
        snapshot_chunk_bytes: 200,
        ..Config::default()
    }
}

fn flash_config() -> FlashLogConfig {
    FlashLogConfig {
        range: 0..(PAGES * SimFlash::PAGE) as u32,
        log_capacity: 24,
        max_item_bytes: 128,
        max_snapshot_bytes: 4096,
    }
}

fn members() -> Membership {
    Membership::new([1, 2, 3])
}

/// Starts node 1 on its flash; returns the node and the term and last index it restored, or
/// `None` if the power fails while it loads.
fn boot_flash_node(flash: &SimFlash) -> Option<(Node, Term, Index)> {
    let mut log = FlashLog::new(flash.clone(), flash_config(), members()).unwrap();
    let restored = match block_on(log.load()) {
        Ok(restored) => restored,
        Err(error) if flash.is_dead() => {
            println!("  power cut while node 1 loads: {error}");
            return None;
        }
        Err(error) => panic!("node 1 cannot restore from flash: {error}"),
    };
    let (inbox, inputs) = unbounded();
    let outputs = inputs
        .into_raft_events_with(1, (log, Applied::default()), config(1))
        .map(|o| o.map_err(|e| e.to_string()));
    Some((Node { id: 1, inbox, outputs: Box::pin(outputs) }, restored.hard_state.term, restored.last_index))
}

fn boot_memory_node(id: NodeId) -> Node {
    let (inbox, inputs) = unbounded();
    let log: MemState = MemState::new(members());
    let outputs = inputs
        .into_raft_events_with(id, (log, Applied::default()), config(id))
        .map(|o| o.map_err(|e| e.to_string()));
    Node { id, inbox, outputs: Box::pin(outputs) }
}

#[derive(Default)]
struct Outcome {
    crashed_at_ms: Option<u64>,
    restored: Option<(Term, Index)>,
    announced_before_crash: Term,
    committed: Vec<u64>,
    final_states: Vec<Vec<u8>>,
    commit_indexes: Vec<(Index, Index)>,
    flash_bytes: u64,
    /// InstallSnapshot messages node 1 received.
    snapshots_to_node_1: u32,
    /// Node 1's proposals that a later leader's entries replaced (its log was truncated).
    superseded_on_node_1: u32,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crashed at {:?} ms, restored (term, index) {:?}, announced term {}, {} committed, commit/applied {:?}, \
             {} flash bytes, {} InstallSnapshot to node 1, {} of node 1's proposals superseded",
            self.crashed_at_ms,
            self.restored,
            self.announced_before_crash,
            self.committed.len(),
            self.commit_indexes,
            self.flash_bytes,
            self.snapshots_to_node_1,
            self.superseded_on_node_1
        )
    }
}

/// Runs the scenario with node 1's flash losing power after `cut` bytes (`None`: never).
fn run(cut: Option<u64>) -> Outcome {
    let flash = SimFlash::new(PAGES);
    if let Some(bytes) = cut {
        flash.cut_after(bytes, bytes % 2 == 1);
    }
    let mut outcome = Outcome::default();
    let first = boot_flash_node(&flash).map(|(node, ..)| node);
    if first.is_none() {
        outcome.crashed_at_ms = Some(0);
    }
    let mut restart_at = first.is_none().then_some(50);
    let mut nodes: Vec<Option<Node>> = vec![first, Some(boot_memory_node(2)), Some(boot_memory_node(3))];
    let mut roles: [(Role, Term); 3] = [(Role::Follower, 0); 3];
    let mut cut_links: Vec<NodeId> = Vec::new();
    let mut in_transit: VecDeque<(NodeId, NodeId, Message)> = VecDeque::new();
    let mut next_id = 1u64;
    let mut answers: Vec<Option<Vec<u8>>> = vec![None; 3];
    let mut diagnostics: Vec<Option<(Index, Index)>> = vec![None; 3];
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);

    let mut now = 0;
    while now <= END_MS {
        // The operator: makes node 1 leader and isolates it, shortly (it catches up by log
        // replication, its own entries truncated) and then longer (by InstallSnapshot); then
        // isolates the leader of the day.
        let leader = (1..=3)
            .filter(|&id| roles[id as usize - 1].0 == Role::Leader)
            .max_by_key(|&id| roles[id as usize - 1].1);
        let mut operator = None;
        match now {
            500 | 1_800 => {
                operator = leader.map(|l| (l, Incoming::TransferLeadership { id: 9_000_000 + now, to: 1 }))
            }
            1_000 | 2_200 => cut_links = vec![1],
            1_400 | 3_200 | 4_000 => cut_links.clear(),
            3_500 => cut_links = leader.into_iter().collect(),
            _ => {}
        }
        // Node 1 comes back 50 ms after its power cut, with only its flash.
        if restart_at == Some(now) {
            flash.power_on();
            let (node, term, index) = boot_flash_node(&flash).expect("no second power cut");
            outcome.restored = Some((term, index));
            nodes[0] = Some(node);
        }
        let mut inputs: Vec<Vec<Incoming>> = vec![Vec::new(); 3];
        if now % 10 == 0 {
            for input in &mut inputs {
                input.push(Incoming::Tick(Instant::from_millis(now)));
            }
        }
        if let Some((to, request)) = operator {
            inputs[to as usize - 1].push(request);
        }
        if now % 20 == 0 && now < PROPOSALS_UNTIL_MS {
            // A client proposes to the leader, and during the first partition to node 1 too.
            let command = Bytes::copy_from_slice(&next_id.to_le_bytes());
            let target = if cut_links == [1] && next_id.is_multiple_of(3) { Some(1) } else { leader };
            if let Some(target) = target {
                inputs[target as usize - 1].push(Incoming::Propose { id: next_id, command: command.into() });
                next_id += 1;
            }
        }
        if now >= END_MS - 200 && now % 50 == 0 {
            for (i, input) in inputs.iter_mut().enumerate() {
                input.push(Incoming::Diagnostics);
                input.push(Incoming::Read { id: 1_000_000 + now * 4 + i as u64, query: Bytes::new() });
            }
        }
        for (from, to, message) in in_transit.drain(..) {
            let linked = !cut_links.contains(&from) && !cut_links.contains(&to);
            if linked {
                if to == 1 && matches!(message, Message::InstallSnapshot(_)) {
                    outcome.snapshots_to_node_1 += 1;
                }
                inputs[to as usize - 1].push(Incoming::Message { from, message });
            }
        }
        for (slot, node_slot) in nodes.iter_mut().enumerate() {
            let Some(node) = node_slot else { continue };
            for input in inputs[slot].drain(..) {
                let _ = node.inbox.unbounded_send(input);
            }
            loop {
                match node.outputs.as_mut().poll_next(&mut cx) {
                    Poll::Ready(Some(Ok(Outgoing::Send { to, message }))) => {
                        in_transit.push_back((node.id, to, message))
                    }
                    Poll::Ready(Some(Ok(Outgoing::Event(event)))) => match event {
                        Event::RoleChanged { role, term, .. } => {
                            roles[slot] = (role, term);
                            if node.id == 1 && outcome.crashed_at_ms.is_none() {
                                outcome.announced_before_crash = outcome.announced_before_crash.max(term);
                            }
                        }
                        Event::Proposal { id, result: Ok(_) } => outcome.committed.push(id),
                        Event::Proposal {
                            result: Err(ProposeError::Superseded { .. } | ProposeError::OutcomeUnknown { .. }),
                            ..
                        } if node.id == 1 => outcome.superseded_on_node_1 += 1,
                        Event::Read { result: Ok(answer), .. } => answers[slot] = Some(answer.to_vec()),
                        Event::Diagnostics(d) => diagnostics[slot] = Some((d.commit_index, d.applied_index)),
                        _ => {}
                    },
                    Poll::Ready(Some(Err(error))) => {
                        assert!(node.id == 1 && flash.is_dead(), "node {} failed: {error}", node.id);
                        assert!(outcome.crashed_at_ms.is_none(), "one power cut per run");
                        outcome.crashed_at_ms = Some(now);
                        restart_at = Some(now + 50);
                        roles[0] = (Role::Follower, roles[0].1);
                        *node_slot = None; // everything in RAM is gone
                        break;
                    }
                    Poll::Ready(None) => panic!("node {}'s stream ended", node.id),
                    Poll::Pending => break,
                }
            }
        }
        now += ROUND_MS;
    }
    outcome.final_states = answers.into_iter().map(|a| a.expect("every node answered a read")).collect();
    outcome.commit_indexes = diagnostics.into_iter().map(|d| d.expect("every node reported")).collect();
    outcome.flash_bytes = flash.spent();
    outcome
}

fn check(outcome: &Outcome, cut: Option<u64>) -> usize {
    let context = format!("cut after {cut:?} bytes: {outcome:?}");
    let applied: Vec<u64> =
        outcome.final_states[0].chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(
        outcome.final_states.iter().all(|s| *s == outcome.final_states[0]),
        "state machines differ: {context}"
    );
    let (commit, _) = outcome.commit_indexes[0];
    assert!(
        outcome.commit_indexes.iter().all(|&(c, a)| c == commit && a == commit),
        "logs differ: {context}"
    );
    for id in &outcome.committed {
        assert_eq!(applied.iter().filter(|&a| a == id).count(), 1, "command {id} acknowledged: {context}");
    }
    let mut sorted = applied.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), applied.len(), "a command was applied twice: {context}");
    if cut.is_some() {
        let (term, _) = outcome.restored.expect("node 1 restarted");
        assert!(term >= outcome.announced_before_crash, "node 1's term went back: {context}");
    }
    5
}

#[test]
fn a_node_rejoins_after_a_power_cut() {
    let started = WallClock::now();
    let baseline = run(None);
    let mut checks = check(&baseline, None);
    let total = baseline.flash_bytes;
    assert!(baseline.committed.len() > 100, "the scenario commits: {baseline:?}");
    assert!(baseline.snapshots_to_node_1 > 0, "node 1 catches up by InstallSnapshot: {baseline:?}");
    assert!(baseline.superseded_on_node_1 > 0, "node 1's log is truncated: {baseline:?}");

    println!("without a cut: {baseline:?}");
    // Offsets spread over the whole run, plus some right at the start.
    let samples = 120;
    let mut offsets: Vec<u64> = (0..samples).map(|i| i * total / samples + i % 7).collect();
    offsets.extend([0, 1, 24, 25, 100]);
    let mut restarts = 0;
    let mut restored = Vec::new();
    for &cut in &offsets {
        let outcome = run(Some(cut));
        checks += check(&outcome, Some(cut));
        restarts += 1;
        restored.push(outcome.restored.unwrap());
    }
    println!(
        "cluster power cuts: {} offsets over {total} bytes of node 1's flash work, {restarts} restarts, all rejoined \
         and converged ({} commands committed without a cut), {checks} checks; restored (term, index) from {:?} to {:?}; {:.1} s",
        offsets.len(),
        baseline.committed.len(),
        restored.iter().min().unwrap(),
        restored.iter().max().unwrap(),
        started.elapsed().as_secs_f64()
    );
}
