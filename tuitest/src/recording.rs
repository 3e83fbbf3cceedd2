//! [`Recording`]: the session so far as a testkit script that replays it exactly.

use testkit::ClusterOptions;

use crate::cluster_line::cluster_line;

/// One recorded step.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// `advance Nms`: consecutive ones merge (advancing by a and then b is advancing by a + b,
    /// since the simulator handles every event up to the end either way).
    Advance(u64),
    /// Any other command, as text.
    Line(String),
}

/// The cluster a session started with and every command that changed it since, as testkit
/// commands.
#[derive(Clone, Debug)]
pub struct Recording {
    options: ClusterOptions,
    steps: Vec<Step>,
}

impl Recording {
    /// A session that starts with a cluster built from `options`.
    pub fn new(options: ClusterOptions) -> Self {
        Recording { options, steps: Vec::new() }
    }

    /// Records a command.
    pub fn line(&mut self, line: impl Into<String>) {
        self.steps.push(Step::Line(line.into()));
    }

    /// Records that `ms` milliseconds of virtual time passed.
    pub fn advance(&mut self, ms: u64) {
        match self.steps.last_mut() {
            _ if ms == 0 => {}
            Some(Step::Advance(total)) => *total += ms,
            _ => self.steps.push(Step::Advance(ms)),
        }
    }

    /// How many commands were recorded after the `cluster` command.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether nothing was recorded after the `cluster` command.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The script: the `cluster` command, then every recorded command.
    pub fn commands(&self) -> Vec<String> {
        let steps = self.steps.iter().map(|step| match step {
            Step::Advance(ms) => format!("advance {ms}ms"),
            Step::Line(line) => line.clone(),
        });
        std::iter::once(cluster_line(&self.options)).chain(steps).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::{Session, Simulator};

    #[test]
    fn consecutive_advances_merge() {
        let mut recording = Recording::new(ClusterOptions::new([1, 2]));
        recording.advance(100);
        recording.advance(0);
        recording.advance(50);
        recording.line("heal");
        recording.advance(7);
        assert_eq!(
            recording.commands(),
            ["cluster [1, 2] with { seed=0 }", "advance 150ms", "heal", "advance 7ms"]
        );
        assert_eq!(recording.len(), 3);
    }

    /// The merge is exact: a run advanced in small pieces ends where one advance ends.
    #[test]
    fn advancing_in_pieces_is_advancing_at_once() {
        let options = ClusterOptions { seed: 9, ..ClusterOptions::new([1, 2, 3]) };
        let state = |sim: &Simulator| -> Vec<String> {
            let nodes = sim.ids().into_iter().filter_map(|id| sim.node(id));
            let mut state: Vec<String> = nodes
                .map(|n| {
                    format!(
                        "{} {} {} {:?} {:?}",
                        n.role(),
                        n.term(),
                        n.commit_index(),
                        n.last_log_id(),
                        n.now()
                    )
                })
                .collect();
            state.extend(sim.network().in_flight().map(ToString::to_string));
            state.push(sim.now().to_string());
            state
        };
        let mut pieces = Simulator::new(options.clone()).unwrap();
        for ms in [1, 149, 3, 300, 47, 1000] {
            pieces.advance(ms).unwrap();
        }
        let mut once = Session::new();
        once.run_line(&cluster_line(&options)).unwrap();
        once.run_line("advance 1500ms").unwrap();
        assert_eq!(state(&pieces), state(once.simulator().unwrap()));
    }
}
