//! Election benchmark: how long a cluster is without a leader after its leader crashes.
//!
//! Modelled on the experiment of the Raft paper's §9.3: five servers, a 150–300 ms election timeout, the
//! leader crashed at a uniformly random moment within its heartbeat interval (half the
//! minimum election timeout), 1,000 trials. Here each trial is a seed of the deterministic
//! simulator (links deliver in 5–15 ms), so the figures are exact and repeatable. A "split
//! vote" is a term in which an election started and nobody won (real elections only: a
//! pre-vote that fails does not raise the term).
//!
//! Run with `cargo bench -p testkit --bench election`.

use raft_core::Config;
use testkit::{ClusterOptions, LinkFaults, SimRng, Simulator};

const TRIALS: u64 = 1_000;
const VOTERS: [u64; 5] = [1, 2, 3, 4, 5];

/// The outcome of one trial.
struct Trial {
    /// From the crash until a new leader was elected, in milliseconds.
    downtime: u64,
    /// Terms that started an election and elected nobody.
    split_votes: u64,
}

fn options(seed: u64, pre_vote: bool) -> ClusterOptions {
    let config = Config {
        election_timeout_min: 150,
        election_timeout_max: 300,
        heartbeat_interval: 75,
        pre_vote,
        ..Config::default()
    };
    let faults = LinkFaults { delay_min: 5, delay_max: 15, ..LinkFaults::default() };
    ClusterOptions { config, faults, seed, ..ClusterOptions::new(VOTERS) }
}

fn trial(seed: u64, pre_vote: bool) -> Trial {
    let mut sim = Simulator::new(options(seed, pre_vote)).expect("valid options");
    sim.advance(3_000).expect("no violation");
    let old = sim.leader().expect("a leader within 3 s");
    let old_term = sim.node(old).expect("running").term();
    // Crash at a random moment within a heartbeat interval, once the cluster is steady.
    let offset = SimRng::new(seed ^ 0x5EED).below(75);
    sim.advance(offset).expect("no violation");
    sim.crash(old).expect("the leader is up");
    let crashed_at = sim.now();
    let new = loop {
        if let Some(leader) = sim.leader().filter(|&l| l != old) {
            break leader;
        }
        assert!(sim.step().expect("no violation"), "the simulation ran out of events");
    };
    let new_term = sim.node(new).expect("running").term();
    Trial { downtime: sim.now() - crashed_at, split_votes: new_term - old_term - 1 }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    println!("Election after a leader crash: 5 voters, 150-300 ms timeout, 75 ms heartbeat, 5-15 ms links,");
    println!("{TRIALS} simulated trials per row (deterministic: seeds 0..{TRIALS}).\n");
    println!(
        "| protocol | p50 downtime | p99 downtime | max downtime | trials with a split vote | split votes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, pre_vote) in [("pre-vote (default)", true), ("no pre-vote (as in the paper)", false)] {
        let trials: Vec<Trial> = (0..TRIALS).map(|seed| trial(seed, pre_vote)).collect();
        let mut downtimes: Vec<u64> = trials.iter().map(|t| t.downtime).collect();
        downtimes.sort_unstable();
        let splits: u64 = trials.iter().map(|t| t.split_votes).sum();
        let split_trials = trials.iter().filter(|t| t.split_votes > 0).count();
        println!(
            "| {name} | {} ms | {} ms | {} ms | {split_trials} | {splits} |",
            percentile(&downtimes, 0.50),
            percentile(&downtimes, 0.99),
            downtimes[downtimes.len() - 1],
        );
    }
}
