//! `addnode` and `removenode`: nodes join and leave through the leader, as in the REPL this
//! project descends from; the first node of a cluster without nodes forms a cluster of its own.

use raft_core::{MembershipChange, NodeId};

use super::drive::answered;
use super::{node_id, Observe, Session, NO_CLUSTER};
use crate::command::NodeRef;
use crate::error::{invalid, SimError};
use crate::history::OpOutcome;
use crate::options::ClusterOptions;
use crate::simulator::Simulator;

impl Session {
    /// Starts node `node` (the next id unless given), names it, and has the leader add it as
    /// a voter; waits until the change is answered and the node holds it. Without a simulator, the node forms a cluster of its own.
    pub(super) fn add_node(
        &mut self,
        node: Option<NodeId>,
        name: Option<&str>,
        observe: Observe<'_>,
    ) -> Result<String, SimError> {
        let Some(sim) = self.sim.as_mut() else { return self.form(node.unwrap_or(1), name, observe) };
        let id = node.unwrap_or_else(|| sim.ids().last().map_or(1, |last| last + 1));
        let leader = node_id(sim, &self.names, NodeRef::Leader)?;
        if sim.node(leader).is_some_and(|raft| raft.membership().contains(id)) {
            return invalid(format!("node {} is already in the configuration", self.names.show(id)));
        }
        if let Some(name) = name {
            self.names.insert(id, name).map_err(SimError::Invalid)?;
        }
        if !sim.ids().contains(&id) {
            sim.add_node(id)?;
        }
        let request = sim.change_membership(leader, MembershipChange::AddVoter(id))?;
        self.labels.insert("change".to_string(), request);
        observe(self);
        // Joined: the change is answered and, if it succeeded, the new node holds it.
        let answered = answered(request);
        let joined = move |sim: &Simulator| {
            let changed =
                sim.history().get(request).is_some_and(|op| matches!(op.outcome, OpOutcome::Changed(_)));
            answered(sim) && (!changed || sim.node(id).is_some_and(|raft| raft.membership().contains(id)))
        };
        self.await_patiently(joined, observe)
    }

    /// The first node: a one-node cluster built with the options of `cluster []` (or the
    /// defaults). Waits until the node has elected itself.
    fn form(&mut self, id: NodeId, name: Option<&str>, observe: Observe<'_>) -> Result<String, SimError> {
        let mut names = self.names.clone();
        if let Some(name) = name {
            names.insert(id, name).map_err(SimError::Invalid)?;
        }
        let options = ClusterOptions { voters: vec![id], ..self.empty.clone() };
        self.sim = Some(Simulator::new(options)?);
        self.names = names;
        observe(self);
        self.await_patiently(move |sim| sim.leader() == Some(id), observe)
    }

    /// Has the leader remove `node` from the configuration; waits for the change.
    pub(super) fn remove_node(&mut self, node: NodeRef, observe: Observe<'_>) -> Result<String, SimError> {
        let Some(sim) = self.sim.as_mut() else { return invalid(NO_CLUSTER) };
        let leader = node_id(sim, &self.names, NodeRef::Leader)?;
        let id = node_id(sim, &self.names, node)?;
        let request = sim.change_membership(leader, MembershipChange::Remove(id))?;
        self.labels.insert("change".to_string(), request);
        self.await_answer(request, observe)
    }
}
