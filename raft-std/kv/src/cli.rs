//! Command-line interface: raft-service's node options and subcommands, and the store's own.

use clap::{Args, Parser};
use raft_service::cli::{Command, NodeArgs};

/// A replicated key-value store on Raft, with a JSON HTTP API.
///
/// Run one node with --id/--listen/--http/--peers/--data and TLS material (or --insecure), or
/// a local cluster with `raft-kv cluster up`.
#[derive(Debug, Parser)]
#[command(name = "raft-kv", version, subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub kv: KvArgs,
}

/// The store's own options.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Refuse writes that grow the store past this many bytes of keys and values (507
    /// quota_exceeded; reads and deletes still work, and deleting clears the alarm).
    #[arg(long, default_value_t = 2 << 30, value_name = "BYTES")]
    pub quota_bytes: u64,
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
    fn a_node_invocation_becomes_a_plan() {
        let args = [["raft-kv"].as_slice(), &NODE_ARGS, &["--insecure", "--quota-bytes", "1000"]];
        let cli = Cli::try_parse_from(args.concat()).unwrap();
        assert_eq!(cli.kv.quota_bytes, 1000);
        let plan = cli.node.plan("raft-kv").unwrap();
        assert_eq!(plan.config.bootstrap().voters.len(), 3);
        assert_eq!(plan.tcp.cluster, "raft-kv", "the cluster id defaults to the program's name");
        assert!(Cli::try_parse_from(["raft-kv", "--id", "1"]).is_err());
        assert!(Cli::try_parse_from(["raft-kv", "cluster", "up", "--", "--quota-bytes", "10"]).is_ok());
        assert!(Cli::try_parse_from(["raft-kv", "certs", "--node", "1=kv-1.example"]).is_ok());
    }
}
