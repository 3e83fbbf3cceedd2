//! Randomized chaos runs (see `testkit::chaos`).
//!
//! * `cargo test -p testkit --test chaos` runs the CI set: 500 seeds of 5,000 steps each
//!   (about 12 s in the default profile on two cores).
//! * `SOAK_SEEDS=100000 cargo test -p testkit --release --test chaos -- chaos_seeds --nocapture`
//!   runs a soak (`FIRST_SEED` and `STEPS` adjust it).
//! * `SEED=1234 cargo test -p testkit --test chaos -- replay --nocapture` replays one seed.

use std::env;
use std::thread;

use testkit::chaos::{self, ChaosFailure, ChaosReport};

const CI_SEEDS: u64 = 500;
const CI_STEPS: u64 = 5_000;
/// Failures after which a soak stops looking for more.
const MAX_FAILURES: usize = 10;

fn env_u64(name: &str) -> Option<u64> {
    let value = env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")))
}

fn steps() -> u64 {
    env_u64("STEPS").unwrap_or(CI_STEPS)
}

/// Runs `seeds` on every core; returns the reports and the failures (sorted by seed).
fn run_all(seeds: Vec<u64>, steps: u64) -> (Vec<ChaosReport>, Vec<ChaosFailure>) {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let (mut reports, mut failures) = (Vec::new(), Vec::new());
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let mine: Vec<u64> = seeds.iter().copied().skip(worker).step_by(threads).collect();
                scope.spawn(move || {
                    let (mut reports, mut failures) = (Vec::new(), Vec::new());
                    for seed in mine {
                        match chaos::run(seed, steps) {
                            Ok(report) => reports.push(report),
                            Err(failure) => failures.push(failure),
                        }
                        if failures.len() >= MAX_FAILURES {
                            break;
                        }
                    }
                    (reports, failures)
                })
            })
            .collect();
        for worker in workers {
            let (r, f) = worker.join().expect("a chaos worker panicked");
            reports.extend(r);
            failures.extend(f);
        }
    });
    failures.sort_by_key(|f| f.seed);
    (reports, failures)
}

#[test]
fn chaos_seeds() {
    let count = env_u64("SOAK_SEEDS").unwrap_or(CI_SEEDS);
    let first = env_u64("FIRST_SEED").unwrap_or(0);
    let (reports, failures) = run_all((first..first + count).collect(), steps());
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let acknowledged: usize = reports.iter().map(|r| r.acknowledged).sum();
    println!(
        "{} seeds passed ({steps} steps, {acknowledged} acknowledged writes), {} failed",
        reports.len(),
        failures.len()
    );
    for report in reports.iter().filter(|r| !r.unchecked_keys.is_empty()) {
        println!("seed {}: linearizability check gave up on keys {:?}", report.seed, report.unchecked_keys);
    }
    if let Some(first) = failures.first() {
        let seeds: Vec<String> = failures.iter().map(|f| format!("{} ({})", f.seed, f.error)).collect();
        panic!("{} chaos seeds failed:\n  {}\n\nfirst failure:\n{first}", failures.len(), seeds.join("\n  "));
    }
}

#[test]
fn replay() {
    let Some(seed) = env_u64("SEED") else {
        println!("set SEED=<n> to replay a chaos seed");
        return;
    };
    match chaos::run(seed, steps()) {
        Ok(report) => println!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}
