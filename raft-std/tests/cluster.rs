//! A cluster an application builds: `RaftNode`s on the in-process channel transport, each with
//! a FileState in a temporary directory. It grows learner-first, reshapes its voters by joint
//! consensus, hands over leadership, and refuses to promote a node that never caught up.

use std::time::Duration;

use raft_core::{Bytes, MembershipError, NodeId};
use raft_std::{ChannelNetwork, FileState, NodeConfig, RaftNode, RequestError, StorageOptions};

struct Cluster {
    dir: tempfile::TempDir,
    network: ChannelNetwork,
}

impl Cluster {
    fn new() -> Self {
        Cluster { dir: tempfile::tempdir().unwrap(), network: ChannelNetwork::new() }
    }

    /// Starts node `id`: a founder (with `peers` as fellow voters) or, with `join`, a newcomer.
    async fn start(&self, id: NodeId, peers: &[NodeId], join: bool) -> RaftNode {
        let mut config = NodeConfig::new(id);
        config.peers =
            peers.iter().filter(|&&peer| peer != id).map(|&peer| (peer, format!("node-{peer}"))).collect();
        config.join = join;
        config.catch_up_timeout = Duration::from_secs(2);
        let dir = self.dir.path().join(id.to_string());
        let log =
            FileState::open(dir, config.bootstrap(), StorageOptions::default()).expect("the store opens");
        RaftNode::start(config, log, Vec::<Bytes>::new(), self.network.join(id))
            .await
            .expect("the node starts")
    }
}

async fn leader_of(node: &RaftNode) -> NodeId {
    for _ in 0..500 {
        if let Some(leader) = node.status().await.expect("a status").diagnostics.leader {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader");
}

/// The command at `position` in node's state machine (a stale, local read).
async fn command_at(node: &RaftNode, position: u64) -> Bytes {
    node.read_local(&position.to_le_bytes()).await.expect("a local read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_learner_first_reshapes_and_hands_over() {
    let cluster = Cluster::new();
    let founders = [1, 2, 3];
    let mut nodes = Vec::new();
    for id in founders {
        nodes.push(cluster.start(id, &founders, false).await);
    }
    for i in 0..50u32 {
        nodes[(i % 3) as usize].propose(Bytes::from(format!("before {i}"))).await.expect("a write");
    }
    let leader = leader_of(&nodes[0]).await;
    let follower = nodes.iter().find(|node| node.id() != leader).expect("a follower").clone();

    // Node 4 joins through a follower: learner first, promoted once caught up.
    nodes.push(cluster.start(4, &[], true).await);
    let membership = follower.add_member(4, "node-4").await.expect("node 4 is added");
    assert!(membership.voters.contains(&4) && membership.learners.is_empty(), "{membership}");
    let index = nodes[0].propose("after 4").await.expect("a write").index;
    for _ in 0..500 {
        if nodes[3].status().await.unwrap().diagnostics.applied_index >= index {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(command_at(&nodes[3], 0).await, "before 0", "the newcomer has the whole history");

    // Node 5 is added but never started: it stays a learner and is not promoted.
    let error = nodes[1].add_member(5, "node-5").await.expect_err("node 5 cannot catch up");
    assert!(matches!(error, RequestError::CatchUp { id: 5, .. }), "{error}");
    assert!(error.to_string().contains("is it running and reachable at node-5?"), "{error}");
    let membership = nodes[0].status().await.unwrap().diagnostics.membership;
    assert!(membership.learners.contains(&5) && !membership.voters.contains(&5), "{membership}");

    // Joint consensus: voters {2, 3, 4}, founder 1 becomes a learner, 5 leaves.
    let membership = nodes[2].change_membership([2, 3, 4], [1]).await.expect("a joint change");
    assert_eq!(membership.voters.iter().copied().collect::<Vec<_>>(), [2, 3, 4], "{membership}");
    assert_eq!(membership.learners.iter().copied().collect::<Vec<_>>(), [1], "{membership}");
    assert!(!membership.is_joint());

    // Leadership moves to the newcomer; everyone follows it, and writes go on.
    assert_eq!(nodes[0].transfer_leader(4).await.expect("a transfer"), 4);
    assert_eq!(leader_of(&nodes[1]).await, 4);
    nodes[0].propose("after the transfer").await.expect("a learner forwards writes too");

    // Single steps: promote the learner back, then remove it.
    assert!(nodes[3].promote(1).await.expect("promoted").voters.contains(&1));
    let membership = nodes[3].remove_member(1).await.expect("removed");
    assert!(!membership.contains(1), "{membership}");
    let refused = nodes[3].promote(1).await.expect_err("no longer a member");
    assert!(matches!(refused, RequestError::Membership(MembershipError::Invalid(_))), "{refused}");
    for node in &nodes {
        node.shutdown().await;
    }
}
