//! Cluster options written back as a testkit command (`cluster …`), so that what the REPL
//! builds, it also records: the inverse of testkit's parser.

use raft_core::NodeId;
use testkit::{ClusterOptions, LinkFaults};

/// `[1, 2, 3]`.
pub fn node_list(ids: &[NodeId]) -> String {
    let ids: Vec<String> = ids.iter().map(NodeId::to_string).collect();
    format!("[{}]", ids.join(", "))
}

fn switch(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The settings of `faults` that differ from a perfect 1 ms link: `delay=5..50`, `drop=0.1` …
fn fault_settings(faults: &LinkFaults) -> Vec<String> {
    let default = LinkFaults::default();
    let mut settings = Vec::new();
    if (faults.delay_min, faults.delay_max) != (default.delay_min, default.delay_max) {
        settings.push(format!("delay={}..{}", faults.delay_min, faults.delay_max));
    }
    for (name, value, default) in [
        ("drop", faults.drop, default.drop),
        ("duplicate", faults.duplicate, default.duplicate),
        ("reorder", faults.reorder, default.reorder),
    ] {
        if value != default {
            settings.push(format!("{name}={value}"));
        }
    }
    settings
}

/// `cluster [1, 2, 3] with { seed=7, … }`: builds a cluster with `options`. Settings equal
/// to their defaults are left out, except the seed.
pub fn cluster_line(options: &ClusterOptions) -> String {
    let (config, default) = (&options.config, ClusterOptions::new([]).config);
    let mut settings = vec![format!("seed={}", options.seed)];
    for (name, value, default) in [
        ("pre_vote", config.pre_vote, default.pre_vote),
        ("check_quorum", config.check_quorum, default.check_quorum),
        ("lease_reads", config.lease_reads, default.lease_reads),
    ] {
        if value != default {
            settings.push(format!("{name}={}", switch(value)));
        }
    }
    let timeouts = (config.election_timeout_min, config.election_timeout_max);
    if timeouts != (default.election_timeout_min, default.election_timeout_max) {
        settings.push(format!("election_timeout={}..{}", timeouts.0, timeouts.1));
    }
    for (name, value, default) in [
        ("heartbeat", config.heartbeat_interval, default.heartbeat_interval),
        ("max_inflight", config.max_inflight as u64, default.max_inflight as u64),
        ("max_append_entries", config.max_append_entries as u64, default.max_append_entries as u64),
        ("max_append_bytes", config.max_append_bytes as u64, default.max_append_bytes as u64),
        ("snapshot_chunk", config.snapshot_chunk_bytes as u64, default.snapshot_chunk_bytes as u64),
        ("snapshot_every", config.snapshot_every, default.snapshot_every),
        ("snapshot_log_percent", config.snapshot_log_percent, default.snapshot_log_percent),
    ] {
        if value != default {
            settings.push(format!("{name}={value}"));
        }
    }
    for (name, ids) in [("learners", &options.learners), ("spares", &options.spares)] {
        if !ids.is_empty() {
            settings.push(format!("{name}={}", node_list(ids)));
        }
    }
    settings.extend(fault_settings(&options.faults));
    format!("cluster {} with {{ {} }}", node_list(&options.voters), settings.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::Command;

    fn parsed_options(line: &str) -> ClusterOptions {
        match Command::parse(line) {
            Ok(Command::Cluster(options)) => options,
            other => panic!("`{line}` is not a cluster command: {other:?}"),
        }
    }

    #[test]
    fn default_options_read_back() {
        let options = ClusterOptions::new([1, 2, 3]);
        assert_eq!(cluster_line(&options), "cluster [1, 2, 3] with { seed=0 }");
        assert_eq!(parsed_options(&cluster_line(&options)), options);
    }

    #[test]
    fn every_setting_reads_back() {
        let mut options = ClusterOptions::new([1, 2, 3, 4, 5]);
        options.seed = 42;
        options.learners = vec![6];
        options.spares = vec![7, 8];
        options.faults =
            LinkFaults { delay_min: 5, delay_max: 50, drop: 0.1, duplicate: 0.01, reorder: 0.25 };
        let config = &mut options.config;
        (config.pre_vote, config.check_quorum, config.lease_reads) = (false, false, true);
        (config.election_timeout_min, config.election_timeout_max, config.heartbeat_interval) =
            (100, 200, 20);
        (config.max_inflight, config.max_append_entries, config.max_append_bytes) = (4, 8, 1000);
        (config.snapshot_chunk_bytes, config.snapshot_every, config.snapshot_log_percent) = (64, 10, 50);
        assert_eq!(parsed_options(&cluster_line(&options)), options);
    }

    #[test]
    fn a_cluster_without_nodes_reads_back() {
        let options = ClusterOptions { seed: 4, ..ClusterOptions::new([]) };
        assert_eq!(cluster_line(&options), "cluster [] with { seed=4 }");
        assert_eq!(parsed_options(&cluster_line(&options)), options);
    }
}
