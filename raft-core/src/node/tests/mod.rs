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

use super::election::Campaign;
use super::*;
use crate::message::{AppendEntries, AppendResponse, RequestVote, VoteResponse};
use crate::types::{Entry, Payload, SnapshotMeta};

/// A few nodes wired through a FIFO network that the test controls.
pub(super) struct Net {
    pub(super) nodes: BTreeMap<NodeId, Node>,
    /// Messages in flight: (from, to, message).
    pub(super) wire: VecDeque<(NodeId, NodeId, Message)>,
    /// Links that drop messages (both directions are listed separately).
    pub(super) cut: Vec<(NodeId, NodeId)>,
    /// Applied entries per node.
    pub(super) applied: BTreeMap<NodeId, Vec<Entry>>,
    pub(super) events: BTreeMap<NodeId, Vec<Event>>,
    /// Snapshots installed from a leader, per node.
    pub(super) installed: BTreeMap<NodeId, Vec<SnapshotMeta>>,
    pub(super) now: u64,
}

pub(super) fn config() -> Config {
    Config {
        election_timeout_min: 150,
        election_timeout_max: 300,
        heartbeat_interval: 50,
        ..Config::default()
    }
}

pub(super) fn cmd(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

impl Net {
    pub(super) fn new(ids: &[NodeId]) -> Self {
        Self::with_config(ids, config())
    }

    pub(super) fn with_config(ids: &[NodeId], config: Config) -> Self {
        let membership = Membership::new(ids.iter().copied());
        let nodes = ids
            .iter()
            .map(|&id| {
                let initial = InitialState { bootstrap: membership.clone(), ..InitialState::default() };
                let mut node = Node::new(id, config.clone(), initial).unwrap();
                node.step(Incoming::Tick(Instant(0)));
                (id, node)
            })
            .collect();
        Net {
            nodes,
            wire: VecDeque::new(),
            cut: Vec::new(),
            applied: BTreeMap::new(),
            events: BTreeMap::new(),
            installed: BTreeMap::new(),
            now: 0,
        }
    }

    /// Adds a node that starts with an empty configuration and waits to be added.
    pub(super) fn add_blank_node(&mut self, id: NodeId) {
        let config = self.nodes.values().next().map(|n| n.config.clone()).unwrap_or_else(config);
        let mut node = Node::new(id, config, InitialState::default()).unwrap();
        node.step(Incoming::Tick(Instant(self.now)));
        self.nodes.insert(id, node);
    }

    /// Restarts node `id` from `initial`, as if its process had died and storage held that.
    /// Applied entries above `initial.applied` are forgotten (the state machine is rebuilt).
    pub(super) fn restart(&mut self, id: NodeId, initial: InitialState) {
        let config = self.nodes[&id].config.clone();
        self.applied.entry(id).or_default().retain(|e| e.index <= initial.applied);
        let mut node = Node::new(id, config, initial).unwrap();
        node.step(Incoming::Tick(Instant(self.now)));
        self.nodes.insert(id, node);
    }

    /// Restarts node `id` with its term, vote and snapshot, but with its log cut after `last`:
    /// storage lost the writes after it, acknowledged or not (a disk that lied about fsync).
    /// The state machine restarts from the snapshot.
    pub(super) fn restart_with_log_through(&mut self, id: NodeId, last: Index) {
        let node = &self.nodes[&id];
        let snapshot = node.snapshot.clone();
        let applied = snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        let initial = InitialState {
            hard_state: HardState { term: node.term(), vote: node.vote() },
            entries: node.entries(node.first_index(), last).to_vec(),
            snapshot,
            applied,
            bootstrap: node.base_membership.clone(),
        };
        self.restart(id, initial);
    }

    pub(super) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub(super) fn step(&mut self, id: NodeId, input: Incoming) {
        self.nodes.get_mut(&id).unwrap().step(input);
        self.flush(id);
    }

    /// Takes a node's Ready: messages onto the wire, applied entries and events recorded.
    pub(super) fn flush(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.has_ready() {
            let ready = node.take_ready();
            if let Some(snapshot) = &ready.snapshot {
                self.installed.entry(id).or_default().push(snapshot.meta.clone());
                self.applied.entry(id).or_default().clear();
            }
            for (to, message) in ready.messages {
                self.wire.push_back((id, to, message));
            }
            let mut proposals = ready.proposals.iter().peekable();
            for entry in ready.apply {
                if let Some(&(index, request)) = proposals.next_if(|(index, _)| *index == entry.index) {
                    let result = Ok(crate::event::Applied { index, response: Bytes::new() });
                    self.events.entry(id).or_default().push(Event::Proposal { id: request, result });
                }
                self.applied.entry(id).or_default().push(entry.clone());
            }
            for read in ready.reads {
                self.events.entry(id).or_default().push(Event::Read { id: read.id, result: Ok(read.query) });
            }
            self.events.entry(id).or_default().extend(ready.events);
            if let Some(meta) = ready.take_snapshot {
                node.snapshot_taken(Snapshot { meta, data: Bytes::from_static(b"state") });
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

    pub(super) fn commands(&self, id: NodeId) -> Vec<Bytes> {
        self.applied
            .get(&id)
            .into_iter()
            .flatten()
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
