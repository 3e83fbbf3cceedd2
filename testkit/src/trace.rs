//! [`Trace`]: the most recent things that happened in a run, printed when a check fails.

use std::collections::VecDeque;
use std::fmt;

use raft_core::{NodeId, Role, Term};

use crate::CrashPoint;

/// How many events a trace keeps.
const CAPACITY: usize = 100;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A message arrived.
    Delivered {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
        /// Its kind.
        kind: &'static str,
        /// Its term.
        term: Term,
    },
    /// A message was lost on a cut link or at a node that is down.
    Lost {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
        /// Its kind.
        kind: &'static str,
    },
    /// A node's timer fired.
    Timer(NodeId),
    /// A node changed role, term or leader.
    Role {
        /// The node.
        node: NodeId,
        /// Its role.
        role: Role,
        /// Its term.
        term: Term,
        /// The leader it follows.
        leader: Option<NodeId>,
    },
    /// A node crashed.
    Crashed(NodeId, Option<CrashPoint>),
    /// A node restarted from its storage.
    Restarted(NodeId),
    /// Anything else: client requests, faults, commands.
    Note(String),
}

/// A time-stamped [`TraceEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Simulated milliseconds.
    pub at: u64,
    /// What happened.
    pub event: TraceEvent,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8} ms  ", self.at)?;
        match &self.event {
            TraceEvent::Delivered { from, to, kind, term } => {
                write!(f, "{from} -> {to} {kind} (term {term})")
            }
            TraceEvent::Lost { from, to, kind } => write!(f, "{from} -> {to} {kind} lost"),
            TraceEvent::Timer(node) => write!(f, "node {node} timer"),
            TraceEvent::Role { node, role, term, leader } => {
                write!(f, "node {node} is {role} in term {term}")?;
                match leader {
                    Some(leader) if leader != node => write!(f, ", following {leader}"),
                    _ => Ok(()),
                }
            }
            TraceEvent::Crashed(node, None) => write!(f, "node {node} crashed"),
            TraceEvent::Crashed(node, Some(point)) => write!(f, "node {node} crashed {point}"),
            TraceEvent::Restarted(node) => write!(f, "node {node} restarted"),
            TraceEvent::Note(note) => f.write_str(note),
        }
    }
}

/// A bounded log of the latest events.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    lines: VecDeque<TraceLine>,
}

impl Trace {
    pub(crate) fn push(&mut self, at: u64, event: TraceEvent) {
        if self.lines.len() == CAPACITY {
            self.lines.pop_front();
        }
        self.lines.push_back(TraceLine { at, event });
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &TraceLine> {
        self.lines.iter()
    }
}
