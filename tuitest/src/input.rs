//! One command → [`Input`]. The REPL's own commands are parsed here; the rest of testkit's
//! scenario language goes to [`Command::parse`].

use std::path::PathBuf;

use raft_core::NodeId;
use testkit::{closest, Command, CrashPoint, Duration};

use crate::catalog::{self, Group, Spec};

/// A node named in a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeArg {
    /// This node.
    Id(NodeId),
    /// Whichever node leads when the command runs.
    Leader,
}

/// What `status` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusView {
    /// Every node, at a glance.
    Cluster,
    /// One node in detail.
    Node(NodeArg),
    /// testkit's full table.
    Full,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// `help [command]`
    Help(Option<String>),
    /// `status [node | full]`, `diagnostics`
    Status(StatusView),
    /// `log <node> [count | all]`: all entries when `limit` is `None`.
    Log {
        /// Whose log.
        node: NodeArg,
        /// How many of the latest entries.
        limit: Option<usize>,
    },
    /// `trace [count]`
    Trace(usize),
    /// `queuelen`
    QueueLen,
    /// `clearqueue`
    ClearQueue,
    /// `connect a b`, `disconnect a -> b` …
    Link {
        /// Restore (or cut).
        connect: bool,
        /// One end.
        from: NodeArg,
        /// The other end.
        to: NodeArg,
        /// Both directions.
        both: bool,
    },
    /// `partition 1,2 | 3`
    Partition(Vec<Vec<NodeArg>>),
    /// `isolate n`
    Isolate(NodeArg),
    /// `heal`
    Heal,
    /// `drop 10%`: the drop rate of every link.
    DropRate(f64),
    /// `delay 5-50ms`: the delay range of every link.
    Delay {
        /// Shortest, in milliseconds.
        min: u64,
        /// Longest, in milliseconds.
        max: u64,
    },
    /// `crash n [at point]`
    Crash {
        /// The node.
        node: NodeArg,
        /// Inside which step of a coming Ready, if not now.
        at: Option<CrashPoint>,
    },
    /// `restart n`
    Restart(NodeArg),
    /// `addnode [n]`
    AddNode(Option<NodeId>),
    /// `removenode n`
    RemoveNode(NodeArg),
    /// `transfer [a] b`
    Transfer {
        /// The leader asked.
        from: NodeArg,
        /// The node to lead.
        to: NodeArg,
    },
    /// `put k v`, `pushpayload n`: a client write.
    Write {
        /// The command (`k=v`).
        command: String,
        /// The node asked (default: the leader).
        via: Option<NodeArg>,
    },
    /// `get k`: a client read.
    Read {
        /// The key.
        key: String,
        /// The node asked (default: the leader).
        via: Option<NodeArg>,
    },
    /// `tick [n]`, `run [duration]`
    Run(Duration),
    /// `auto on|off`
    Auto(bool),
    /// `seed n`
    Seed(u64),
    /// `reset [nodes]`
    Reset(Option<u64>),
    /// `save file`
    Save(PathBuf),
    /// `load file`
    Load(PathBuf),
    /// `quit`
    Quit,
    /// Any other command of testkit's language.
    Scenario(Command),
}

/// How long `run` lets time pass without an argument.
const DEFAULT_RUN: Duration = Duration::Millis(1_000);

/// How many events `trace` shows without an argument.
const DEFAULT_TRACE: u64 = 20;

/// The arguments of one command, and how to complain about them.
struct Args<'a> {
    spec: &'static Spec,
    words: Vec<&'a str>,
    rest: &'a str,
}

impl<'a> Args<'a> {
    fn usage(&self, problem: impl std::fmt::Display) -> String {
        format!("{problem}; usage: {}", self.spec.usage_line())
    }

    fn none(&self) -> Result<(), String> {
        match self.words.first() {
            None => Ok(()),
            Some(extra) => {
                Err(self.usage(format!("`{}` takes no arguments, found `{extra}`", self.spec.name)))
            }
        }
    }

    fn count(&self, min: usize, max: usize) -> Result<(), String> {
        match self.words.len() {
            n if n < min => Err(self.usage("missing arguments")),
            n if n > max => Err(self.usage(format!("unexpected `{}`", self.words[max]))),
            _ => Ok(()),
        }
    }

    fn node(&self, word: &str) -> Result<NodeArg, String> {
        match word {
            "leader" => Ok(NodeArg::Leader),
            _ => self.id(word).map(NodeArg::Id),
        }
    }

    fn id(&self, word: &str) -> Result<NodeId, String> {
        match word.parse::<NodeId>() {
            Ok(0) => Err(self.usage("node 0 does not exist; nodes are numbered from 1")),
            Ok(id) => Ok(id),
            Err(_) => Err(self.usage(format!("`{word}` is not a node (nodes are numbers, or `leader`)"))),
        }
    }

    fn number(&self, word: &str) -> Result<u64, String> {
        word.parse().map_err(|_| self.usage(format!("`{word}` is not a number")))
    }

    fn optional_number(&self) -> Result<Option<u64>, String> {
        self.count(0, 1)?;
        self.words.first().map(|w| self.number(w)).transpose()
    }

    fn path(&self) -> Result<PathBuf, String> {
        match self.rest {
            "" => Err(self.usage("missing file name")),
            path => Ok(PathBuf::from(path)),
        }
    }

    /// `[on <node>]` at the end: the remaining words and the node.
    fn via(&self) -> Result<(&[&'a str], Option<NodeArg>), String> {
        match self.words.as_slice() {
            [head @ .., "on", node] if !head.is_empty() => Ok((head, Some(self.node(node)?))),
            words => Ok((words, None)),
        }
    }

    /// `a b`, `a <-> b`, `a -> b`: both ends and whether both directions.
    fn link(&self) -> Result<(NodeArg, NodeArg, bool), String> {
        let (ends, both) = if let Some((a, b)) = self.rest.split_once("<->") {
            ([a, b], true)
        } else if let Some((a, b)) = self.rest.split_once("->") {
            ([a, b], false)
        } else {
            self.count(2, 2)?;
            ([self.words[0], self.words[1]], true)
        };
        let [from, to] = ends.map(str::trim);
        if from.is_empty() || to.is_empty() {
            return Err(self.usage("missing a node"));
        }
        Ok((self.node(from)?, self.node(to)?, both))
    }

    /// `1,2 | 3`, `1 2 | 3`, `[1, 2] | [3]`.
    fn groups(&self) -> Result<Vec<Vec<NodeArg>>, String> {
        self.rest
            .split('|')
            .map(|group| {
                let words = group.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']'));
                let nodes: Vec<NodeArg> =
                    words.filter(|w| !w.is_empty()).map(|w| self.node(w)).collect::<Result<_, _>>()?;
                if nodes.is_empty() {
                    return Err(self.usage("a group without nodes"));
                }
                Ok(nodes)
            })
            .collect()
    }

    /// `10%`, `0.1`, `off`.
    fn rate(&self) -> Result<f64, String> {
        self.count(1, 1)?;
        let word = self.words[0];
        let rate = if word == "off" {
            Some(0.0)
        } else if let Some(percent) = word.strip_suffix('%') {
            percent.parse::<f64>().ok().map(|p| p / 100.0)
        } else {
            word.parse::<f64>().ok()
        };
        match rate {
            Some(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
            _ => Err(self.usage(format!("`{word}` is not a rate between 0% and 100% (or 0 and 1)"))),
        }
    }

    /// `5-50ms`, `5..50`, `20ms`.
    fn delay(&self) -> Result<(u64, u64), String> {
        self.count(1, usize::MAX)?;
        let text: String = self.rest.split_whitespace().collect::<String>().replace("ms", "");
        let (min, max) = text.split_once("..").or_else(|| text.split_once('-')).unwrap_or((&text, &text));
        match (min.parse::<u64>(), max.parse::<u64>()) {
            (Ok(min), Ok(max)) if min <= max => Ok((min, max)),
            (Ok(_), Ok(_)) => Err(self.usage("the shortest delay comes first")),
            _ => Err(self.usage(format!("`{}` is not a delay range in milliseconds", self.rest))),
        }
    }
}

/// Parses one command (without `;` or comments: see [`crate::scenario::line_commands`]).
pub fn parse(text: &str) -> Result<Input, String> {
    let text = text.trim();
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let Some(spec) = catalog::find(verb) else {
        return Err(match closest(verb, catalog::all_names()) {
            Some(name) => {
                format!("unknown command `{verb}`; did you mean `{name}`? (`help` lists every command)")
            }
            None => format!("unknown command `{verb}` (`help` lists every command)"),
        });
    };
    let rest = rest.trim();
    let args = Args { spec, words: rest.split_whitespace().collect(), rest };
    let words = args.words.as_slice();
    Ok(match spec.name {
        "help" => {
            args.count(0, 1)?;
            Input::Help(words.first().map(|w| w.to_string()))
        }
        "status" => Input::Status(match words {
            [] => StatusView::Cluster,
            ["full"] => StatusView::Full,
            [node] => StatusView::Node(args.node(node)?),
            _ => return Err(args.usage("too many arguments")),
        }),
        "log" => {
            args.count(1, 2)?;
            let limit = match words.get(1) {
                None => Some(crate::log_view::DEFAULT_ENTRIES),
                Some(&"all") => None,
                Some(count) => Some(args.number(count)? as usize),
            };
            Input::Log { node: args.node(words[0])?, limit }
        }
        "trace" => Input::Trace(args.optional_number()?.unwrap_or(DEFAULT_TRACE) as usize),
        "queuelen" => args.none().map(|()| Input::QueueLen)?,
        "clearqueue" => args.none().map(|()| Input::ClearQueue)?,
        "connect" | "disconnect" => {
            let (from, to, both) = args.link()?;
            Input::Link { connect: spec.name == "connect", from, to, both }
        }
        "partition" => Input::Partition(args.groups()?),
        "isolate" => {
            args.count(1, 1)?;
            Input::Isolate(args.node(words[0])?)
        }
        "heal" => args.none().map(|()| Input::Heal)?,
        "drop" if rest.contains("->") => Input::Scenario(scenario(spec, text)?),
        "drop" => Input::DropRate(args.rate()?),
        "delay" => {
            let (min, max) = args.delay()?;
            Input::Delay { min, max }
        }
        "crash" => match words {
            [node] => Input::Crash { node: args.node(node)?, at: None },
            [node, "at", point] => {
                Input::Crash { node: args.node(node)?, at: Some(point.parse().map_err(|e| args.usage(e))?) }
            }
            _ => return Err(args.usage("expected a node, and maybe `at <point>`")),
        },
        "restart" => {
            args.count(1, 1)?;
            Input::Restart(args.node(words[0])?)
        }
        "addnode" => {
            args.count(0, 1)?;
            Input::AddNode(words.first().map(|w| args.id(w)).transpose()?)
        }
        "removenode" => {
            args.count(1, 1)?;
            Input::RemoveNode(args.node(words[0])?)
        }
        "transfer" => match words {
            [to] => Input::Transfer { from: NodeArg::Leader, to: args.node(to)? },
            [from, to] | [from, "to", to] => Input::Transfer { from: args.node(from)?, to: args.node(to)? },
            _ => Input::Scenario(scenario(spec, text)?),
        },
        "put" => match args.via()? {
            ([key, value @ ..], via) if !value.is_empty() => {
                if key.contains('=') {
                    return Err(args.usage("a key cannot contain `=`"));
                }
                Input::Write { command: format!("{key}={}", value.join(" ")), via }
            }
            _ => return Err(args.usage("expected a key and a value")),
        },
        "get" => match args.via()? {
            ([key], via) => Input::Read { key: key.to_string(), via },
            _ => return Err(args.usage("expected one key")),
        },
        "pushpayload" => match args.via()? {
            ([payload], via) => Input::Write { command: args.number(payload)?.to_string(), via },
            _ => return Err(args.usage("expected one number")),
        },
        "tick" => Input::Run(Duration::Heartbeats(args.optional_number()?.unwrap_or(1))),
        "run" if rest.is_empty() => Input::Run(DEFAULT_RUN),
        "run" => match Command::parse(&format!("advance {rest}")) {
            Ok(Command::Advance(duration)) => Input::Run(duration),
            _ => {
                return Err(
                    args.usage(format!("`{rest}` is not a duration (500ms, 2s, 3 * election_timeout)"))
                )
            }
        },
        "auto" => match words {
            ["on"] => Input::Auto(true),
            ["off"] => Input::Auto(false),
            _ => return Err(args.usage("expected on or off")),
        },
        "seed" => {
            args.count(1, 1)?;
            Input::Seed(args.number(words[0])?)
        }
        "reset" => match args.optional_number()? {
            Some(0) => return Err(args.usage("a cluster needs at least one node")),
            nodes => Input::Reset(nodes),
        },
        "save" => Input::Save(args.path()?),
        "load" => Input::Load(args.path()?),
        "quit" => args.none().map(|()| Input::Quit)?,
        _ => {
            debug_assert_eq!(spec.group, Group::Scenario, "`{}` has no parser", spec.name);
            Input::Scenario(scenario(spec, text)?)
        }
    })
}

/// A command of testkit's language, with its usage when it does not parse.
fn scenario(spec: &Spec, text: &str) -> Result<Command, String> {
    Command::parse(text).map_err(|e| format!("{}; usage: {}", e.message, spec.usage_line()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeArg::{Id, Leader};

    fn parsed(text: &str) -> Input {
        parse(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err(text)
    }

    #[test]
    fn original_commands() {
        assert_eq!(
            parsed("disconnect 1 2"),
            Input::Link { connect: false, from: Id(1), to: Id(2), both: true }
        );
        assert_eq!(
            parsed("connect 3 -> leader"),
            Input::Link { connect: true, from: Id(3), to: Leader, both: false }
        );
        assert_eq!(parsed("cut 1 <-> 2"), Input::Link { connect: false, from: Id(1), to: Id(2), both: true });
        assert_eq!(parsed("pushpayload 42"), Input::Write { command: "42".into(), via: None });
        assert_eq!(parsed("diagnostics 2"), Input::Status(StatusView::Node(Id(2))));
        assert_eq!(parsed("addnode"), Input::AddNode(None));
        assert_eq!(parsed("removenode 3"), Input::RemoveNode(Id(3)));
        assert_eq!(parsed("queuelen"), Input::QueueLen);
        assert_eq!(parsed("clearqueue"), Input::ClearQueue);
    }

    #[test]
    fn partitions_and_faults() {
        let expected = Input::Partition(vec![vec![Id(1), Id(2)], vec![Id(3)]]);
        for text in ["partition 1,2 | 3", "partition 1 2|3", "partition [1, 2] | [3]"] {
            assert_eq!(parsed(text), expected, "{text}");
        }
        assert_eq!(parsed("drop 10%"), Input::DropRate(0.1));
        assert_eq!(parsed("drop 0.25"), Input::DropRate(0.25));
        assert_eq!(parsed("drop off"), Input::DropRate(0.0));
        assert!(matches!(
            parsed("drop first 1 -> 2"),
            Input::Scenario(Command::Drop { first_only: true, .. })
        ));
        assert_eq!(parsed("delay 5-50ms"), Input::Delay { min: 5, max: 50 });
        assert_eq!(parsed("delay 5..50"), Input::Delay { min: 5, max: 50 });
        assert_eq!(parsed("delay 20 ms"), Input::Delay { min: 20, max: 20 });
    }

    #[test]
    fn clients_time_and_session() {
        assert_eq!(parsed("put x 1"), Input::Write { command: "x=1".into(), via: None });
        assert_eq!(
            parsed("put greeting hello world on 2"),
            Input::Write { command: "greeting=hello world".into(), via: Some(Id(2)) }
        );
        assert_eq!(parsed("get x on leader"), Input::Read { key: "x".into(), via: Some(Leader) });
        assert_eq!(parsed("tick"), Input::Run(Duration::Heartbeats(1)));
        assert_eq!(parsed("tick 4"), Input::Run(Duration::Heartbeats(4)));
        assert_eq!(parsed("run"), Input::Run(Duration::Millis(1_000)));
        assert_eq!(parsed("run 500ms"), Input::Run(Duration::Millis(500)));
        assert_eq!(parsed("advance 2 * election_timeout"), Input::Run(Duration::ElectionTimeouts(2)));
        assert_eq!(parsed("transfer 1 to 2"), Input::Transfer { from: Id(1), to: Id(2) });
        assert_eq!(parsed("transfer 3"), Input::Transfer { from: Leader, to: Id(3) });
        assert!(matches!(parsed("transfer leader to 2 => ok"), Input::Scenario(Command::Transfer { .. })));
        assert_eq!(
            parsed("crash 2 at before_send"),
            Input::Crash { node: Id(2), at: Some(CrashPoint::BeforeSend) }
        );
        assert_eq!(parsed("save my test.rs"), Input::Save(PathBuf::from("my test.rs")));
        assert_eq!(parsed("reset 5"), Input::Reset(Some(5)));
        assert!(matches!(parsed("expect 1 is leader"), Input::Scenario(Command::Expect(_))));
    }

    #[test]
    fn every_command_of_the_catalog_has_a_parser() {
        for spec in catalog::COMMANDS {
            for name in spec.names() {
                // Parsing without arguments may fail, but not with "unknown command" (nor
                // trip the check that the REPL's own commands have a parser).
                let result = parse(name);
                assert!(
                    result.as_ref().map_or_else(|e| !e.starts_with("unknown command"), |_| true),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn mistakes_get_one_line_explanations() {
        assert_eq!(
            error("partiton 1 | 2"),
            "unknown command `partiton`; did you mean `partition`? (`help` lists every command)"
        );
        assert_eq!(error("frobnicate"), "unknown command `frobnicate` (`help` lists every command)");
        assert_eq!(error("disconnect 1"), "missing arguments; usage: disconnect <a> <b>");
        assert_eq!(
            error("crash one"),
            "`one` is not a node (nodes are numbers, or `leader`); usage: crash <node> [at <point>]"
        );
        assert_eq!(
            error("drop 150%"),
            "`150%` is not a rate between 0% and 100% (or 0 and 1); usage: drop <rate>"
        );
        assert_eq!(error("heal now"), "`heal` takes no arguments, found `now`; usage: heal");
        assert!(error("run soon").starts_with("`soon` is not a duration"));
        assert!(error("elect").starts_with("unexpected end of command; usage: elect <node>"));
        assert!(error("crash 1 at never").contains("unknown crash point"));
        assert!(error("auto maybe").contains("expected on or off"));
        for text in [
            "put x",
            "put x=1 2",
            "get",
            "pushpayload x",
            "partition 1 |",
            "delay",
            "delay 9-1ms",
            "addnode 0",
        ] {
            assert!(error(text).contains("; usage: "), "{text}");
        }
    }
}
