//! Evaluating an [`Expectation`] against a [`Simulator`].

use std::collections::BTreeMap;

use raft_core::{Node, NodeId, Payload, RequestId};

use crate::command::{EntrySpec, Expectation, Field, MemberSet, NodeRef, Nodes, OutcomeSpec};
use crate::error::SimError;
use crate::history::{OpOutcome, Operation};
use crate::simulator::Simulator;

fn unmet<T>(message: String) -> Result<T, SimError> {
    Err(SimError::Expectation(message))
}

/// Resolves a node reference: the leader must exist.
pub(crate) fn resolve(sim: &Simulator, node: NodeRef) -> Result<NodeId, SimError> {
    match node {
        NodeRef::Id(id) => Ok(id),
        NodeRef::Leader => sim.leader().map_or_else(|| unmet("there is no leader".into()), Ok),
    }
}

fn node_ids(sim: &Simulator, nodes: &Nodes) -> Result<Vec<NodeId>, SimError> {
    Ok(match nodes {
        Nodes::One(node) => vec![resolve(sim, *node)?],
        Nodes::List(ids) => ids.clone(),
        Nodes::All => sim.ids().into_iter().filter(|&id| sim.is_up(id)).collect(),
    })
}

/// Each selected node, running.
fn running<'a>(sim: &'a Simulator, nodes: &Nodes) -> Result<Vec<&'a Node>, SimError> {
    node_ids(sim, nodes)?
        .into_iter()
        .map(|id| sim.node(id).map_or_else(|| unmet(format!("node {id} is down")), Ok))
        .collect()
}

fn field(node: &Node, field: Field) -> Option<u64> {
    match field {
        Field::Term => Some(node.term()),
        Field::Commit => Some(node.commit_index()),
        Field::Applied => Some(node.applied_index()),
        Field::LastIndex => Some(node.last_log_id().index),
        Field::LastTerm => Some(node.last_log_id().term),
        Field::FirstIndex => Some(node.first_index()),
        Field::Vote => node.vote(),
        Field::Leader => node.leader(),
    }
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn entry_spec(payload: &Payload) -> EntrySpec {
    match payload {
        Payload::Noop => EntrySpec::Noop,
        Payload::Command(c) => EntrySpec::Command(String::from_utf8_lossy(c).into_owned()),
        Payload::Membership(_) => EntrySpec::Config,
    }
}

/// Checks `expectation`; `labels` names client operations.
pub(crate) fn check(
    sim: &Simulator,
    labels: &BTreeMap<String, RequestId>,
    expectation: &Expectation,
) -> Result<(), SimError> {
    match expectation {
        Expectation::Role { nodes, role, negated } => {
            for node in running(sim, nodes)? {
                if (node.role() == *role) == *negated {
                    let expected = if *negated { format!("anything but {role}") } else { role.to_string() };
                    return unmet(format!("node {} is {}, expected {expected}", node.id(), node.role()));
                }
            }
        }
        Expectation::Field { nodes, field: which, cmp, value } => {
            for node in running(sim, nodes)? {
                let actual = field(node, *which);
                if !cmp.holds(actual, *value) {
                    return unmet(format!(
                        "node {} has {} {}, expected {} {}",
                        node.id(),
                        which.name(),
                        show(actual),
                        cmp.symbol(),
                        show(*value)
                    ));
                }
            }
        }
        Expectation::Leader(expected) => match (sim.leader(), expected) {
            (None, None) => {}
            (Some(leader), None) => return unmet(format!("node {leader} leads")),
            (None, Some(_)) => return unmet("there is no leader".into()),
            (Some(leader), Some(set)) if !set.contains(&leader) => {
                return unmet(format!("node {leader} leads, expected one of {set:?}"))
            }
            (Some(_), Some(_)) => {}
        },
        Expectation::Log { nodes, entries } => {
            for node in running(sim, nodes)? {
                let actual: Vec<EntrySpec> = node
                    .entries(node.first_index(), node.last_log_id().index)
                    .iter()
                    .map(|e| entry_spec(&e.payload))
                    .collect();
                if actual != *entries {
                    return unmet(format!("node {} holds {actual:?}, expected {entries:?}", node.id()));
                }
            }
        }
        Expectation::LogTerms { nodes, terms } => {
            for node in running(sim, nodes)? {
                let actual: Vec<u64> = node
                    .entries(node.first_index(), node.last_log_id().index)
                    .iter()
                    .map(|e| e.term)
                    .collect();
                if actual != *terms {
                    return unmet(format!("node {} holds terms {actual:?}, expected {terms:?}", node.id()));
                }
            }
        }
        Expectation::LogsEqual => {
            let nodes = running(sim, &Nodes::All)?;
            if let Some((first, rest)) = nodes.split_first() {
                for other in rest {
                    let from = first.first_index().max(other.first_index());
                    let same_entries =
                        (from..=first.last_log_id().index).all(|i| first.term_at(i) == other.term_at(i));
                    let same = first.last_log_id() == other.last_log_id()
                        && first.commit_index() == other.commit_index()
                        && same_entries;
                    if !same {
                        return unmet(format!(
                            "nodes {} and {} differ: commit {} vs {}, last log {}@{} vs {}@{}",
                            first.id(),
                            other.id(),
                            first.commit_index(),
                            other.commit_index(),
                            first.last_log_id().index,
                            first.last_log_id().term,
                            other.last_log_id().index,
                            other.last_log_id().term
                        ));
                    }
                }
            }
        }
        Expectation::Up { nodes, up } => {
            for id in node_ids(sim, nodes)? {
                if sim.is_up(id) != *up {
                    return unmet(format!("node {id} is {}", if *up { "down" } else { "up" }));
                }
            }
        }
        Expectation::Members { nodes, set, ids } => {
            for node in running(sim, nodes)? {
                let membership = node.membership();
                let actual = match set {
                    MemberSet::Voters => &membership.voters,
                    MemberSet::Outgoing => &membership.outgoing,
                    MemberSet::Learners => &membership.learners,
                };
                if !actual.iter().eq(ids.iter().collect::<std::collections::BTreeSet<_>>()) {
                    return unmet(format!("node {} is in configuration `{membership}`", node.id()));
                }
            }
        }
        Expectation::Kv { nodes, key, value } => {
            for id in node_ids(sim, nodes)? {
                let machine = sim.machine(id).map_or_else(|| unmet(format!("node {id} is down")), Ok)?;
                let actual = machine.get(key.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned());
                if actual.as_deref().unwrap_or("") != value {
                    return unmet(format!("node {id} maps {key:?} to {actual:?}, expected {value:?}"));
                }
            }
        }
        Expectation::Op { label, outcome } => {
            let op = labelled(sim, labels, label)?;
            check_outcome(sim, op, outcome)?;
        }
        Expectation::InFlight { filter, cmp, count } => {
            let actual = sim.network().in_flight().filter(|e| filter.matches(e)).count() as u64;
            if !cmp.holds(actual, *count) {
                return unmet(format!(
                    "{actual} matching messages in flight, expected {} {count}",
                    cmp.symbol()
                ));
            }
        }
    }
    Ok(())
}

/// The operation named `label`.
pub(crate) fn labelled<'a>(
    sim: &'a Simulator,
    labels: &BTreeMap<String, RequestId>,
    label: &str,
) -> Result<&'a Operation, SimError> {
    labels
        .get(label)
        .and_then(|&id| sim.history().get(id))
        .map_or_else(|| Err(SimError::Invalid(format!("no operation is labelled {label:?}"))), Ok)
}

/// Whether the operation reached a state `outcome` can be judged on (waiting helps no more).
pub(crate) fn settled(sim: &Simulator, op: &Operation, outcome: &OutcomeSpec) -> bool {
    match (outcome, &op.outcome) {
        (OutcomeSpec::Pending | OutcomeSpec::Lost, _) => true,
        (OutcomeSpec::CommittedOn(nodes), OpOutcome::Committed { index }) => {
            nodes.iter().all(|&id| sim.node(id).is_some_and(|n| n.applied_index() >= *index))
        }
        (_, outcome) => outcome.is_done(),
    }
}

/// Checks an operation's outcome.
pub(crate) fn check_outcome(sim: &Simulator, op: &Operation, expected: &OutcomeSpec) -> Result<(), SimError> {
    let actual = &op.outcome;
    let holds = match (expected, actual) {
        (OutcomeSpec::Pending, OpOutcome::Pending) | (OutcomeSpec::Lost, OpOutcome::Lost) => true,
        (OutcomeSpec::Ok, o) => {
            matches!(
                o,
                OpOutcome::Committed { .. }
                    | OpOutcome::Value(_)
                    | OpOutcome::Changed(_)
                    | OpOutcome::Transferred(_)
            )
        }
        (OutcomeSpec::CommittedOn(nodes), OpOutcome::Committed { index }) => {
            if let Some(&lagging) =
                nodes.iter().find(|&&id| sim.node(id).is_none_or(|n| n.applied_index() < *index))
            {
                return unmet(format!(
                    "request {} committed at index {index}, but node {lagging} has not applied it",
                    op.id
                ));
            }
            true
        }
        (OutcomeSpec::Value(v), OpOutcome::Value(actual)) => actual == v.as_bytes(),
        (OutcomeSpec::Failed(kind), OpOutcome::Failed { kind: actual, .. }) => {
            kind.as_ref().is_none_or(|k| k == actual)
        }
        _ => false,
    };
    if holds {
        Ok(())
    } else {
        unmet(format!(
            "request {} ({:?} on node {}) is {actual}, expected {expected:?}",
            op.id, op.kind, op.node
        ))
    }
}
