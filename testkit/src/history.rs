//! [`History`]: every client operation of a run, with when it was invoked and when (and how)
//! it completed.

use std::collections::BTreeMap;
use std::fmt;

use raft_core::{Bytes, Index, Membership, MembershipChange, NodeId, RequestId};

/// A point in a run: simulated milliseconds, and a counter that orders everything that
/// happens in the same millisecond.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Simulated milliseconds.
    pub at: u64,
    /// Position in the run's total order of events.
    pub seq: u64,
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Replicate a command ([`raft_core::Incoming::Propose`]).
    Propose {
        /// The command.
        command: Bytes,
    },
    /// A linearizable read ([`raft_core::Incoming::Read`]).
    Read {
        /// The query (a key of the [`KvStore`](crate::KvStore)).
        query: Bytes,
    },
    /// A configuration change.
    Change(MembershipChange),
    /// A leadership transfer.
    Transfer {
        /// The intended leader.
        to: NodeId,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// No answer yet.
    Pending,
    /// The command was committed at `index` and applied.
    Committed {
        /// Its log position.
        index: Index,
    },
    /// The read's answer.
    Value(Bytes),
    /// The committed configuration after a change.
    Changed(Membership),
    /// The new leader after a transfer.
    Transferred(NodeId),
    /// A definite failure: the operation had no effect. Holds the error's variant name
    /// ("NotLeader", "Superseded" …) and its message.
    Failed {
        /// The error variant, as in the raft-core error enums.
        kind: String,
        /// The error's message.
        message: String,
    },
    /// The node crashed before answering: the operation may or may not have taken effect.
    Lost,
}

/// Proposal errors after which the command is certainly never applied: it was refused, or
/// its entry was replaced. Any other error leaves the outcome open.
const DEFINITE_FAILURES: [&str; 3] = ["NotLeader", "TransferInProgress", "Superseded"];

impl OpOutcome {
    /// Whether the operation has an answer (or was lost).
    pub fn is_done(&self) -> bool {
        !matches!(self, OpOutcome::Pending)
    }

    /// Whether a proposal with this outcome certainly never takes effect.
    pub fn had_no_effect(&self) -> bool {
        matches!(self, OpOutcome::Failed { kind, .. } if DEFINITE_FAILURES.contains(&kind.as_str()))
    }
}

impl fmt::Display for OpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpOutcome::Pending => f.write_str("pending"),
            OpOutcome::Committed { index } => write!(f, "committed at index {index}"),
            OpOutcome::Value(v) => write!(f, "value {:?}", String::from_utf8_lossy(v)),
            OpOutcome::Changed(m) => write!(f, "changed to {m}"),
            OpOutcome::Transferred(to) => write!(f, "transferred to {to}"),
            OpOutcome::Failed { kind, message } => write!(f, "failed {kind}: {message}"),
            OpOutcome::Lost => f.write_str("lost in a crash"),
        }
    }
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The request id it was sent with.
    pub id: RequestId,
    /// The node it was sent to.
    pub node: NodeId,
    /// What was asked.
    pub kind: OpKind,
    /// When it was sent.
    pub invoked: Stamp,
    /// When it was answered (or lost).
    pub completed: Option<Stamp>,
    /// The answer.
    pub outcome: OpOutcome,
}

/// Every operation of a run, in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
    by_id: BTreeMap<RequestId, usize>,
}

impl History {
    /// Records a new pending operation; its id is `RequestId` from 1 up.
    pub(crate) fn invoke(&mut self, node: NodeId, kind: OpKind, at: Stamp) -> RequestId {
        let id = self.ops.len() as RequestId + 1;
        self.by_id.insert(id, self.ops.len());
        self.ops.push(Operation {
            id,
            node,
            kind,
            invoked: at,
            completed: None,
            outcome: OpOutcome::Pending,
        });
        id
    }

    /// Records the answer to `id`. Answers to unknown or finished operations are ignored and
    /// reported as `false` (a node must answer each request once).
    pub(crate) fn complete(&mut self, id: RequestId, outcome: OpOutcome, at: Stamp) -> bool {
        match self.by_id.get(&id).and_then(|&i| self.ops.get_mut(i)) {
            Some(op) if !op.outcome.is_done() => {
                op.outcome = outcome;
                op.completed = Some(at);
                true
            }
            _ => false,
        }
    }

    /// Marks every pending operation sent to `node` as lost (the node crashed).
    pub(crate) fn lose_pending(&mut self, node: NodeId, at: Stamp) {
        for op in self.ops.iter_mut().filter(|op| op.node == node && !op.outcome.is_done()) {
            op.outcome = OpOutcome::Lost;
            op.completed = Some(at);
        }
    }

    /// The operation with this request id.
    pub fn get(&self, id: RequestId) -> Option<&Operation> {
        self.by_id.get(&id).map(|&i| &self.ops[i])
    }

    /// Every operation, in invocation order.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }
}
