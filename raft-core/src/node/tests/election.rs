//! Elections, pre-vote and check-quorum (Raft §5.2, §5.4.1; thesis §9.6, §6.2).

use super::*;

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
    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.term(), 3, "a pre-vote never raises the term");
    let ready = node.take_ready();
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
fn reject_out_of_cluster_request_vote_while_a_leader_lives() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(2).term();
    let ask = RequestVote { term: 9, last_log: LogId::new(9, 9), pre_vote: false, transfer: false };
    net.step(2, message(7, Message::RequestVote(ask)));
    assert_eq!(net.node(2).term(), term, "a stranger cannot raise our term");
    assert!(net.events(2).contains(&Event::Dropped { from: 7, reason: DropReason::LeaderLease }));
    assert!(net.wire.is_empty(), "and gets no vote");
}

#[test]
fn a_node_waiting_to_be_added_still_votes() {
    // A node whose configuration is still empty may already be needed for a quorum.
    let mut node = Node::new(4, config(), InitialState::default()).unwrap();
    let ask = RequestVote { term: 2, last_log: LogId::new(1, 3), pre_vote: false, transfer: false };
    node.step(message(1, Message::RequestVote(ask)));
    let ready = node.take_ready();
    assert!(matches!(sent(&ready)[0].1, Message::VoteResponse(VoteResponse { granted: true, .. })));
}

#[test]
fn higher_term_makes_any_role_a_follower() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.step(1, message(2, ack(term + 5, 0)));
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
