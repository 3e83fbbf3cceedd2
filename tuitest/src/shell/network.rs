//! The network: links, partitions and faults, and the messages in flight (`queuelen`,
//! `clearqueue`).

use std::collections::BTreeSet;

use testkit::LinkFaults;

use super::Shell;
use crate::cluster_line::{net_line, node_list};
use crate::input::NodeArg;

impl Shell {
    /// Cuts or restores the link between two nodes.
    pub(super) fn link(
        &mut self,
        connect: bool,
        from: NodeArg,
        to: NodeArg,
        both: bool,
    ) -> Result<(), String> {
        let (from, to) = (self.node(from)?, self.node(to)?);
        if from == to {
            return Err(format!("node {from} has no link to itself"));
        }
        let verb = if connect { "connect" } else { "cut" };
        let arrow = if both { "<->" } else { "->" };
        self.change_links(&format!("{verb} {from} {arrow} {to}"))
    }

    /// Splits the cluster into groups.
    pub(super) fn partition(&mut self, groups: &[Vec<NodeArg>]) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        let mut lists = Vec::new();
        for group in groups {
            let mut ids = Vec::new();
            for &node in group {
                let id = self.node(node)?;
                if !seen.insert(id) {
                    return Err(format!("node {id} is in two groups"));
                }
                ids.push(id);
            }
            lists.push(node_list(&ids));
        }
        self.change_links(&format!("partition {}", lists.join(" | ")))
    }

    /// Runs a command that cuts or restores links, then tells which links are cut.
    pub(super) fn change_links(&mut self, line: &str) -> Result<(), String> {
        self.record(line)?;
        let network = self.sim().network();
        let cuts: Vec<String> = network
            .cut_links()
            .filter(|&(from, to)| from < to || !network.is_cut(to, from)) // each two-way cut once
            .map(|(from, to)| {
                let arrow = if network.is_cut(to, from) { "↔" } else { "→" };
                format!("{from} {arrow} {to}")
            })
            .collect();
        let text = if cuts.is_empty() {
            "every link works".to_string()
        } else {
            format!("cut: {}", cuts.join(", "))
        };
        self.say(text);
        Ok(())
    }

    /// Sets the faults of every link.
    pub(super) fn set_faults(&mut self, faults: LinkFaults) -> Result<(), String> {
        self.record(&net_line(&faults))?;
        self.faults = faults;
        let percent = (faults.drop * 1000.0).round() / 10.0;
        let delay = match (faults.delay_min, faults.delay_max) {
            (min, max) if min == max => format!("{min}"),
            (min, max) => format!("{min} to {max}"),
        };
        self.say(format!("every link: {delay} ms delay, {percent}% dropped"));
        Ok(())
    }

    /// Counts the messages in flight, and those that will be lost.
    pub(super) fn queue_len(&mut self) {
        let sim = self.sim();
        let network = sim.network();
        let doomed = |e: &&testkit::Envelope| network.is_cut(e.from, e.to) || !sim.is_up(e.to);
        let total = network.in_flight().count();
        let lost = network.in_flight().filter(doomed).count();
        let in_flight = messages(total);
        let text = match (total, lost) {
            (0, _) => "no messages in flight".to_string(),
            (_, 0) => format!("{in_flight} in flight, none on a cut link or to a crashed node"),
            _ => format!(
                "{in_flight} in flight; {lost} of them on a cut link or to a crashed node: lost on arrival, \
                 unless the link is restored (or the node restarted) first"
            ),
        };
        self.say(text);
    }

    /// Loses every message in flight.
    pub(super) fn clear_queue(&mut self) -> Result<(), String> {
        let count = self.sim().network().in_flight().count();
        self.record("drop * -> *")?;
        self.say(format!("dropped {}", messages(count)));
        Ok(())
    }
}

/// `1 message`, `2 messages`.
fn messages(count: usize) -> String {
    format!("{count} message{}", if count == 1 { "" } else { "s" })
}
