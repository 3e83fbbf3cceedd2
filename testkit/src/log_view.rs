//! What `log` prints: a node's log entries, and which of them are committed.

use raft_core::{Entry, Index, NodeId, Payload};

use crate::names::Names;
use crate::simulator::Simulator;

fn payload(payload: &Payload) -> String {
    match payload {
        Payload::Noop => "noop".to_string(),
        Payload::Command(command) => format!("{:?}", String::from_utf8_lossy(command)),
        Payload::Membership(membership) => format!("config: {membership}"),
    }
}

/// Node `id`'s latest `limit` entries (all when `None`). A crashed node shows its storage.
pub(crate) fn log_view(sim: &Simulator, names: &Names, id: NodeId, limit: Option<usize>) -> String {
    let node = names.show(id);
    let (entries, first, commit, mut out): (Vec<&Entry>, Index, Option<Index>, String) = match sim.node(id) {
        Some(raft) => {
            let (first, commit) = (raft.first_index(), raft.commit_index());
            let entries = raft.entries(first, raft.last_log_id().index).iter().collect();
            let head = format!("node {node}: commit {commit}, applied {}\n", raft.applied_index());
            (entries, first, Some(commit), head)
        }
        None => {
            let storage = sim.storage(id).expect("every node of the simulator has storage");
            let head = format!("node {node} is down; its storage holds:\n");
            (storage.entries().collect(), storage.snapshot_id().index + 1, None, head)
        }
    };
    if first > 1 {
        out.push_str(&format!("  entries 1..={} are compacted into a snapshot\n", first - 1));
    }
    let shown = limit.map_or(0, |limit| entries.len().saturating_sub(limit));
    if shown > 0 {
        out.push_str(&format!("  … {shown} earlier entries (`log {} all` shows them)\n", names.of(id)));
    }
    if entries.is_empty() {
        out.push_str("  (empty)\n");
        return out;
    }
    out.push_str("  index  term  entry\n");
    for entry in &entries[shown..] {
        let pending = commit.is_some_and(|commit| entry.index > commit);
        let mark = if pending { "  (not committed)" } else { "" };
        out.push_str(&format!(
            "  {:>5}  {:>4}  {}{mark}\n",
            entry.index,
            entry.term,
            payload(&entry.payload)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ClusterOptions;

    #[test]
    fn committed_and_pending_entries() {
        let mut sim = Simulator::new(ClusterOptions::new([1, 2, 3])).unwrap();
        sim.advance(1_000).unwrap();
        let leader = sim.leader().unwrap();
        sim.propose(leader, "x=1").unwrap();
        sim.advance(100).unwrap();
        sim.propose(leader, "y=2").unwrap();
        let text = log_view(&sim, &Names::default(), leader, None);
        let expected = format!(
            "node {leader}: commit 2, applied 2\n\
             \x20 index  term  entry\n\
             \x20     1     1  noop\n\
             \x20     2     1  \"x=1\"\n\
             \x20     3     1  \"y=2\"  (not committed)\n"
        );
        assert_eq!(text, expected);
        let tail = log_view(&sim, &Names::default(), leader, Some(1));
        assert!(tail.contains("… 2 earlier entries"), "{tail}");
        sim.crash(leader).unwrap();
        assert!(
            log_view(&sim, &Names::default(), leader, None).starts_with(&format!("node {leader} is down"))
        );
    }
}
