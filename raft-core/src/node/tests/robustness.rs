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
    let state = HardState { term: u64::MAX, vote: Some(3) };
    let bricked = MemState::with_log(Membership::new([1, 2, 3]), state, [entry(1, 1)]).unwrap();
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
fn a_node_restored_past_the_index_ceiling_only_follows() {
    // An older version installed whatever snapshot a peer sent, so a disk may hold one at the
    // top of u64 (and entries past MAX_INDEX). The node keeps the snapshot, cuts the entries,
    // never campaigns, and acknowledges a leader without computing past the end of u64.
    for last in [MAX_INDEX, MAX_INDEX + 1, u64::MAX] {
        let meta = SnapshotMeta { last: LogId::new(1, last), membership: Membership::new([1, 2, 3]) };
        let initial = InitialState {
            hard_state: HardState { term: 1, vote: None },
            snapshot: Some(SnapshotInfo { meta, size: 1 }),
            entries: vec![entry(1, last.saturating_add(1))],
            applied: last,
            bootstrap: Membership::default(),
        };
        let mut node = Node::new(1, config(), initial).unwrap();
        assert_eq!((node.last_log_id(), node.commit_index()), (LogId::new(1, last), last));
        node.step(Incoming::Tick(Instant(0)));
        node.step(Incoming::Tick(Instant(10_000)));
        assert_eq!(node.role(), Role::Follower, "no room for a new leader's no-op");
        node.step(message(2, append(2, LogId::new(1, 5), vec![entry(2, 6)], 6)));
        let ready = node.take_ready();
        assert!(ready.apply.is_empty() && ready.entries.is_empty());
        assert!(matches!(
            sent(&ready)[..],
            [(2, Message::AppendResponse(AppendResponse { result: AppendResult::Success { .. }, .. }))]
        ));
    }
}

#[test]
fn a_leader_whose_log_is_full_steps_down_instead_of_appending_past_the_ceiling() {
    // One below the ceiling, a node can still win: its no-op takes the last index there is.
    let meta = SnapshotMeta { last: LogId::new(1, MAX_INDEX - 1), membership: Membership::new([1]) };
    let initial = InitialState {
        hard_state: HardState { term: 1, vote: None },
        snapshot: Some(SnapshotInfo { meta, size: 1 }),
        applied: MAX_INDEX - 1,
        ..InitialState::default()
    };
    let mut node = Node::new(1, config(), initial).unwrap();
    node.step(Incoming::Tick(Instant(0)));
    node.step(Incoming::Tick(Instant(1_000)));
    assert_eq!((node.role(), node.last_log_id()), (Role::Leader, LogId::new(2, MAX_INDEX)));
    let _ = node.take_ready();
    node.step(Incoming::Propose { id: 7, command: cmd("no room") });
    assert_eq!(node.role(), Role::Follower, "a leader that cannot append steps down");
    let ready = node.take_ready();
    let refused = Event::Proposal { id: 7, result: Err(ProposeError::NotLeader { leader: None }) };
    assert!(ready.events.contains(&refused));
    assert!(ready.entries.is_empty());
    node.step(Incoming::Tick(Instant(10_000)));
    assert_eq!((node.role(), node.last_log_id().index), (Role::Follower, MAX_INDEX), "and never campaigns");
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
    let chunk = InstallSnapshot {
        term: 1,
        meta,
        offset: u64::MAX,
        data: Bytes::from_static(b"overflow"),
        done: true,
    };
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
    //!
    //! Every number is drawn to favour what breaks arithmetic: 0, 1, the ceilings and the edges
    //! of `u64`, and values a few steps either side of the node's own term and last index: the
    //! ones it starts from (themselves drawn from the edges, so storage is tested as untrusted
    //! input too) and, for [`Step::Relative`] messages, the ones it has when the message
    //! arrives. [`Step::Cooperate`] answers like a correct peer, so runs also get through
    //! elections and replication with the nonsense mixed in. Run it optimized with overflow
    //! checks on, and with many cases, as CI does:
    //! `cargo test -p raft-core --profile release-checked random_input`.

    use super::*;
    use crate::event::MembershipChange;
    use crate::message::SnapshotResponse;
    use proptest::collection::vec as pvec;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Values at the edges of the ceilings and of `u64`.
    const EDGES: [u64; 9] =
        [0, 1, 2, MAX_TERM - 1, MAX_TERM, MAX_TERM + 1, u64::MAX - 2, u64::MAX - 1, u64::MAX];

    /// What storage holds when the node starts: its term, and its snapshot's last index.
    #[derive(Clone, Copy, Debug)]
    struct Start {
        term: Term,
        index: Index,
    }

    impl Start {
        /// Whether the node starts within the ceilings (then it must stay there).
        fn in_range(self) -> bool {
            self.term <= MAX_TERM && self.index <= MAX_INDEX
        }

        fn initial_state(self, entries: usize) -> InitialState {
            let membership = Membership::new([1, 2, 3]);
            let snapshot = (self.index > 0).then(|| SnapshotInfo {
                meta: SnapshotMeta {
                    last: LogId::new(self.term, self.index),
                    membership: membership.clone(),
                },
                size: 1,
            });
            let entries = (1..=entries as u64)
                .filter_map(|i| self.index.checked_add(i))
                .map(|index| Entry { term: self.term, index, payload: Payload::Noop })
                .collect();
            InitialState {
                hard_state: HardState { term: self.term, vote: None },
                snapshot,
                entries,
                applied: self.index,
                bootstrap: membership,
            }
        }
    }

    fn start() -> impl Strategy<Value = Start> {
        let base = || prop_oneof![6 => Just(0u64), 1 => Just(1u64 << 32), 3 => select(&EDGES[3..])];
        (base(), base()).prop_map(|(term, index)| Start { term, index })
    }

    /// A number near `base`: small, a few steps either side, at an edge, or anything at all.
    fn near(base: u64) -> BoxedStrategy<u64> {
        prop_oneof![
            3 => 0u64..8,
            4 => (-3i64..=6).prop_map(move |step| base.saturating_add_signed(step)),
            2 => select(&EDGES[..]),
            1 => any::<u64>(),
        ]
        .boxed()
    }

    fn term(s: Start) -> BoxedStrategy<Term> {
        near(s.term)
    }

    fn index(s: Start) -> BoxedStrategy<Index> {
        near(s.index)
    }

    fn log_id(s: Start) -> impl Strategy<Value = LogId> {
        (term(s), index(s)).prop_map(|(t, i)| LogId::new(t, i))
    }

    /// Node ids: the cluster's, a stranger, the reserved 0, and the top of `u64`.
    fn node_id() -> impl Strategy<Value = NodeId> {
        prop_oneof![8 => 0u64..6, 1 => select(&EDGES[..])]
    }

    /// Request ids and rounds: small ones collide with real ones; edges test the rest.
    fn small() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0u64..5, 1 => select(&EDGES[..])]
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            3 => Just(Payload::Noop),
            3 => Just(Payload::Command(cmd("r"))),
            1 => pvec(node_id(), 0..4).prop_map(|voters| Payload::Membership(Membership::new(voters).into())),
        ]
    }

    /// Entries after `prev`: mostly consecutive with plausible terms (so they get past the
    /// structural check and reach the log), sometimes anything.
    fn append_entries(s: Start) -> impl Strategy<Value = Message> {
        let items = pvec((term(s), payload()), 0..4);
        (term(s), log_id(s), 0u8..3, index(s), items, index(s), small()).prop_map(
            |(term, prev, shape, first, items, commit, round)| {
                let first = if shape == 2 { first } else { prev.index.wrapping_add(1) };
                let entries = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, (entry_term, payload))| Entry {
                        term: if shape == 0 { term } else { entry_term },
                        index: first.wrapping_add(i as u64),
                        payload,
                    })
                    .collect();
                Message::AppendEntries(AppendEntries { term, prev, entries, commit, round })
            },
        )
    }

    fn message(s: Start) -> BoxedStrategy<Message> {
        prop_oneof![
            (term(s), log_id(s), any::<bool>(), any::<bool>()).prop_map(
                |(term, last_log, pre_vote, transfer)| {
                    Message::RequestVote(RequestVote { term, last_log, pre_vote, transfer })
                }
            ),
            (term(s), any::<bool>(), any::<bool>()).prop_map(|(term, granted, pre_vote)| {
                Message::VoteResponse(VoteResponse { term, granted, pre_vote })
            }),
            append_entries(s),
            (term(s), small(), index(s), any::<bool>(), log_id(s)).prop_map(
                |(term, round, index, ok, hint)| {
                    let result = if ok {
                        AppendResult::Success { match_index: index }
                    } else {
                        AppendResult::Conflict { rejected: index, hint }
                    };
                    Message::AppendResponse(AppendResponse { term, round, result })
                }
            ),
            (term(s), log_id(s), near(0), 0usize..6, any::<bool>()).prop_map(
                |(term, last, offset, len, done)| {
                    let meta = SnapshotMeta { last, membership: Membership::new([1, 2, 3]) };
                    let data = Bytes::from(vec![7u8; len]);
                    Message::InstallSnapshot(InstallSnapshot { term, meta, offset, data, done }.into())
                }
            ),
            (term(s), index(s), near(0), any::<bool>()).prop_map(|(term, last_index, next_offset, done)| {
                Message::SnapshotResponse(SnapshotResponse { term, last_index, next_offset, done })
            }),
            term(s).prop_map(|term| Message::TimeoutNow { term }),
            (term(s), small()).prop_map(|(term, request)| Message::ReadIndexRequest { term, request }),
            (term(s), small(), proptest::option::of(index(s)))
                .prop_map(|(term, request, index)| Message::ReadIndexResponse { term, request, index }),
        ]
        .boxed()
    }

    fn membership_change() -> impl Strategy<Value = MembershipChange> {
        prop_oneof![
            node_id().prop_map(MembershipChange::AddVoter),
            node_id().prop_map(MembershipChange::AddLearner),
            node_id().prop_map(MembershipChange::Promote),
            node_id().prop_map(MembershipChange::Remove),
            pvec(node_id(), 0..4).prop_map(MembershipChange::ReplaceVoters),
        ]
    }

    /// One step of a run.
    #[derive(Clone, Debug)]
    enum Step {
        /// An input exactly as drawn.
        Input(Incoming),
        /// A message whose terms and indexes are offsets from the node's term and last index
        /// when it arrives (see [`rebase`]).
        Relative(NodeId, Message),
        /// What a correct peer would send the node now.
        Cooperate(NodeId),
    }

    fn step(s: Start) -> impl Strategy<Value = Step> {
        let origin = Start { term: 0, index: 0 };
        prop_oneof![
            10 => input(s).prop_map(Step::Input),
            8 => (node_id(), message(origin)).prop_map(|(from, m)| Step::Relative(from, m)),
            4 => (2u64..4).prop_map(Step::Cooperate),
        ]
    }

    /// Shifts a drawn offset to `base - 2 + offset`, saturating; edges stay where they are.
    fn shift(value: &mut u64, base: u64) {
        if *value < MAX_TERM - 1 {
            *value = base.saturating_add(*value).saturating_sub(2);
        }
    }

    /// Moves every term of `message` next to `term` and every index next to `index`.
    fn rebase(message: &mut Message, term: Term, index: Index) {
        let id = |id: &mut LogId| {
            shift(&mut id.term, term);
            shift(&mut id.index, index);
        };
        match message {
            Message::RequestVote(m) => {
                shift(&mut m.term, term);
                id(&mut m.last_log);
            }
            Message::VoteResponse(m) => shift(&mut m.term, term),
            Message::AppendEntries(m) => {
                shift(&mut m.term, term);
                id(&mut m.prev);
                shift(&mut m.commit, index);
                for entry in &mut m.entries {
                    shift(&mut entry.term, term);
                    shift(&mut entry.index, index);
                }
            }
            Message::AppendResponse(m) => {
                shift(&mut m.term, term);
                match &mut m.result {
                    AppendResult::Success { match_index } => shift(match_index, index),
                    AppendResult::Conflict { rejected, hint } => {
                        shift(rejected, index);
                        id(hint);
                    }
                }
            }
            Message::InstallSnapshot(m) => {
                shift(&mut m.term, term);
                id(&mut m.meta.last);
            }
            Message::SnapshotResponse(m) => {
                shift(&mut m.term, term);
                shift(&mut m.last_index, index);
            }
            Message::ReadIndexResponse { term: t, index: i, .. } => {
                shift(t, term);
                if let Some(i) = i {
                    shift(i, index);
                }
            }
            Message::TimeoutNow { term: t } | Message::ReadIndexRequest { term: t, .. } => shift(t, term),
        }
    }

    /// What a correct peer would send `node` now: a vote for its campaign, an acknowledgement
    /// of its whole log, or (to a follower) the next entry from the leader it follows.
    fn cooperate(node: &Node, peer: NodeId) -> Incoming {
        let (term, last) = (node.term(), node.last_log_id());
        let (from, message) = match node.role() {
            Role::PreCandidate => {
                let term = term.saturating_add(1);
                (peer, Message::VoteResponse(VoteResponse { term, granted: true, pre_vote: true }))
            }
            Role::Candidate => {
                (peer, Message::VoteResponse(VoteResponse { term, granted: true, pre_vote: false }))
            }
            Role::Leader => (peer, ack(term, last.index)),
            Role::Follower => {
                let index = last.index.saturating_add(1);
                let entries = vec![Entry { term, index, payload: Payload::Noop }];
                (node.leader().unwrap_or(peer), append(term, last, entries, index))
            }
        };
        Incoming::Message { from, message }
    }

    fn input(s: Start) -> impl Strategy<Value = Incoming> {
        prop_oneof![
            8 => (node_id(), message(s)).prop_map(|(from, message)| Incoming::Message { from, message }),
            4 => prop_oneof![20 => 0u64..3_000, 1 => select(&EDGES[..])].prop_map(|t| Incoming::Tick(Instant(t))),
            1 => small().prop_map(|id| Incoming::Propose { id, command: cmd("p") }),
            1 => small().prop_map(|id| Incoming::Read { id, query: cmd("q").to_bytes() }),
            2 => (small(), membership_change()).prop_map(|(id, change)| Incoming::ChangeMembership { id, change }),
            1 => (small(), node_id()).prop_map(|(id, to)| Incoming::TransferLeadership { id, to }),
            1 => Just(Incoming::Compact),
            1 => Just(Incoming::Diagnostics),
        ]
    }

    /// Feature switches and limits, including extreme ones `Config::validate` accepts.
    fn config_from(bits: u8) -> Config {
        let check_quorum = bits & 2 != 0;
        Config {
            pre_vote: bits & 1 != 0,
            check_quorum,
            snapshot_every: if bits & 4 != 0 { 2 } else { 0 },
            lease_reads: check_quorum && bits & 8 != 0,
            lease_clock_drift_percent: if check_quorum && bits & 8 != 0 { 10 } else { 250 },
            snapshot_chunk_bytes: if bits & 16 != 0 { usize::MAX } else { 3 },
            max_inflight: if bits & 32 != 0 { 1 } else { 32 },
            ..config()
        }
    }

    proptest! {
        #[test]
        fn arbitrary_inputs_never_panic_or_break_invariants(
            (start, steps) in start().prop_flat_map(|s| (Just(s), pvec(step(s), 1..80))),
            stored_entries in 0usize..3,
            config_bits in any::<u8>(),
        ) {
            let config = config_from(config_bits);
            prop_assert!(config.validate().is_ok());
            let mut node = Node::new(1, config, start.initial_state(stored_entries)).unwrap();
            let (mut term, mut commit, mut applied) = (node.term(), node.commit_index(), node.applied_index());
            for step in steps {
                let input = match step {
                    Step::Input(input) => input,
                    Step::Relative(from, mut message) => {
                        rebase(&mut message, node.term(), node.last_log_id().index);
                        Incoming::Message { from, message }
                    }
                    Step::Cooperate(peer) => cooperate(&node, peer),
                };
                node.step(input);
                let ready = node.take_ready();
                if start.in_range() {
                    // The node never sends what it would itself drop as out of range.
                    for (to, message) in &ready.messages {
                        prop_assert!(message.in_range(), "sent out of range to {}: {:?}", to, message);
                    }
                }
                let mut applied_now = applied;
                for entry in ready.apply {
                    prop_assert_eq!(entry.index, applied_now + 1, "entries applied in order, once");
                    applied_now = entry.index;
                }
                if let Some(snapshot) = &ready.install_snapshot {
                    applied_now = applied_now.max(snapshot.meta.last.index);
                }
                if let Some(meta) = ready.take_snapshot {
                    node.snapshot_taken(SnapshotInfo { meta, size: 1 });
                }
                prop_assert!(node.term() >= term, "term went back");
                prop_assert!(node.commit_index() >= commit, "commit went back");
                prop_assert!(node.applied_index() >= applied, "applied went back");
                prop_assert!(node.applied_index() <= node.commit_index());
                prop_assert!(node.commit_index() <= node.last_log_id().index);
                if start.in_range() {
                    prop_assert!(node.term() <= MAX_TERM, "term past the ceiling");
                    prop_assert!(node.last_log_id().index <= MAX_INDEX, "log past the ceiling");
                } else if start.term > MAX_TERM {
                    prop_assert_eq!(node.term(), start.term, "a term past the ceiling never moves");
                }
                if node.role() == Role::Leader {
                    prop_assert_eq!(node.vote(), Some(1), "a leader voted for itself in its term");
                    prop_assert!(node.term() <= MAX_TERM, "a leader's term is within the ceiling");
                }
                applied = applied_now;
                term = node.term();
                commit = node.commit_index();
                applied = applied.max(node.applied_index());
            }
        }
    }
}
