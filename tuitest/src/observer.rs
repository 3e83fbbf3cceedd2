//! [`Observer`]: what changed since the last look — a node's role, term or leader, a node
//! crashing or starting, a client request completing — as event lines.

use std::collections::BTreeMap;

use raft_core::{MembershipChange, NodeId, RequestId, Role, Term};
use testkit::{Names, OpKind, Operation, Simulator};

use crate::cluster_line::node_list;
use crate::style::Style;

/// What the observer last saw of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Down,
    Up { role: Role, term: Term, leader: Option<NodeId> },
}

impl Seen {
    fn of(sim: &Simulator, id: NodeId) -> Seen {
        match sim.node(id) {
            Some(node) => Seen::Up { role: node.role(), term: node.term(), leader: node.leader() },
            None => Seen::Down,
        }
    }
}

/// Remembers what it saw, and reports what changed since.
#[derive(Debug, Default)]
pub struct Observer {
    nodes: BTreeMap<NodeId, Seen>,
    /// How many requests the history held at the last look.
    requests: usize,
    /// The requests without an answer at the last look.
    pending: Vec<RequestId>,
}

impl Observer {
    /// An observer that has seen `sim` as it is now. (One that has seen nothing,
    /// [`Observer::default`], reports every node of the first cluster it looks at as started.)
    pub fn new(sim: &Simulator) -> Self {
        let mut observer = Observer::default();
        observer.look(sim, &Names::default(), Style::plain());
        observer
    }

    /// What changed since the last look, one line per event, stamped with the current
    /// virtual time; nodes are shown with their `names`.
    pub fn look(&mut self, sim: &Simulator, names: &Names, style: Style) -> Vec<String> {
        let mut events = Vec::new();
        for id in sim.ids() {
            let now = Seen::of(sim, id);
            let before = self.nodes.insert(id, now);
            if before != Some(now) {
                events.push(format!("node {}: {}", names.show(id), change(before, now, style)));
            }
        }
        let history = sim.history();
        self.pending.extend(history.ops()[self.requests..].iter().map(|op| op.id));
        self.requests = history.ops().len();
        self.pending.retain(|&id| match history.get(id) {
            Some(op) if op.outcome.is_done() => {
                events.push(format!("{}: {}", describe(op, names), op.outcome));
                false
            }
            _ => true,
        });
        let stamp = style.dim(&format!("{:>7} ms", sim.now()));
        events.into_iter().map(|event| format!("  {stamp}  {event}\n")).collect()
    }
}

/// How a node changed: `Follower → Leader (term 3)`, `term 2 → 3, follows 1`, `crashed` …
fn change(before: Option<Seen>, now: Seen, style: Style) -> String {
    let follows = |role: Role, leader: Option<NodeId>| match leader {
        Some(leader) if role != Role::Leader => format!(", follows {leader}"),
        _ => String::new(),
    };
    match (before, now) {
        (_, Seen::Down) => style.bad("crashed"),
        (None, Seen::Up { role, term, leader }) => {
            format!("started as {} (term {term}{})", style.role(role, 0), follows(role, leader))
        }
        (Some(Seen::Down), Seen::Up { role, term, leader }) => {
            format!("restarted as {} (term {term}{})", style.role(role, 0), follows(role, leader))
        }
        (Some(Seen::Up { role: was, term: old, leader: had }), Seen::Up { role, term, leader }) => {
            if was != role {
                format!(
                    "{} → {} (term {term}{})",
                    style.role(was, 0),
                    style.role(role, 0),
                    follows(role, leader)
                )
            } else if old != term {
                let leader = if leader.is_some() { follows(role, leader) } else { ", no leader".to_string() };
                format!("term {old} → {term}{leader}")
            } else if let Some(leader) = leader.filter(|_| role != Role::Leader) {
                format!("follows {leader}")
            } else {
                let lost = had.map_or_else(String::new, |had| format!(" {had}"));
                format!("lost contact with its leader{lost}")
            }
        }
    }
}

/// `write "x=1" at node 2`, `add_voter 4 at node 1 (first)` …
fn describe(op: &Operation, names: &Names) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let what = match &op.kind {
        OpKind::Propose { command } => format!("write {:?}", text(command)),
        OpKind::Read { query } => format!("read {:?}", text(query)),
        OpKind::Transfer { to } => format!("transfer to {}", names.show(*to)),
        OpKind::Change(change) => match change {
            MembershipChange::AddVoter(id) => format!("add_voter {}", names.show(*id)),
            MembershipChange::AddLearner(id) => format!("add_learner {}", names.show(*id)),
            MembershipChange::Promote(id) => format!("promote {}", names.show(*id)),
            MembershipChange::Remove(id) => format!("remove {}", names.show(*id)),
            MembershipChange::ReplaceVoters(ids) => format!("replace {}", node_list(ids)),
            other => format!("{other:?}"),
        },
    };
    format!("{what} at node {}", names.show(op.node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::ClusterOptions;

    fn up(role: Role, term: Term, leader: Option<NodeId>) -> Seen {
        Seen::Up { role, term, leader }
    }

    #[test]
    fn changes_read_as_sentences() {
        let plain = Style::plain();
        let follower = up(Role::Follower, 1, Some(2));
        let elected = up(Role::Leader, 2, Some(1));
        assert_eq!(change(Some(follower), elected, plain), "Follower → Leader (term 2)");
        assert_eq!(
            change(Some(up(Role::Leader, 1, Some(1))), up(Role::Follower, 1, None), plain),
            "Leader → Follower (term 1)"
        );
        assert_eq!(change(Some(follower), up(Role::Follower, 2, Some(3)), plain), "term 1 → 2, follows 3");
        assert_eq!(change(Some(follower), up(Role::Follower, 2, None), plain), "term 1 → 2, no leader");
        assert_eq!(
            change(Some(follower), up(Role::Follower, 1, None), plain),
            "lost contact with its leader 2"
        );
        assert_eq!(change(Some(up(Role::Follower, 1, None)), follower, plain), "follows 2");
        assert_eq!(change(Some(follower), Seen::Down, plain), "crashed");
        assert_eq!(
            change(Some(Seen::Down), up(Role::Follower, 1, None), plain),
            "restarted as Follower (term 1)"
        );
        assert_eq!(change(None, up(Role::Follower, 0, None), plain), "started as Follower (term 0)");
    }

    #[test]
    fn an_election_and_a_write_are_reported_once() {
        let mut sim = Simulator::new(ClusterOptions::new([1, 2, 3])).unwrap();
        let mut observer = Observer::new(&sim);
        assert!(observer.look(&sim, &Names::default(), Style::plain()).is_empty());
        sim.advance(1_000).unwrap();
        let leader = sim.leader().unwrap();
        let events = observer.look(&sim, &Names::default(), Style::plain());
        let elected = format!("node {leader}: Follower → Leader (term 1)\n");
        assert!(events.iter().any(|e| e.ends_with(&elected)), "{events:?}");
        sim.propose(leader, "x=1").unwrap();
        assert!(
            observer.look(&sim, &Names::default(), Style::plain()).is_empty(),
            "pending requests are not reported"
        );
        sim.advance(10).unwrap();
        let events = observer.look(&sim, &Names::default(), Style::plain());
        assert_eq!(events, [format!("     1010 ms  write \"x=1\" at node {leader}: committed at index 2\n")]);
        assert!(observer.look(&sim, &Names::default(), Style::plain()).is_empty());
    }
}
