//! [`Session`]: runs [`Command`]s against a [`Simulator`] — the engine behind `seq_test!` and
//! the REPL.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use raft_core::{Entry, HardState, NodeId, Payload, RequestId};

use crate::command::{Command, NodeRef, OutcomeSpec};
use crate::error::{invalid, SimError};
use crate::expect::{check, check_outcome, labelled, settled};
use crate::names::Names;
use crate::network::{LinkFaults, MessageFilter};
use crate::options::ClusterOptions;
use crate::parse::{split_script, ParseError};
use crate::simulator::Simulator;
use crate::status::StatusTable;

mod display;
mod drive;
mod membership;

/// What a command needs when there is no simulator.
const NO_CLUSTER: &str =
    "no node yet: start with `cluster [1, 2, 3]`, or `addnode NAME` for a cluster built node by node";

/// Called after each event a command lets happen, with the session as it is then: the REPL
/// prints what changed, stamped with the time it happened.
pub type Observe<'a> = &'a mut dyn FnMut(&Session);

/// A scenario in progress: the simulator (once the cluster has a node), the names of nodes
/// and of operations.
///
/// ```
/// use testkit::Session;
/// let mut session = Session::new();
/// session.run_line("cluster 3").unwrap();
/// session.run_line("elect 2").unwrap();
/// session.run_line("propose leader \"x=1\" => committed on [1, 2, 3]").unwrap();
/// assert!(session.run_line("expect 1 is leader").is_err());
/// ```
#[derive(Debug)]
pub struct Session {
    sim: Option<Simulator>,
    /// What the first `addnode` builds the cluster with while there is no simulator.
    empty: ClusterOptions,
    labels: BTreeMap<String, RequestId>,
    names: Names,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            sim: None,
            empty: ClusterOptions::new([]),
            labels: BTreeMap::new(),
            names: Names::default(),
        }
    }
}

/// A failed step of a script, with everything needed to understand it.
#[derive(Debug)]
pub struct ScriptFailure {
    /// The failed step, from 1.
    pub step: usize,
    /// Its text.
    pub command: String,
    /// Why it failed.
    pub error: SimError,
    /// The cluster table and the latest events, when a cluster exists.
    pub context: String,
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "step {} `{}` failed: {}", self.step, self.command, self.error)?;
        f.write_str(&self.context)
    }
}

impl std::error::Error for ScriptFailure {}

impl Session {
    /// A session without a cluster.
    pub fn new() -> Self {
        Session::default()
    }

    /// Runs a whole script (commands separated by `;`), stopping at the first failure. What
    /// commands print (`status`, `messages` …) goes to standard output.
    ///
    /// ```
    /// let session = testkit::Session::run_script("cluster 1; elect 1; expect 1 is leader").unwrap();
    /// assert!(session.simulator().is_some());
    /// ```
    pub fn run_script(script: &str) -> Result<Session, ScriptFailure> {
        let mut session = Session::new();
        for (i, command) in split_script(script).into_iter().enumerate() {
            match session.run_line(&command) {
                Ok(output) if !output.is_empty() => print!("{output}"),
                Ok(_) => {}
                Err(error) => {
                    let context = session.context();
                    return Err(ScriptFailure { step: i + 1, command, error, context });
                }
            }
        }
        Ok(session)
    }

    /// The simulator, once the cluster has a node.
    pub fn simulator(&self) -> Option<&Simulator> {
        self.sim.as_ref()
    }

    /// The simulator, mutably.
    pub fn simulator_mut(&mut self) -> Option<&mut Simulator> {
        self.sim.as_mut()
    }

    /// The names nodes were given (`addnode first`).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The request id of the operation named `label`.
    pub fn request(&self, label: &str) -> Option<RequestId> {
        self.labels.get(label).copied()
    }

    /// The cluster table, the names, the seed and the latest events (empty without a
    /// cluster).
    pub fn context(&self) -> String {
        let Some(sim) = &self.sim else { return String::new() };
        let mut out =
            format!("cluster at {} ms (seed {}):\n{}", sim.now(), sim.options().seed, StatusTable(sim));
        out.push_str(&display::names_line(&self.names));
        out.push_str("latest events:\n");
        for line in sim.trace().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }

    /// The node `node` names, which must exist: the running leader, or a node by id.
    pub fn node_id(&self, node: NodeRef) -> Result<NodeId, SimError> {
        node_id(self.sim()?, &self.names, node)
    }

    /// Parses one command; nodes may be called by their names.
    pub fn parse(&self, line: &str) -> Result<Command, ParseError> {
        Command::parse_with(line, &self.names)
    }

    /// Parses and runs one command; returns what it prints.
    pub fn run_line(&mut self, line: &str) -> Result<String, SimError> {
        self.run(&self.parse(line)?)
    }

    /// Runs one command; returns what it prints (displays such as `status`, and a request
    /// that is still waiting for its answer).
    pub fn run(&mut self, command: &Command) -> Result<String, SimError> {
        self.run_observed(command, &mut |_| {})
    }

    /// Runs one command as [`Session::run`] does, calling `observe` after each event it lets
    /// happen (a command that lets time pass handles one event after another).
    pub fn run_observed(&mut self, command: &Command, observe: Observe<'_>) -> Result<String, SimError> {
        match command {
            Command::Cluster(options) => {
                self.start(options.clone())?;
                return Ok(String::new());
            }
            Command::AddNode { node, name } => return self.add_node(*node, name.as_deref(), observe),
            _ => {}
        }
        let names = &self.names;
        let Some(sim) = self.sim.as_mut() else { return invalid(NO_CLUSTER) };
        match command {
            Command::Cluster(_) | Command::AddNode { .. } => unreachable!("handled above"),
            Command::Restore { node, term, vote, log } => {
                let entries = log
                    .iter()
                    .enumerate()
                    .map(|(i, &term)| {
                        let index = i as u64 + 1;
                        Entry {
                            term,
                            index,
                            payload: Payload::Command(format!("{index}@{term}").into_bytes().into()),
                        }
                    })
                    .collect();
                sim.restore(*node, HardState { term: *term, vote: *vote }, entries)?;
            }
            Command::Elect(id) => self.elect(*id, observe)?,
            Command::Timeout(id) => sim.timeout(*id)?,
            Command::Advance(duration) => {
                let ms = drive::millis(sim, *duration);
                self.drive(ms, |_| false, observe)?;
            }
            Command::Settle => {
                sim.settle()?;
            }
            Command::Propose { node, command, label, expect } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.propose(id, command.clone())?;
                self.finish_request(request, label.as_deref().unwrap_or(command), expect.as_ref(), observe)?;
            }
            Command::Read { node, key, label, expect } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.read(id, key.clone())?;
                let label = label.clone().unwrap_or_else(|| format!("read {key}"));
                self.finish_request(request, &label, expect.as_ref(), observe)?;
            }
            Command::Put { node, command } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.propose(id, command.clone())?;
                self.labels.insert(command.clone(), request);
                return self.await_answer(request, observe);
            }
            Command::Get { node, key } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.read(id, key.clone())?;
                self.labels.insert(format!("read {key}"), request);
                return self.await_answer(request, observe);
            }
            Command::Change { node, change, label, expect } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.change_membership(id, change.clone())?;
                self.finish_request(request, label.as_deref().unwrap_or("change"), expect.as_ref(), observe)?;
            }
            Command::RemoveNode(node) => return self.remove_node(*node, observe),
            Command::Transfer { node, to, label, expect } => {
                let id = node_id(sim, names, *node)?;
                let request = sim.transfer_leadership(id, *to)?;
                let label = label.as_deref().unwrap_or("transfer");
                self.finish_request(request, label, expect.as_ref(), observe)?;
            }
            Command::Compact(node) => {
                let id = node_id(sim, names, *node)?;
                sim.compact(id)?;
            }
            Command::Deliver { filter, first_only } => {
                sim.deliver(filter, *first_only)?;
            }
            Command::Drop { filter, first_only } => {
                sim.drop_messages(filter, *first_only);
            }
            Command::ClearQueue => {
                sim.drop_messages(&MessageFilter::default(), false);
            }
            Command::Partition(groups) => {
                let mut seen = BTreeSet::new();
                let mut ids = Vec::new();
                for group in groups {
                    let mut members = Vec::new();
                    for &node in group {
                        let id = node_id(sim, names, node)?;
                        if !seen.insert(id) {
                            return invalid(format!("node {} is in two groups", names.show(id)));
                        }
                        members.push(id);
                    }
                    ids.push(members);
                }
                let all = sim.ids();
                sim.network_mut().partition(&ids, &all);
            }
            Command::Isolate(node) => {
                let id = node_id(sim, names, *node)?;
                for other in sim.ids().into_iter().filter(|&other| other != id) {
                    sim.network_mut().cut(id, other);
                    sim.network_mut().cut(other, id);
                }
            }
            Command::Cut { from, to, both } | Command::Connect { from, to, both } => {
                let (from, to) = (node_id(sim, names, *from)?, node_id(sim, names, *to)?);
                if from == to {
                    return invalid(format!("node {} has no link to itself", names.show(from)));
                }
                let network = sim.network_mut();
                let links = if *both { vec![(from, to), (to, from)] } else { vec![(from, to)] };
                for (a, b) in links {
                    if matches!(command, Command::Cut { .. }) {
                        network.cut(a, b);
                    } else {
                        network.connect(a, b);
                    }
                }
            }
            Command::Heal => sim.network_mut().heal(),
            Command::CutMode(mode) => sim.network_mut().set_cut_mode(*mode),
            Command::Faults { link: Some((from, to)), faults } => {
                sim.network_mut().set_faults(*from, *to, *faults)
            }
            Command::Faults { link: None, faults } => sim.network_mut().set_all_faults(*faults),
            Command::DropRate(rate) => {
                let network = sim.network_mut();
                let faults = network.default_faults();
                network.set_all_faults(LinkFaults { drop: *rate, ..faults });
            }
            Command::Delay { min, max } => {
                let network = sim.network_mut();
                let faults = network.default_faults();
                network.set_all_faults(LinkFaults { delay_min: *min, delay_max: *max, ..faults });
            }
            Command::Crash { node, at } => {
                let id = node_id(sim, names, *node)?;
                match at {
                    Some(point) => sim.arm_crash(id, *point)?,
                    None => sim.crash(id)?,
                }
            }
            Command::Restart(id) => sim.restart(*id)?,
            Command::Expect(expectation) => check(sim, &self.labels, expectation)?,
            Command::Check => {
                sim.check_durability()?;
                sim.check_linearizability()?;
            }
            Command::Status(view) => return display::status(sim, names, *view),
            Command::Log { node, limit } => {
                let id = node_id(sim, names, *node)?;
                return Ok(crate::log_view::log_view(sim, names, id, *limit));
            }
            Command::Trace(count) => return Ok(display::trace(sim, *count)),
            Command::QueueLen => return Ok(display::queue_len(sim)),
            Command::Messages => return Ok(display::messages(sim)),
        }
        Ok(String::new())
    }

    /// Builds a new cluster; one without voters waits for `addnode`.
    fn start(&mut self, options: ClusterOptions) -> Result<(), SimError> {
        if options.voters.is_empty() {
            if !options.learners.is_empty() || !options.spares.is_empty() {
                return invalid(
                    "a cluster without voters has no learners or spares: `addnode` adds its nodes",
                );
            }
            options.config.validate().map_err(|e| SimError::Invalid(e.to_string()))?;
            self.sim = None;
            self.empty = options;
        } else {
            self.sim = Some(Simulator::new(options)?);
        }
        self.labels.clear();
        self.names = Names::default();
        Ok(())
    }

    /// The simulator, or why a command cannot run without one.
    fn sim(&self) -> Result<&Simulator, SimError> {
        self.sim.as_ref().map_or_else(|| invalid(NO_CLUSTER), Ok)
    }

    fn sim_mut(&mut self) -> Result<&mut Simulator, SimError> {
        self.sim.as_mut().map_or_else(|| invalid(NO_CLUSTER), Ok)
    }

    /// Names a request; with an expected outcome, drives the cluster until the outcome can be
    /// judged, then checks it.
    fn finish_request(
        &mut self,
        request: RequestId,
        label: &str,
        expect: Option<&OutcomeSpec>,
        observe: Observe<'_>,
    ) -> Result<(), SimError> {
        self.labels.insert(label.to_string(), request);
        let Some(expected) = expect else { return Ok(()) };
        let done = |sim: &Simulator| sim.history().get(request).is_some_and(|op| settled(sim, op, expected));
        self.await_outcome(done, observe)?;
        let sim = self.sim()?;
        check_outcome(sim, labelled(sim, &self.labels, label)?, expected)
    }
}

/// The node `node` names, which must exist: the running leader, or a node by id.
fn node_id(sim: &Simulator, names: &Names, node: NodeRef) -> Result<NodeId, SimError> {
    match node {
        NodeRef::Leader => sim
            .leader()
            .map_or_else(|| invalid("there is no leader now (`run 1s` gives an election time)"), Ok),
        NodeRef::Id(id) if sim.ids().contains(&id) => Ok(id),
        NodeRef::Id(id) => {
            let ids: Vec<String> = sim.ids().into_iter().map(|id| names.show(id)).collect();
            invalid(format!("there is no node {id} (the nodes are {})", ids.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_reports_itself_and_the_cluster() {
        let failure = Session::run_script("cluster 3; elect 2; expect 1 is leader; elect 3").unwrap_err();
        assert_eq!((failure.step, failure.command.as_str()), (3, "expect 1 is leader"));
        assert!(matches!(failure.error, SimError::Expectation(_)));
        let report = failure.to_string();
        assert!(report.contains("node | state | role"), "{report}");
        assert!(report.contains("seed 0"), "{report}");
        assert!(report.contains("node 2 is Leader in term 1"), "{report}");
    }

    #[test]
    fn commands_need_a_cluster_and_known_nodes() {
        let mut session = Session::new();
        assert!(matches!(session.run_line("elect 1"), Err(SimError::Invalid(_))));
        assert!(matches!(session.run_line("elect"), Err(SimError::Parse(_))));
        session.run_line("cluster 1").unwrap();
        assert!(matches!(session.run_line("crash 7"), Err(SimError::Invalid(_))));
        assert!(session.run_line("status").unwrap().contains("Follower"));
        session.run_line("elect 1").unwrap();
        session.run_line("propose 1 \"x=1\"").unwrap();
        assert!(session.run_line("messages").unwrap().is_empty());
        let error = session.run_line("cut 1 -> 9").unwrap_err().to_string();
        assert_eq!(error, "cannot run this command: there is no node 9 (the nodes are 1)");
    }

    #[test]
    fn addnode_builds_a_cluster_from_nothing_and_names_its_nodes() {
        let mut session = Session::new();
        session.run_line("cluster [] with { seed=3 }").unwrap();
        assert!(session.simulator().is_none());
        assert!(session.run_line("status").unwrap_err().to_string().contains("addnode NAME"));
        for name in ["first", "second", "third"] {
            assert_eq!(session.run_line(&format!("addnode {name}")).unwrap(), "", "{name}");
        }
        let sim = session.simulator().unwrap();
        assert_eq!((sim.ids(), sim.leader(), sim.options().seed), (vec![1, 2, 3], Some(1), 3));
        session.run_line("expect first voters = [first, second, third]").unwrap();
        session.run_line("expect op change ok").unwrap();
        assert!(session.run_line("status").unwrap().ends_with("names: first = 1, second = 2, third = 3\n"));
        let error = session.run_line("addnode second").unwrap_err().to_string();
        assert!(error.ends_with("node 2 (second) is already in the configuration"), "{error}");
        assert!(session.run_line("addnode leader").is_err());
        session.run_line("removenode third").unwrap();
        session.run_line("expect first voters = [1, 2]").unwrap();
        session.run_line("addnode third").unwrap();
        session.run_line("expect first voters = [1, 2, 3]").unwrap();
    }

    #[test]
    fn requests_that_wait_for_their_answer() {
        let mut session = Session::new();
        session.run_line("cluster 3").unwrap();
        let error = session.run_line("put x 1").unwrap_err().to_string();
        assert!(error.contains("there is no leader now"), "{error}");
        session.run_line("run 1s").unwrap();
        assert_eq!(session.run_line("put x 1").unwrap(), "");
        session.run_line("expect op \"x=1\" committed").unwrap();
        session.run_line("isolate leader").unwrap();
        let note = session.run_line("put x 2").unwrap();
        assert!(note.starts_with("no answer after 3000 ms"), "{note}");
        session.run_line("expect op \"x=2\" pending").unwrap();
        session.run_line("get x").unwrap();
        session.run_line("expect op \"read x\" \"1\"").unwrap();
    }

    #[test]
    fn displays() {
        let mut session = Session::new();
        session.run_line("cluster 3").unwrap();
        session.run_line("run 1s").unwrap();
        assert!(session.run_line("diagnostics 3").unwrap().lines().nth(1).unwrap().starts_with("3 "));
        assert!(session.run_line("log 3").unwrap().starts_with("node 3: commit 1, applied 1"));
        assert_eq!(session.run_line("trace 2").unwrap().lines().count(), 2);
        assert_eq!(session.run_line("queuelen").unwrap(), "no messages in flight\n");
    }

    #[test]
    fn a_queueing_cut_delivers_when_the_link_is_restored() {
        let mut session = Session::new();
        for line in ["cluster 3", "run 1s", "net queue", "disconnect 3 1", "run 120ms"] {
            session.run_line(line).unwrap();
        }
        let queue = session.run_line("queuelen").unwrap();
        assert!(queue.contains("held on cut links, delivered when the links are restored"), "{queue}");
        assert!(session.run_line("messages").unwrap().contains("3 -> 1 Heartbeat (term 1"));
        session.run_line("connect 3 1").unwrap();
        let queue = session.run_line("queuelen").unwrap();
        assert!(queue.ends_with("none on a cut link or to a crashed node\n"), "{queue}");
        session.run_line("clearqueue").unwrap();
        assert_eq!(session.run_line("queuelen").unwrap(), "no messages in flight\n");
    }
}
