//! Timeouts, flow-control limits and feature switches.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Tuning and feature switches for one node. Every node of a cluster should use the same
/// timeouts.
///
/// ```
/// use raft_core::Config;
/// let config = Config { election_timeout_min: 300, election_timeout_max: 600, ..Config::default() };
/// assert!(config.validate().is_ok());
/// let bad = Config { heartbeat_interval: 400, ..config };
/// assert!(bad.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Lower bound of the randomized election timeout, in milliseconds (Raft §5.2).
    pub election_timeout_min: u64,
    /// Upper bound (exclusive) of the randomized election timeout, in milliseconds.
    pub election_timeout_max: u64,
    /// How often a leader sends heartbeats, in milliseconds. Must be well below
    /// `election_timeout_min`.
    pub heartbeat_interval: u64,
    /// Run a pre-vote before raising the term, so a node returning from a partition cannot
    /// depose a healthy leader (Raft thesis §9.6). On by default.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within `election_timeout_min` steps down, and
    /// followers that hear from a live leader ignore vote requests. On by default.
    pub check_quorum: bool,
    /// Serve reads from a leader lease instead of a heartbeat round. Needs `check_quorum` and
    /// clocks whose rate differs by less than `lease_clock_drift_percent`. Off by default.
    pub lease_reads: bool,
    /// Bound on relative clock drift between nodes, in percent, used to shorten the lease.
    pub lease_clock_drift_percent: u64,
    /// AppendEntries messages in flight per peer while streaming.
    pub max_inflight: usize,
    /// Entries per AppendEntries message at most.
    pub max_append_entries: usize,
    /// Approximate bytes of entries per AppendEntries message at most (at least one entry is
    /// always sent).
    pub max_append_bytes: usize,
    /// Bytes per InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Take a snapshot and compact the log after this many applied entries; 0 disables.
    pub snapshot_every: u64,
    /// With `snapshot_every`, also wait until the entries applied since the last snapshot
    /// add up to this percentage of that snapshot's size (by [`Entry::size_hint`]); 0 counts
    /// entries only. A snapshot rewrites the whole state, so counting entries alone rewrites a
    /// large state every `snapshot_every` small writes; with a percentage `p`, each byte of log
    /// costs at most `100 / p` bytes of snapshot, and the log since the last snapshot stays
    /// within `snapshot_every` entries or `p`% of the state, whichever is more.
    ///
    /// [`Entry::size_hint`]: crate::Entry::size_hint
    pub snapshot_log_percent: u64,
    /// Seed for election jitter; mixed with the node id so nodes differ.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            election_timeout_min: 150,
            election_timeout_max: 300,
            heartbeat_interval: 50,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            lease_clock_drift_percent: 10,
            max_inflight: 32,
            max_append_entries: 1024,
            max_append_bytes: 1 << 20,
            snapshot_chunk_bytes: 64 << 10,
            snapshot_every: 0,
            snapshot_log_percent: 0,
            seed: 0,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `election_timeout_min` must be positive and below `election_timeout_max`.
    ElectionTimeoutRange,
    /// `heartbeat_interval` must be positive and below `election_timeout_min`.
    HeartbeatTooSlow,
    /// `max_inflight`, `max_append_entries`, `max_append_bytes` and `snapshot_chunk_bytes` must
    /// be positive.
    ZeroLimit,
    /// `lease_reads` needs `check_quorum`, and a drift bound below 100 %.
    LeaseWithoutCheckQuorum,
    /// Node id 0 is reserved.
    ReservedNodeId,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::ElectionTimeoutRange => {
                "election_timeout_min must be positive and less than election_timeout_max"
            }
            ConfigError::HeartbeatTooSlow => {
                "heartbeat_interval must be positive and less than election_timeout_min"
            }
            ConfigError::ZeroLimit => {
                "max_inflight, max_append_entries, max_append_bytes and snapshot_chunk_bytes must be positive"
            }
            ConfigError::LeaseWithoutCheckQuorum => {
                "lease_reads needs check_quorum and lease_clock_drift_percent below 100"
            }
            ConfigError::ReservedNodeId => "node id 0 is reserved; use ids from 1",
        })
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.election_timeout_min == 0 || self.election_timeout_min >= self.election_timeout_max {
            return Err(ConfigError::ElectionTimeoutRange);
        }
        if self.heartbeat_interval == 0 || self.heartbeat_interval >= self.election_timeout_min {
            return Err(ConfigError::HeartbeatTooSlow);
        }
        if self.max_inflight == 0
            || self.max_append_entries == 0
            || self.max_append_bytes == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err(ConfigError::ZeroLimit);
        }
        if self.lease_reads && (!self.check_quorum || self.lease_clock_drift_percent >= 100) {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        Ok(())
    }
}
