//! Command-line interface: raft-service's node options and subcommands, the task runner's own
//! node options, and the `worker` subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use raft_service::cli::{Command, NodeArgs};

use crate::machine::{Admission, Retention, MAX_ATTEMPTS};

/// A replicated task runner on Raft: clients submit commands, workers lease and run them, and
/// results are committed only under a lease that is still current.
///
/// Run one node with --id/--listen/--http/--peers/--data and TLS material (or --insecure), a
/// local cluster with `raft-tasks cluster up`, and workers with `raft-tasks worker`.
#[derive(Debug, Parser)]
#[command(
    name = "raft-tasks",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<TasksCommand>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub tasks: TasksArgs,
}

/// The subcommands: raft-service's, and `worker`.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    #[command(flatten)]
    Shared(Command),
    /// Run a worker: lease tasks from the cluster, run each as a child process (no shell),
    /// renew the leases while they run, and report the results.
    Worker(WorkerArgs),
}

/// The task runner's node options.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// A lease not renewed for this long (cluster time) expires, and its task goes back to the
    /// queue (or fails, after its max_attempts).
    #[arg(long, default_value_t = 5000, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..))]
    pub lease_ms: u64,
    /// While leases are held, the leader commits its clock this often (it decides when they
    /// expire, to within this interval); otherwise every 10 s.
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub lease_check_ms: u64,
    /// Most tasks queued or running; more submissions get 429 queue_full.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_queued: u64,
    /// Most bytes of commands and stdin held by tasks queued or running; more submissions get
    /// 429 queue_bytes_full.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_queued_bytes: u64,
    /// Largest stdin of a task (400 stdin_too_large beyond).
    #[arg(long, default_value_t = 64 << 10, value_name = "BYTES")]
    pub max_stdin_bytes: usize,
    /// Largest command of a task: its program and arguments, one byte more each (400
    /// command_too_large beyond).
    #[arg(long, default_value_t = 16 << 10, value_name = "BYTES")]
    pub max_command_bytes: usize,
    /// Most bytes of stdout, and of stderr, kept of each result; reports with more are cut
    /// (and marked truncated).
    #[arg(long, default_value_t = 64 << 10, value_name = "BYTES")]
    pub max_output_bytes: usize,
    /// Most finished tasks whose results are kept; the oldest are dropped first.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub retain_results: u64,
    /// Results are dropped this long (cluster time) after their task finished.
    #[arg(long, default_value_t = 3_600_000, value_name = "MS")]
    pub retain_ms: u64,
    /// Most workers the cluster tracks; requests from more get 429 too_many_workers.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_workers: u64,
    /// A worker that holds no lease is forgotten this long after its last request.
    #[arg(long, default_value_t = 600_000, value_name = "MS")]
    pub forget_workers_ms: u64,
    /// A task's timeout when it gives none.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub default_timeout_ms: u64,
    /// Longest timeout a task may ask for.
    #[arg(long, default_value_t = 86_400_000, value_name = "MS")]
    pub max_timeout_ms: u64,
    /// A task's max_attempts when it gives none (at most 100).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_ATTEMPTS as i64))]
    pub default_max_attempts: u32,
}

impl TasksArgs {
    /// The bounds this node puts into the submissions it accepts.
    pub fn admission(&self) -> Admission {
        Admission { max_tasks: self.max_queued, max_bytes: self.max_queued_bytes }
    }

    /// The retention this node's clock commits while it leads.
    pub fn retention(&self) -> Retention {
        Retention {
            max_results: self.retain_results,
            max_age_ms: self.retain_ms,
            forget_workers_ms: self.forget_workers_ms,
        }
    }
}

/// `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The cluster's nodes, as the base URLs of their HTTP API, comma-separated
    /// (https://host:port or, against --insecure nodes, http://host:port).
    #[arg(long, required = true, value_name = "URL,...", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// This worker's name, unique among the cluster's workers (letters, digits, '.', '_', '-').
    #[arg(long, value_parser = worker_name)]
    pub name: String,
    /// How many tasks to run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub slots: u32,
    /// How often to renew the leases held (at most a third of the cluster's --lease-ms is
    /// used, whatever this says).
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
    /// How long one lease request waits at the cluster for a task before asking again.
    #[arg(long, default_value_t = 5000, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub poll_ms: u64,
    /// Most bytes of stdout, and of stderr, captured of each run; the rest is read and
    /// dropped, and the result marked truncated.
    #[arg(long, default_value_t = 64 << 10, value_name = "BYTES")]
    pub max_output_bytes: usize,
    /// The CA that signed the nodes' certificates (PEM), to verify them over HTTPS.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// This worker's client certificate (PEM), whose CN the roles file gives the worker role.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A file holding a bearer token with the worker role (instead of, or besides, a client
    /// certificate). Kept out of the command line, where other users could read it.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl WorkerArgs {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// Checks a worker's name.
pub fn worker_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(name.to_string())
    } else {
        Err("a worker's name is 1 to 128 letters, digits, '.', '_' and '-'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use raft_service::cli::NODE_ARGS;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn node_worker_and_shared_invocations_parse() {
        let args = [["raft-tasks"].as_slice(), &NODE_ARGS, &["--insecure", "--lease-ms", "1000"]];
        let cli = Cli::try_parse_from(args.concat()).unwrap();
        assert_eq!(cli.tasks.lease_ms, 1000);
        let plan = cli.node.plan("raft-tasks").unwrap();
        assert_eq!(plan.config.bootstrap().voters.len(), 3);
        assert_eq!(plan.tcp.cluster, "raft-tasks");

        let cli = Cli::try_parse_from([
            "raft-tasks",
            "worker",
            "--cluster",
            "http://127.0.0.1:8001,http://127.0.0.1:8002",
            "--name",
            "w-1",
            "--slots",
            "4",
        ])
        .unwrap();
        let Some(TasksCommand::Worker(worker)) = cli.command else { panic!("a worker") };
        assert_eq!((worker.cluster.len(), worker.slots, worker.name.as_str()), (2, 4, "w-1"));
        assert!(Cli::try_parse_from(["raft-tasks", "worker", "--cluster", "http://a:1", "--name", "a b"])
            .is_err());
        assert!(
            Cli::try_parse_from(["raft-tasks", "worker", "--name", "a"]).is_err(),
            "--cluster is required"
        );
        assert!(Cli::try_parse_from(["raft-tasks", "cluster", "up", "--nodes", "3"]).is_ok());
        assert!(Cli::try_parse_from(["raft-tasks", "certs", "--client", "w1=worker"]).is_ok());
        assert!(Cli::try_parse_from(["raft-tasks", "--id", "1"]).is_err());
    }
}
