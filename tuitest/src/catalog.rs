//! The command catalog: every command the REPL knows, with its usage and help. One table
//! drives `help`, completion, hints and the "did you mean" suggestions. It describes; it does
//! not parse: testkit's parser reads every command but the REPL's own (`input.rs`).

/// What a command's arguments are, for completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Args {
    /// Nothing worth completing.
    Free,
    /// Node ids and names (and `leader`).
    Nodes,
    /// One of these words.
    Words(&'static [&'static str]),
    /// A command name.
    Commands,
    /// A file path.
    Files,
}

/// The part of `help` a command is listed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Looking at the cluster.
    Inspect,
    /// Links and faults.
    Network,
    /// Crashes, membership and leadership.
    Nodes,
    /// Client requests.
    Clients,
    /// Virtual time.
    Time,
    /// The session itself.
    Session,
    /// The rest of the scenario language.
    Scenario,
}

impl Group {
    /// Every group, in the order `help` lists them.
    pub const ALL: [Group; 7] = [
        Group::Inspect,
        Group::Network,
        Group::Nodes,
        Group::Clients,
        Group::Time,
        Group::Session,
        Group::Scenario,
    ];

    /// The group's heading in `help`.
    pub fn title(self) -> &'static str {
        match self {
            Group::Inspect => "Inspect",
            Group::Network => "Network",
            Group::Nodes => "Nodes",
            Group::Clients => "Clients",
            Group::Time => "Time",
            Group::Session => "Session",
            Group::Scenario => "More of the scenario language (testkit/README.md has it all)",
        }
    }
}

/// One command.
#[derive(Debug)]
pub struct Spec {
    /// Its name.
    pub name: &'static str,
    /// Other names for it (the original REPL's names among them).
    pub aliases: &'static [&'static str],
    /// Its arguments, as shown in usage lines.
    pub usage: &'static str,
    /// One line: what it does.
    pub summary: &'static str,
    /// More, for `help <command>` (may be empty).
    pub details: &'static str,
    /// What its arguments complete to.
    pub args: Args,
    /// Where `help` lists it.
    pub group: Group,
}

impl Spec {
    /// `name usage`, trimmed.
    pub fn usage_line(&self) -> String {
        format!("{} {}", self.name, self.usage).trim_end().to_string()
    }

    /// Every name the command answers to.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// The text of `help <command>`.
    pub fn help(&self) -> String {
        let mut text = format!("usage: {}\n  {}\n", self.usage_line(), self.summary);
        for line in self.details.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        if !self.aliases.is_empty() {
            text.push_str(&format!("  also: {}\n", self.aliases.join(", ")));
        }
        text
    }
}

/// Finds a command by name or alias.
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| spec.names().any(|n| n == name))
}

/// Every name and alias.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().flat_map(Spec::names)
}

/// How wide the usage column of `help` is; a longer usage gets a line of its own.
const USAGE_WIDTH: usize = 32;

/// The text of `help`: every command by group, one line each.
pub fn overview() -> String {
    let mut text = String::new();
    for group in Group::ALL {
        text.push_str(&format!("{}:\n", group.title()));
        for spec in COMMANDS.iter().filter(|spec| spec.group == group) {
            let usage = spec.usage_line();
            if usage.chars().count() > USAGE_WIDTH {
                text.push_str(&format!("  {usage}\n  {:USAGE_WIDTH$}  {}\n", "", spec.summary));
            } else {
                text.push_str(&format!("  {usage:<USAGE_WIDTH$}  {}\n", spec.summary));
            }
        }
    }
    text.push_str(
        "A node is its id, its name (`addnode first`), or `leader`. Every command but help, save,\n\
         load, auto, seed, reset and quit works in a seq_test! too. `help <command>` tells more.\n",
    );
    text
}

const NODES_AND_LEADER: &str = "A node is its id, its name, or `leader` for the current leader.";

/// Every command.
pub static COMMANDS: &[Spec] = &[
    // ----- inspect -----
    Spec {
        name: "status",
        aliases: &["diagnostics"],
        usage: "[node | full]",
        summary: "each node's name, role, term, leader, commit, applied, last entry, cuts",
        details: "Roles are colored on a terminal (set NO_COLOR to turn that off). `last` is the\n\
                  last log entry as index@term; `cut` lists the peers a node cannot reach (both\n\
                  ways), or →n / ←n for a link cut one way. Names show once a node has one.\n\
                  With a node: that node in detail (vote, configuration, messages in flight).\n\
                  `status full`: testkit's table (vote, log window and configuration of every node).",
        args: Args::Nodes,
        group: Group::Inspect,
    },
    Spec {
        name: "log",
        aliases: &[],
        usage: "<node> [count | all]",
        summary: "a node's log entries, and which are committed (the latest 20)",
        details: "A crashed node shows what its storage holds.",
        args: Args::Nodes,
        group: Group::Inspect,
    },
    Spec {
        name: "trace",
        aliases: &[],
        usage: "[count]",
        summary: "the simulator's latest events: deliveries, losses, timers (20)",
        details: "",
        args: Args::Free,
        group: Group::Inspect,
    },
    Spec {
        name: "queuelen",
        aliases: &[],
        usage: "",
        summary: "the messages in flight, and what a cut link does with them",
        details: "By default messages on a cut link are lost, not queued: a message crossing a cut\n\
                  link is lost when it arrives, even if it was sent before the cut (Raft resends\n\
                  what matters), and the queue is the network itself: every message sent and not\n\
                  yet arrived. After `net queue`, a cut link holds its messages instead, as the\n\
                  original REPL did, and delivers them when it is restored; `net lose` goes back.\n\
                  `messages` lists them, held ones marked.",
        args: Args::Free,
        group: Group::Inspect,
    },
    Spec {
        name: "clearqueue",
        aliases: &[],
        usage: "",
        summary: "lose every message in flight, those held on cut links too",
        details: "See `help queuelen`.",
        args: Args::Free,
        group: Group::Inspect,
    },
    // ----- network -----
    Spec {
        name: "disconnect",
        aliases: &["cut"],
        usage: "<a> <b>",
        summary: "cut the link between two nodes (both ways; `a -> b`: one way)",
        details: "Also `a <-> b`. See `help queuelen` for what happens to messages on a cut link.",
        args: Args::Nodes,
        group: Group::Network,
    },
    Spec {
        name: "connect",
        aliases: &[],
        usage: "<a> <b>",
        summary: "restore the link between two nodes (both ways; `a -> b`: one way)",
        details: "Also `a <-> b`. Messages held on the link (`net queue`) arrive at once.",
        args: Args::Nodes,
        group: Group::Network,
    },
    Spec {
        name: "partition",
        aliases: &[],
        usage: "<nodes> | <nodes> …",
        summary: "split the cluster into groups that cannot talk: partition 1,2 | 3",
        details: "Replaces every cut. Nodes in no group form one more group, so `partition 1`\n\
                  isolates node 1. A group may be written `[1, 2]` too.",
        args: Args::Nodes,
        group: Group::Network,
    },
    Spec {
        name: "isolate",
        aliases: &[],
        usage: "<node>",
        summary: "cut a node off from every other node (other cuts stay)",
        details: NODES_AND_LEADER,
        args: Args::Nodes,
        group: Group::Network,
    },
    Spec {
        name: "heal",
        aliases: &[],
        usage: "",
        summary: "restore every link",
        details: "Drop rates and delays stay; `drop 0` and `delay 1ms` restore the defaults.",
        args: Args::Free,
        group: Group::Network,
    },
    Spec {
        name: "drop",
        aliases: &[],
        usage: "<rate>",
        summary: "lose this share of the messages on every link: drop 10%",
        details: "Sets every link (and forgets per-link settings made with `link`); the delay stays.\n\
                  `drop [first] a -> b [Kind]` loses messages in flight instead.",
        args: Args::Free,
        group: Group::Network,
    },
    Spec {
        name: "delay",
        aliases: &[],
        usage: "<min>-<max>ms",
        summary: "delay each message by a random time in this range: delay 5-50ms",
        details: "Messages overtake each other when the range is wide. Sets every link (and\n\
                  forgets per-link settings made with `link`); the drop rate stays.",
        args: Args::Free,
        group: Group::Network,
    },
    Spec {
        name: "net",
        aliases: &[],
        usage: "queue | lose | <faults>",
        summary: "what cut links do with messages; or the faults of every link",
        details: "`net queue`: a cut link holds its messages and delivers them when restored (the\n\
                  original REPL's queue); `net lose` (the default): they are lost on arrival.\n\
                  `net delay=1..20, drop=0.05, duplicate=0.01, reorder=0.1`: the faults of every\n\
                  link; the ones not named return to their defaults (1 ms, none).",
        args: Args::Words(&["queue", "lose"]),
        group: Group::Network,
    },
    // ----- nodes -----
    Spec {
        name: "crash",
        aliases: &[],
        usage: "<node> [at <point>]",
        summary: "stop a node now: what it has not persisted is lost",
        details: "`at <point>` arms a crash inside the node's next Ready instead: before_persist,\n\
                  after_hard_state, after_snapshot, before_send or after_send.",
        args: Args::Nodes,
        group: Group::Nodes,
    },
    Spec {
        name: "restart",
        aliases: &[],
        usage: "<node>",
        summary: "start a crashed node again from its storage",
        details: "",
        args: Args::Nodes,
        group: Group::Nodes,
    },
    Spec {
        name: "addnode",
        aliases: &[],
        usage: "[name | id]",
        summary: "start a node (the next id) and have the leader add it as a voter",
        details: "A new name names the node: `addnode first`. Waits until the change commits and\n\
                  the node holds it, fails, or ten election timeouts pass. An existing node outside\n\
                  the configuration (one you removed) is added back.\n\
                  A session that begins with `addnode` builds its cluster from nothing, as the\n\
                  original REPL did: the first node forms a cluster of its own (the default nodes\n\
                  go away) and waits until it leads; the next ones join through the leader.",
        args: Args::Nodes,
        group: Group::Nodes,
    },
    Spec {
        name: "removenode",
        aliases: &[],
        usage: "<node>",
        summary: "ask the leader to remove a node from the configuration",
        details: "The node keeps running outside the configuration. Waits like `addnode`.",
        args: Args::Nodes,
        group: Group::Nodes,
    },
    Spec {
        name: "transfer",
        aliases: &[],
        usage: "[<from> to] <to>",
        summary: "have the leader (or node `from`) hand leadership to `to`",
        details: "`=> ok` waits until the transfer succeeds (and checks it does); without it,\n\
                  the answer is reported when it comes. Also `as label`.",
        args: Args::Nodes,
        group: Group::Nodes,
    },
    // ----- clients -----
    Spec {
        name: "put",
        aliases: &[],
        usage: "<key> <value> [on <node>]",
        summary: "write key=value through the leader (or `on` a node), and wait",
        details: "Waits until the write commits, fails, or ten election timeouts pass; a write\n\
                  still pending then is reported when it completes. A value with spaces is quoted:\n\
                  put greeting \"hello world\". `propose` writes without waiting.",
        args: Args::Nodes,
        group: Group::Clients,
    },
    Spec {
        name: "get",
        aliases: &[],
        usage: "<key> [on <node>]",
        summary: "read a key, linearizably, through the leader (or `on` a node)",
        details: "Waits like `put`. `read` reads without waiting.",
        args: Args::Nodes,
        group: Group::Clients,
    },
    Spec {
        name: "pushpayload",
        aliases: &[],
        usage: "<n> [on <node>]",
        summary: "replicate the number n (the original REPL's write)",
        details: "Waits like `put`.",
        args: Args::Nodes,
        group: Group::Clients,
    },
    // ----- time -----
    Spec {
        name: "tick",
        aliases: &[],
        usage: "[n]",
        summary: "let n heartbeat intervals of virtual time pass (default 1)",
        details: "Time stands still between commands unless `auto` is on.",
        args: Args::Free,
        group: Group::Time,
    },
    Spec {
        name: "run",
        aliases: &["advance"],
        usage: "[duration]",
        summary: "let virtual time pass: 500ms, 2s, 3 * election_timeout (default 1s)",
        details: "Role, term and leader changes are printed as they happen, with their time.\n\
                  `advance heartbeat` and `tick` count heartbeat intervals.",
        args: Args::Free,
        group: Group::Time,
    },
    Spec {
        name: "auto",
        aliases: &[],
        usage: "on|off",
        summary: "let virtual time follow the wall clock while the prompt waits",
        details: "Events are printed as they happen. Only at an interactive terminal; a saved\n\
                  session records the time that passed, so it still replays exactly.",
        args: Args::Words(&["on", "off"]),
        group: Group::Time,
    },
    // ----- session -----
    Spec {
        name: "seed",
        aliases: &[],
        usage: "<n>",
        summary: "start over: the same cluster, with seed n for its random choices",
        details: "",
        args: Args::Free,
        group: Group::Session,
    },
    Spec {
        name: "reset",
        aliases: &[],
        usage: "[nodes]",
        summary: "start over: a new cluster (as many nodes as before, or this many)",
        details: "",
        args: Args::Free,
        group: Group::Session,
    },
    Spec {
        name: "save",
        aliases: &[],
        usage: "<file.rs>",
        summary: "write the session as a seq_test! test that replays it exactly",
        details: "The test ends with `expect` lines for each node's role, term and commit index\n\
                  and for the leader. Put it in a crate's tests/ directory (with testkit as a\n\
                  dependency), e.g. tuitest/tests/, and run `cargo test -p tuitest --test NAME`.",
        args: Args::Files,
        group: Group::Session,
    },
    Spec {
        name: "load",
        aliases: &[],
        usage: "<file>",
        summary: "run the commands of a file (one or more per line), or of a saved test",
        details: "`//` and `#` start comments. Every command runs, even after a failure.\n\
                  The scenario language is the same in a file, at the prompt and in a seq_test!.",
        args: Args::Files,
        group: Group::Session,
    },
    Spec {
        name: "help",
        aliases: &["?"],
        usage: "[command]",
        summary: "every command, or one in detail",
        details: "",
        args: Args::Commands,
        group: Group::Session,
    },
    Spec {
        name: "quit",
        aliases: &["exit"],
        usage: "",
        summary: "leave (Ctrl-D does too)",
        details: "",
        args: Args::Free,
        group: Group::Session,
    },
    // ----- testkit's language, run as is -----
    Spec {
        name: "elect",
        aliases: &[],
        usage: "<node>",
        summary: "make a node time out and deliver messages until it leads",
        details: "",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "timeout",
        aliases: &[],
        usage: "<node>",
        summary: "fire a node's election timer now, delivering nothing",
        details: "",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "settle",
        aliases: &[],
        usage: "",
        summary: "deliver every message in flight, and what follows, at once",
        details: "",
        args: Args::Free,
        group: Group::Scenario,
    },
    Spec {
        name: "propose",
        aliases: &[],
        usage: "<node> \"k=v\" [=> outcome]",
        summary: "a client write",
        details: "Also `as label`; outcomes: ok, committed [on [..]], failed [Kind], pending, lost.",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "read",
        aliases: &[],
        usage: "<node> \"k\" [=> outcome]",
        summary: "a linearizable read",
        details: "Also `as label`; outcomes: \"value\", failed [Kind], pending, lost.",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "change",
        aliases: &[],
        usage: "<node> <change>",
        summary: "a configuration change: change 1 add_voter 4",
        details: "Changes: add_voter N, add_learner N, promote N, remove N, replace [..] (joint consensus).",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "compact",
        aliases: &[],
        usage: "<node>",
        summary: "snapshot a node's state machine and compact its log now",
        details: "",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "deliver",
        aliases: &[],
        usage: "[first] <from> -> <to> [Kind]",
        summary: "deliver messages in flight now (`*` for any node)",
        details: "",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "messages",
        aliases: &[],
        usage: "",
        summary: "the messages in flight",
        details: "",
        args: Args::Free,
        group: Group::Scenario,
    },
    Spec {
        name: "link",
        aliases: &[],
        usage: "<from> -> <to> <faults>",
        summary: "the faults of one link",
        details: "Faults as for `net`.",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "expect",
        aliases: &[],
        usage: "<check>",
        summary: "check the cluster: expect 1 is leader, expect all commit = 3 …",
        details: "A check that holds is recorded, so a saved session asserts it too.",
        args: Args::Nodes,
        group: Group::Scenario,
    },
    Spec {
        name: "check",
        aliases: &[],
        usage: "",
        summary: "durability and linearizability of every request so far",
        details: "",
        args: Args::Free,
        group: Group::Scenario,
    },
    Spec {
        name: "cluster",
        aliases: &[],
        usage: "<nodes> [with { <options> }]",
        summary: "start over with a cluster of your own: cluster 5 with { pre_vote=off }",
        details: "",
        args: Args::Free,
        group: Group::Scenario,
    },
    Spec {
        name: "restore",
        aliases: &[],
        usage: "<node> term <t> [vote <n>] log [..]",
        summary: "replace a node's storage and restart it",
        details: "",
        args: Args::Nodes,
        group: Group::Scenario,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_original_commands_are_all_there() {
        let mut names: Vec<&str> = all_names().collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name is used twice");
        let original = [
            "addnode",
            "removenode",
            "connect",
            "disconnect",
            "pushpayload",
            "diagnostics",
            "queuelen",
            "clearqueue",
            "help",
        ];
        for name in original {
            assert!(find(name).is_some(), "{name} is missing");
        }
    }

    #[test]
    fn the_catalog_is_the_scenario_language_and_the_repl_s_own_commands() {
        let repl_only = ["help", "?", "auto", "seed", "reset", "save", "load", "quit", "exit"];
        for name in all_names() {
            assert!(testkit::Command::VERBS.contains(&name) || repl_only.contains(&name), "{name}");
        }
        for verb in testkit::Command::VERBS {
            assert!(find(verb).is_some(), "`{verb}` is missing from the catalog");
        }
    }

    #[test]
    fn help_lists_every_group_and_explains_one_command() {
        let overview = overview();
        for group in Group::ALL {
            assert!(overview.contains(group.title()), "{overview}");
        }
        let help = find("diagnostics").unwrap().help();
        assert!(help.starts_with("usage: status [node | full]"), "{help}");
        assert!(help.contains("also: diagnostics"), "{help}");
    }
}
