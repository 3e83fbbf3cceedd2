//! Rule-by-rule tests of the protocol machine, on a tiny in-test network.

mod election;
mod membership;
mod read;
mod replication;
mod robustness;
mod snapshot;
mod transfer;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use futures::executor::block_on;

use super::election::Campaign;
use super::*;
use crate::event::Outgoing;
use crate::message::{AppendEntries, AppendResponse, RequestVote, VoteResponse};
use crate::storage::{MemState, StateMachine};
use crate::types::{Entry, Payload, SnapshotMeta};

/// A few nodes wired through a FIFO network that the test controls. Each node's `Ready` is
/// carried out by the executor ([`carry_out`](crate::carry_out)) against a [`MemState`] and a
/// [`Recorder`].
pub(super) struct Net {
    pub(super) nodes: BTreeMap<NodeId, Node>,
    /// Each node's log store and state machine.
    pub(super) stores: BTreeMap<NodeId, (MemState, Recorder)>,
    /// Messages in flight: (from, to, message).
    pub(super) wire: VecDeque<(NodeId, NodeId, Message)>,
    /// Links that drop messages (both directions are listed separately).
    pub(super) cut: Vec<(NodeId, NodeId)>,
    pub(super) events: BTreeMap<NodeId, Vec<Event>>,
    pub(super) now: u64,
}

/// The rule tests' state machine: records the entries applied and the snapshots restored, and
/// answers a query with the query itself.
#[derive(Clone, Debug, Default)]
pub(super) struct Recorder {
    pub(super) applied: Vec<Entry>,
    pub(super) installed: Vec<SnapshotMeta>,
}

impl StateMachine for Recorder {
    type Error = crate::RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, Self::Error> {
        self.applied.push(entry.clone());
        Ok(Bytes::new())
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, Self::Error> {
        Ok(Bytes::copy_from_slice(query))
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl crate::SnapshotWriter,
    ) -> Result<(), Self::Error> {
        Ok(out.write(b"state").await?)
    }

    async fn restore(
        &mut self,
        meta: &SnapshotMeta,
        from: &mut impl crate::SnapshotReader,
    ) -> Result<(), Self::Error> {
        from.read_to_end().await?;
        self.applied.clear();
        self.installed.push(meta.clone());
        Ok(())
    }
}

pub(super) fn config() -> Config {
    Config {
        election_timeout_min: 150,
        election_timeout_max: 300,
        heartbeat_interval: 50,
        ..Config::default()
    }
}

pub(super) fn cmd(text: &'static str) -> crate::Command {
    crate::Command::from(text)
}

impl Net {
    pub(super) fn new(ids: &[NodeId]) -> Self {
        Self::with_config(ids, config())
    }

    pub(super) fn with_config(ids: &[NodeId], config: Config) -> Self {
        let mut net = Net {
            nodes: BTreeMap::new(),
            stores: BTreeMap::new(),
            wire: VecDeque::new(),
            cut: Vec::new(),
            events: BTreeMap::new(),
            now: 0,
        };
        let membership = Membership::new(ids.iter().copied());
        for &id in ids {
            net.start(id, config.clone(), MemState::new(membership.clone()));
        }
        net
    }

    /// Adds a node that starts with an empty configuration and waits to be added.
    pub(super) fn add_blank_node(&mut self, id: NodeId) {
        let config = self.nodes.values().next().map(|n| n.config.clone()).unwrap_or_else(config);
        self.start(id, config, MemState::default());
    }

    /// Starts node `id` from a log store, as the executor does.
    pub(super) fn start(&mut self, id: NodeId, config: Config, mut log: MemState) {
        let mut machine = Recorder::default();
        let mut node = block_on(crate::start(id, config, &mut log, &mut machine)).unwrap();
        node.step(Incoming::Tick(Instant(self.now)));
        self.nodes.insert(id, node);
        self.stores.insert(id, (log, machine));
    }

    /// Restarts node `id` from `log`, as if its process had died and storage held that. The
    /// state machine is rebuilt: applied entries are forgotten.
    pub(super) fn restart(&mut self, id: NodeId, log: MemState) {
        let config = self.nodes[&id].config.clone();
        self.start(id, config, log);
    }

    /// Restarts node `id` with its term, vote and snapshot, but with its log cut after `last`:
    /// storage lost the writes after it, acknowledged or not (a disk that lied about fsync).
    /// The state machine restarts from the snapshot.
    pub(super) fn restart_with_log_through(&mut self, id: NodeId, last: Index) {
        let mut log = self.stores[&id].0.clone();
        block_on(crate::LogStore::write_log(&mut log, Some(last + 1), &[])).unwrap();
        self.restart(id, log);
    }

    pub(super) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    /// The snapshots node `id` installed from a leader.
    pub(super) fn installed(&self, id: NodeId) -> &[SnapshotMeta] {
        &self.stores[&id].1.installed
    }

    pub(super) fn step(&mut self, id: NodeId, input: Incoming) {
        self.nodes.get_mut(&id).unwrap().step(input);
        self.flush(id);
    }

    /// Carries out a node's Ready: messages onto the wire, events recorded.
    pub(super) fn flush(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let (log, machine) = self.stores.get_mut(&id).unwrap();
        let mut out = Vec::new();
        block_on(crate::advance(node, log, machine, &mut out)).unwrap();
        for output in out {
            match output {
                Outgoing::Send { to, message } => self.wire.push_back((id, to, message)),
                Outgoing::Event(event) => self.events.entry(id).or_default().push(event),
            }
        }
    }

    /// Delivers everything in flight (and what that produces) until the network is quiet.
    pub(super) fn settle(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.wire.pop_front() {
            budget -= 1;
            assert!(budget > 0, "network never went quiet");
            if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
                continue;
            }
            self.step(to, Incoming::Message { from, message });
        }
    }

    /// Advances every node's clock by `ms`, in heartbeat-sized ticks, settling as it goes.
    pub(super) fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 10).min(end);
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.step(id, Incoming::Tick(Instant(self.now)));
            }
            self.settle();
        }
    }

    /// Makes `id` time out now and settles the election it starts.
    pub(super) fn elect(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.campaign(if node.config.pre_vote { Campaign::PreVote } else { Campaign::Election });
        self.flush(id);
        self.settle();
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} should lead");
    }

    pub(super) fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            self.cut.push((id, other));
            self.cut.push((other, id));
        }
    }

    pub(super) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(super) fn leaders(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| n.role() == Role::Leader).map(|n| n.id()).collect()
    }

    pub(super) fn commands(&self, id: NodeId) -> Vec<crate::Command> {
        self.stores[&id]
            .1
            .applied
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Command(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn events(&self, id: NodeId) -> &[Event] {
        self.events.get(&id).map_or(&[], |v| v.as_slice())
    }
}

pub(super) fn entry(term: Term, index: Index) -> Entry {
    Entry { term, index, payload: Payload::Command(cmd("x")) }
}

/// A follower of a 3-node cluster whose log holds entries with these terms.
pub(super) fn follower_with_log(terms: &[Term], current_term: Term) -> Node {
    let entries = terms.iter().enumerate().map(|(i, &t)| entry(t, i as Index + 1)).collect();
    let initial = InitialState {
        hard_state: HardState { term: current_term, vote: None },
        entries,
        bootstrap: Membership::new([1, 2, 3]),
        ..InitialState::default()
    };
    let mut node = Node::new(1, config(), initial).unwrap();
    node.step(Incoming::Tick(Instant(0)));
    node
}

pub(super) fn message(from: NodeId, message: Message) -> Incoming {
    Incoming::Message { from, message }
}

pub(super) fn append(term: Term, prev: LogId, entries: Vec<Entry>, commit: Index) -> Message {
    Message::AppendEntries(AppendEntries { term, prev, entries, commit, round: 0 })
}

/// A successful AppendResponse.
pub(super) fn ack(term: Term, match_index: Index) -> Message {
    Message::AppendResponse(AppendResponse { term, round: 0, result: AppendResult::Success { match_index } })
}

pub(super) fn sent<'a>(ready: &'a Ready<'_>) -> Vec<(NodeId, &'a Message)> {
    ready.messages.iter().map(|(to, m)| (*to, m)).collect()
}
