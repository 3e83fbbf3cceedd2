//! Untrusted input, restarts and configuration errors.

use super::*;
use crate::message::InstallSnapshot;
use crate::types::{MAX_INDEX, MAX_TERM};

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

// ----- terms and indexes at the edge of u64 ------------------------------------------------

fn forged_vote(term: Term, pre_vote: bool) -> Message {
    let last_log = LogId::new(term, MAX_INDEX);
    Message::RequestVote(RequestVote { term, last_log, pre_vote, transfer: false })
}

fn dropped_out_of_range(events: &[Event], from: NodeId) -> bool {
    events.contains(&Event::Dropped { from, reason: DropReason::OutOfRange })
}

#[test]
fn forged_max_term_vote_requests_cannot_brick_the_cluster() {
    // Found by security review: one RequestVote of term u64::MAX to each node used to set every
    // term to 2^64 - 1, and the next election's `term + 1` wrapped to 0 (release builds), so the
    // cluster stayed leaderless for good.
    let mut net = Net::new(&[1, 2, 3]);
    for term in [u64::MAX, u64::MAX - 1, MAX_TERM + 1] {
        for pre_vote in [false, true] {
            for (from, to) in [(2, 1), (3, 2), (1, 3)] {
                net.step(to, message(from, forged_vote(term, pre_vote)));
                assert!(dropped_out_of_range(net.events(to), from), "term {term} to node {to}");
            }
        }
    }
    assert!(net.wire.is_empty(), "no answer to a forged vote request");
    for id in [1, 2, 3] {
        assert_eq!((net.node(id).term(), net.node(id).vote()), (0, None), "node {id}");
    }
    net.advance(1_000);
    assert_eq!(net.leaders().len(), 1, "a leader is still elected");
    let leader = net.leaders()[0];
    assert!(net.node(leader).term() < 10);
    net.step(leader, Incoming::Propose { id: 1, command: cmd("after") });
    net.settle();
    for id in [1, 2, 3] {
        assert_eq!(net.commands(id), [cmd("after")], "entries still commit on node {id}");
    }
}

#[test]
fn a_node_at_the_term_ceiling_follows_and_votes_but_never_campaigns() {
    let mut node = follower_with_log(&[1], MAX_TERM);
    node.step(Incoming::Tick(Instant(10_000)));
    assert_eq!((node.role(), node.term()), (Role::Follower, MAX_TERM), "no term left to run in");
    assert!(node.take_ready().messages.is_empty());
    node.step(message(2, forged_vote(MAX_TERM, false)));
    let ready = node.take_ready();
    let granted = VoteResponse { term: MAX_TERM, granted: true, pre_vote: false };
    assert_eq!(sent(&ready), [(2, &Message::VoteResponse(granted))]);
    node.step(message(2, append(MAX_TERM, LogId::new(1, 1), vec![entry(MAX_TERM, 2)], 2)));
    assert_eq!((node.leader(), node.commit_index()), (Some(2), 2), "it follows a MAX_TERM leader");
    // One below the ceiling, the last election can still be run and won.
    let mut node = follower_with_log(&[1], MAX_TERM - 1);
    node.step(Incoming::Tick(Instant(10_000)));
    let ready = node.take_ready();
    assert!(matches!(sent(&ready)[0].1, Message::RequestVote(r) if r.term == MAX_TERM && r.pre_vote));
    node.step(message(
        2,
        Message::VoteResponse(VoteResponse { term: MAX_TERM, granted: true, pre_vote: true }),
    ));
    node.step(message(
        2,
        Message::VoteResponse(VoteResponse { term: MAX_TERM, granted: true, pre_vote: false }),
    ));
    assert_eq!((node.role(), node.term()), (Role::Leader, MAX_TERM));
}

#[test]
fn a_node_restored_with_a_wrapped_term_stays_out_and_harmless() {
    // A disk written by the old version after the attack above holds term u64::MAX. The node
    // keeps it (lowering a persisted term could let it vote twice), never campaigns, and the
    // others drop its answers instead of adopting the term.
    let mut net = Net::new(&[1, 2, 3]);
    let bricked = InitialState {
        hard_state: HardState { term: u64::MAX, vote: Some(3) },
        entries: vec![entry(1, 1)],
        applied: 1,
        bootstrap: Membership::new([1, 2, 3]),
        ..InitialState::default()
    };
    net.restart(3, bricked);
    net.advance(3_000);
    assert_eq!(net.leaders().len(), 1);
    let leader = net.leaders()[0];
    assert_ne!(leader, 3);
    assert!(net.node(leader).term() < 10, "the healthy nodes kept their terms");
    assert_eq!((net.node(3).role(), net.node(3).term()), (Role::Follower, u64::MAX));
    assert!(dropped_out_of_range(net.events(leader), 3), "its stale answers are dropped");
    net.step(leader, Incoming::Propose { id: 1, command: cmd("x") });
    net.settle();
    let other = 3 - leader;
    assert_eq!(net.commands(other), [cmd("x")], "the two healthy nodes still commit");
}

#[test]
fn positions_that_overflow_are_dropped_not_computed() {
    let mut node = follower_with_log(&[1], 1);
    let past_the_end = [
        append(1, LogId::new(1, u64::MAX), vec![entry(1, 0)], 0),
        append(1, LogId::new(1, MAX_INDEX), vec![entry(1, MAX_INDEX + 1)], 0),
        append(1, LogId::new(1, 1), vec![], u64::MAX),
        append(u64::MAX, LogId::new(1, 1), vec![], 1),
    ];
    let meta = SnapshotMeta { last: LogId::new(0, 0), membership: Membership::new([1, 2, 3]) };
    let chunk = InstallSnapshot { term: 1, meta, offset: u64::MAX, data: cmd("overflow"), done: true };
    for m in past_the_end.into_iter().chain([Message::InstallSnapshot(chunk.into())]) {
        node.step(message(2, m));
        let ready = node.take_ready();
        assert!(ready.messages.is_empty());
        assert!(dropped_out_of_range(&ready.events, 2));
    }
    assert_eq!((node.term(), node.last_log_id(), node.commit_index()), (1, LogId::new(1, 1), 0));
}

mod random_input {
    //! Arbitrary inputs, including nonsense no correct peer would send: the node must never
    //! panic and never break its own invariants.

    use super::*;
    use crate::event::MembershipChange;
    use crate::message::SnapshotResponse;
    use proptest::collection::vec as pvec;
    use proptest::prelude::*;

    fn log_id() -> impl Strategy<Value = LogId> {
        (0u64..6, 0u64..10).prop_map(|(t, i)| LogId::new(t, i))
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        (0u64..10, pvec((0u64..6, any::<bool>()), 0..4)).prop_map(|(start, items)| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (term, noop))| Entry {
                    term,
                    index: start + i as u64,
                    payload: if noop { Payload::Noop } else { Payload::Command(cmd("r")) },
                })
                .collect()
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (0u64..6, log_id(), any::<bool>(), any::<bool>()).prop_map(
                |(term, last_log, pre_vote, transfer)| {
                    Message::RequestVote(RequestVote { term, last_log, pre_vote, transfer })
                }
            ),
            (0u64..6, any::<bool>(), any::<bool>()).prop_map(|(term, granted, pre_vote)| {
                Message::VoteResponse(VoteResponse { term, granted, pre_vote })
            }),
            (0u64..6, log_id(), entries(), 0u64..12, 0u64..4).prop_map(
                |(term, prev, entries, commit, round)| {
                    Message::AppendEntries(AppendEntries { term, prev, entries, commit, round })
                }
            ),
            (0u64..6, 0u64..4, 0u64..12, any::<bool>(), log_id()).prop_map(
                |(term, round, index, ok, hint)| {
                    let result = if ok {
                        AppendResult::Success { match_index: index }
                    } else {
                        AppendResult::Conflict { rejected: index, hint }
                    };
                    Message::AppendResponse(AppendResponse { term, round, result })
                }
            ),
            (0u64..6, log_id(), 0u64..8, any::<bool>()).prop_map(|(term, last, offset, done)| {
                let meta = SnapshotMeta { last, membership: Membership::new([1, 2, 3]) };
                Message::InstallSnapshot(
                    InstallSnapshot { term, meta, offset, data: cmd("snap"), done }.into(),
                )
            }),
            (0u64..6, 0u64..10, 0u64..8, any::<bool>()).prop_map(|(term, last_index, next_offset, done)| {
                Message::SnapshotResponse(SnapshotResponse { term, last_index, next_offset, done })
            }),
            (0u64..6).prop_map(|term| Message::TimeoutNow { term }),
            (0u64..6, 0u64..4).prop_map(|(term, request)| Message::ReadIndexRequest { term, request }),
            (0u64..6, 0u64..4, proptest::option::of(0u64..10))
                .prop_map(|(term, request, index)| Message::ReadIndexResponse { term, request, index }),
        ]
    }

    fn input() -> impl Strategy<Value = Incoming> {
        prop_oneof![
            4 => (0u64..7, message()).prop_map(|(from, message)| Incoming::Message { from, message }),
            2 => (0u64..2_000).prop_map(|t| Incoming::Tick(Instant(t))),
            1 => (0u64..4).prop_map(|id| Incoming::Propose { id, command: cmd("p") }),
            1 => (0u64..4).prop_map(|id| Incoming::Read { id, query: cmd("q") }),
            1 => (0u64..6).prop_map(|n| Incoming::ChangeMembership { id: 1, change: MembershipChange::AddVoter(n) }),
            1 => (0u64..6).prop_map(|n| Incoming::ChangeMembership { id: 2, change: MembershipChange::Remove(n) }),
            1 => (0u64..6).prop_map(|to| Incoming::TransferLeadership { id: 3, to }),
            1 => Just(Incoming::Compact),
            1 => Just(Incoming::Diagnostics),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_inputs_never_panic_or_break_invariants(
            inputs in pvec(input(), 1..80),
            config_bits in 0u8..8,
        ) {
            let config = Config {
                pre_vote: config_bits & 1 != 0,
                check_quorum: config_bits & 2 != 0,
                snapshot_every: if config_bits & 4 != 0 { 2 } else { 0 },
                ..config()
            };
            let initial = InitialState { bootstrap: Membership::new([1, 2, 3]), ..InitialState::default() };
            let mut node = Node::new(1, config, initial).unwrap();
            let (mut term, mut commit, mut applied) = (0, 0, 0);
            for input in inputs {
                node.step(input);
                let ready = node.take_ready();
                let mut applied_now = applied;
                for entry in ready.apply {
                    prop_assert_eq!(entry.index, applied_now + 1, "entries applied in order, once");
                    applied_now = entry.index;
                }
                if let Some(snapshot) = &ready.snapshot {
                    applied_now = applied_now.max(snapshot.meta.last.index);
                }
                if let Some(meta) = ready.take_snapshot {
                    node.snapshot_taken(Snapshot { meta, data: cmd("s") });
                }
                prop_assert!(node.term() >= term, "term went back");
                prop_assert!(node.commit_index() >= commit, "commit went back");
                prop_assert!(node.applied_index() >= applied, "applied went back");
                prop_assert!(node.applied_index() <= node.commit_index());
                prop_assert!(node.commit_index() <= node.last_log_id().index);
                if node.role() == Role::Leader {
                    prop_assert_eq!(node.vote(), Some(1), "a leader voted for itself in its term");
                }
                applied = applied_now;
                term = node.term();
                commit = node.commit_index();
                applied = applied.max(node.applied_index());
            }
        }
    }
}
