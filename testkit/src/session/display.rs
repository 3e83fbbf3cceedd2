//! What the display commands print: `status`, `trace`, `queuelen`, `messages` (and `log`, in
//! `log_view.rs`). Plain text; the REPL draws `status` its own way.

use crate::command::StatusView;
use crate::error::SimError;
use crate::names::Names;
use crate::network::CutMode;
use crate::simulator::Simulator;
use crate::status::StatusTable;

use super::node_id;

/// `names: first = 1, second = 2` (empty when no node has a name).
pub(super) fn names_line(names: &Names) -> String {
    if names.is_empty() {
        return String::new();
    }
    let names: Vec<String> = names.iter().map(|(id, name)| format!("{name} = {id}")).collect();
    format!("names: {}\n", names.join(", "))
}

/// The status table, or one node's row.
pub(super) fn status(sim: &Simulator, names: &Names, view: StatusView) -> Result<String, SimError> {
    Ok(match view {
        StatusView::Cluster | StatusView::Full => format!("{}{}", StatusTable(sim), names_line(names)),
        StatusView::Node(node) => {
            let id = node_id(sim, names, node)?;
            let name = names.name(id).map_or_else(String::new, |name| format!("name: {name}\n"));
            format!("{}{name}", StatusTable(sim).node(id))
        }
    })
}

/// The latest `count` events.
pub(super) fn trace(sim: &Simulator, count: usize) -> String {
    let lines: Vec<String> = sim.trace().lines().map(|line| format!("{line}\n")).collect();
    lines[lines.len().saturating_sub(count)..].concat()
}

/// `1 message`, `2 messages`.
fn messages_count(count: usize) -> String {
    format!("{count} message{}", if count == 1 { "" } else { "s" })
}

/// How many messages are in flight, how many a cut link holds, and how many will be lost.
pub(super) fn queue_len(sim: &Simulator) -> String {
    let network = sim.network();
    let total = network.in_flight().count();
    let held = network.in_flight().filter(|e| network.is_held(e)).count();
    let lost = network
        .in_flight()
        .filter(|e| !network.is_held(e) && (network.is_cut(e.from, e.to) || !sim.is_up(e.to)))
        .count();
    if total == 0 {
        return "no messages in flight\n".to_string();
    }
    let mut text = format!("{} in flight", messages_count(total));
    if held > 0 {
        text.push_str(&format!("; {held} of them held on cut links, delivered when the links are restored"));
    }
    match (lost, network.cut_mode()) {
        (0, _) if held == 0 => text.push_str(", none on a cut link or to a crashed node"),
        (0, _) => {}
        (_, CutMode::Lose) => text.push_str(&format!(
            "; {lost} of them on a cut link or to a crashed node: lost on arrival, unless the link is \
             restored (or the node restarted) first"
        )),
        (_, CutMode::Queue) => text.push_str(&format!(
            "; {lost} of them to a crashed node: lost on arrival, unless it is restarted first"
        )),
    }
    text.push('\n');
    text
}

/// Every message in flight, held ones marked.
pub(super) fn messages(sim: &Simulator) -> String {
    let network = sim.network();
    let line = |e| {
        let held = if network.is_held(e) { ", held until the link is restored" } else { "" };
        format!("{e}{held}\n")
    };
    network.in_flight().map(line).collect()
}
