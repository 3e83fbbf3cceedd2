//! [`Rule`]: the properties a run must keep, and [`Violation`]: a broken one.

use std::fmt;

/// A property of Raft (or of the driver contract) that a run must never break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// At most one leader per term (Raft §5.2).
    ElectionSafety,
    /// A leader never overwrites or deletes entries in its log (Raft §5.3).
    LeaderAppendOnly,
    /// Two logs holding an entry with the same index and term are identical up to it (§5.3).
    LogMatching,
    /// A leader holds every entry committed in earlier terms (Raft §5.4).
    LeaderCompleteness,
    /// No two nodes commit or apply different entries at one index (Raft §5.4.3).
    StateMachineSafety,
    /// Term and vote, and within one incarnation commit and applied indexes, never go back.
    Monotonicity,
    /// Nothing a message reveals (term, vote, acknowledged entries) is sent before it is
    /// durable: the [`Ready`](raft_core::Ready) contract's persist-then-send order.
    PersistBeforeSend,
    /// The node's [`Ready`](raft_core::Ready) output is consistent: storage mirrors the node's log, entries are
    /// applied once each in index order, requests are answered once.
    ReadyContract,
    /// Every acknowledged write is eventually applied on every live member once the network
    /// heals.
    Durability,
    /// Client histories are linearizable.
    Linearizability,
    /// The healed cluster elects a leader and makes progress.
    Liveness,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::ElectionSafety => "Election Safety",
            Rule::LeaderAppendOnly => "Leader Append-Only",
            Rule::LogMatching => "Log Matching",
            Rule::LeaderCompleteness => "Leader Completeness",
            Rule::StateMachineSafety => "State Machine Safety",
            Rule::Monotonicity => "Monotonicity",
            Rule::PersistBeforeSend => "Persist before send",
            Rule::ReadyContract => "Ready contract",
            Rule::Durability => "Durability of acknowledged writes",
            Rule::Linearizability => "Linearizability",
            Rule::Liveness => "Liveness",
        })
    }
}

/// A broken [`Rule`], with what was observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// What happened, naming nodes, terms and indexes.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(rule: Rule, detail: impl Into<String>) -> Self {
        Violation { rule, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Violation {}
