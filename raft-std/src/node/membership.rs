//! Membership changes on a [`RaftNode`]: learners first, joint consensus for arbitrary
//! changes, and `add_member`, which waits for a new node to catch up before it votes.

use std::time::Duration;

use raft_core::{Diagnostics, InvalidChange, Membership, MembershipChange, MembershipError, NodeId, NodeSet};
use tokio::time::Instant;

use super::directory::DirectoryCommand;
use super::error::RequestError;
use super::wire::{Request, Response};
use super::{encode, unexpected, RaftNode};

/// How often `add_member` looks at a learner's progress.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);
/// How often `add_member` reports a learner's progress.
const CATCH_UP_REPORT: Duration = Duration::from_secs(1);

impl RaftNode {
    /// Adds node `id`, listening for peers on `address`, as a learner: it receives the log but
    /// does not vote. First the address is committed through the log, so every member (and
    /// every node that joins later) can reach the new node; then the configuration changes.
    /// Start the new node (with [`NodeConfig::join`](crate::NodeConfig::join) set) before or
    /// after; a learner that does not answer costs nothing but the leader's retries.
    pub async fn add_learner(
        &self,
        id: NodeId,
        address: impl Into<String>,
    ) -> Result<Membership, RequestError> {
        let deadline = self.deadline();
        self.record_address(id, address.into(), deadline).await?;
        self.change(MembershipChange::AddLearner(id), deadline).await
    }

    /// Makes learner `id` a voter (a single-server change).
    pub async fn promote(&self, id: NodeId) -> Result<Membership, RequestError> {
        self.change(MembershipChange::Promote(id), self.deadline()).await
    }

    /// Adds node `id`, listening for peers on `address`, as a voter, safely: as a learner
    /// first ([`add_learner`](RaftNode::add_learner)), then, once it answers the leader and
    /// its match index is within
    /// [`NodeConfig::catch_up_margin`](crate::NodeConfig::catch_up_margin) entries of the
    /// leader's last index, promoted ([`promote`](RaftNode::promote)). A node that is far
    /// behind therefore never counts against the quorum. Progress is logged every second.
    ///
    /// Fails with [`RequestError::CatchUp`] if the learner has not caught up within
    /// [`NodeConfig::catch_up_timeout`](crate::NodeConfig::catch_up_timeout); it then stays a
    /// learner, and calling `add_member` again resumes.
    ///
    /// A node grows into a cluster of three, which then changes its voters:
    ///
    /// ```
    /// use raft_core::Bytes;
    /// use raft_core::MemState;
    /// use raft_std::{ChannelNetwork, NodeConfig, RaftNode};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = ChannelNetwork::new();
    /// let start = |id, join| {
    ///     let mut config = NodeConfig::new(id);
    ///     config.join = join; // a newcomer waits to be added
    ///     let log = MemState::new(config.bootstrap());
    ///     RaftNode::start(config, log, Vec::<Bytes>::new(), network.join(id))
    /// };
    /// let one = start(1, false).await?; // alone: it leads itself
    /// let (two, three) = (start(2, true).await?, start(3, true).await?);
    ///
    /// one.add_member(2, "node-2").await?; // learner, caught up, then voter
    /// one.add_learner(3, "node-3").await?; // learner only …
    /// let members = two.promote(3).await?; // … until promoted, through any node
    /// assert_eq!(members.voters.len(), 3);
    ///
    /// // Joint consensus: voters 2 and 3, node 1 stays on as a learner.
    /// let members = three.change_membership([2, 3], [1]).await?;
    /// assert!(members.learners.contains(&1) && !members.voters.contains(&1));
    /// let members = three.remove_member(1).await?;
    /// assert!(!members.contains(1));
    /// for node in [one, two, three] {
    ///     node.shutdown().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add_member(
        &self,
        id: NodeId,
        address: impl Into<String>,
    ) -> Result<Membership, RequestError> {
        let address = address.into();
        let leader = self.leader_diagnostics(self.deadline()).await?;
        if leader.membership.is_voter(id) {
            return Err(RequestError::Membership(MembershipError::Invalid(InvalidChange::AlreadyMember(id))));
        }
        if leader.membership.learners.contains(&id) {
            // A retry: the address may have changed, the membership has not.
            self.record_address(id, address.clone(), self.deadline()).await?;
        } else {
            self.add_learner(id, address.clone()).await?;
        }
        self.wait_for_catch_up(id, &address).await?;
        self.promote(id).await
    }

    /// Removes voter or learner `id` from the configuration. A leader that removes itself
    /// steps down once the change commits.
    pub async fn remove_member(&self, id: NodeId) -> Result<Membership, RequestError> {
        self.change(MembershipChange::Remove(id), self.deadline()).await
    }

    /// Changes the configuration to exactly `voters` and `learners`, by joint consensus when
    /// the voters change (Raft §6: C_old,new, then C_new, each committed by majorities of both
    /// sets while joint). Every node named must already be a member: add newcomers with
    /// [`add_learner`](RaftNode::add_learner) first, so their addresses are known and they
    /// have the log before they vote.
    ///
    /// Runs as a sequence of changes, each committed before the next: the voters are replaced
    /// (learners named in `voters` become voters; voters left out leave), then learners are
    /// added (a former voter named in `learners` becomes one again) and removed. Each step has
    /// its own request deadline; if one fails, the configuration is the one the previous step
    /// committed.
    pub async fn change_membership(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<Membership, RequestError> {
        let voters: NodeSet = voters.into_iter().collect();
        let learners: NodeSet = learners.into_iter().collect();
        let invalid = |why| Err(RequestError::Membership(MembershipError::Invalid(why)));
        if voters.is_empty() {
            return invalid(InvalidChange::NoVoters);
        }
        if let Some(&both) = voters.iter().find(|id| learners.contains(id)) {
            return invalid(InvalidChange::AlreadyMember(both));
        }
        let mut current = self.leader_diagnostics(self.deadline()).await?.membership;
        if let Some(&stranger) = voters.iter().chain(learners.iter()).find(|&&id| !current.contains(id)) {
            return invalid(InvalidChange::NotMember(stranger));
        }
        if current.voters != voters {
            let change = MembershipChange::ReplaceVoters(voters.iter().copied().collect());
            current = self.change(change, self.deadline()).await?;
        }
        let missing: Vec<NodeId> =
            learners.iter().copied().filter(|id| !current.learners.contains(id)).collect();
        for id in missing {
            current = self.change(MembershipChange::AddLearner(id), self.deadline()).await?;
        }
        let extra: Vec<NodeId> =
            current.learners.iter().copied().filter(|id| !learners.contains(id)).collect();
        for id in extra {
            current = self.change(MembershipChange::Remove(id), self.deadline()).await?;
        }
        Ok(current)
    }

    /// Waits until the leader reports learner `id` within the catch-up margin.
    async fn wait_for_catch_up(&self, id: NodeId, address: &str) -> Result<(), RequestError> {
        let (timeout, margin) = (self.inner.catch_up_timeout, self.inner.catch_up_margin);
        let start = Instant::now();
        let mut next_report = start + CATCH_UP_REPORT;
        loop {
            let leader = self.leader_diagnostics(self.deadline()).await?;
            let last_index = leader.last_log.index;
            let peer = leader.peers.iter().find(|peer| peer.id == id);
            let match_index = peer.map_or(0, |peer| peer.match_index);
            // It must have answered lately, and hold something: in a young cluster a node that
            // never answered is within the margin too.
            let answering = peer.is_some_and(|peer| peer.recently_active) && match_index > 0;
            if answering && last_index.saturating_sub(match_index) <= margin {
                tracing::info!(peer = id, match_index, last_index, waited = ?start.elapsed(), "learner caught up");
                return Ok(());
            }
            let now = Instant::now();
            if now >= start + timeout {
                let waited = timeout;
                return Err(RequestError::CatchUp {
                    id,
                    address: address.to_string(),
                    waited,
                    match_index,
                    last_index,
                });
            }
            if now >= next_report {
                tracing::info!(peer = id, match_index, last_index, "learner catching up");
                next_report = now + CATCH_UP_REPORT;
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }

    /// Commits where node `id` listens.
    async fn record_address(
        &self,
        id: NodeId,
        address: String,
        deadline: Instant,
    ) -> Result<(), RequestError> {
        let record = encode(&DirectoryCommand::Address { id, address })?;
        self.call(Request::Propose(record), deadline).await.map(drop)
    }

    /// The leader's diagnostics, wherever the leader is.
    async fn leader_diagnostics(&self, deadline: Instant) -> Result<Diagnostics, RequestError> {
        match self.call(Request::LeaderDiagnostics, deadline).await? {
            Response::Diagnostics(diagnostics) => Ok(*diagnostics),
            other => Err(unexpected(other)),
        }
    }

    /// Runs one membership change; resolves with the configuration it committed.
    async fn change(&self, change: MembershipChange, deadline: Instant) -> Result<Membership, RequestError> {
        match self.call(Request::ChangeMembership(change), deadline).await? {
            Response::Membership(membership) => Ok(membership),
            other => Err(unexpected(other)),
        }
    }
}
