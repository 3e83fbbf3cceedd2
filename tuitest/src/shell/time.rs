//! Letting virtual time pass: `run`, `tick`, and the steps of `auto` and of waiting for a
//! request.

use testkit::{Duration, Simulator};

use super::Shell;

impl Shell {
    /// Lets `duration` pass, then tells the time.
    pub(super) fn run_for(&mut self, duration: Duration) -> Result<(), String> {
        let start = self.sim().now();
        self.drive(self.millis(duration), |_| false)?;
        let line = format!("  time {start} → {} ms", self.sim().now());
        self.say(self.settings.style.dim(&line));
        Ok(())
    }

    /// A duration in milliseconds, with the cluster's timeouts.
    pub(super) fn millis(&self, duration: Duration) -> u64 {
        let config = &self.sim().options().config;
        match duration {
            Duration::Millis(ms) => ms,
            Duration::ElectionTimeouts(n) => n * config.election_timeout_max,
            Duration::Heartbeats(n) => n * config.heartbeat_interval,
        }
    }

    /// Lets up to `ms` milliseconds pass one event at a time, reporting what changes as it
    /// happens. Once `done` holds, finishes the current millisecond and stops. Records the
    /// time that passed as an `advance`, which replays exactly: advancing to a time handles
    /// every event up to it, in the same order as these steps.
    pub(super) fn drive(&mut self, ms: u64, done: impl Fn(&Simulator) -> bool) -> Result<(), String> {
        let start = self.sim().now();
        let mut until = start + ms;
        let result = loop {
            let sim = self.sim_mut();
            if sim.next_event_time().is_none_or(|at| at > until) {
                break sim.run_until(until).map(|_| ());
            }
            if let Err(error) = sim.step() {
                break Err(error);
            }
            if done(sim) {
                until = sim.now();
            }
            self.look();
        };
        let elapsed = self.sim().now() - start;
        self.recording.advance(elapsed);
        result.map_err(|error| self.explain(error))
    }
}
