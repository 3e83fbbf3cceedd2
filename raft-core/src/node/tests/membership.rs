//! Membership changes: single-server, joint consensus and learners (Raft §6, thesis §4).

use super::*;
use crate::event::{InvalidChange, MembershipChange, MembershipError};

fn change(net: &mut Net, leader: NodeId, id: RequestId, change: MembershipChange) {
    net.step(leader, Incoming::ChangeMembership { id, change });
    net.settle();
}

fn outcome(net: &Net, node: NodeId, request: RequestId) -> Option<Result<Membership, MembershipError>> {
    net.events(node).iter().find_map(|e| match e {
        Event::Membership { id, result } if *id == request => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn add_node_catches_up_and_counts_once_appended() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::Propose { id: 1, command: cmd("before") });
    net.settle();
    net.add_blank_node(4);
    net.step(1, Incoming::ChangeMembership { id: 7, change: MembershipChange::AddVoter(4) });
    assert!(net.node(1).membership().is_voter(4), "takes effect when appended, before commit");
    net.settle();
    net.advance(100);
    assert_eq!(outcome(&net, 1, 7), Some(Ok(Membership::new([1, 2, 3, 4]))));
    assert_eq!(net.commands(4), [cmd("before")], "the new node received the whole log");
    assert!(net.node(4).membership().is_voter(4));
    // With four voters a quorum is three: two nodes down stop commits.
    net.isolate(3);
    net.isolate(4);
    net.step(1, Incoming::Propose { id: 2, command: cmd("stuck") });
    net.settle();
    assert!(!net.commands(1).contains(&cmd("stuck")));
}

#[test]
fn one_change_at_a_time() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.add_blank_node(4);
    net.step(1, Incoming::ChangeMembership { id: 1, change: MembershipChange::AddVoter(4) });
    net.step(1, Incoming::ChangeMembership { id: 2, change: MembershipChange::Remove(2) });
    assert_eq!(outcome(&net, 1, 2), Some(Err(MembershipError::ChangeInProgress)));
    net.settle();
    change(&mut net, 1, 3, MembershipChange::Remove(2));
    assert_eq!(outcome(&net, 1, 3), Some(Ok(Membership::new([1, 3, 4]))));
}

#[test]
fn invalid_changes_and_followers_get_clear_errors() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    change(&mut net, 1, 1, MembershipChange::AddVoter(2));
    assert_eq!(outcome(&net, 1, 1), Some(Err(MembershipError::Invalid(InvalidChange::AlreadyMember(2)))));
    change(&mut net, 1, 2, MembershipChange::Remove(9));
    assert_eq!(outcome(&net, 1, 2), Some(Err(MembershipError::Invalid(InvalidChange::NotMember(9)))));
    change(&mut net, 1, 3, MembershipChange::AddLearner(0));
    assert_eq!(outcome(&net, 1, 3), Some(Err(MembershipError::Invalid(InvalidChange::ReservedId))));
    change(&mut net, 1, 4, MembershipChange::ReplaceVoters(vec![]));
    assert_eq!(outcome(&net, 1, 4), Some(Err(MembershipError::Invalid(InvalidChange::NoVoters))));
    change(&mut net, 2, 5, MembershipChange::AddVoter(4));
    assert_eq!(outcome(&net, 2, 5), Some(Err(MembershipError::NotLeader { leader: Some(1) })));
}

#[test]
fn remove_node_stops_replicating_to_it() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    change(&mut net, 1, 1, MembershipChange::Remove(3));
    net.advance(100);
    assert_eq!(outcome(&net, 1, 1), Some(Ok(Membership::new([1, 2]))));
    assert!(net.node(1).diagnostics().peers.iter().all(|p| p.id != 3));
    net.step(1, Incoming::Propose { id: 2, command: cmd("after") });
    net.settle();
    assert!(net.commands(2).contains(&cmd("after")));
    assert!(!net.commands(3).contains(&cmd("after")));
}

#[test]
fn removed_node_cannot_disrupt_the_cluster() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    // Node 3 misses its own removal, so it still believes it votes and keeps campaigning.
    net.isolate(3);
    change(&mut net, 1, 1, MembershipChange::Remove(3));
    net.advance(100);
    let term = net.node(1).term();
    net.heal();
    net.advance(3_000);
    assert_eq!(net.leaders(), [1]);
    assert_eq!(net.node(1).term(), term, "pre-votes of a stranger are dropped");
}

#[test]
fn shutdown_on_remove_node_leader_steps_down_after_commit() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::ChangeMembership { id: 1, change: MembershipChange::Remove(1) });
    assert_eq!(net.node(1).role(), Role::Leader, "still leads until the change commits");
    net.settle();
    assert_eq!(outcome(&net, 1, 1), Some(Ok(Membership::new([2, 3]))));
    assert_eq!(net.node(1).role(), Role::Follower);
    net.advance(1_000);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
    net.advance(2_000);
    assert_ne!(net.node(1).role(), Role::Leader, "a removed node never campaigns");
}

#[test]
fn joint_consensus_replaces_several_voters() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.add_blank_node(4);
    net.add_blank_node(5);
    net.step(1, Incoming::ChangeMembership { id: 1, change: MembershipChange::ReplaceVoters(vec![1, 4, 5]) });
    let joint = net.node(1).membership().clone();
    assert!(joint.is_joint());
    assert_eq!(joint.outgoing, [1, 2, 3].into());
    // While joint, a majority of the new voters alone cannot commit.
    net.isolate(2);
    net.isolate(3);
    net.advance(100);
    assert!(outcome(&net, 1, 1).is_none());
    assert!(net.node(1).membership().is_joint());
    net.heal();
    net.advance(200);
    assert_eq!(outcome(&net, 1, 1), Some(Ok(Membership::new([1, 4, 5]))));
    assert!(!net.node(4).membership().is_joint());
}

#[test]
fn no_two_leaders_in_one_term_while_joint() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.add_blank_node(4);
    net.add_blank_node(5);
    net.step(1, Incoming::ChangeMembership { id: 1, change: MembershipChange::ReplaceVoters(vec![3, 4, 5]) });
    net.settle();
    // Cut the leader off mid-change and let everyone campaign repeatedly.
    net.isolate(1);
    let mut leaders_by_term: BTreeMap<Term, NodeId> = BTreeMap::new();
    for _ in 0..200 {
        net.advance(20);
        for node in net.nodes.values().filter(|n| n.role() == Role::Leader) {
            let previous = leaders_by_term.insert(node.term(), node.id());
            assert!(previous.is_none_or(|p| p == node.id()), "two leaders in term {}", node.term());
        }
    }
    net.heal();
    net.advance(1_000);
    assert_eq!(net.leaders().len(), 1);
}

#[test]
fn learner_replicates_never_votes_and_can_be_promoted() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.add_blank_node(4);
    change(&mut net, 1, 1, MembershipChange::AddLearner(4));
    net.step(1, Incoming::Propose { id: 2, command: cmd("x") });
    net.settle();
    assert_eq!(net.commands(4), [cmd("x")]);
    // The learner does not count toward the quorum: with two voters down, nothing commits.
    net.isolate(2);
    net.isolate(3);
    net.step(1, Incoming::Propose { id: 3, command: cmd("y") });
    net.advance(100);
    assert!(!net.commands(1).contains(&cmd("y")));
    // And it never campaigns, even when it hears nothing for a long time.
    net.isolate(4);
    net.advance(2_000);
    assert_eq!(net.node(4).role(), Role::Follower);
    assert_eq!(net.node(4).term(), net.node(2).term().min(net.node(4).term()));
    net.heal();
    net.advance(1_000);
    let leader = net.leaders()[0];
    change(&mut net, leader, 4, MembershipChange::Promote(4));
    net.advance(100);
    assert_eq!(outcome(&net, leader, 4), Some(Ok(Membership::new([1, 2, 3, 4]))));
}

#[test]
fn change_committed_under_partition_survives_healing() {
    let mut net = Net::new(&[1, 2, 3, 4, 5]);
    net.elect(1);
    net.isolate(5);
    change(&mut net, 1, 1, MembershipChange::Remove(4));
    net.advance(100);
    assert_eq!(outcome(&net, 1, 1), Some(Ok(Membership::new([1, 2, 3, 5]))));
    net.heal();
    net.advance(1_000);
    assert_eq!(*net.node(5).membership(), Membership::new([1, 2, 3, 5]));
}

#[test]
fn truncating_an_uncommitted_configuration_restores_the_previous_one() {
    let mut node = follower_with_log(&[1], 1);
    let added = Membership::new([1, 2, 3, 4]);
    let config = Entry { term: 1, index: 2, payload: Payload::Membership(added.clone().into()) };
    node.step(message(2, append(1, LogId::new(1, 1), vec![config, entry(1, 3)], 1)));
    assert_eq!(*node.membership(), added, "in force once appended");
    // A new leader replaces entries 2 and 3 with entries of its own, none a configuration.
    node.step(message(3, append(2, LogId::new(1, 1), vec![entry(2, 2), entry(2, 3), entry(2, 4)], 1)));
    assert_eq!(node.last_log_id(), LogId::new(2, 4));
    assert_eq!(*node.membership(), Membership::new([1, 2, 3]), "back to the bootstrap configuration");
}
