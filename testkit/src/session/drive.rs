//! Letting time pass inside a command: `advance`, `elect`, and waiting for a request's answer
//! or outcome — one event at a time, so that an observer sees each.

use raft_core::{NodeId, RequestId};

use super::{Observe, Session};
use crate::command::Duration;
use crate::error::SimError;
use crate::simulator::Simulator;

/// How many times `elect` lets a node time out before giving up.
const ELECT_ATTEMPTS: usize = 20;
/// How long (in election timeouts) a command with `=>` waits for its outcome.
const AWAIT_ELECTION_TIMEOUTS: u64 = 20;
/// How long (in election timeouts) `put`, `get`, `addnode` and `removenode` wait for their
/// answer before going on without it.
pub(super) const PATIENCE: u64 = 10;

/// Whether `request` has its answer.
pub(super) fn answered(request: RequestId) -> impl Fn(&Simulator) -> bool {
    move |sim| sim.history().get(request).is_some_and(|op| op.outcome.is_done())
}

/// `duration` in milliseconds, with the cluster's timeouts.
pub(super) fn millis(sim: &Simulator, duration: Duration) -> u64 {
    let config = &sim.options().config;
    match duration {
        Duration::Millis(ms) => ms,
        Duration::ElectionTimeouts(n) => n.saturating_mul(config.election_timeout_max),
        Duration::Heartbeats(n) => n.saturating_mul(config.heartbeat_interval),
    }
}

impl Session {
    /// Lets up to `ms` milliseconds pass one event at a time, calling `observe` after each.
    /// Once `done` holds, finishes the current millisecond and stops. Stepping is advancing:
    /// advancing to a time handles every event up to it, in the same order.
    pub(super) fn drive(
        &mut self,
        ms: u64,
        done: impl Fn(&Simulator) -> bool,
        observe: Observe<'_>,
    ) -> Result<(), SimError> {
        let mut until = self.sim()?.now().saturating_add(ms);
        loop {
            let sim = self.sim_mut()?;
            if sim.next_event_time().is_none_or(|at| at > until) {
                sim.run_until(until)?;
                return Ok(());
            }
            sim.step()?;
            if done(sim) {
                until = sim.now();
            }
            observe(self);
        }
    }

    /// Waits up to [`PATIENCE`] for `request`'s answer. Returns a note when it has none yet.
    pub(super) fn await_answer(
        &mut self,
        request: RequestId,
        observe: Observe<'_>,
    ) -> Result<String, SimError> {
        self.await_patiently(answered(request), observe)
    }

    /// Waits up to [`PATIENCE`] until `done` holds. Returns a note when it does not yet.
    pub(super) fn await_patiently(
        &mut self,
        done: impl Fn(&Simulator) -> bool,
        observe: Observe<'_>,
    ) -> Result<String, SimError> {
        if done(self.sim()?) {
            return Ok(String::new());
        }
        let patience = millis(self.sim()?, Duration::ElectionTimeouts(PATIENCE));
        self.drive(patience, &done, observe)?;
        if done(self.sim()?) {
            return Ok(String::new());
        }
        Ok(format!(
            "no answer after {patience} ms (can the node reach a majority?); it is reported when it comes\n"
        ))
    }

    /// Drives the cluster until `done` holds (delivering what is in flight first), a heartbeat
    /// interval at a time, for at most [`AWAIT_ELECTION_TIMEOUTS`].
    pub(super) fn await_outcome(
        &mut self,
        done: impl Fn(&Simulator) -> bool,
        observe: Observe<'_>,
    ) -> Result<(), SimError> {
        if !done(self.sim()?) {
            self.sim_mut()?.settle()?;
            observe(self);
        }
        let sim = self.sim()?;
        let step = millis(sim, Duration::Heartbeats(1));
        let deadline =
            sim.now().saturating_add(millis(sim, Duration::ElectionTimeouts(AWAIT_ELECTION_TIMEOUTS)));
        while !done(self.sim()?) && self.sim()?.now() < deadline {
            self.drive(step, |_| false, observe)?;
        }
        Ok(())
    }

    /// Makes `id` time out and delivers messages until it leads; lets a heartbeat interval
    /// pass between attempts (so leases of an old leader can expire).
    pub(super) fn elect(&mut self, id: NodeId, observe: Observe<'_>) -> Result<(), SimError> {
        for _ in 0..ELECT_ATTEMPTS {
            if self.sim()?.leader() == Some(id) {
                return Ok(());
            }
            let sim = self.sim_mut()?;
            sim.timeout(id)?;
            sim.settle()?;
            observe(self);
            if self.sim()?.leader() == Some(id) {
                return Ok(());
            }
            let step = millis(self.sim()?, Duration::Heartbeats(1));
            self.drive(step, |_| false, observe)?;
        }
        Err(SimError::Expectation(format!(
            "node {id} did not become leader after {ELECT_ATTEMPTS} election timeouts"
        )))
    }
}
