//! [`Command`]: the one vocabulary of the `seq_test!` DSL and the REPL. Each command is one
//! line of text (see [`Command::parse`] and the crate README for the grammar).

use raft_core::{MembershipChange, NodeId, Role, Term};

use crate::network::{CutMode, LinkFaults, MessageFilter};
use crate::options::ClusterOptions;
use crate::CrashPoint;

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `cluster [1, 2, 3] with pre_vote=off, spares=[4]` (or `cluster 3`): build a new cluster.
    /// `cluster []` (or `cluster 0`) has no node yet: `addnode` adds the first.
    Cluster(ClusterOptions),
    /// `restore 1 term 3 vote 2 log [1, 1, 2]`: replace a node's storage (term, vote, and a log
    /// of entries with these terms) and restart it.
    Restore {
        /// The node.
        node: NodeId,
        /// Its stored term.
        term: Term,
        /// Its stored vote.
        vote: Option<NodeId>,
        /// The terms of its log entries, from index 1.
        log: Vec<Term>,
    },
    /// `elect 1`: make node 1 time out and deliver messages until it leads.
    Elect(NodeId),
    /// `timeout 1`: make node 1's election timer fire now, delivering nothing.
    Timeout(NodeId),
    /// `advance 300ms`, `advance 2 * election_timeout`, `run` (one second), `tick 3` (three
    /// heartbeat intervals): let time pass.
    Advance(Duration),
    /// `settle`: deliver every message in flight (and what they cause) without moving time.
    Settle,
    /// `propose 1 "x=1" as w1 => committed on [1, 2]`: a client proposes a command.
    Propose {
        /// The node the client talks to.
        node: NodeRef,
        /// The command.
        command: String,
        /// The name to refer to the operation by (default: the command).
        label: Option<String>,
        /// Drive the cluster until the operation completes and check its outcome.
        expect: Option<OutcomeSpec>,
    },
    /// `read 2 "x" => "1"`: a client reads a key (linearizable read).
    Read {
        /// The node the client talks to.
        node: NodeRef,
        /// The key.
        key: String,
        /// The name to refer to the operation by (default: `read <key>`).
        label: Option<String>,
        /// Drive the cluster until the read completes and check its outcome.
        expect: Option<OutcomeSpec>,
    },
    /// `change leader add_voter 4 => ok`: a configuration change (`add_voter`, `add_learner`,
    /// `promote`, `remove`, `replace [..]`).
    Change {
        /// The node the operator talks to.
        node: NodeRef,
        /// The change.
        change: MembershipChange,
        /// The name to refer to the operation by (default: `change`).
        label: Option<String>,
        /// Drive the cluster until the change completes and check its outcome.
        expect: Option<OutcomeSpec>,
    },
    /// `transfer leader to 2 => ok`, `transfer 2` (from the leader): a leadership transfer.
    Transfer {
        /// The node the operator talks to.
        node: NodeRef,
        /// The intended leader.
        to: NodeId,
        /// The name to refer to the operation by (default: `transfer`).
        label: Option<String>,
        /// Drive the cluster until the transfer completes and check its outcome.
        expect: Option<OutcomeSpec>,
    },
    /// `compact 1`: snapshot the state machine and compact the log now.
    Compact(NodeRef),
    /// `deliver [first] 1 -> 2 [AppendEntries]` (`*` for any node): deliver messages in
    /// flight now.
    Deliver {
        /// Which messages.
        filter: MessageFilter,
        /// Only the first (oldest) of them.
        first_only: bool,
    },
    /// `drop [first] 1 -> * [Heartbeat]`: lose messages in flight.
    Drop {
        /// Which messages.
        filter: MessageFilter,
        /// Only the first (oldest) of them.
        first_only: bool,
    },
    /// `partition [1] | [2, 3]` (or `partition 1 | 2, 3`): replace every cut with this
    /// partition: links between groups are cut both ways (nodes in no group form one more
    /// group).
    Partition(Vec<Vec<NodeRef>>),
    /// `isolate 1`: cut node 1 off from every other node (other cuts stay).
    Isolate(NodeRef),
    /// `cut 1 -> 2` (one way), `cut 1 <-> 2` or `cut 1 2` (both ways); `disconnect` is the same.
    Cut {
        /// One end.
        from: NodeRef,
        /// The other end.
        to: NodeRef,
        /// Both directions.
        both: bool,
    },
    /// `connect 1 -> 2`, `connect 1 <-> 2` or `connect 1 2`: restore a link.
    Connect {
        /// One end.
        from: NodeRef,
        /// The other end.
        to: NodeRef,
        /// Both directions.
        both: bool,
    },
    /// `net queue` or `net lose`: what a cut link does with messages (see [`CutMode`]).
    CutMode(CutMode),
    /// `drop 10%` (or `drop 0.1`, `drop off`): the drop rate of every link; other faults stay.
    DropRate(f64),
    /// `delay 5-50ms` (or `delay 5..50`, `delay 20ms`): the delay range of every link; other
    /// faults stay.
    Delay {
        /// Shortest, in milliseconds.
        min: u64,
        /// Longest, in milliseconds.
        max: u64,
    },
    /// `clearqueue`: lose every message in flight, held ones included.
    ClearQueue,
    /// `heal`: restore every cut link.
    Heal,
    /// `net delay=1..20, drop=0.05, duplicate=0.01, reorder=0.1` (every link) or
    /// `link 1 -> 2 drop=1` (one link): set the fault model; unnamed fields take their
    /// defaults (1 ms delay, no faults).
    Faults {
        /// One link, or every link.
        link: Option<(NodeId, NodeId)>,
        /// The fault model.
        faults: LinkFaults,
    },
    /// `crash 1` now, or `crash 1 at before_send` inside a coming Ready (see [`CrashPoint`]).
    Crash {
        /// The node.
        node: NodeRef,
        /// Where inside a Ready, if not now.
        at: Option<CrashPoint>,
    },
    /// `restart 1`: start a crashed node from its storage.
    Restart(NodeId),
    /// `addnode`, `addnode 4`, `addnode first`: start a node (the next id unless given; a new
    /// name names it) and have the leader add it as a voter, waiting for the change. The first
    /// node of a cluster without nodes forms a cluster of its own instead, and waits until it
    /// leads it. An existing node outside the configuration is added back.
    AddNode {
        /// The node's id, if given (or named by an existing name).
        node: Option<NodeId>,
        /// A new name for it.
        name: Option<String>,
    },
    /// `removenode 3`: have the leader remove a node from the configuration, waiting for the
    /// change.
    RemoveNode(NodeRef),
    /// `put x 1 [on 2]` (`x=1`), `pushpayload 42 [on 2]` (`42`): a client write through the
    /// leader (or a node), waiting for its outcome.
    Put {
        /// The node the client talks to.
        node: NodeRef,
        /// The command.
        command: String,
    },
    /// `get x [on 2]`: a linearizable read through the leader (or a node), waiting for its
    /// outcome.
    Get {
        /// The node the client talks to.
        node: NodeRef,
        /// The key.
        key: String,
    },
    /// `expect ...`: check the cluster (see [`Expectation`]).
    Expect(Expectation),
    /// `check`: every acknowledged write is applied on every running member, and the client
    /// history is linearizable.
    Check,
    /// `status [node | full]` (or `diagnostics`): the cluster table, or one node's row.
    Status(StatusView),
    /// `log 1 [count | all]`: a node's latest log entries (20 unless told), and what is
    /// committed; a crashed node's storage.
    Log {
        /// Whose log.
        node: NodeRef,
        /// How many of the latest entries; `None`: all.
        limit: Option<usize>,
    },
    /// `trace [count]`: the simulator's latest events (20 unless told).
    Trace(usize),
    /// `queuelen`: how many messages are in flight, and what a cut link will do with them.
    QueueLen,
    /// `messages`: the messages in flight.
    Messages,
}

/// What `status` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusView {
    /// Every node, at a glance.
    Cluster,
    /// One node.
    Node(NodeRef),
    /// Every node, with everything the table has (the REPL shows less by default).
    Full,
}

/// A node named in a command: by id, or whichever node leads now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// This node.
    Id(NodeId),
    /// The running leader of the highest term.
    Leader,
}

/// The nodes an expectation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nodes {
    /// One node.
    One(NodeRef),
    /// These nodes.
    List(Vec<NodeId>),
    /// Every running node.
    All,
}

/// A span of simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duration {
    /// Milliseconds (`300`, `300ms`, `2s`).
    Millis(u64),
    /// Multiples of the maximum election timeout (`2 * election_timeout`).
    ElectionTimeouts(u64),
    /// Multiples of the heartbeat interval (`3 * heartbeat`).
    Heartbeats(u64),
}

/// A comparison in an expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    /// Whether `actual cmp expected` holds.
    pub fn holds<T: PartialOrd>(self, actual: T, expected: T) -> bool {
        match self {
            Cmp::Eq => actual == expected,
            Cmp::Ne => actual != expected,
            Cmp::Lt => actual < expected,
            Cmp::Le => actual <= expected,
            Cmp::Gt => actual > expected,
            Cmp::Ge => actual >= expected,
        }
    }

    /// The operator's text.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// A number a node reports (named as in commands: `term`, `commit`, `last_index` …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Current term.
    Term,
    /// Commit index.
    Commit,
    /// Applied index.
    Applied,
    /// Index of the last log entry.
    LastIndex,
    /// Term of the last log entry.
    LastTerm,
    /// First index still in the log.
    FirstIndex,
    /// The vote cast in the current term (`none` when not voted).
    Vote,
    /// The leader the node knows of (`none` when none).
    Leader,
}

impl Field {
    /// Every field, with its name in commands.
    pub const NAMES: [(Field, &'static str); 8] = [
        (Field::Term, "term"),
        (Field::Commit, "commit"),
        (Field::Applied, "applied"),
        (Field::LastIndex, "last_index"),
        (Field::LastTerm, "last_term"),
        (Field::FirstIndex, "first_index"),
        (Field::Vote, "vote"),
        (Field::Leader, "leader"),
    ];

    /// The field's name in commands.
    pub fn name(self) -> &'static str {
        Field::NAMES.iter().find(|(f, _)| *f == self).map_or("?", |(_, name)| name)
    }
}

/// Which part of a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberSet {
    /// The (incoming) voters.
    Voters,
    /// The old voters during a joint change (empty otherwise).
    Outgoing,
    /// The learners.
    Learners,
}

/// The expected outcome of a client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeSpec {
    /// Succeeded (committed, changed, transferred or answered).
    Ok,
    /// Committed, and applied on these nodes.
    CommittedOn(Vec<NodeId>),
    /// A read that answered this value (`""` for an absent key).
    Value(String),
    /// Failed, with this error variant if given (`NotLeader`, `Superseded` …).
    Failed(Option<String>),
    /// Still waiting for an answer.
    Pending,
    /// Lost in a crash.
    Lost,
}

/// A payload in a log expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntrySpec {
    /// `noop`
    Noop,
    /// `"text"`: a command.
    Command(String),
    /// `config`: a configuration entry.
    Config,
}

/// A check of the cluster's state (`expect ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expectation {
    /// `expect 1 is leader`, `expect [2, 3] is follower`, `expect all is not candidate`.
    Role {
        /// Which nodes.
        nodes: Nodes,
        /// The role (`leader`, `follower`, `candidate`, `pre_candidate`).
        role: Role,
        /// `is not`: every node has another role.
        negated: bool,
    },
    /// `expect 1 term >= 2`, `expect all commit = 3`, `expect 2 vote = none`.
    Field {
        /// Which nodes.
        nodes: Nodes,
        /// Which number.
        field: Field,
        /// How to compare.
        cmp: Cmp,
        /// The value; `None` spells `none`.
        value: Option<u64>,
    },
    /// `expect leader = 1`, `expect leader in [2, 3]`, `expect no leader`.
    Leader(Option<Vec<NodeId>>),
    /// `expect 1 log = [noop, "x", config]`: the payloads of the whole log window.
    Log {
        /// Which nodes.
        nodes: Nodes,
        /// The payloads.
        entries: Vec<EntrySpec>,
    },
    /// `expect all log terms = [1, 1, 2]`: the terms of the log window.
    LogTerms {
        /// Which nodes.
        nodes: Nodes,
        /// The terms.
        terms: Vec<Term>,
    },
    /// `expect logs equal`: every running node has the same last entry and commit index, and
    /// the same entries wherever two log windows overlap.
    LogsEqual,
    /// `expect 3 down`, `expect all up`.
    Up {
        /// Which nodes.
        nodes: Nodes,
        /// Up or down.
        up: bool,
    },
    /// `expect 1 voters = [1, 2, 3]`, `expect 1 outgoing = []`, `expect 4 learners = [4]`.
    Members {
        /// Which nodes.
        nodes: Nodes,
        /// Which set.
        set: MemberSet,
        /// Its members.
        ids: Vec<NodeId>,
    },
    /// `expect all kv "x" = "1"`: a key in the state machine (`""` for absent).
    Kv {
        /// Which nodes.
        nodes: Nodes,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `expect op w1 committed`: the outcome of a named client operation.
    Op {
        /// The operation's label.
        label: String,
        /// Its outcome.
        outcome: OutcomeSpec,
    },
    /// `expect messages 1 -> * AppendEntries = 2`: messages in flight.
    InFlight {
        /// Which messages.
        filter: MessageFilter,
        /// How to compare.
        cmp: Cmp,
        /// How many.
        count: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_order_none_below_every_value() {
        assert!(Cmp::Eq.holds(None::<u64>, None));
        assert!(Cmp::Lt.holds(None, Some(0u64)));
        assert!(Cmp::Ge.holds(Some(3u64), Some(3)));
        assert!(!Cmp::Ne.holds(2, 2));
    }
}
