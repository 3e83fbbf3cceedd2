//! The `status` table: the cluster at a glance, one row per node.

use raft_core::{NodeId, Role};
use testkit::{Names, Simulator};

use crate::style::Style;

const HEADER: [&str; 9] = ["node", "name", "role", "term", "leader", "commit", "applied", "last", "cut"];
const NAME: usize = 1;
const ROLE: usize = 2;
const CUT: usize = 8;

/// One node's row: the cells as text, and its role (`None` while it is down).
struct Row {
    cells: [String; 9],
    role: Option<Role>,
}

fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The peers `id` cannot reach: `2` for a link cut both ways, `→2` or `←2` for one way.
fn cut_peers(sim: &Simulator, id: NodeId) -> String {
    let network = sim.network();
    let peers = sim.ids().into_iter().filter(|&peer| peer != id);
    let cuts: Vec<String> = peers
        .filter_map(|peer| match (network.is_cut(id, peer), network.is_cut(peer, id)) {
            (true, true) => Some(peer.to_string()),
            (true, false) => Some(format!("→{peer}")),
            (false, true) => Some(format!("←{peer}")),
            (false, false) => None,
        })
        .collect();
    cuts.join(" ")
}

fn row(sim: &Simulator, names: &Names, id: NodeId) -> Row {
    let cut = cut_peers(sim, id);
    let name = names.name(id).unwrap_or_default().to_string();
    match sim.node(id) {
        Some(node) => {
            let last = node.last_log_id();
            Row {
                cells: [
                    id.to_string(),
                    name,
                    node.role().to_string(),
                    node.term().to_string(),
                    optional(node.leader()),
                    node.commit_index().to_string(),
                    node.applied_index().to_string(),
                    format!("{}@{}", last.index, last.term),
                    cut,
                ],
                role: Some(node.role()),
            }
        }
        None => {
            let storage = sim.storage(id).expect("every node of the simulator has storage");
            let last = storage.last_log_id();
            let down = |_| "-".to_string();
            let mut cells: [String; 9] = std::array::from_fn(down);
            cells[0] = id.to_string();
            cells[NAME] = name;
            cells[ROLE] = "down".to_string();
            cells[3] = storage.hard_state().term.to_string();
            cells[7] = format!("{}@{}", last.index, last.term);
            cells[CUT] = cut;
            Row { cells, role: None }
        }
    }
}

/// The header line: time, seed, leader and configuration.
fn summary(sim: &Simulator, names: &Names) -> String {
    let head = format!("time {} ms, seed {}", sim.now(), sim.options().seed);
    match sim.leader().and_then(|id| sim.node(id)) {
        Some(leader) => {
            let term = match names.name(leader.id()) {
                Some(name) => format!("{name}, term {}", leader.term()),
                None => format!("term {}", leader.term()),
            };
            format!("{head}, leader {} ({term}), {}", leader.id(), leader.membership())
        }
        None => format!("{head}, no leader"),
    }
}

/// The table of the nodes `ids`, under a summary line. The name column shows once a node of
/// the cluster has a name.
pub fn table(sim: &Simulator, names: &Names, ids: &[NodeId], style: Style) -> String {
    let rows: Vec<Row> = ids.iter().map(|&id| row(sim, names, id)).collect();
    let shown = |column: &usize| *column != NAME || !names.is_empty();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(&row.cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let pad = |cell: &str, width: usize| format!("{cell:<width$}");
    let header: Vec<String> = HEADER
        .iter()
        .zip(widths)
        .enumerate()
        .filter(|(c, _)| shown(c))
        .map(|(_, (h, w))| pad(h, w))
        .collect();
    let mut out = format!("{}\n{}\n", summary(sim, names), style.dim(header.join("  ").trim_end()));
    for row in &rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .zip(widths)
            .enumerate()
            .filter(|(column, _)| shown(column))
            .map(|(column, (cell, width))| match (column, row.role) {
                (ROLE, Some(role)) => style.role(role, width),
                (ROLE, None) => style.bad(&pad(cell, width)),
                (CUT, _) => style.bad(cell),
                _ => pad(cell, width),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One node in detail: its row, vote, configuration and the messages in flight to and from it.
pub fn node_detail(sim: &Simulator, names: &Names, id: NodeId, style: Style) -> String {
    let mut out = table(sim, names, &[id], style);
    let in_flight = sim.network().in_flight();
    let (from, to) = in_flight
        .fold((0, 0), |(from, to), e| (from + usize::from(e.from == id), to + usize::from(e.to == id)));
    match sim.node(id) {
        Some(node) => {
            out.push_str(&format!(
                "vote {}, log {}..={}, configuration {}\n",
                optional(node.vote()),
                node.first_index(),
                node.last_log_id().index,
                node.membership()
            ));
        }
        None => {
            let hard = sim.storage(id).expect("every node of the simulator has storage").hard_state();
            out.push_str(&format!(
                "down: its storage holds term {}, vote {}\n",
                hard.term,
                optional(hard.vote)
            ));
        }
    }
    out.push_str(&format!("in flight: {from} messages from node {id}, {to} to it\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::ClusterOptions;

    #[test]
    fn rows_show_roles_cuts_and_crashed_nodes() {
        let mut sim = Simulator::new(ClusterOptions::new([1, 2, 3])).unwrap();
        sim.advance(1_000).unwrap();
        let leader = sim.leader().unwrap();
        let other = sim.ids().into_iter().find(|&id| id != leader).unwrap();
        sim.network_mut().cut(leader, other);
        sim.crash(other).unwrap();
        let text = table(&sim, &Names::default(), &sim.ids(), Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0]
            .starts_with(&format!("time 1000 ms, seed 0, leader {leader} (term 1), voters {{1, 2, 3}}")));
        assert_eq!(lines[1], "node  role      term  leader  commit  applied  last  cut");
        let leader_row = lines[1 + leader as usize];
        assert!(
            leader_row.starts_with(&format!(
                "{leader}     Leader    1     {leader}       1       1        1@1   →{other}"
            )),
            "{text}"
        );
        assert!(lines[1 + other as usize].contains("down"), "{text}");
        let detail = node_detail(&sim, &Names::default(), leader, Style::plain());
        assert!(detail.contains("configuration voters {1, 2, 3}"), "{detail}");
    }

    #[test]
    fn names_show_once_a_node_has_one() {
        let mut session = testkit::Session::new();
        session.run_line("addnode first").unwrap();
        session.run_line("addnode").unwrap();
        let sim = session.simulator().unwrap();
        let text = table(sim, session.names(), &sim.ids(), Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("leader 1 (first, term 1), voters {1, 2}"), "{text}");
        assert_eq!(lines[1], "node  name   role      term  leader  commit  applied  last  cut");
        assert!(lines[2].starts_with("1     first  Leader    1     1 "), "{text}");
        assert!(lines[3].starts_with("2            Follower  1     1 "), "{text}");
    }
}
