//! [`StatusTable`]: the cluster at a glance, printed when a check fails and by the `status`
//! command.

use std::fmt;

use raft_core::NodeId;

use crate::simulator::Simulator;

/// One row per node: state, role, term, vote, leader, commit and applied indexes, log window
/// and configuration. Down nodes show what their storage holds. Cut links follow the table.
///
/// ```
/// use testkit::{ClusterOptions, Simulator, StatusTable};
/// let sim = Simulator::new(ClusterOptions::new([1, 2])).unwrap();
/// let table = StatusTable(&sim).to_string();
/// assert!(table.lines().next().unwrap().starts_with("node"));
/// assert_eq!(table.lines().count(), 3);
/// ```
pub struct StatusTable<'a>(pub &'a Simulator);

const HEADER: [&str; 10] =
    ["node", "state", "role", "term", "vote", "leader", "commit", "applied", "log", "configuration"];

fn optional(id: Option<NodeId>) -> String {
    id.map_or_else(|| "-".to_string(), |id| id.to_string())
}

impl StatusTable<'_> {
    /// The table with node `id`'s row only.
    ///
    /// ```
    /// use testkit::{ClusterOptions, Simulator, StatusTable};
    /// let sim = Simulator::new(ClusterOptions::new([1, 2])).unwrap();
    /// let row = StatusTable(&sim).node(2);
    /// assert_eq!(row.lines().count(), 2);
    /// assert!(row.lines().nth(1).unwrap().starts_with("2 "));
    /// ```
    pub fn node(&self, id: NodeId) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out, &[id]);
        out
    }

    fn rows(&self, ids: &[NodeId]) -> Vec<[String; 10]> {
        let sim = self.0;
        ids.iter()
            .map(|&id| match sim.node(id) {
                Some(node) => {
                    let last = node.last_log_id();
                    [
                        id.to_string(),
                        "up".to_string(),
                        node.role().to_string(),
                        node.term().to_string(),
                        optional(node.vote()),
                        optional(node.leader()),
                        node.commit_index().to_string(),
                        node.applied_index().to_string(),
                        format!("{}..={} (last term {})", node.first_index(), last.index, last.term),
                        node.membership().to_string(),
                    ]
                }
                None => {
                    let storage = sim.storage(id).expect("every listed node has storage");
                    let (hard, last) = (storage.hard_state(), storage.last_log_id());
                    [
                        id.to_string(),
                        "down".to_string(),
                        "-".to_string(),
                        hard.term.to_string(),
                        optional(hard.vote),
                        "-".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                        format!(
                            "{}..={} (last term {})",
                            storage.snapshot_id().index + 1,
                            last.index,
                            last.term
                        ),
                        "-".to_string(),
                    ]
                }
            })
            .collect()
    }

    fn write(&self, f: &mut impl fmt::Write, ids: &[NodeId]) -> fmt::Result {
        let rows = self.rows(ids);
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let header = HEADER.map(String::from);
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            writeln!(f, "{}", cells.join(" | ").trim_end())?;
        }
        Ok(())
    }
}

impl fmt::Display for StatusTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, &self.0.ids())?;
        let cuts: Vec<String> = self.0.network().cut_links().map(|(a, b)| format!("{a} -> {b}")).collect();
        if !cuts.is_empty() {
            writeln!(f, "cut links: {}", cuts.join(", "))?;
        }
        Ok(())
    }
}
