//! Randomized runs that hunt for bugs: one seed decides the cluster, its configuration, the
//! network's faults, and a stream of client operations, crashes, partitions, membership
//! changes, leadership transfers and compactions.
//!
//! A run has two phases. The chaos phase handles a number of simulator events (each checked
//! against every [`Rule`](crate::Rule)) while actions fire at random moments. The recovery
//! phase heals the network, restarts every node, waits for the cluster to converge, reads
//! every key, and checks that every acknowledged write is applied on every member and that
//! the client history is linearizable.
//!
//! ```
//! let report = testkit::chaos::run(7, 500).unwrap_or_else(|failure| panic!("{failure}"));
//! assert_eq!(report.seed, 7);
//! assert!(report.steps >= 500);
//! ```

use std::fmt;

use raft_core::{Config, MembershipChange, NodeId, RequestId};

use crate::error::SimError;
use crate::history::OpOutcome;
use crate::network::LinkFaults;
use crate::options::ClusterOptions;
use crate::rng::SimRng;
use crate::simulator::Simulator;
use crate::status::StatusTable;
use crate::CrashPoint;

/// Keys the clients write and read.
const KEYS: u64 = 4;
/// A client waits this long (simulated ms) for an answer before giving up on it.
const CLIENT_PATIENCE: u64 = 2_000;
/// How long (simulated ms) the recovery phase may take to converge.
const RECOVERY_LIMIT: u64 = 60_000;

/// The command that replays `seed` with full output.
pub fn replay_command(seed: u64) -> String {
    format!("SEED={seed} cargo test -p testkit --test chaos -- replay --nocapture")
}

/// What a successful run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// The cluster and configuration the seed chose.
    pub setup: String,
    /// Simulator events handled (chaos and recovery).
    pub steps: u64,
    /// Simulated milliseconds.
    pub simulated_ms: u64,
    /// Client operations issued.
    pub operations: usize,
    /// Writes acknowledged as committed.
    pub acknowledged: usize,
    /// Faults injected (crashes, partitions, network changes …).
    pub faults: usize,
    /// Keys whose linearizability check ran out of budget (normally none).
    pub unchecked_keys: Vec<String>,
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {}; {} steps, {} simulated ms, {} operations ({} writes acknowledged), {} faults",
            self.seed,
            self.setup,
            self.steps,
            self.simulated_ms,
            self.operations,
            self.acknowledged,
            self.faults
        )
    }
}

/// A failed run: the seed, the broken rule, and the cluster as it was.
#[derive(Debug)]
pub struct ChaosFailure {
    /// The seed.
    pub seed: u64,
    /// The cluster and configuration the seed chose.
    pub setup: String,
    /// What went wrong.
    pub error: SimError,
    /// The cluster table and the latest events.
    pub context: String,
}

impl fmt::Display for ChaosFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos seed {} failed: {}", self.seed, self.error)?;
        writeln!(f, "setup: {}", self.setup)?;
        writeln!(f, "replay: {}", replay_command(self.seed))?;
        f.write_str(&self.context)
    }
}

impl std::error::Error for ChaosFailure {}

/// Runs seed `seed` for at least `steps` simulator events of chaos, then recovers and checks.
pub fn run(seed: u64, steps: u64) -> Result<ChaosReport, ChaosFailure> {
    let mut rng = SimRng::new(seed);
    let options = random_options(&mut rng, seed);
    let setup = describe(&options);
    let fail = |sim: Option<&Simulator>, error: SimError| {
        let context = sim.map_or_else(String::new, |sim| {
            let trace: String = sim.trace().lines().map(|l| format!("  {l}\n")).collect();
            format!("cluster at {} ms:\n{}latest events:\n{trace}", sim.now(), StatusTable(sim))
        });
        ChaosFailure { seed, setup: setup.clone(), error, context }
    };
    let sim = Simulator::new(options).map_err(|e| fail(None, e))?;
    let mut chaos = Chaos { sim, rng, clients: vec![None; 3], faults: 0 };
    let result = chaos.chaos_phase(steps).and_then(|()| chaos.recovery_phase());
    match result {
        Ok(unchecked_keys) => Ok(ChaosReport {
            seed,
            setup: setup.clone(),
            steps: chaos.sim.steps(),
            simulated_ms: chaos.sim.now(),
            operations: chaos.sim.history().ops().len(),
            acknowledged: chaos
                .sim
                .history()
                .ops()
                .iter()
                .filter(|op| matches!(op.outcome, OpOutcome::Committed { .. }))
                .count(),
            faults: chaos.faults,
            unchecked_keys,
        }),
        Err(error) => Err(fail(Some(&chaos.sim), error)),
    }
}

/// The cluster a seed runs: 1 to 9 nodes, some of them spares outside the configuration,
/// with randomized protocol settings and network faults.
fn random_options(rng: &mut SimRng, seed: u64) -> ClusterOptions {
    let size = *rng.pick(&[1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7, 9]).unwrap_or(&3);
    let voters = if rng.chance(0.7) { size.min(5) } else { rng.between(1, size) };
    let election_timeout_min = rng.between(100, 200);
    let check_quorum = rng.chance(0.7);
    let config = Config {
        election_timeout_min,
        election_timeout_max: election_timeout_min * 2,
        heartbeat_interval: rng.between(20, election_timeout_min / 3),
        pre_vote: rng.chance(0.7),
        check_quorum,
        lease_reads: check_quorum && rng.chance(0.3),
        max_inflight: *rng.pick(&[1, 4, 32]).unwrap_or(&32),
        max_append_entries: *rng.pick(&[1, 3, 64]).unwrap_or(&64),
        max_append_bytes: *rng.pick(&[64, 1 << 20]).unwrap_or(&(1 << 20)),
        snapshot_chunk_bytes: *rng.pick(&[16, 64 << 10]).unwrap_or(&(64 << 10)),
        snapshot_every: *rng.pick(&[0, 0, 5, 20, 50]).unwrap_or(&0),
        // From a stream of its own, so every seed kept as a regression test still draws the
        // rest of its run as it did when it was found.
        snapshot_log_percent: *SimRng::new(seed ^ 0x5a5a_0000_0000_0025).pick(&[0, 0, 50, 400]).unwrap_or(&0),
        ..Config::default()
    };
    ClusterOptions {
        voters: (1..=voters).collect(),
        learners: Vec::new(),
        spares: (voters + 1..=size).collect(),
        config,
        faults: random_faults(rng),
        seed,
    }
}

fn random_faults(rng: &mut SimRng) -> LinkFaults {
    if rng.chance(0.2) {
        return LinkFaults::default();
    }
    let delay_min = rng.between(0, 5);
    LinkFaults {
        delay_min,
        delay_max: delay_min + rng.between(0, 30),
        drop: rng.below(11) as f64 / 100.0,
        duplicate: rng.below(6) as f64 / 100.0,
        reorder: rng.below(11) as f64 / 100.0,
    }
}

fn describe(options: &ClusterOptions) -> String {
    let c = &options.config;
    let f = &options.faults;
    format!(
        "voters {:?} spares {:?}, election timeout {}..{} ms, heartbeat {} ms, pre_vote {}, check_quorum {}, \
         lease_reads {}, max_inflight {}, max_append_entries {}, max_append_bytes {}, snapshot_every {}, \
         snapshot_log_percent {}, snapshot_chunk {}; links delay {}..{} ms drop {} duplicate {} reorder {}",
        options.voters,
        options.spares,
        c.election_timeout_min,
        c.election_timeout_max,
        c.heartbeat_interval,
        c.pre_vote,
        c.check_quorum,
        c.lease_reads,
        c.max_inflight,
        c.max_append_entries,
        c.max_append_bytes,
        c.snapshot_every,
        c.snapshot_log_percent,
        c.snapshot_chunk_bytes,
        f.delay_min,
        f.delay_max,
        f.drop,
        f.duplicate,
        f.reorder
    )
}

/// A run in progress. Each client has at most one operation outstanding.
struct Chaos {
    sim: Simulator,
    rng: SimRng,
    clients: Vec<Option<(RequestId, u64)>>,
    faults: usize,
}

impl Chaos {
    fn chaos_phase(&mut self, steps: u64) -> Result<(), SimError> {
        while self.sim.steps() < steps {
            let next_action = self.sim.now() + self.rng.between(1, 40);
            while self.sim.steps() < steps && self.sim.next_event_time().is_some_and(|at| at <= next_action) {
                self.sim.step()?;
            }
            self.sim.run_until(next_action)?;
            self.act()?;
        }
        Ok(())
    }

    /// One random action: mostly client traffic, sometimes a fault or an operator command.
    fn act(&mut self) -> Result<(), SimError> {
        if self.rng.chance(0.7) {
            return self.client_action();
        }
        let ids = self.sim.ids();
        let up: Vec<NodeId> = ids.iter().copied().filter(|&id| self.sim.is_up(id)).collect();
        let down: Vec<NodeId> = ids.iter().copied().filter(|&id| !self.sim.is_up(id)).collect();
        self.faults += 1;
        match self.rng.below(100) {
            0..12 if down.len() >= ids.len().div_ceil(2) => {} // keep most nodes running
            0..12 => {
                let Some(&id) = self.rng.pick(&up) else { return Ok(()) };
                if self.rng.chance(0.5) {
                    self.sim.note(format!("chaos: crash {id}"));
                    self.sim.crash(id)?;
                } else {
                    let point = *self.rng.pick(&CrashPoint::ALL).unwrap_or(&CrashPoint::BeforeSend);
                    self.sim.note(format!("chaos: crash {id} at {point}"));
                    self.sim.arm_crash(id, point)?;
                }
            }
            12..27 => {
                let Some(&id) = self.rng.pick(&down) else { return Ok(()) };
                self.sim.note(format!("chaos: restart {id}"));
                self.sim.restart(id)?;
            }
            27..37 => {
                let groups = self.random_partition(&ids);
                self.sim.note(format!("chaos: partition {groups:?}"));
                self.sim.network_mut().partition(&groups, &ids);
            }
            37..45 => {
                let (Some(&from), Some(&to)) = (self.rng.pick(&ids), self.rng.pick(&ids)) else {
                    return Ok(());
                };
                self.sim.note(format!("chaos: cut {from} -> {to}"));
                self.sim.network_mut().cut(from, to);
            }
            45..60 => {
                self.sim.note("chaos: heal".into());
                self.sim.network_mut().heal();
            }
            60..68 => {
                let faults = random_faults(&mut self.rng);
                self.sim.note(format!("chaos: net {faults:?}"));
                self.sim.network_mut().set_all_faults(faults);
            }
            68..83 => self.membership_change(&ids)?,
            83..90 => {
                let (Some(leader), Some(&to)) = (self.sim.leader(), self.rng.pick(&ids)) else {
                    return Ok(());
                };
                self.sim.note(format!("chaos: transfer {leader} to {to}"));
                self.sim.transfer_leadership(leader, to)?;
            }
            _ => {
                let Some(&id) = self.rng.pick(&up) else { return Ok(()) };
                self.sim.note(format!("chaos: compact {id}"));
                self.sim.compact(id)?;
            }
        }
        Ok(())
    }

    /// Two or three groups of nodes.
    fn random_partition(&mut self, ids: &[NodeId]) -> Vec<Vec<NodeId>> {
        let count = self.rng.between(2, 3) as usize;
        let mut groups = vec![Vec::new(); count];
        for &id in ids {
            groups[self.rng.below(count as u64) as usize].push(id);
        }
        groups
    }

    /// An operator asks the leader for a random change of configuration.
    fn membership_change(&mut self, ids: &[NodeId]) -> Result<(), SimError> {
        let Some(leader) = self.sim.leader() else { return Ok(()) };
        let Some(&node) = self.rng.pick(ids) else { return Ok(()) };
        let change = match self.rng.below(5) {
            0 => MembershipChange::AddVoter(node),
            1 => MembershipChange::AddLearner(node),
            2 => MembershipChange::Promote(node),
            3 => MembershipChange::Remove(node),
            _ => {
                let voters: Vec<NodeId> =
                    ids.iter().copied().filter(|_| self.rng.chance(0.5)).take(5).collect();
                MembershipChange::ReplaceVoters(if voters.is_empty() { vec![node] } else { voters })
            }
        };
        self.sim.note(format!("chaos: change {change:?} via {leader}"));
        self.sim.change_membership(leader, change)?;
        Ok(())
    }

    /// A random client, if idle (or out of patience), sends a write or a read to the leader
    /// or to any running node.
    fn client_action(&mut self) -> Result<(), SimError> {
        let client = self.rng.below(self.clients.len() as u64) as usize;
        let now = self.sim.now();
        if let Some((request, since)) = self.clients[client] {
            let answered = self.sim.history().get(request).is_some_and(|op| op.outcome.is_done());
            if !answered && now < since + CLIENT_PATIENCE {
                return Ok(());
            }
        }
        let up: Vec<NodeId> = self.sim.ids().into_iter().filter(|&id| self.sim.is_up(id)).collect();
        let target = match self.sim.leader() {
            Some(leader) if self.rng.chance(0.7) => leader,
            _ => match self.rng.pick(&up) {
                Some(&id) => id,
                None => return Ok(()),
            },
        };
        let key = format!("k{}", self.rng.below(KEYS));
        let request = if self.rng.chance(0.6) {
            let value = format!("c{client}-{}", self.sim.history().ops().len());
            self.sim.propose(target, format!("{key}={value}"))?
        } else {
            self.sim.read(target, key)?
        };
        self.clients[client] = Some((request, now));
        Ok(())
    }

    /// Heals everything, waits for convergence, reads every key, and runs the end-of-run
    /// checks. Returns the keys whose linearizability check gave up.
    fn recovery_phase(&mut self) -> Result<Vec<String>, SimError> {
        self.sim.note("chaos: recovery".into());
        self.sim.network_mut().heal();
        self.sim.network_mut().set_all_faults(LinkFaults::default());
        for id in self.sim.ids() {
            self.sim.disarm_crash(id)?;
        }
        let deadline = self.sim.now() + RECOVERY_LIMIT;
        self.converge(deadline)?;
        if let Some(leader) = self.sim.leader() {
            let reads: Vec<RequestId> =
                (0..KEYS).map(|k| self.sim.read(leader, format!("k{k}"))).collect::<Result<_, _>>()?;
            let answered = |sim: &Simulator| {
                reads.iter().all(|&r| sim.history().get(r).is_some_and(|op| op.outcome.is_done()))
            };
            while !answered(&self.sim) && self.sim.now() < deadline {
                self.sim.advance(100)?;
            }
        }
        self.converge(deadline)?;
        self.sim.check_durability()?;
        self.sim.check_linearizability()
    }

    /// Restarts crashed nodes and lets time pass until every node runs, one leader leads,
    /// and every member of its configuration has applied everything acknowledged.
    fn converge(&mut self, deadline: u64) -> Result<(), SimError> {
        loop {
            for id in self.sim.ids() {
                if !self.sim.is_up(id) {
                    self.sim.restart(id)?;
                }
            }
            if self.sim.check_durability().is_ok() || self.sim.now() >= deadline {
                return Ok(());
            }
            self.sim.advance(100)?;
        }
    }
}
