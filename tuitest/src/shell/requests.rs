//! Requests that wait for their outcome: writes, reads, membership changes and leadership
//! transfers.

use raft_core::NodeId;
use testkit::{Duration, Session, Simulator};

use super::Shell;
use crate::input::NodeArg;

/// How many election timeouts a request may take before the shell stops waiting for it.
const PATIENCE: u64 = 10;

impl Shell {
    /// A client write through `via` (default: the leader).
    pub(super) fn write(&mut self, command: &str, via: Option<NodeArg>) -> Result<(), String> {
        let node = self.node(via.unwrap_or(NodeArg::Leader))?;
        self.request(&format!("propose {node} {command:?}"))
    }

    /// A linearizable read through `via` (default: the leader).
    pub(super) fn read(&mut self, key: &str, via: Option<NodeArg>) -> Result<(), String> {
        let node = self.node(via.unwrap_or(NodeArg::Leader))?;
        self.request(&format!("read {node} {key:?}"))
    }

    /// Asks `from` to hand leadership to `to`.
    pub(super) fn transfer(&mut self, from: NodeArg, to: NodeArg) -> Result<(), String> {
        let (from, to) = (self.node(from)?, self.node(to)?);
        self.request(&format!("transfer {from} to {to}"))
    }

    /// Asks the leader to remove `node` from the configuration.
    pub(super) fn remove_node(&mut self, node: NodeArg) -> Result<(), String> {
        let node = self.node(node)?;
        let leader = self.node(NodeArg::Leader)?;
        self.request(&format!("change {leader} remove {node}"))
    }

    /// Asks the leader to add node `id` (default: the next id) as a voter, starting the
    /// machine first if the cluster has none of that id.
    pub(super) fn add_node(&mut self, id: Option<NodeId>) -> Result<(), String> {
        let leader = self.node(NodeArg::Leader)?;
        let ids = self.node_ids();
        let id = id.unwrap_or_else(|| ids.last().map_or(1, |last| last + 1));
        if self.sim().node(leader).is_some_and(|node| node.membership().contains(id)) {
            return Err(format!("node {id} is already in the configuration"));
        }
        if !ids.contains(&id) {
            self.add_machine(id)?;
        }
        self.request(&format!("change {leader} add_voter {id}"))
    }

    /// Sends a request (a testkit command) and lets time pass until it has an outcome, or
    /// until [`PATIENCE`] runs out.
    fn request(&mut self, line: &str) -> Result<(), String> {
        self.record(line)?;
        let request = self.sim().history().ops().last().expect("a request was just sent").id;
        let done = move |sim: &Simulator| sim.history().get(request).is_some_and(|op| op.outcome.is_done());
        if done(self.sim()) {
            return Ok(());
        }
        let patience = self.millis(Duration::ElectionTimeouts(PATIENCE));
        self.drive(patience, done)?;
        if !done(self.sim()) {
            self.say(format!(
                "  no answer after {patience} ms (can the node reach a majority?); it is reported when it \
                 comes"
            ));
        }
        Ok(())
    }

    /// Gives the simulator a machine `id`, outside the configuration.
    ///
    /// A simulator's machines are fixed when it is built, so the session is replayed on a
    /// cluster that has `id` as a spare from the start. A spare outside the configuration
    /// sends nothing, so the replay reaches the same state (checked); a saved test builds
    /// its cluster the same way.
    fn add_machine(&mut self, id: NodeId) -> Result<(), String> {
        let mut options = self.recording.options().clone();
        options.spares.push(id);
        let recording = self.recording.with_options(options);
        let mut session = Session::new();
        for command in recording.commands() {
            // A step recorded although it failed fails again: the replay goes on, as the
            // session did.
            let _ = session.run_line(&command);
        }
        let replayed = session.simulator().expect("a replay starts with a cluster command");
        let ids = self.node_ids();
        if fingerprint(replayed, &ids) != fingerprint(self.sim(), &ids) {
            return Err(format!(
                "cannot add node {id}: the session replayed with it did not end in the same state"
            ));
        }
        self.session = session;
        self.recording = recording;
        Ok(())
    }
}

/// The state of nodes `ids`, the network and the client history, as text to compare.
fn fingerprint(sim: &Simulator, ids: &[NodeId]) -> String {
    let mut text = format!("now {}\n", sim.now());
    for &id in ids {
        let line = match (sim.node(id), sim.storage(id)) {
            (Some(n), _) => format!(
                "{id}: {} term {} vote {:?} leader {:?} commit {} applied {} log {}..{:?} {}",
                n.role(),
                n.term(),
                n.vote(),
                n.leader(),
                n.commit_index(),
                n.applied_index(),
                n.first_index(),
                n.last_log_id(),
                n.membership()
            ),
            (None, Some(storage)) => {
                format!("{id}: down {:?} {:?}", storage.hard_state(), storage.last_log_id())
            }
            (None, None) => format!("{id}: missing"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    for envelope in sim.network().in_flight() {
        text.push_str(&format!("{envelope}\n"));
    }
    text.push_str(&format!("{:?}", sim.history().ops()));
    text
}
