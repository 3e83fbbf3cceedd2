//! Load benchmark of `raft-kv` over HTTP, side by side with etcd, and over TLS side by side
//! with itself over plain HTTP.
//!
//! # Method
//!
//! * Three `raft-kv` processes (the binary this package builds, default flags: fsync on; plain
//!   HTTP with `--insecure`, as etcd's side is served) on loopback, data in a fresh directory
//!   under `target/tmp`; likewise, when an `etcd` binary is installed, three etcd processes
//!   (default flags: fsync on), driven through etcd's JSON gateway (`POST /v3/kv/put`,
//!   `POST /v3/kv/range`, base64 keys and values).
//! * `raft-kv-tls` (only when `LOAD_SYSTEMS` names it): the same binary secure by default.
//!   Each cluster's certificates are made in its directory by the binary's own
//!   `raft-kv certs --dir <dir>/certs --node 1 --node 2 --node 3`, and each node runs with
//!   `--tls-cert certs/node-N.pem --tls-key certs/node-N-key.pem --tls-ca certs/ca.pem
//!   --roles certs/roles` instead of `--insecure`: HTTPS for clients, mutual TLS on the Raft
//!   port. The load clients speak HTTPS (rustls, ring provider, as the servers) with the admin
//!   client certificate (`client.pem`), which the roles file makes `admin`.
//! * For each client count `C` and each system, a fresh cluster. Once a leader is elected and
//!   has accepted a write, `C` closed-loop clients, each with one keep-alive HTTP/1.1
//!   connection to the leader (opened, and for TLS handshaken, before its first request, so
//!   during the warm-up), send requests back to back:
//!   1. writes of 64-byte values to distinct keys: a warm-up (its keys are kept), then the
//!      measured window;
//!   2. linearizable reads of the keys written during the warm-up (raft-kv: `GET /kv/{key}`;
//!      etcd: range without `serializable`): warm-up, then the measured window.
//! * Every request that starts in the measured window is recorded; writes/s and reads/s are
//!   successful requests over the window, p50 and p99 are exact (every latency is kept).
//!   `CPU/op` is the CPU time of the three server processes together (from
//!   `/proc/<pid>/stat`) over the window, per successful request: steadier than throughput on
//!   a shared machine.
//! * One table per comparison of two systems that both ran: raft-kv vs etcd (the stores),
//!   raft-kv-tls vs raft-kv (what TLS costs; the two run in the same invocation, alternately
//!   first). The ratios are the first / the second for throughput and the second / the first
//!   for latency and CPU, so above 1 means the first is better: raft-kv-tls's writes/s ratio
//!   is 1 minus TLS's cost. With no such pair (one system), one table without ratios.
//!
//! The load generator runs in this process on one thread (a current-thread tokio runtime,
//! hyper's HTTP/1.1 client; for raft-kv-tls over tokio-rustls), sharing the machine with the
//! server processes; its own CPU use per system, and the TLS version and cipher suite the
//! clients negotiated, are printed under the tables. The client side of TLS costs the load
//! generator's CPU, not the servers' `CPU/op`.
//!
//! # Usage
//!
//! `cargo bench -p raft-kv --bench load` (about 2 minutes with etcd, once built); the cost of
//! TLS: `LOAD_SYSTEMS=raft-kv,raft-kv-tls`. Environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LOAD_CLIENTS` | `1,16,64,256` | client counts, one row pair each |
//! | `LOAD_ROUNDS` | `1` | cells per system and client count, alternating which system goes first; the table shows each figure's median over the rounds (for a machine whose run-to-run drift is larger than the difference measured) |
//! | `LOAD_SECS` | `5` | measured seconds per phase |
//! | `LOAD_WARMUP_SECS` | `1` | warm-up seconds per phase |
//! | `LOAD_SYSTEMS` | `raft-kv,etcd` | which systems to run, comma-separated: `raft-kv`, `raft-kv-tls`, `etcd` |
//! | `LOAD_RAFT_KV` | the `raft-kv` cargo built | another `raft-kv` binary (e.g. another branch's build), for raft-kv and raft-kv-tls |
//! | `LOAD_ETCD` | `etcd` on `PATH` | the etcd binary |
//! | `LOAD_RAFT_KV_ARGS`, `LOAD_ETCD_ARGS` | none | extra flags for every node (split on spaces; the first for raft-kv and raft-kv-tls) |
//! | `LOAD_MEMORY` | unset | instead of the table: load this many keys into each system, then report each node's resident memory |
//! | `LOAD_MEMORY_CLIENTS`, `LOAD_MEMORY_SECS` | `64`, `900` | clients for that load, and its time limit per system |
//! | `LOAD_DIR` | `target/tmp` | where the clusters keep their data |
//!
//! Outside `cargo bench` (e.g. `cargo test --benches`), it does nothing.

mod procs;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;

use crate::procs::{cpu_seconds, disk_bytes, rss_kib, Cluster, Kind, Launch};
use crate::workload::{client, read_call, value, Endpoint, Record, Work};

struct Settings {
    clients: Vec<usize>,
    rounds: usize,
    warmup: Duration,
    measured: Duration,
    systems: Vec<Kind>,
    memory: Option<u64>,
    memory_clients: usize,
    memory_limit: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match env(name) {
        Some(text) => text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} does not parse")),
        None => default,
    }
}

fn env_words(name: &str) -> Vec<String> {
    env(name).map(|v| v.split_whitespace().map(String::from).collect()).unwrap_or_default()
}

/// `etcd` from `LOAD_ETCD` or `PATH`.
fn find_etcd() -> Option<PathBuf> {
    if let Some(path) = env("LOAD_ETCD") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("etcd")).find(|candidate| candidate.is_file())
}

fn first_line(program: &PathBuf, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown version".into())
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("load: a benchmark; run it with `cargo bench -p raft-kv --bench load`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let interrupted = runtime.block_on(async {
        tokio::select! {
            () = run() => false,
            () = termination() => true,
        }
    });
    // Dropping `run` above dropped its clusters, which killed their processes.
    drop(runtime);
    if interrupted {
        eprintln!("load: interrupted; every node was stopped");
        std::process::exit(130);
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn run() {
    let etcd = find_etcd();
    let mut systems: Vec<Kind> = match env("LOAD_SYSTEMS") {
        Some(list) => list
            .split(',')
            .map(|name| {
                let name = name.trim();
                Kind::ALL.into_iter().find(|kind| kind.name() == name).unwrap_or_else(|| {
                    panic!("LOAD_SYSTEMS: unknown system {name:?} (raft-kv, raft-kv-tls, etcd)")
                })
            })
            .collect(),
        None => vec![Kind::RaftKv, Kind::Etcd],
    };
    for (i, kind) in systems.iter().enumerate() {
        assert!(!systems[..i].contains(kind), "LOAD_SYSTEMS: {} twice", kind.name());
    }
    if etcd.is_none() && systems.contains(&Kind::Etcd) {
        println!(
            "etcd not found on PATH: measuring raft-kv only. To compare, install etcd \
             (Debian/Ubuntu: `apt-get install etcd-server`, etcd 3.4 at /usr/bin/etcd) or set LOAD_ETCD."
        );
        systems.retain(|&kind| kind != Kind::Etcd);
    }
    let settings = Settings {
        clients: env("LOAD_CLIENTS")
            .unwrap_or_else(|| "1,16,64,256".into())
            .split(',')
            .map(|c| c.trim().parse().expect("LOAD_CLIENTS: comma-separated client counts"))
            .collect(),
        rounds: env_parse("LOAD_ROUNDS", 1),
        warmup: Duration::from_secs_f64(env_parse("LOAD_WARMUP_SECS", 1.0)),
        measured: Duration::from_secs_f64(env_parse("LOAD_SECS", 5.0)),
        systems,
        memory: env("LOAD_MEMORY").map(|n| n.trim().parse().expect("LOAD_MEMORY: a key count")),
        memory_clients: env_parse("LOAD_MEMORY_CLIENTS", 64),
        memory_limit: Duration::from_secs_f64(env_parse("LOAD_MEMORY_SECS", 900.0)),
    };
    assert!(settings.clients.iter().all(|&c| c > 0), "LOAD_CLIENTS: counts must be positive");
    assert!(settings.rounds > 0, "LOAD_ROUNDS: at least 1 (odd counts have a middle value)");
    let root = env("LOAD_DIR").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&root).expect("the data directory's parent");
    let launch = Launch {
        root,
        raft_kv: PathBuf::from(env("LOAD_RAFT_KV").unwrap_or_else(|| env!("CARGO_BIN_EXE_raft-kv").into())),
        raft_kv_args: env_words("LOAD_RAFT_KV_ARGS"),
        etcd,
        etcd_args: env_words("LOAD_ETCD_ARGS"),
    };
    describe(&settings, &launch);
    match settings.memory {
        Some(keys) => memory(&settings, &launch, keys).await,
        None => table(&settings, &launch).await,
    }
}

/// The 1, 5 and 15-minute load averages: how busy the (possibly shared) machine is.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn describe(settings: &Settings, launch: &Launch) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "raft-kv load benchmark: 3 nodes per system on loopback, fsync on, {}-byte values",
        workload::VALUE_BYTES
    );
    println!("machine: {cpus} CPUs, Linux {}, load average {}", kernel.trim(), load_average());
    println!("raft-kv: {} {}", launch.raft_kv.display(), launch.raft_kv_args.join(" "));
    if settings.systems.contains(&Kind::RaftKvTls) {
        println!(
            "raft-kv-tls: the same binary with --tls-cert/--tls-key/--tls-ca/--roles from `raft-kv certs` \
             instead of --insecure: HTTPS with the admin client certificate, mutual TLS between nodes"
        );
    }
    if let Some(etcd) = &launch.etcd {
        if settings.systems.contains(&Kind::Etcd) {
            println!(
                "etcd: {} ({}) {}",
                etcd.display(),
                first_line(etcd, "--version"),
                launch.etcd_args.join(" ")
            );
        }
    }
    if settings.memory.is_none() {
        println!(
            "per client count and system: a fresh cluster; writes to new keys ({:.0} s warm-up, {:.0} s measured), \
             then linearizable reads of the warm-up's keys (same)",
            settings.warmup.as_secs_f64(),
            settings.measured.as_secs_f64()
        );
    }
}

/// One measured phase.
struct Phase {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// CPU of the three servers per successful request.
    cpu_per_op: Duration,
    /// CPU of the load generator, in cores (1.0 = one core busy).
    client_cores: f64,
    errors: u64,
    first_error: Option<String>,
}

struct Cell {
    write: Phase,
    read: Phase,
}

fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_nanos(sorted[rank - 1])
}

fn servers_cpu(pids: &[String]) -> f64 {
    pids.iter().map(|pid| cpu_seconds(pid)).sum()
}

/// Runs `clients` clients doing `work(id)` for a warm-up and a measured window.
async fn phase(
    kind: Kind,
    endpoint: &Endpoint,
    clients: usize,
    work: impl Fn(usize) -> Work,
    pids: &[String],
    settings: &Settings,
) -> (Phase, Record) {
    let measure_from = Instant::now() + settings.warmup;
    let end = measure_from + settings.measured;
    let tasks: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(client(kind, endpoint.clone(), id, work(id), measure_from, end)))
        .collect();
    tokio::time::sleep_until(measure_from).await;
    let (servers_before, me_before) = (servers_cpu(pids), cpu_seconds("self"));
    tokio::time::sleep_until(end).await;
    let (servers_after, me_after) = (servers_cpu(pids), cpu_seconds("self"));
    let mut record = Record::default();
    for task in tasks {
        record.merge(task.await.expect("a client panicked"));
    }
    record.latencies.sort_unstable();
    let ops = record.latencies.len();
    let window = settings.measured.as_secs_f64();
    let phase = Phase {
        per_second: ops as f64 / window,
        p50: percentile(&record.latencies, 0.50),
        p99: percentile(&record.latencies, 0.99),
        cpu_per_op: Duration::from_secs_f64((servers_after - servers_before) / ops.max(1) as f64),
        client_cores: (me_after - me_before) / window,
        errors: record.errors,
        first_error: record.first_error.take(),
    };
    (phase, record)
}

/// Writes, then reads, on a fresh cluster of `kind` with `clients` clients.
async fn cell(kind: Kind, clients: usize, settings: &Settings, launch: &Launch) -> Cell {
    let mut cluster = Cluster::start(kind, launch).await;
    let leader = cluster.leader();
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    let writes = |id| {
        let value = value(id);
        let value_b64 = base64::engine::general_purpose::STANDARD.encode(&value).into();
        Work::Writes { value, value_b64 }
    };
    let (write, record) = phase(kind, &leader, clients, writes, &pids, settings).await;
    assert!(
        !record.warm_keys.is_empty(),
        "{}: no write succeeded during the warm-up (first error: {:?})",
        kind.name(),
        write.first_error
    );
    let reads = Arc::new(record.warm_keys.iter().map(|key| read_call(kind, key)).collect::<Vec<_>>());
    let (read, _) = phase(kind, &leader, clients, |_| Work::Reads(reads.clone()), &pids, settings).await;
    if let Err(e) = cluster.check_alive() {
        panic!("{e}");
    }
    Cell { write, read }
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if ours > 0.0 && theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "–".into()
    }
}

async fn table(settings: &Settings, launch: &Launch) {
    let mut rows = Vec::new();
    let mut turn = 0;
    for &clients in &settings.clients {
        let mut runs: Vec<(Kind, Vec<Cell>)> = settings.systems.iter().map(|&k| (k, Vec::new())).collect();
        for round in 0..settings.rounds {
            // Alternate which system goes first, so slow drift on the machine favours neither.
            let mut order = settings.systems.clone();
            if turn % 2 == 1 {
                order.reverse();
            }
            turn += 1;
            for kind in order {
                let cell = cell(kind, clients, settings, launch).await;
                let of = if settings.rounds > 1 { format!(" (round {})", round + 1) } else { String::new() };
                eprintln!(
                    "{:>11}, {clients:>3} clients: {:>7} writes/s (p50 {}, p99 {}), {:>7} reads/s (p50 {}, p99 {}){of}",
                    kind.name(),
                    thousands(cell.write.per_second),
                    millis(cell.write.p50),
                    millis(cell.write.p99),
                    thousands(cell.read.per_second),
                    millis(cell.read.p50),
                    millis(cell.read.p99),
                );
                if let Some((_, cells)) = runs.iter_mut().find(|(k, _)| *k == kind) {
                    cells.push(cell);
                }
            }
        }
        let cells = runs.into_iter().map(|(kind, cells)| (kind, median_cell(cells))).collect();
        rows.push((clients, cells));
    }
    if settings.rounds > 1 {
        println!();
        println!("each figure below: the median of {} rounds", settings.rounds);
    }
    print_tables(settings, &rows);
}

/// Each figure's median over `cells` (one cell: itself); errors are summed, the load
/// generator's CPU is its most.
fn median_cell(cells: Vec<Cell>) -> Cell {
    let (writes, reads): (Vec<Phase>, Vec<Phase>) = cells.into_iter().map(|c| (c.write, c.read)).unzip();
    Cell { write: median_phase(writes), read: median_phase(reads) }
}

fn median_phase(mut phases: Vec<Phase>) -> Phase {
    fn median<T: Copy + PartialOrd>(phases: &[Phase], figure: impl Fn(&Phase) -> T) -> T {
        let mut values: Vec<T> = phases.iter().map(figure).collect();
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values[values.len() / 2]
    }
    Phase {
        per_second: median(&phases, |p| p.per_second),
        p50: median(&phases, |p| p.p50),
        p99: median(&phases, |p| p.p99),
        cpu_per_op: median(&phases, |p| p.cpu_per_op),
        client_cores: phases.iter().map(|p| p.client_cores).fold(0.0, f64::max),
        errors: phases.iter().map(|p| p.errors).sum(),
        first_error: phases.iter_mut().find_map(|p| p.first_error.take()),
    }
}

/// A figure of the table: its value, how it is shown, and whether higher is better.
type Column = (fn(&Phase) -> f64, fn(&Phase) -> String, bool);

/// The comparisons the table makes, each when both systems ran: (subject, baseline). The ratios
/// are subject / baseline for throughput, baseline / subject for latency and CPU: above 1, the
/// subject is better.
const COMPARISONS: [(Kind, Kind); 2] = [(Kind::RaftKv, Kind::Etcd), (Kind::RaftKvTls, Kind::RaftKv)];

/// One table per comparison that applies (or, when none does, one of every system without
/// ratios), then the notes: the load generator's CPU, failed requests, what TLS negotiated.
fn print_tables(settings: &Settings, rows: &[(usize, Vec<(Kind, Cell)>)]) {
    let pairs: Vec<(Kind, Kind)> = COMPARISONS
        .into_iter()
        .filter(|(subject, baseline)| {
            settings.systems.contains(subject) && settings.systems.contains(baseline)
        })
        .collect();
    if pairs.is_empty() {
        print_table(&settings.systems, false, rows);
    }
    for (subject, baseline) in pairs {
        println!();
        println!("{} vs {}:", subject.name(), baseline.name());
        print_table(&[subject, baseline], true, rows);
        println!();
        println!(
            "ratio: {s} / {b} for ops/s, {b} / {s} for latency and CPU (above 1: {s} better). \
             CPU/op: the three server processes' CPU time per request.",
            s = subject.name(),
            b = baseline.name()
        );
    }
    println!();
    let busiest: Vec<String> = settings
        .systems
        .iter()
        .map(|&kind| {
            let cores = rows
                .iter()
                .flat_map(|(_, cells)| cells.iter().filter(|(k, _)| *k == kind))
                .flat_map(|(_, c)| [c.write.client_cores, c.read.client_cores])
                .fold(0.0, f64::max);
            format!("{} {:.0}%", kind.name(), cores * 100.0)
        })
        .collect();
    println!(
        "The load generator used at most this much of one core: {}. Load average at the end: {}.",
        busiest.join(", "),
        load_average()
    );
    if let Some(tls) = workload::negotiated() {
        println!("raft-kv-tls clients negotiated {tls}.");
    }
    for (clients, cells) in rows {
        for (kind, cell) in cells {
            for (op, phase) in [("write", &cell.write), ("read", &cell.read)] {
                if phase.errors > 0 {
                    println!(
                        "{} {clients} clients, {op}s: {} failed requests (first: {})",
                        kind.name(),
                        phase.errors,
                        phase.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
}

/// The table of `systems`' figures side by side; with `compare`, `systems` is a (subject,
/// baseline) pair and each figure gets a ratio column.
fn print_table(systems: &[Kind], compare: bool, rows: &[(usize, Vec<(Kind, Cell)>)]) {
    let mut header = vec!["clients".to_string(), "op".to_string()];
    for figure in ["ops/s", "p50", "p99", "CPU/op"] {
        for kind in systems {
            header.push(format!("{} {figure}", kind.name()));
        }
        if compare {
            header.push("ratio".into());
        }
    }
    println!();
    println!("| {} |", header.join(" | "));
    let align: Vec<&str> =
        header.iter().enumerate().map(|(i, _)| if i < 2 { "---" } else { "---:" }).collect();
    println!("| {} |", align.join(" | "));
    for (clients, cells) in rows {
        let cells: Vec<&Cell> = systems
            .iter()
            .map(|kind| {
                cells.iter().find(|(k, _)| k == kind).map(|(_, cell)| cell).expect("a cell per system")
            })
            .collect();
        for op in ["write", "read"] {
            let phases: Vec<&Phase> =
                cells.iter().map(|c| if op == "write" { &c.write } else { &c.read }).collect();
            let mut line = vec![clients.to_string(), format!("{op}s")];
            let columns: [Column; 4] = [
                (|p| p.per_second, |p| thousands(p.per_second), true),
                (|p| p.p50.as_secs_f64(), |p| millis(p.p50), false),
                (|p| p.p99.as_secs_f64(), |p| millis(p.p99), false),
                (|p| p.cpu_per_op.as_secs_f64(), |p| micros(p.cpu_per_op), false),
            ];
            for (value, show, higher_is_better) in columns {
                line.extend(phases.iter().map(|p| show(p)));
                if compare {
                    let (ours, theirs) = (value(phases[0]), value(phases[1]));
                    line.push(if higher_is_better { ratio(ours, theirs) } else { ratio(theirs, ours) });
                }
            }
            println!("| {} |", line.join(" | "));
        }
    }
}

/// `LOAD_MEMORY`: loads `keys` keys into each system, then reports each node's resident memory.
async fn memory(settings: &Settings, launch: &Launch, keys: u64) {
    println!(
        "memory: {keys} keys of {} bytes (keys m000000000…), written by {} clients, then each node's VmRSS",
        workload::VALUE_BYTES,
        settings.memory_clients
    );
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for &kind in &settings.systems {
        let mut cluster = Cluster::start(kind, launch).await;
        let leader = cluster.leader();
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = start + settings.memory_limit;
        let tasks: Vec<_> = (0..settings.memory_clients)
            .map(|id| {
                let value = value(id);
                let value_b64 = base64::engine::general_purpose::STANDARD.encode(&value).into();
                let work = Work::Load { next: next.clone(), limit: keys, value, value_b64 };
                tokio::spawn(client(kind, leader.clone(), id, work, start, end))
            })
            .collect();
        let mut record = Record::default();
        for task in tasks {
            record.merge(task.await.expect("a client panicked"));
        }
        let took = start.elapsed();
        let loaded = record.latencies.len() as u64;
        let converged = cluster.wait_until_converged(Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Err(e) = cluster.check_alive() {
            panic!("{e}");
        }
        let rss: Vec<String> = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mib = rss_kib(node.pid()).map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
                if i == cluster.leader {
                    format!("{mib} (leader)")
                } else {
                    mib
                }
            })
            .collect();
        let disk: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("{:.0}", disk_bytes(&n.data) as f64 / (1 << 20) as f64))
            .collect();
        let line = format!(
            "| {} | {} | {:.0} s | {} | {} | {} MiB |",
            kind.name(),
            thousands(loaded as f64),
            took.as_secs_f64(),
            thousands(loaded as f64 / took.as_secs_f64()),
            rss.join(" | "),
            disk.join(" / "),
        );
        eprintln!("{line}");
        rows.push(line);
        if loaded < keys {
            let stopped = if took >= settings.memory_limit { ", stopped by LOAD_MEMORY_SECS" } else { "" };
            notes.push(format!(
                "{}: {loaded} of {keys} writes acknowledged ({} failed{stopped}; first failure: {})",
                kind.name(),
                record.errors,
                record.first_error.as_deref().unwrap_or("none"),
            ));
        }
        if !converged {
            notes.push(format!("{}: the nodes had not converged after 120 s", kind.name()));
        }
    }
    println!();
    println!("| system | keys | load time | writes/s | node 1 RSS | node 2 RSS | node 3 RSS | data on disk per node |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!("{row}");
    }
    for note in notes {
        println!("{note}");
    }
}
