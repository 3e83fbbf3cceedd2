//! Log replication and commit (Raft §5.3, §5.4.2).

use super::*;
use crate::event::ReplicationState;

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
        node.step(Incoming::Propose { id: i, command: vec![0u8; 40].into() });
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
        leader.step(message(voter, ack(4, 2)));
    }
    let _ = leader.take_ready();
    assert_eq!(leader.commit_index(), 0, "a term-2 entry on a majority is not committed by counting");
    leader.step(message(2, ack(4, 3)));
    leader.step(message(3, ack(4, 3)));
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
        Event::Diagnostics(d) => Some((**d).clone()),
        _ => None,
    });
    let report = report.unwrap();
    assert_eq!((report.role, report.leader, report.commit_index), (Role::Leader, Some(1), 1));
    assert_eq!(report.peers.len(), 2);
    assert!(report.peers.iter().all(|p| p.match_index == 1 && p.next_index == 2));
    assert_eq!(report.membership, Membership::new([1, 2, 3]));
}

// ----- a follower whose storage lost acknowledged entries ----------------------------------

fn lost_entries_events(net: &Net, leader: NodeId) -> Vec<Event> {
    let lost = |e: &&Event| matches!(e, Event::FollowerLostEntries { .. });
    net.events(leader).iter().filter(lost).cloned().collect()
}

fn peer_diagnostics(net: &Net, leader: NodeId, peer: NodeId) -> crate::event::PeerDiagnostics {
    net.node(leader).diagnostics().peers.into_iter().find(|p| p.id == peer).unwrap()
}

#[test]
fn a_follower_that_lost_acknowledged_entries_catches_up_without_an_election() {
    // Found by security review: the leader kept the old match index and took every rejection
    // at or below it for a stale one, so the follower stayed behind until leadership changed.
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..5 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    assert_eq!(net.node(3).commit_index(), 6);
    let term = net.node(1).term();
    net.restart_with_log_through(3, 2);
    assert_eq!((net.node(3).last_log_id().index, net.node(3).commit_index()), (2, 0));
    net.advance(200);
    assert_eq!(net.node(3).last_log_id(), net.node(1).last_log_id());
    assert_eq!(net.node(3).commit_index(), 6, "its commit index advances again");
    assert_eq!(net.commands(3).len(), 5, "and it applies the lost entries again");
    assert_eq!((net.leaders(), net.node(1).term()), (vec![1], term), "without any leadership change");
    let warning = Event::FollowerLostEntries { peer: 3, match_index: 6, first_missing: 3 };
    assert_eq!(lost_entries_events(&net, 1), [warning]);
    let peer = peer_diagnostics(&net, 1, 3);
    assert_eq!((peer.lost_entries, peer.match_index, peer.state), (1, 6, ReplicationState::Replicate));
    assert_eq!(net.node(1).commit_index(), 6, "the leader's commit index never went back");
}

#[test]
fn a_late_duplicate_rejection_does_not_lower_the_match_index() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    net.heal();
    // The next heartbeat finds node 3 behind. Its rejection is duplicated: one copy arrives at
    // once (the leader backtracks and catches it up), the other only afterwards.
    net.now += 60;
    net.step(1, Incoming::Tick(Instant(net.now)));
    let mut late = None;
    while let Some((from, to, m)) = net.wire.pop_front() {
        let conflict =
            matches!(&m, Message::AppendResponse(r) if matches!(r.result, AppendResult::Conflict { .. }));
        if from == 3 && conflict && late.is_none() {
            late = Some(m.clone());
        }
        net.step(to, message(from, m));
    }
    assert_eq!(peer_diagnostics(&net, 1, 3).match_index, 6, "caught up");
    let late = late.expect("node 3 rejected the heartbeat");
    assert!(matches!(&late, Message::AppendResponse(r) if r.result == AppendResult::Conflict {
        rejected: 6,
        hint: LogId::new(0, 2)
    }));
    net.step(1, message(3, late));
    let peer = peer_diagnostics(&net, 1, 3);
    assert_eq!((peer.match_index, peer.state, peer.lost_entries), (6, ReplicationState::Replicate, 0));
    assert!(lost_entries_events(&net, 1).is_empty(), "a late rejection proves nothing");
}

#[test]
fn lost_entries_below_the_leaders_first_index_come_back_in_a_snapshot() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..10 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    net.step(1, Incoming::Compact);
    assert_eq!(net.node(1).first_index(), 12, "only the leader compacted");
    net.restart_with_log_through(3, 3);
    net.advance(200);
    let installed: Vec<Index> = net.installed(3).iter().map(|m| m.last.index).collect();
    assert_eq!(installed, [11], "the entries it lost are only in the leader's snapshot");
    assert_eq!(net.node(3).commit_index(), 11);
    let warning = Event::FollowerLostEntries { peer: 3, match_index: 11, first_missing: 4 };
    assert_eq!(lost_entries_events(&net, 1), [warning]);
    assert_eq!(net.leaders(), [1]);
    net.step(1, Incoming::Propose { id: 99, command: cmd("after") });
    net.settle();
    assert_eq!(net.commands(3).last(), Some(&cmd("after")), "normal replication resumed");
}

/// What an observer saw while a Ready was carried out: checkpoints and messages, in order.
#[derive(Default)]
struct Order(Vec<&'static str>);

impl crate::Observer<MemState, Recorder> for Order {
    fn observe(&mut self, step: crate::Step<'_>, log: &MemState, _: &Recorder) -> core::ops::ControlFlow<()> {
        self.0.push(match step {
            crate::Step::Checkpoint(point) => point.name(),
            crate::Step::Sending { .. } if log.last_log_id().index == 2 => "send (entry durable)",
            crate::Step::Sending { .. } => "send (entry not yet durable)",
            _ => return core::ops::ControlFlow::Continue(()),
        });
        core::ops::ControlFlow::Continue(())
    }
}

#[test]
fn a_leader_sends_its_entries_before_it_writes_them_itself() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let leader = net.nodes.get_mut(&1).unwrap();
    leader.step(Incoming::Propose { id: 1, command: cmd("a") });
    let ready = leader.take_ready();
    assert!(ready.send_first, "a leader's replication needs nothing durable first");
    assert_eq!(ready.entries.len(), 1);
    let (log, machine) = net.stores.get_mut(&1).unwrap();
    let (mut order, mut out) = (Order::default(), Vec::new());
    let carried = block_on(crate::carry_out(ready, log, machine, &mut order, &mut out)).unwrap();
    assert_eq!(carried, crate::Carried::Done(None));
    assert_eq!(
        order.0,
        [
            "before_send",
            "send (entry not yet durable)",
            "send (entry not yet durable)",
            "after_send",
            "before_persist"
        ]
    );
    assert_eq!(log.last_log_id().index, 2, "the write still happens before the Ready is done");
    // Both acknowledgements arrive only after the write: the commit counts a durable leader.
    net.wire.extend(out.into_iter().filter_map(|o| match o {
        Outgoing::Send { to, message } => Some((1, to, message)),
        Outgoing::Event(_) => None,
    }));
    net.settle();
    assert_eq!(net.node(1).commit_index(), 2);
}

#[test]
fn followers_and_candidates_persist_before_they_speak() {
    // A follower's acknowledgement reports a durable log.
    let mut follower = follower_with_log(&[1], 1);
    follower.step(message(2, append(1, LogId::new(1, 1), vec![entry(1, 2)], 0)));
    assert!(!follower.take_ready().send_first);
    // A candidate's request reveals a term and a self-vote that must be durable first.
    let mut net = Net::new(&[1, 2, 3]);
    let candidate = net.nodes.get_mut(&1).unwrap();
    candidate.campaign(Campaign::Election);
    let ready = candidate.take_ready();
    assert!(ready.hard_state.is_some() && !ready.send_first);
}

#[test]
fn a_lone_voter_writes_before_it_tells_a_learner_of_a_commit() {
    // Chaos seed 44's shape: voter 1 alone commits each entry as it appends it, so its
    // AppendEntries to learner 2 carries that commit; it must not leave before the write.
    let mut net = Net::new(&[1]);
    net.elect(1);
    net.add_blank_node(2);
    net.step(1, Incoming::ChangeMembership { id: 1, change: crate::MembershipChange::AddLearner(2) });
    net.settle();
    let leader = net.nodes.get_mut(&1).unwrap();
    leader.step(Incoming::Propose { id: 2, command: cmd("a") });
    let ready = leader.take_ready();
    let first = ready.entries.first().map(|e| e.index);
    assert!(!ready.send_first, "its messages reveal a commit of the entry being written");
    drop(ready);
    assert_eq!(first, Some(net.node(1).commit_index()));
}
