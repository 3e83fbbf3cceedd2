//! Runs the firmware's scenario (`examples/firmware/cluster.rs`) on the host, on embassy's std
//! executor and embassy-time's mock clock: deterministic, and fast.
//!
//! The scenario's network and the mock clock are one per process, so each test binary runs one
//! scenario, and uses only part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use embassy_executor::{Executor, Spawner};
use embassy_time::{Duration, MockDriver};

#[path = "../../examples/firmware/cluster.rs"]
pub mod cluster;

static DONE: AtomicBool = AtomicBool::new(false);
static OUTCOME: Mutex<Option<Result<String, String>>> = Mutex::new(None);

/// Runs the scenario, committing `partition_commands` while the first leader is isolated, and
/// returns its report or its failure.
pub fn run_scenario(partition_commands: u64) -> Result<String, String> {
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner| {
            spawner.spawn(clock().expect("one clock per process"));
            spawner.spawn(scenario(spawner, partition_commands).expect("one scenario per process"));
        },
        || DONE.load(Ordering::SeqCst),
    );
    OUTCOME.lock().unwrap().take().expect("the scenario finished")
}

#[embassy_executor::task]
async fn scenario(spawner: Spawner, partition_commands: u64) {
    let outcome = cluster::run(spawner, partition_commands, |line| println!("{line}")).await;
    *OUTCOME.lock().unwrap() =
        Some(outcome.map(|report| report.to_string()).map_err(|failure| failure.to_string()));
    DONE.store(true, Ordering::SeqCst);
}

/// Advances the mock clock by one millisecond per executor pass until the scenario is done,
/// so timers fire in order and no test waits for wall-clock time.
#[embassy_executor::task]
async fn clock() {
    while !DONE.load(Ordering::SeqCst) {
        MockDriver::get().advance(Duration::from_millis(1));
        embassy_futures::yield_now().await;
    }
}
