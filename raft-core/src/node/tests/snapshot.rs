//! Snapshots and log compaction (Raft §7).

use super::*;
use crate::message::InstallSnapshot;

#[test]
fn snapshot_policy_compacts_the_log() {
    let mut net = Net::with_config(&[1, 2, 3], Config { snapshot_every: 10, ..config() });
    net.elect(1);
    for i in 0..25 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    net.advance(100);
    for id in [1, 2, 3] {
        assert!(net.node(id).first_index() > 20, "node {id} compacted: {}", net.node(id).first_index());
        assert!(net.events(id).iter().any(|e| matches!(e, Event::Compacted { .. })));
    }
}

#[test]
fn the_snapshot_policy_waits_for_log_bytes_in_proportion_to_the_state() {
    // The rule tests' snapshots are 5 bytes ("state"), and an entry of a one-byte command
    // counts 25 bytes: at 10,000 %, the log must hold 500 bytes (20 entries) past a snapshot,
    // where `snapshot_every` alone would take one every 10 entries.
    for (percent, gap) in [(0, 10), (10_000, 20)] {
        let config = Config { snapshot_every: 10, snapshot_log_percent: percent, ..config() };
        let mut net = Net::with_config(&[1, 2, 3], config);
        net.elect(1);
        for i in 0..60 {
            net.step(1, Incoming::Propose { id: i, command: cmd("x") });
            net.settle();
        }
        let compacted: Vec<Index> = (net.events(1).iter())
            .filter_map(|e| match e {
                Event::Compacted { through } => Some(*through),
                _ => None,
            })
            .collect();
        assert!(compacted.len() >= 3, "{percent} %: snapshots at {compacted:?}");
        assert_eq!(compacted[0], 10, "the first snapshot counts entries only");
        for pair in compacted.windows(2) {
            assert_eq!(pair[1] - pair[0], gap, "{percent} %: snapshots at {compacted:?}");
        }
    }
}

#[test]
fn lagging_follower_receives_a_chunked_snapshot_then_entries() {
    let config = Config { snapshot_every: 5, snapshot_chunk_bytes: 2, ..config() };
    let mut net = Net::with_config(&[1, 2, 3], config);
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    net.advance(100);
    assert!(net.node(1).first_index() > 1, "the leader compacted what node 3 lacks");
    net.heal();
    net.advance(500);
    let installed = net.installed(3);
    assert_eq!(installed.len(), 1);
    assert!(installed[0].last.index >= 15);
    assert_eq!(installed[0].membership, Membership::new([1, 2, 3]));
    net.step(1, Incoming::Propose { id: 100, command: cmd("after") });
    net.settle();
    assert_eq!(net.node(3).commit_index(), net.node(1).commit_index());
    assert_eq!(net.commands(3).last(), Some(&cmd("after")), "normal replication resumed");
}

#[test]
fn compact_on_request_and_restart_from_the_snapshot() {
    let mut net = Net::new(&[1]);
    net.elect(1);
    for i in 0..5 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.step(1, Incoming::Compact);
    assert_eq!(net.node(1).first_index(), 7);
    let snapshot = SnapshotInfo {
        meta: SnapshotMeta { last: LogId::new(net.node(1).term(), 6), membership: Membership::new([1]) },
        size: 5,
    };
    let initial = InitialState { snapshot: Some(snapshot), applied: 6, ..InitialState::default() };
    let restarted = Node::new(1, config(), initial).unwrap();
    assert_eq!((restarted.first_index(), restarted.commit_index()), (7, 6));
    assert_eq!(*restarted.membership(), Membership::new([1]));
}

#[test]
fn a_stale_leader_caught_up_by_snapshot_never_claims_its_proposal_committed() {
    // Found by the raft-embassy catch-up scenario: the old leader still holds its own
    // uncommitted entry when the snapshot arrives, so matching that entry proves nothing. Its
    // log does not reach the snapshot's last entry, so it cannot know either way.
    let config = Config { snapshot_every: 5, ..config() };
    let mut net = Net::with_config(&[1, 2, 3], config);
    net.elect(1);
    net.isolate(1);
    net.step(1, Incoming::Propose { id: 7, command: cmd("lost") });
    net.advance(1_000);
    let leader = net.leaders().into_iter().find(|&l| l != 1).unwrap();
    for i in 0..20 {
        net.step(leader, Incoming::Propose { id: 100 + i, command: cmd("x") });
    }
    net.settle();
    net.advance(100);
    net.heal();
    net.advance(500);
    assert_eq!(net.installed(1).len(), 1, "the old leader caught up by snapshot");
    let outcome = net.events(1).iter().find_map(|e| match e {
        Event::Proposal { id: 7, result } => Some(result.clone()),
        _ => None,
    });
    assert!(matches!(outcome, Some(Err(ProposeError::OutcomeUnknown { .. }))), "{outcome:?}");
}

/// A leader of `term` holding entries with these terms, whose proposal `id` sits at `index`.
fn leader_with_proposal(terms: &[Term], term: Term, index: Index, id: RequestId) -> Node {
    let entries = terms.iter().enumerate().map(|(i, &t)| entry(t, i as Index + 1)).collect();
    let initial = InitialState {
        hard_state: HardState { term, vote: None },
        entries,
        bootstrap: Membership::new([1, 2, 3]),
        ..InitialState::default()
    };
    let mut node = Node::new(1, config(), initial).unwrap();
    node.step(Incoming::Tick(Instant(0)));
    node.proposals.push_back((index, terms[index as usize - 1], id));
    node
}

fn install(node: &mut Node, last: LogId) -> Vec<Event> {
    let meta = SnapshotMeta { last, membership: Membership::new([1, 2, 3]) };
    let chunk = InstallSnapshot { term: 9, meta, offset: 0, data: Bytes::from_static(b"s"), done: true };
    node.step(message(2, Message::InstallSnapshot(chunk.into())));
    let ready = node.take_ready();
    ready.events
}

fn proposal_outcome(events: &[Event]) -> Option<Result<crate::event::Applied, ProposeError>> {
    events.iter().find_map(|e| match e {
        Event::Proposal { id: 5, result } => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn proposals_covered_by_a_snapshot_get_the_outcome_the_node_can_prove() {
    // Our log agrees with the snapshot's last entry: our entry at 2 is the committed one.
    let mut node = leader_with_proposal(&[1, 2, 2], 2, 2, 5);
    let events = install(&mut node, LogId::new(2, 3));
    assert_eq!(proposal_outcome(&events), Some(Err(ProposeError::ResponseLost { index: 2 })));
    // Our log agrees, but holds another term at 2: superseded.
    let mut node = leader_with_proposal(&[1, 1, 2], 2, 2, 5);
    node.proposals.clear();
    node.proposals.push_back((2, 3, 5));
    let events = install(&mut node, LogId::new(2, 3));
    assert!(matches!(proposal_outcome(&events), Some(Err(ProposeError::Superseded { .. }))));
    // Our log ends before the snapshot: a term above the snapshot's last term cannot be there.
    let mut node = leader_with_proposal(&[1, 3], 3, 2, 5);
    let events = install(&mut node, LogId::new(2, 9));
    assert!(matches!(proposal_outcome(&events), Some(Err(ProposeError::Superseded { .. }))));
    // ... but a term at or below it may or may not be: the node cannot know.
    let mut node = leader_with_proposal(&[1, 2], 2, 2, 5);
    let events = install(&mut node, LogId::new(2, 9));
    assert_eq!(proposal_outcome(&events), Some(Err(ProposeError::OutcomeUnknown { index: 2 })));
}

#[test]
fn compaction_carries_the_configuration_past_a_later_truncation() {
    // Found by testkit chaos seeds 238, 720, 1879: the compacted configuration entry must not
    // leave the node falling back to its bootstrap voters when a suffix is truncated later.
    let mut node = follower_with_log(&[1], 1);
    let learner = Membership { learners: [6].into(), ..Membership::new([1, 2, 3]) };
    let entries = vec![
        Entry { term: 1, index: 2, payload: Payload::Membership(learner.clone().into()) },
        entry(1, 3),
        entry(1, 4),
    ];
    node.step(message(2, append(1, LogId::new(1, 1), entries, 3)));
    let ready = node.take_ready();
    assert_eq!(ready.apply.len(), 3);
    node.step(Incoming::Compact);
    let ready = node.take_ready();
    let meta = ready.take_snapshot.clone().expect("a snapshot at the applied index");
    assert_eq!(meta.membership, learner);
    node.snapshot_taken(SnapshotInfo { meta, size: 1 });
    // A new leader replaces the uncommitted entry 4.
    node.step(message(3, append(2, LogId::new(1, 3), vec![entry(2, 4)], 3)));
    assert_eq!(node.last_log_id(), LogId::new(2, 4));
    assert_eq!(*node.membership(), learner, "still the compacted configuration, not the bootstrap one");
}

#[test]
fn a_snapshot_from_a_later_term_than_its_sender_is_refused() {
    // A leader of term 2 cannot hold an entry of term 5. Installed, such a snapshot would give
    // the follower a last log term above its current term: it would refuse its vote to every
    // honest candidate, and entries appended after it would break the term order of the log.
    let mut node = follower_with_log(&[1], 1);
    let meta = SnapshotMeta { last: LogId::new(5, 10), membership: Membership::new([1, 2, 3]) };
    let chunk = InstallSnapshot { term: 2, meta, offset: 0, data: Bytes::from_static(b"s"), done: true };
    node.step(message(2, Message::InstallSnapshot(chunk.into())));
    let ready = node.take_ready();
    assert!(ready.install_snapshot.is_none() && ready.snapshot_chunks.is_empty());
    assert!(ready.events.contains(&Event::Dropped { from: 2, reason: DropReason::Malformed }));
    assert_eq!((node.last_log_id(), node.term()), (LogId::new(1, 1), 2));
}
