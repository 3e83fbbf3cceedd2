//! The `status` table: the cluster at a glance, one row per node.

use raft_core::{NodeId, Role};
use testkit::Simulator;

use crate::style::Style;

const HEADER: [&str; 8] = ["node", "role", "term", "leader", "commit", "applied", "last", "cut"];
const ROLE: usize = 1;
const CUT: usize = 7;

/// One node's row: the cells as text, and its role (`None` while it is down).
struct Row {
    cells: [String; 8],
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

fn row(sim: &Simulator, id: NodeId) -> Row {
    let cut = cut_peers(sim, id);
    match sim.node(id) {
        Some(node) => {
            let last = node.last_log_id();
            Row {
                cells: [
                    id.to_string(),
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
            let mut cells: [String; 8] = std::array::from_fn(down);
            cells[0] = id.to_string();
            cells[ROLE] = "down".to_string();
            cells[2] = storage.hard_state().term.to_string();
            cells[6] = format!("{}@{}", last.index, last.term);
            cells[CUT] = cut;
            Row { cells, role: None }
        }
    }
}

/// The header line: time, seed, leader and configuration.
fn summary(sim: &Simulator) -> String {
    let head = format!("time {} ms, seed {}", sim.now(), sim.options().seed);
    match sim.leader().and_then(|id| sim.node(id)) {
        Some(leader) => {
            format!("{head}, leader {} (term {}), {}", leader.id(), leader.term(), leader.membership())
        }
        None => format!("{head}, no leader"),
    }
}

/// The table of the nodes `ids`, under a summary line.
pub fn table(sim: &Simulator, ids: &[NodeId], style: Style) -> String {
    let rows: Vec<Row> = ids.iter().map(|&id| row(sim, id)).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(&row.cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let pad = |cell: &str, width: usize| format!("{cell:<width$}");
    let header: Vec<String> = HEADER.iter().zip(widths).map(|(h, w)| pad(h, w)).collect();
    let mut out = format!("{}\n{}\n", summary(sim), style.dim(header.join("  ").trim_end()));
    for row in &rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .zip(widths)
            .enumerate()
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
pub fn node_detail(sim: &Simulator, id: NodeId, style: Style) -> String {
    let mut out = table(sim, &[id], style);
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
        let text = table(&sim, &sim.ids(), Style::plain());
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
        let detail = node_detail(&sim, leader, Style::plain());
        assert!(detail.contains("configuration voters {1, 2, 3}"), "{detail}");
    }
}
