//! Leadership transfer (thesis §3.10).

use super::*;
use crate::event::TransferError;

fn transfer_outcome(net: &Net, node: NodeId, request: RequestId) -> Option<Result<NodeId, TransferError>> {
    net.events(node).iter().find_map(|e| match e {
        Event::Transfer { id, result } if *id == request => Some(*result),
        _ => None,
    })
}

#[test]
fn transfer_hands_leadership_to_an_up_to_date_voter() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.step(1, Incoming::TransferLeadership { id: 1, to: 2 });
    net.settle();
    net.advance(10);
    assert_eq!(net.leaders(), [2]);
    assert_eq!(net.node(2).term(), term + 1);
    assert_eq!(transfer_outcome(&net, 1, 1), Some(Ok(2)));
}

#[test]
fn proposals_wait_out_a_transfer_and_a_stuck_transfer_times_out() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.step(1, Incoming::Propose { id: 1, command: cmd("x") });
    net.step(1, Incoming::TransferLeadership { id: 2, to: 2 });
    net.step(1, Incoming::Propose { id: 3, command: cmd("y") });
    assert!(net
        .events(1)
        .contains(&Event::Proposal { id: 3, result: Err(ProposeError::TransferInProgress) }));
    net.advance(400);
    assert_eq!(transfer_outcome(&net, 1, 2), Some(Err(TransferError::TimedOut)));
    assert_eq!(net.leaders(), [1], "the leader keeps leading after an aborted transfer");
    net.step(1, Incoming::Propose { id: 4, command: cmd("z") });
    net.settle();
    assert!(net.commands(3).contains(&cmd("z")));
}

#[test]
fn transfer_to_a_lagging_voter_first_brings_it_up_to_date() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.step(1, Incoming::Propose { id: i, command: cmd("x") });
    }
    net.settle();
    net.heal();
    net.step(1, Incoming::TransferLeadership { id: 99, to: 3 });
    net.settle();
    net.advance(100);
    assert_eq!(net.leaders(), [3]);
    assert_eq!(net.commands(3).len(), 10);
    assert_eq!(transfer_outcome(&net, 1, 99), Some(Ok(3)));
}

#[test]
fn transfer_requests_that_cannot_work_are_refused() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.step(1, Incoming::TransferLeadership { id: 1, to: 9 });
    assert_eq!(transfer_outcome(&net, 1, 1), Some(Err(TransferError::NotVoter(9))));
    net.step(2, Incoming::TransferLeadership { id: 2, to: 3 });
    assert_eq!(transfer_outcome(&net, 2, 2), Some(Err(TransferError::NotLeader { leader: Some(1) })));
    net.step(1, Incoming::TransferLeadership { id: 3, to: 1 });
    assert_eq!(transfer_outcome(&net, 1, 3), Some(Ok(1)));
}
