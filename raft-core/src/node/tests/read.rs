//! Linearizable reads: ReadIndex and lease reads (thesis §6.4).

use super::*;
use crate::event::ReadError;

fn query(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

fn read_outcome(net: &Net, node: NodeId, request: RequestId) -> Option<Result<Bytes, ReadError>> {
    net.events(node).iter().find_map(|e| match e {
        Event::Read { id, result } if *id == request => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn leader_serves_a_read_after_a_quorum_heartbeat_round() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::Read { id: 1, query: query("q") });
    assert_eq!(read_outcome(&net, 1, 1), None, "not before a quorum confirms leadership");
    net.settle();
    assert_eq!(read_outcome(&net, 1, 1), Some(Ok(query("q"))));
}

#[test]
fn follower_reads_through_the_leaders_read_index() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::Propose { id: 1, command: cmd("w") });
    net.step(2, Incoming::Read { id: 5, query: query("q") });
    net.settle();
    assert_eq!(read_outcome(&net, 2, 5), Some(Ok(query("q"))));
    assert!(net.commands(2).contains(&cmd("w")), "served only after applying the read index");
}

#[test]
fn isolated_leader_never_serves_and_fails_reads_when_it_steps_down() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.step(1, Incoming::Read { id: 1, query: query("q") });
    net.advance(100);
    assert_eq!(read_outcome(&net, 1, 1), None);
    net.advance(400);
    assert!(matches!(read_outcome(&net, 1, 1), Some(Err(ReadError::LeadershipLost { .. }))));
}

#[test]
fn reads_without_a_known_leader_fail_fast() {
    let mut net = Net::new(&[1, 2, 3]);
    net.step(2, Incoming::Read { id: 1, query: query("q") });
    assert_eq!(read_outcome(&net, 2, 1), Some(Err(ReadError::NotLeader { leader: None })));
}

#[test]
fn lease_reads_skip_the_heartbeat_round_while_the_lease_holds() {
    let mut net = Net::with_config(&[1, 2, 3], Config { lease_reads: true, ..config() });
    net.elect(1);
    net.advance(60); // a heartbeat round answered by a quorum grants the lease
    let node = net.nodes.get_mut(&1).unwrap();
    node.step(Incoming::Read { id: 1, query: query("q") });
    let ready = node.take_ready();
    assert!(ready.messages.is_empty(), "no round needed inside the lease");
    assert_eq!(ready.reads.len(), 1);
}

#[test]
fn new_leader_waits_for_its_first_commit_before_serving_reads() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.advance(1_000);
    let leader = net.leaders().into_iter().find(|&l| l != 1).unwrap();
    // Cut the new leader off from its followers' answers: its no-op cannot commit.
    net.isolate(leader);
    net.step(leader, Incoming::Read { id: 3, query: query("q") });
    net.settle();
    assert_eq!(read_outcome(&net, leader, 3), None);
}

#[test]
fn a_forwarded_read_whose_request_is_lost_times_out() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.cut.push((2, 1)); // one way: node 2 still hears its leader, the leader never hears it
    net.step(2, Incoming::Read { id: 4, query: query("q") });
    net.advance(250);
    assert_eq!(read_outcome(&net, 2, 4), None, "within an election timeout it keeps waiting");
    net.advance(100);
    assert_eq!(read_outcome(&net, 2, 4), Some(Err(ReadError::Timeout)));
    assert_eq!(net.node(2).leader(), Some(1), "the leader did not change meanwhile");
}

#[test]
fn a_drift_bound_past_100_percent_without_lease_reads_does_not_overflow() {
    // `Config::validate` checks the drift bound only when lease reads are on, but every
    // confirmed round computes the lease: `100 - drift` used to underflow and panic.
    let config = Config { lease_clock_drift_percent: 250, ..config() };
    assert!(config.validate().is_ok());
    let mut net = Net::with_config(&[1, 2, 3], config);
    net.elect(1);
    net.step(1, Incoming::Read { id: 1, query: query("q") });
    net.settle();
    assert_eq!(read_outcome(&net, 1, 1), Some(Ok(query("q"))));
}

#[test]
fn a_read_index_that_is_never_applied_does_not_hold_back_later_reads() {
    // A faulty or hostile leader answers one forwarded read with an index that will never be
    // applied here; the reads answered after it must still be served once their index is.
    let mut node = follower_with_log(&[1], 1);
    node.step(message(2, append(1, LogId::new(1, 1), vec![], 1)));
    node.step(Incoming::Read { id: 1, query: query("never") });
    node.step(Incoming::Read { id: 2, query: query("served") });
    let _ = node.take_ready();
    let answer = |request, index| Message::ReadIndexResponse { term: 1, request, index: Some(index) };
    node.step(message(2, answer(1, 1 << 40)));
    node.step(message(2, answer(2, 1)));
    let ready = node.take_ready();
    assert_eq!(ready.reads, [crate::ReadyRead { id: 2, query: query("served") }]);
}

#[test]
fn reads_queued_together_share_one_heartbeat_round() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let node = net.nodes.get_mut(&1).unwrap();
    for id in 1..=10 {
        node.step(Incoming::Read { id, query: query("q") });
    }
    let heartbeats = |messages: &[(NodeId, Message)]| {
        messages
            .iter()
            .filter(|(_, m)| matches!(m, Message::AppendEntries(a) if a.entries.is_empty()))
            .count()
    };
    let ready = node.take_ready();
    assert_eq!(heartbeats(&ready.messages), 2, "one round: one heartbeat per follower, for ten reads");
    assert!(ready.reads.is_empty(), "none before a quorum answers the round");
    let messages = ready.messages;
    for (to, message) in messages {
        net.wire.push_back((1, to, message));
    }
    net.settle();
    assert!((1..=10).all(|id| read_outcome(&net, 1, id) == Some(Ok(query("q")))));

    // A read that arrives while a round is outstanding waits for the next one.
    let node = net.nodes.get_mut(&1).unwrap();
    node.step(Incoming::Read { id: 11, query: query("q") });
    let first = heartbeats(&node.take_ready().messages);
    node.step(Incoming::Read { id: 12, query: query("q") });
    node.step(Incoming::Read { id: 13, query: query("q") });
    let second = heartbeats(&node.take_ready().messages);
    assert_eq!((first, second), (2, 2), "reads 12 and 13 share the round after read 11's");
}
