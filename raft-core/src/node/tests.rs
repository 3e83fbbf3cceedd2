//! Rule-by-rule tests of the protocol machine, on a tiny in-test network.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use super::election::Campaign;
use super::*;
use crate::message::{AppendEntries, AppendResponse, RequestVote, VoteResponse};
use crate::types::{Entry, Payload};

/// A few nodes wired through a FIFO network that the test controls.
struct Net {
    nodes: BTreeMap<NodeId, Node>,
    /// Messages in flight: (from, to, message).
    wire: VecDeque<(NodeId, NodeId, Message)>,
    /// Links that drop messages (both directions are listed separately).
    cut: Vec<(NodeId, NodeId)>,
    /// Applied entries per node.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    events: BTreeMap<NodeId, Vec<Event>>,
    now: u64,
}

fn config() -> Config {
    Config {
        election_timeout_min: 150,
        election_timeout_max: 300,
        heartbeat_interval: 50,
        ..Config::default()
    }
}

fn cmd(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

impl Net {
    fn new(ids: &[NodeId]) -> Self {
        Self::with_config(ids, config())
    }

    fn with_config(ids: &[NodeId], config: Config) -> Self {
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
            now: 0,
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    fn step(&mut self, id: NodeId, input: Incoming) {
        self.nodes.get_mut(&id).unwrap().step(input);
        self.flush(id);
    }

    /// Takes a node's Ready: messages onto the wire, applied entries and events recorded.
    fn flush(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.has_ready() {
            let ready = node.take_ready();
            for (to, message) in ready.messages {
                self.wire.push_back((id, to, message));
            }
            for apply in ready.apply {
                if let Some(request) = apply.proposal {
                    let result =
                        Ok(crate::event::Applied { index: apply.entry.index, response: Bytes::new() });
                    self.events.entry(id).or_default().push(Event::Proposal { id: request, result });
                }
                self.applied.entry(id).or_default().push(apply.entry);
            }
            for read in ready.reads {
                self.events.entry(id).or_default().push(Event::Read { id: read.id, result: Ok(read.query) });
            }
            if let Some(meta) = ready.take_snapshot {
                node.snapshot_taken(Snapshot { meta, data: Bytes::from_static(b"state") });
            }
            self.events.entry(id).or_default().extend(ready.events);
        }
    }

    /// Delivers everything in flight (and what that produces) until the network is quiet.
    fn settle(&mut self) {
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
    fn advance(&mut self, ms: u64) {
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
    fn elect(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.campaign(if node.config.pre_vote { Campaign::PreVote } else { Campaign::Election });
        self.flush(id);
        self.settle();
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} should lead");
    }

    fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            self.cut.push((id, other));
            self.cut.push((other, id));
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| n.role() == Role::Leader).map(|n| n.id()).collect()
    }

    fn commands(&self, id: NodeId) -> Vec<Bytes> {
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

    fn events(&self, id: NodeId) -> &[Event] {
        self.events.get(&id).map_or(&[], |v| v.as_slice())
    }
}

fn entry(term: Term, index: Index) -> Entry {
    Entry { term, index, payload: Payload::Command(cmd("x")) }
}

/// A follower of a 3-node cluster whose log holds entries with these terms.
fn follower_with_log(terms: &[Term], current_term: Term) -> Node {
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

fn message(from: NodeId, message: Message) -> Incoming {
    Incoming::Message { from, message }
}

fn append(term: Term, prev: LogId, entries: Vec<Entry>, commit: Index) -> Message {
    Message::AppendEntries(AppendEntries { term, prev, entries, commit, round: 0 })
}

fn sent(ready: &Ready) -> Vec<(NodeId, &Message)> {
    ready.messages.iter().map(|(to, m)| (*to, m)).collect()
}

// ----- elections ------------------------------------------------------------------------

#[test]
fn single_node_becomes_leader_and_commits_alone() {
    let mut net = Net::new(&[1]);
    net.elect(1);
    net.step(1, Incoming::Propose { id: 1, command: cmd("a") });
    assert_eq!(net.commands(1), [cmd("a")]);
    assert_eq!(net.node(1).commit_index(), 2, "no-op and the command");
}

#[test]
fn start_elections_with_pre_vote_keeps_the_term() {
    let mut node = follower_with_log(&[], 3);
    node.step(Incoming::Tick(Instant(1_000)));
    let ready = node.take_ready();
    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.term(), 3, "a pre-vote never raises the term");
    assert_eq!(ready.hard_state, None);
    let asks: Vec<_> = sent(&ready);
    assert_eq!(asks.len(), 2);
    for (_, m) in asks {
        assert!(matches!(m, Message::RequestVote(RequestVote { term: 4, pre_vote: true, .. })));
    }
}

#[test]
fn win_elections_after_pre_vote_and_vote_majorities() {
    let mut node = follower_with_log(&[1], 1);
    node.step(Incoming::Tick(Instant(1_000)));
    let _ = node.take_ready();
    let grant = |term| Message::VoteResponse(VoteResponse { term, granted: true, pre_vote: true });
    node.step(message(2, grant(2)));
    assert_eq!(node.role(), Role::Candidate);
    assert_eq!((node.term(), node.vote()), (2, Some(1)));
    let ready = node.take_ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(1) }), "vote persisted first");
    node.step(message(3, Message::VoteResponse(VoteResponse { term: 2, granted: true, pre_vote: false })));
    assert_eq!(node.role(), Role::Leader);
    let ready = node.take_ready();
    assert_eq!(ready.entries.last().map(|e| (&e.payload, e.term)), Some((&Payload::Noop, 2)));
}

#[test]
fn candidate_loses_on_majority_of_rejections() {
    let mut node = follower_with_log(&[], 1);
    node.step(Incoming::Tick(Instant(1_000)));
    let reject = Message::VoteResponse(VoteResponse { term: 1, granted: false, pre_vote: true });
    node.step(message(2, reject.clone()));
    assert_eq!(node.role(), Role::PreCandidate);
    node.step(message(3, reject));
    assert_eq!(node.role(), Role::Follower);
}

#[test]
fn grant_vote_once_per_term() {
    let mut node = follower_with_log(&[1], 1);
    let ask = |term| {
        Message::RequestVote(RequestVote {
            term,
            last_log: LogId::new(1, 1),
            pre_vote: false,
            transfer: false,
        })
    };
    node.step(message(2, ask(2)));
    let ready = node.take_ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(2) }));
    assert_eq!(
        sent(&ready),
        [(2, &Message::VoteResponse(VoteResponse { term: 2, granted: true, pre_vote: false }))]
    );
    node.step(message(3, ask(2)));
    let ready = node.take_ready();
    assert_eq!(
        sent(&ready),
        [(3, &Message::VoteResponse(VoteResponse { term: 2, granted: false, pre_vote: false }))]
    );
    node.step(message(2, ask(2)));
    let ready = node.take_ready();
    assert!(
        matches!(sent(&ready)[0].1, Message::VoteResponse(VoteResponse { granted: true, .. })),
        "repeat is idempotent"
    );
}

#[test]
fn outdated_log_vote_is_rejected() {
    let mut node = follower_with_log(&[1, 2], 2);
    for last_log in [LogId::new(1, 5), LogId::new(2, 1)] {
        let ask = RequestVote { term: 3, last_log, pre_vote: false, transfer: false };
        node.step(message(2, Message::RequestVote(ask)));
        let ready = node.take_ready();
        assert!(matches!(
            sent(&ready)[0].1,
            Message::VoteResponse(VoteResponse { granted: false, term: 3, .. })
        ));
    }
    assert_eq!(node.vote(), None);
}

#[test]
fn reject_out_of_cluster_request_vote() {
    let mut node = follower_with_log(&[], 1);
    let ask = RequestVote { term: 9, last_log: LogId::new(9, 9), pre_vote: false, transfer: false };
    node.step(message(7, Message::RequestVote(ask)));
    let ready = node.take_ready();
    assert!(ready.messages.is_empty());
    assert_eq!(node.term(), 1, "a stranger cannot raise our term");
    assert!(ready.events.contains(&Event::Dropped { from: 7, reason: DropReason::UnknownSender }));
}

#[test]
fn higher_term_makes_any_role_a_follower() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.step(
        1,
        message(
            2,
            Message::AppendResponse(AppendResponse {
                term: term + 5,
                round: 0,
                result: AppendResult::Success { match_index: 0 },
            }),
        ),
    );
    assert_eq!(net.node(1).role(), Role::Follower);
    assert_eq!((net.node(1).term(), net.node(1).vote()), (term + 5, None));
}

#[test]
fn step_down_on_append_entries_from_current_leader() {
    let mut node = follower_with_log(&[], 1);
    node.step(Incoming::Tick(Instant(1_000)));
    assert_eq!(node.role(), Role::PreCandidate);
    node.step(message(2, append(1, LogId::default(), vec![], 0)));
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.leader(), Some(2));
}

#[test]
fn stale_leader_learns_the_new_term_from_the_answer() {
    let mut node = follower_with_log(&[1], 3);
    node.step(message(2, append(2, LogId::new(1, 1), vec![], 1)));
    let ready = node.take_ready();
    assert!(matches!(sent(&ready)[0], (2, Message::AppendResponse(AppendResponse { term: 3, .. }))));
    assert_eq!(node.leader(), None);
}

#[test]
fn dueling_candidates_resolve_to_one_leader_per_term() {
    let mut net = Net::with_config(&[1, 2, 3], Config { pre_vote: false, ..config() });
    net.now = 1_000;
    net.nodes.get_mut(&1).unwrap().step(Incoming::Tick(Instant(1_000)));
    net.nodes.get_mut(&2).unwrap().step(Incoming::Tick(Instant(1_000)));
    net.flush(1);
    net.flush(2);
    net.settle();
    net.advance(2_000);
    let mut per_term: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
    for node in net.nodes.values().filter(|n| n.role() == Role::Leader) {
        per_term.entry(node.term()).or_default().push(node.id());
    }
    assert_eq!(net.leaders().len(), 1, "{per_term:?}");
}

// ----- pre-vote and check-quorum -------------------------------------------------------

#[test]
fn rejoining_node_does_not_disrupt_a_healthy_leader_with_pre_vote() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.isolate(3);
    net.advance(3_000);
    assert_eq!(net.node(3).term(), term, "pre-vote fails in isolation, so the term stays");
    net.heal();
    net.advance(1_000);
    assert_eq!(net.leaders(), [1]);
    assert_eq!(net.node(1).term(), term);
}

#[test]
fn rejoining_node_without_pre_vote_is_held_off_by_the_leader_lease() {
    let mut net = Net::with_config(&[1, 2, 3], Config { pre_vote: false, ..config() });
    net.elect(1);
    net.isolate(3);
    net.advance(3_000);
    assert!(net.node(3).term() > net.node(1).term(), "it campaigned alone and raised its term");
    net.heal();
    net.advance(2_000);
    assert_eq!(net.leaders().len(), 1);
    let leader = net.leaders()[0];
    assert!(net.nodes.values().all(|n| n.leader() == Some(leader)));
}

#[test]
fn leader_steps_down_without_a_quorum() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.advance(400);
    assert_eq!(net.node(1).role(), Role::Follower, "check-quorum steps the old leader down");
    assert!(net.leaders().iter().all(|&l| l != 1));
    net.advance(600);
    assert_eq!(net.leaders().len(), 1);
}

#[test]
fn vote_requests_are_ignored_while_a_leader_is_alive() {
    let mut net = Net::with_config(&[1, 2, 3], Config { pre_vote: false, ..config() });
    net.elect(1);
    net.advance(40);
    let term = net.node(2).term();
    let ask =
        RequestVote { term: term + 1, last_log: LogId::new(term + 1, 99), pre_vote: false, transfer: false };
    net.step(2, message(3, Message::RequestVote(ask)));
    assert_eq!(net.node(2).term(), term);
    assert!(net.events(2).contains(&Event::Dropped { from: 3, reason: DropReason::LeaderLease }));
}

#[test]
fn check_quorum_frees_a_stuck_candidate() {
    // Node 3 was partitioned and raised its term without pre-vote; when it returns, the
    // leader's answer carries the higher term, and the cluster settles on one leader again.
    let mut net = Net::with_config(&[1, 2, 3], Config { pre_vote: false, ..config() });
    net.elect(1);
    net.isolate(3);
    net.advance(2_000);
    assert_eq!(net.node(3).role(), Role::Candidate);
    net.heal();
    net.advance(3_000);
    assert_eq!(net.leaders().len(), 1);
    assert!(net.nodes.values().all(|n| n.role() != Role::Candidate));
}

// ----- replication -----------------------------------------------------------------------

#[test]
fn accept_new_entries_and_learn_commit_up_to_the_last_new_entry() {
    let mut node = follower_with_log(&[1, 1, 1, 1], 1);
    // Our log has 4 entries; the leader says commit 10 but sent entries only up to 2.
    node.step(message(2, append(1, LogId::new(1, 1), vec![entry(1, 2)], 10)));
    assert_eq!(node.commit_index(), 2, "commit = min(leader commit, last new entry)");
    let ready = node.take_ready();
    assert!(matches!(
        sent(&ready)[0].1,
        Message::AppendResponse(AppendResponse { result: AppendResult::Success { match_index: 2 }, .. })
    ));
    assert_eq!(ready.apply.len(), 2);
}

#[test]
fn reject_append_entry_when_prev_does_not_match() {
    let mut node = follower_with_log(&[1, 1, 2], 3);
    node.step(message(2, append(3, LogId::new(3, 3), vec![entry(3, 4)], 0)));
    let ready = node.take_ready();
    let expected = AppendResult::Conflict { rejected: 3, hint: LogId::new(2, 3) };
    assert!(
        matches!(sent(&ready)[0].1, Message::AppendResponse(AppendResponse { result, .. }) if *result == expected)
    );
    node.step(message(2, append(3, LogId::new(3, 9), vec![], 0)));
    let ready = node.take_ready();
    let expected = AppendResult::Conflict { rejected: 9, hint: LogId::new(0, 4) };
    assert!(
        matches!(sent(&ready)[0].1, Message::AppendResponse(AppendResponse { result, .. }) if *result == expected)
    );
    assert_eq!(node.last_log_id(), LogId::new(2, 3));
}

#[test]
fn conflicting_suffix_is_replaced_and_storage_told_to_truncate() {
    let mut node = follower_with_log(&[1, 1, 2, 2], 3);
    node.step(message(2, append(3, LogId::new(1, 2), vec![entry(3, 3)], 0)));
    let ready = node.take_ready();
    assert_eq!(ready.truncate_from, Some(3));
    assert_eq!(ready.entries, [entry(3, 3)]);
    assert_eq!(node.last_log_id(), LogId::new(3, 3));
}

#[test]
fn acknowledgements_for_truncated_entries_are_withdrawn() {
    let mut node = follower_with_log(&[1], 1);
    // Term-1 leader sends entry 2; before the Ready is taken, a term-2 leader replaces it.
    node.step(message(2, append(1, LogId::new(1, 1), vec![entry(1, 2)], 0)));
    node.step(message(3, append(2, LogId::new(1, 1), vec![entry(2, 2)], 0)));
    let ready = node.take_ready();
    for (_, m) in &ready.messages {
        if let Message::AppendResponse(AppendResponse {
            term: 1,
            result: AppendResult::Success { match_index },
            ..
        }) = m
        {
            panic!("acknowledged entry {match_index} of term 1 that is no longer stored");
        }
    }
    assert_eq!(ready.truncate_from, None, "entry 2 of term 1 never reached storage");
    assert_eq!(ready.entries, [entry(2, 2)]);
}

#[test]
fn fast_backtracking_skips_whole_terms() {
    // Leader log: terms 1 1 1 4 4 5 5 6 6 6 (Figure 7's leader). Follower: 1 1 1 2 2 2 3 3 3 3 3.
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let follower_terms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3];
    let mut follower = follower_with_log(&follower_terms, 6);
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let _ = (&mut follower, leader_terms);
    // Drive the probe by hand: each rejection must move next_index back by a whole term.
    let mut next = 11u64;
    let mut round_trips = 0;
    let leader_term_at = |i: u64| if i == 0 { 0 } else { leader_terms[i as usize - 1] };
    loop {
        round_trips += 1;
        let prev = LogId::new(leader_term_at(next - 1), next - 1);
        follower.step(message(2, append(7, prev, vec![], 0)));
        let ready = follower.take_ready();
        match sent(&ready)[0].1 {
            Message::AppendResponse(AppendResponse { result: AppendResult::Success { .. }, .. }) => break,
            Message::AppendResponse(AppendResponse {
                result: AppendResult::Conflict { rejected, hint },
                ..
            }) => {
                let leader_last_of_term = (1..=10u64).rev().find(|&i| leader_term_at(i) == hint.term);
                let hinted = match hint.term {
                    0 => hint.index,
                    _ => leader_last_of_term.map_or(hint.index, |i| i + 1),
                };
                next = hinted.clamp(1, *rejected);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(round_trips < 5, "backtracking took too many round trips");
    }
    assert_eq!(next, 4, "matched right after the common prefix 1 1 1");
    assert!(round_trips <= 3, "one round trip per conflicting term, not per entry: {round_trips}");
}

#[test]
fn leader_backtracks_a_divergent_follower_and_replaces_its_suffix() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..5 {
        net.step(1, Incoming::Propose { id: i, command: cmd("a") });
    }
    net.settle();
    // Node 1 leads alone for a while: its extra entries never commit.
    net.isolate(1);
    for i in 0..5 {
        net.step(1, Incoming::Propose { id: 100 + i, command: cmd("lost") });
    }
    net.advance(1_000);
    let new_leader = net.leaders()[0];
    assert_ne!(new_leader, 1);
    net.step(new_leader, Incoming::Propose { id: 200, command: cmd("b") });
    net.settle();
    net.heal();
    net.advance(500);
    // Lost proposals resolve once the commit index passes their positions.
    for i in 0..5 {
        net.step(new_leader, Incoming::Propose { id: 300 + i, command: cmd("c") });
    }
    net.advance(100);
    for id in [1, 2, 3] {
        let commands = net.commands(id);
        assert_eq!(commands.iter().filter(|c| **c == cmd("lost")).count(), 0);
        assert_eq!(commands.iter().filter(|c| **c == cmd("b")).count(), 1, "node {id}");
    }
    let superseded = net
        .events(1)
        .iter()
        .filter(|e| matches!(e, Event::Proposal { result: Err(ProposeError::Superseded { .. }), .. }))
        .count();
    assert_eq!(superseded, 5, "each lost proposal gets a clear outcome");
}

#[test]
fn batched_proposals_travel_in_one_message_per_peer() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let node = net.nodes.get_mut(&1).unwrap();
    for i in 0..100 {
        node.step(Incoming::Propose { id: i, command: cmd("x") });
    }
    let ready = node.take_ready();
    assert_eq!(ready.entries.len(), 100, "one log write for the batch");
    let appends: Vec<_> = ready
        .messages
        .iter()
        .filter(|(_, m)| matches!(m, Message::AppendEntries(a) if !a.entries.is_empty()))
        .collect();
    assert_eq!(appends.len(), 2);
}

#[test]
fn pipelining_is_bounded_by_inflight_and_byte_limits() {
    let config = Config { max_inflight: 3, max_append_bytes: 100, ..config() };
    let mut net = Net::with_config(&[1, 2], config);
    net.elect(1);
    let node = net.nodes.get_mut(&1).unwrap();
    for i in 0..50 {
        node.step(Incoming::Propose { id: i, command: Bytes::from(vec![0u8; 40]) });
    }
    let ready = node.take_ready();
    let appends: Vec<&AppendEntries> = ready
        .messages
        .iter()
        .filter_map(|(_, m)| match m {
            Message::AppendEntries(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(appends.len(), 3, "three messages in flight at most");
    assert!(appends
        .iter()
        .all(|a| a.entries.iter().map(Entry::size_hint).sum::<usize>() <= 100 || a.entries.len() == 1));
    net.wire.extend(ready.messages.into_iter().map(|(to, m)| (1, to, m)));
    net.settle();
    net.advance(200);
    assert_eq!(net.node(2).commit_index(), 51);
}

#[test]
fn commit_only_by_counting_current_term_entries_figure_8() {
    // Leader of term 4 whose log holds an entry from term 2 at index 2 that only it and node 2
    // have: replicating it to a majority must not commit it until a term-4 entry commits.
    let initial = InitialState {
        hard_state: HardState { term: 3, vote: None },
        entries: vec![entry(1, 1), entry(2, 2)],
        bootstrap: Membership::new([1, 2, 3, 4, 5]),
        ..InitialState::default()
    };
    let mut leader = Node::new(1, Config { pre_vote: false, ..config() }, initial).unwrap();
    leader.step(Incoming::Tick(Instant(0)));
    leader.step(Incoming::Tick(Instant(1_000)));
    for voter in [2, 3] {
        leader.step(message(
            voter,
            Message::VoteResponse(VoteResponse { term: 4, granted: true, pre_vote: false }),
        ));
    }
    assert_eq!(leader.role(), Role::Leader);
    let _ = leader.take_ready();
    // Nodes 2 and 3 acknowledge index 2 (the term-2 entry) but not yet the no-op at 3.
    for voter in [2, 3] {
        leader.step(message(
            voter,
            Message::AppendResponse(AppendResponse {
                term: 4,
                round: 0,
                result: AppendResult::Success { match_index: 2 },
            }),
        ));
    }
    let _ = leader.take_ready();
    assert_eq!(leader.commit_index(), 0, "a term-2 entry on a majority is not committed by counting");
    leader.step(message(
        2,
        Message::AppendResponse(AppendResponse {
            term: 4,
            round: 0,
            result: AppendResult::Success { match_index: 3 },
        }),
    ));
    leader.step(message(
        3,
        Message::AppendResponse(AppendResponse {
            term: 4,
            round: 0,
            result: AppendResult::Success { match_index: 3 },
        }),
    ));
    let _ = leader.take_ready();
    assert_eq!(leader.commit_index(), 3, "the term-4 no-op commits, and with it everything before");
}

#[test]
fn commit_and_applied_never_go_backwards() {
    let mut node = follower_with_log(&[1, 1, 1], 1);
    node.step(message(2, append(1, LogId::new(1, 3), vec![], 3)));
    assert_eq!(node.commit_index(), 3);
    let _ = node.take_ready();
    node.step(message(2, append(1, LogId::new(1, 1), vec![], 1)));
    assert_eq!(node.commit_index(), 3);
    assert_eq!(node.applied_index(), 3);
}

#[test]
fn heartbeats_with_payloads_and_empty_heartbeats() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.nodes.get_mut(&1).unwrap().step(Incoming::Tick(Instant(net.now + 60)));
    let ready = net.nodes.get_mut(&1).unwrap().take_ready();
    assert!(
        ready.messages.iter().all(|(_, m)| matches!(m, Message::AppendEntries(a) if a.entries.is_empty())),
        "idle heartbeats are empty"
    );
    assert_eq!(ready.messages.len(), 2);
    let node = net.nodes.get_mut(&1).unwrap();
    node.step(Incoming::Propose { id: 1, command: cmd("p") });
    let ready = node.take_ready();
    assert!(ready
        .messages
        .iter()
        .all(|(_, m)| matches!(m, Message::AppendEntries(a) if a.entries.len() == 1)));
}

#[test]
fn redirect_proposals_on_followers_to_the_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(2, Incoming::Propose { id: 9, command: cmd("x") });
    assert!(net
        .events(2)
        .contains(&Event::Proposal { id: 9, result: Err(ProposeError::NotLeader { leader: Some(1) }) }));
}

#[test]
fn persist_before_send_vote_and_entries() {
    let mut node = follower_with_log(&[], 1);
    node.step(message(2, append(2, LogId::default(), vec![entry(2, 1)], 0)));
    let ready = node.take_ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: None }));
    assert_eq!(ready.entries, [entry(2, 1)], "the entries the acknowledgement covers are in the same Ready");
    assert!(!ready.messages.is_empty());
}

#[test]
fn diagnostics_report_the_whole_view() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::Diagnostics);
    let report = net.events(1).iter().find_map(|e| match e {
        Event::Diagnostics(d) => Some(d.clone()),
        _ => None,
    });
    let report = report.unwrap();
    assert_eq!((report.role, report.leader, report.commit_index), (Role::Leader, Some(1), 1));
    assert_eq!(report.peers.len(), 2);
    assert!(report.peers.iter().all(|p| p.match_index == 1 && p.next_index == 2));
    assert_eq!(report.membership, Membership::new([1, 2, 3]));
}

// ----- untrusted input ------------------------------------------------------------------

#[test]
fn malformed_append_entries_are_dropped() {
    let mut node = follower_with_log(&[1], 1);
    let gap = append(1, LogId::new(1, 1), vec![entry(1, 3)], 0);
    let future_term = append(1, LogId::new(1, 1), vec![entry(5, 2)], 0);
    for m in [gap, future_term] {
        node.step(message(2, m));
        let ready = node.take_ready();
        assert!(ready.messages.is_empty());
        assert!(ready.events.contains(&Event::Dropped { from: 2, reason: DropReason::Malformed }));
    }
    node.step(message(0, append(1, LogId::default(), vec![], 0)));
    node.step(message(1, append(1, LogId::default(), vec![], 0)));
    assert_eq!(node.last_log_id(), LogId::new(1, 1));
}

#[test]
fn responses_claiming_entries_past_our_log_are_dropped() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.step(
        1,
        message(
            2,
            Message::AppendResponse(AppendResponse {
                term,
                round: 0,
                result: AppendResult::Success { match_index: 99 },
            }),
        ),
    );
    assert_eq!(net.node(1).commit_index(), 1);
    assert!(net.events(1).contains(&Event::Dropped { from: 2, reason: DropReason::Malformed }));
    net.step(
        1,
        message(
            9,
            Message::AppendResponse(AppendResponse {
                term,
                round: 0,
                result: AppendResult::Success { match_index: 1 },
            }),
        ),
    );
    assert!(net.events(1).contains(&Event::Dropped { from: 9, reason: DropReason::UnknownSender }));
}

#[test]
fn restart_keeps_term_vote_and_log() {
    let initial = InitialState {
        hard_state: HardState { term: 7, vote: Some(2) },
        entries: vec![entry(3, 1), entry(7, 2)],
        applied: 1,
        bootstrap: Membership::new([1, 2, 3]),
        ..InitialState::default()
    };
    let node = Node::new(1, config(), initial).unwrap();
    assert_eq!((node.term(), node.vote(), node.last_log_id()), (7, Some(2), LogId::new(7, 2)));
    assert_eq!((node.commit_index(), node.applied_index()), (1, 1));
}

#[test]
fn bad_configuration_is_refused() {
    let initial = InitialState::default();
    assert_eq!(Node::new(0, config(), initial.clone()).unwrap_err(), ConfigError::ReservedNodeId);
    let bad = Config { election_timeout_min: 300, election_timeout_max: 300, ..config() };
    assert_eq!(Node::new(1, bad, initial).unwrap_err(), ConfigError::ElectionTimeoutRange);
}
