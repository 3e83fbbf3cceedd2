//! The application's authorizer on a three-node cluster: writes through a follower reach the
//! leader with the client's identity; address records, membership changes and leadership
//! transfers are carried out for the callers it allows, and refused (not applied) for others.

use std::sync::{Arc, Mutex};

use raft_core::{Bytes, MemState, NodeId};
use raft_std::{Action, Authorizer, ChannelNetwork, NodeConfig, RaftNode, RequestError};

/// What the authorizer was shown: action kind, caller, forwarding member.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<NodeId>)>>>;

fn authorizer(seen: Seen) -> Authorizer {
    Authorizer::new(move |access| {
        let kind = match access.action {
            Action::Propose(_) => "propose",
            Action::RecordAddress { .. } => "address",
            Action::ChangeMembership(_) => "membership",
            Action::TransferLeadership(_) => "transfer",
            _ => "other",
        };
        seen.lock().unwrap().push((kind.to_string(), access.caller.map(str::to_string), access.via));
        match (&access.action, access.caller) {
            (Action::Propose(_), _) | (_, Some("admin")) => Ok(()),
            _ => Err("membership and leadership are for admins".into()),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_asks_the_application_with_the_clients_identity() {
    let network = ChannelNetwork::new();
    let seen = Seen::default();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = NodeConfig::new(id);
        for peer in (1..=3).filter(|&peer| peer != id) {
            config.peers.insert(peer, format!("node-{peer}"));
        }
        config.authorizer = Some(authorizer(Arc::clone(&seen)));
        let log = MemState::new(config.bootstrap());
        nodes.push(RaftNode::start(config, log, Vec::<Bytes>::new(), network.join(id)).await.unwrap());
    }
    nodes[0].propose(Bytes::from("first")).await.unwrap(); // waits for a leader
    let leader = nodes[0].status().await.unwrap().diagnostics.leader.unwrap();
    let follower = nodes.iter().find(|node| node.id() != leader).unwrap();
    seen.lock().unwrap().clear();

    // A write through a follower: forwarded with its caller, allowed.
    follower.with_caller("alice").propose(Bytes::from("hello")).await.unwrap();
    // An address record (add_learner's first step) without the admin role: refused.
    let refused = follower.with_caller("alice").add_learner(4, "attacker:1").await;
    assert!(
        matches!(&refused, Err(RequestError::Denied(reason)) if reason.contains("for admins")),
        "{refused:?}"
    );
    let refused = follower.transfer_leader(follower.id()).await;
    assert!(matches!(refused, Err(RequestError::Denied(_))), "{refused:?}");
    // An admin may.
    let members = follower.with_caller("admin").add_learner(4, "node-4").await.unwrap();
    assert!(members.learners.contains(&4));

    let seen = seen.lock().unwrap().clone();
    let via = Some(follower.id());
    let caller = |name: &str| Some(name.to_string());
    assert_eq!(
        seen,
        [
            ("propose".into(), caller("alice"), via),
            ("address".into(), caller("alice"), via),
            ("transfer".into(), None, via),
            ("address".into(), caller("admin"), via),
            ("membership".into(), caller("admin"), via),
        ]
    );
    for node in nodes {
        node.shutdown().await;
    }
}
