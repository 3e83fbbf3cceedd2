//! [`Session`]: runs [`Command`]s against a [`Simulator`] — the engine behind `seq_test!` and
//! the REPL.

use std::collections::BTreeMap;
use std::fmt;

use raft_core::{Bytes, Entry, HardState, NodeId, Payload, RequestId};

use crate::command::{Command, Duration, OutcomeSpec};
use crate::error::{invalid, SimError};
use crate::expect::{check, check_outcome, labelled, resolve, settled};
use crate::parse::split_script;
use crate::simulator::Simulator;
use crate::status::StatusTable;

/// How many times `elect` lets a node time out before giving up.
const ELECT_ATTEMPTS: usize = 20;
/// How long (in election timeouts) a command with `=>` waits for its outcome.
const AWAIT_ELECTION_TIMEOUTS: u64 = 20;

/// A scenario in progress: the simulator (once `cluster` ran) and the names of operations.
///
/// ```
/// use testkit::Session;
/// let mut session = Session::new();
/// session.run_line("cluster 3").unwrap();
/// session.run_line("elect 2").unwrap();
/// session.run_line("propose leader \"x=1\" => committed on [1, 2, 3]").unwrap();
/// assert!(session.run_line("expect 1 is leader").is_err());
/// ```
#[derive(Debug, Default)]
pub struct Session {
    sim: Option<Simulator>,
    labels: BTreeMap<String, RequestId>,
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
    /// commands print (`status`, `messages`) goes to standard output.
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

    /// The simulator, once a `cluster` command has run.
    pub fn simulator(&self) -> Option<&Simulator> {
        self.sim.as_ref()
    }

    /// The simulator, mutably.
    pub fn simulator_mut(&mut self) -> Option<&mut Simulator> {
        self.sim.as_mut()
    }

    /// The request id of the operation named `label`.
    pub fn request(&self, label: &str) -> Option<RequestId> {
        self.labels.get(label).copied()
    }

    /// The cluster table, the seed and the latest events (empty without a cluster).
    pub fn context(&self) -> String {
        let Some(sim) = &self.sim else { return String::new() };
        let mut out =
            format!("cluster at {} ms (seed {}):\n{}", sim.now(), sim.options().seed, StatusTable(sim));
        out.push_str("latest events:\n");
        for line in sim.trace().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }

    /// Parses and runs one command; returns what it prints.
    pub fn run_line(&mut self, line: &str) -> Result<String, SimError> {
        self.run(&Command::parse(line)?)
    }

    /// Runs one command; returns what it prints (`status` and `messages` print something).
    pub fn run(&mut self, command: &Command) -> Result<String, SimError> {
        if let Command::Cluster(options) = command {
            self.sim = Some(Simulator::new(options.clone())?);
            self.labels.clear();
            return Ok(String::new());
        }
        let Some(sim) = self.sim.as_mut() else {
            return invalid("no cluster yet; start with `cluster [1, 2, 3]`");
        };
        match command {
            Command::Cluster(_) => unreachable!("handled above"),
            Command::Restore { node, term, vote, log } => {
                let entries = log
                    .iter()
                    .enumerate()
                    .map(|(i, &term)| {
                        let index = i as u64 + 1;
                        Entry {
                            term,
                            index,
                            payload: Payload::Command(Bytes::from(format!("{index}@{term}"))),
                        }
                    })
                    .collect();
                sim.restore(*node, HardState { term: *term, vote: *vote }, entries)?;
            }
            Command::Elect(id) => elect(sim, *id)?,
            Command::Timeout(id) => sim.timeout(*id)?,
            Command::Advance(duration) => {
                sim.advance(millis(sim, *duration))?;
            }
            Command::Settle => {
                sim.settle()?;
            }
            Command::Propose { node, command, label, expect } => {
                let id = resolve(sim, *node)?;
                let request = sim.propose(id, command.clone())?;
                self.finish_request(request, label.as_deref().unwrap_or(command), expect.as_ref())?;
            }
            Command::Read { node, key, label, expect } => {
                let id = resolve(sim, *node)?;
                let request = sim.read(id, key.clone())?;
                let label = label.clone().unwrap_or_else(|| format!("read {key}"));
                self.finish_request(request, &label, expect.as_ref())?;
            }
            Command::Change { node, change, label, expect } => {
                let id = resolve(sim, *node)?;
                let request = sim.change_membership(id, change.clone())?;
                self.finish_request(request, label.as_deref().unwrap_or("change"), expect.as_ref())?;
            }
            Command::Transfer { node, to, label, expect } => {
                let id = resolve(sim, *node)?;
                let request = sim.transfer_leadership(id, *to)?;
                self.finish_request(request, label.as_deref().unwrap_or("transfer"), expect.as_ref())?;
            }
            Command::Compact(node) => {
                let id = resolve(sim, *node)?;
                sim.compact(id)?;
            }
            Command::Deliver { filter, first_only } => {
                sim.deliver(filter, *first_only)?;
            }
            Command::Drop { filter, first_only } => {
                sim.drop_messages(filter, *first_only);
            }
            Command::Partition(groups) => {
                let ids = sim.ids();
                sim.network_mut().partition(groups, &ids);
            }
            Command::Isolate(id) => {
                for other in sim.ids().into_iter().filter(|other| other != id) {
                    sim.network_mut().cut(*id, other);
                    sim.network_mut().cut(other, *id);
                }
            }
            Command::Cut { from, to, both } => {
                let network = sim.network_mut();
                network.cut(*from, *to);
                if *both {
                    network.cut(*to, *from);
                }
            }
            Command::Connect { from, to, both } => {
                let network = sim.network_mut();
                network.connect(*from, *to);
                if *both {
                    network.connect(*to, *from);
                }
            }
            Command::Heal => sim.network_mut().heal(),
            Command::Faults { link: Some((from, to)), faults } => {
                sim.network_mut().set_faults(*from, *to, *faults)
            }
            Command::Faults { link: None, faults } => sim.network_mut().set_all_faults(*faults),
            Command::Crash { node, at } => {
                let id = resolve(sim, *node)?;
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
            Command::Status => return Ok(StatusTable(sim).to_string()),
            Command::Messages => {
                return Ok(sim.network().in_flight().map(|e| format!("{e}\n")).collect());
            }
        }
        Ok(String::new())
    }

    /// Names a request; with an expected outcome, drives the cluster until the outcome can be
    /// judged, then checks it.
    fn finish_request(
        &mut self,
        request: RequestId,
        label: &str,
        expect: Option<&OutcomeSpec>,
    ) -> Result<(), SimError> {
        self.labels.insert(label.to_string(), request);
        let (Some(expected), Some(sim)) = (expect, self.sim.as_mut()) else { return Ok(()) };
        let done = |sim: &Simulator| sim.history().get(request).is_some_and(|op| settled(sim, op, expected));
        if !done(sim) {
            sim.settle()?;
        }
        let step = millis(sim, Duration::Heartbeats(1));
        let deadline = sim.now() + millis(sim, Duration::ElectionTimeouts(AWAIT_ELECTION_TIMEOUTS));
        while !done(sim) && sim.now() < deadline {
            sim.advance(step)?;
        }
        check_outcome(sim, labelled(sim, &self.labels, label)?, expected)
    }
}

fn millis(sim: &Simulator, duration: Duration) -> u64 {
    let config = &sim.options().config;
    match duration {
        Duration::Millis(ms) => ms,
        Duration::ElectionTimeouts(n) => n * config.election_timeout_max,
        Duration::Heartbeats(n) => n * config.heartbeat_interval,
    }
}

/// Makes `id` time out and delivers messages until it leads; lets a heartbeat interval pass
/// between attempts (so leases of an old leader can expire).
fn elect(sim: &mut Simulator, id: NodeId) -> Result<(), SimError> {
    for _ in 0..ELECT_ATTEMPTS {
        if sim.leader() == Some(id) {
            return Ok(());
        }
        sim.timeout(id)?;
        sim.settle()?;
        if sim.leader() == Some(id) {
            return Ok(());
        }
        sim.advance(millis(sim, Duration::Heartbeats(1)))?;
    }
    Err(SimError::Expectation(format!(
        "node {id} did not become leader after {ELECT_ATTEMPTS} election timeouts"
    )))
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
    }
}
