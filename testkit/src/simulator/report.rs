//! Turning a node's events into outcomes in the client [`History`](crate::History) and lines in
//! the trace.

use std::fmt;

use raft_core::{Event, NodeId, ProposeError};

use super::Simulator;
use crate::error::SimError;
use crate::history::OpOutcome;
use crate::trace::TraceEvent;

/// The outcome of a failed request: the error's variant name and message.
fn failed(error: &(impl fmt::Debug + fmt::Display)) -> OpOutcome {
    let debug = format!("{error:?}");
    let kind = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string();
    OpOutcome::Failed { kind, message: error.to_string() }
}

impl Simulator {
    pub(super) fn report(&mut self, id: NodeId, event: Event) -> Result<(), SimError> {
        let (request, outcome) = match event {
            // Committed and applied inside a snapshot: a success without a response.
            Event::Proposal { id: request, result: Err(ProposeError::ResponseLost { index }) } => {
                (request, OpOutcome::Committed { index })
            }
            Event::Proposal { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), |a| OpOutcome::Committed { index: a.index }))
            }
            Event::Read { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Value))
            }
            Event::Membership { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Changed))
            }
            Event::Transfer { id: request, result } => {
                (request, result.map_or_else(|e| failed(&e), OpOutcome::Transferred))
            }
            Event::RoleChanged { role, term, leader } => {
                self.trace.push(self.now, TraceEvent::Role { node: id, role, term, leader });
                return Ok(());
            }
            Event::Compacted { through } => {
                self.trace.push(
                    self.now,
                    TraceEvent::Note(format!("node {id} compacted its log through {through}")),
                );
                return Ok(());
            }
            _ => return Ok(()),
        };
        Ok(self.complete(request, outcome)?)
    }
}
