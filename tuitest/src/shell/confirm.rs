//! What a command did, said after it: which links are cut, the faults of every link, what cut
//! links do with messages, how many messages `clearqueue` lost, how much time passed.

use testkit::{Command, CutMode, Simulator};

use super::Shell;

/// The cluster before a command, for what is said after it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Before {
    in_flight: usize,
    now: u64,
}

/// `1 message`, `2 messages`.
fn messages(count: usize) -> String {
    format!("{count} message{}", if count == 1 { "" } else { "s" })
}

/// `cut: 1 ↔ 3, 2 → 3`, or `every link works`.
fn cut_links(sim: &Simulator) -> String {
    let network = sim.network();
    let cuts: Vec<String> = network
        .cut_links()
        .filter(|&(from, to)| from < to || !network.is_cut(to, from)) // each two-way cut once
        .map(|(from, to)| {
            let arrow = if network.is_cut(to, from) { "↔" } else { "→" };
            format!("{from} {arrow} {to}")
        })
        .collect();
    if cuts.is_empty() {
        "every link works".to_string()
    } else {
        format!("cut: {}", cuts.join(", "))
    }
}

impl Shell {
    /// What [`Shell::confirm`] compares with.
    pub(super) fn before(&self) -> Before {
        self.session.simulator().map_or_else(Before::default, |sim| Before {
            in_flight: sim.network().in_flight().count(),
            now: sim.now(),
        })
    }

    /// Says what `command` did to the network or the clock, if it changed either.
    pub(super) fn confirm(&mut self, command: &Command, before: Before) {
        let Some(sim) = self.session.simulator() else { return };
        let text = match command {
            Command::Advance(_) => {
                let line = format!("  time {} → {} ms", before.now, sim.now());
                self.settings.style.dim(&line)
            }
            Command::Cut { .. }
            | Command::Connect { .. }
            | Command::Partition(_)
            | Command::Isolate(_)
            | Command::Heal => cut_links(sim),
            Command::DropRate(_) | Command::Delay { .. } => {
                let faults = sim.network().default_faults();
                let percent = (faults.drop * 1000.0).round() / 10.0;
                let delay = match (faults.delay_min, faults.delay_max) {
                    (min, max) if min == max => format!("{min}"),
                    (min, max) => format!("{min} to {max}"),
                };
                format!("every link: {delay} ms delay, {percent}% dropped")
            }
            Command::CutMode(CutMode::Queue) => {
                "cut links now hold their messages and deliver them when restored".to_string()
            }
            Command::CutMode(CutMode::Lose) => "cut links now lose their messages".to_string(),
            Command::ClearQueue => format!("dropped {}", messages(before.in_flight)),
            Command::Crash { at: Some(point), .. } => {
                format!("armed: the crash lands inside the node's next Ready with work {point}")
            }
            _ => return,
        };
        self.say(text);
    }
}
