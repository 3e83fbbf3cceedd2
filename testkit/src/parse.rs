//! Text → [`Command`]: a tokenizer and a small recursive-descent parser — the one parser of
//! the scenario language, for `seq_test!` and the REPL alike.
//!
//! Whitespace (including newlines) separates tokens; `;` separates commands in a script;
//! `//` starts a comment that runs to the end of the line. Wherever a command takes a node,
//! it takes its id or the name [`Names`] gives it.

use std::fmt;
use std::str::FromStr;

use raft_core::{MembershipChange, NodeId, Role};

use crate::command::{
    Cmp, Command, Duration, EntrySpec, Expectation, Field, MemberSet, NodeRef, Nodes, OutcomeSpec, StatusView,
};
use crate::names::Names;
use crate::network::{CutMode, LinkFaults, MessageFilter};
use crate::options::ClusterOptions;
use crate::suggest::closest;

/// A command line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The command's text.
    pub input: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot parse `{}`: {}", self.input, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(u64),
    Float(f64),
    Str(String),
    Word(String),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Float(x) => write!(f, "{x}"),
            Token::Str(s) => write!(f, "{s:?}"),
            Token::Word(w) => f.write_str(w),
            Token::Sym(s) => f.write_str(s),
        }
    }
}

/// Longest first, so `<->` wins over `<-` and `<`, and `->` over `-`.
const SYMBOLS: [&str; 21] = [
    "<->", "->", "=>", "==", "!=", "<=", ">=", "..", "=", "<", ">", "[", "]", ",", "|", "*", "{", "}", ":",
    "%", "-",
];

/// How long `run` and `advance` let time pass without an argument.
const DEFAULT_ADVANCE: Duration = Duration::Millis(1_000);

/// How many entries `log` shows, and how many events `trace`, without an argument.
const DEFAULT_COUNT: u64 = 20;

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_digit() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let after = &rest[digits..];
            let fraction = after.strip_prefix('.').filter(|f| f.starts_with(|c: char| c.is_ascii_digit()));
            if let Some(fraction) = fraction {
                let len = digits + 1 + fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
                tokens.push(Token::Float(rest[..len].parse().map_err(|e| format!("bad number: {e}"))?));
                rest = &rest[len..];
            } else {
                tokens.push(Token::Num(rest[..digits].parse().map_err(|e| format!("bad number: {e}"))?));
                rest = after;
            }
        } else if c == '"' || rest.starts_with("b\"") {
            let (string, after) = string_literal(&rest[rest.find('"').unwrap_or(0) + 1..])?;
            tokens.push(Token::Str(string));
            rest = after;
        } else if c.is_alphabetic() || c == '_' {
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            tokens.push(Token::Word(rest[..len].to_string()));
            rest = &rest[len..];
        } else {
            // `stringify!` may print `<->` as `<- >`; accept both.
            let spaced = rest.strip_prefix("<-").map(str::trim_start).filter(|r| r.starts_with('>'));
            if let Some(after) = spaced {
                tokens.push(Token::Sym("<->"));
                rest = &after[1..];
                continue;
            }
            let symbol =
                SYMBOLS.iter().find(|s| rest.starts_with(**s)).ok_or_else(|| format!("unexpected `{c}`"))?;
            tokens.push(Token::Sym(symbol));
            rest = &rest[symbol.len()..];
        }
    }
    Ok(tokens)
}

/// Reads a string body up to its closing quote; returns it and the text after the quote.
fn string_literal(body: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, c)) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

/// Splits a script into commands at `;`, dropping `//` comments and empty commands. Returns
/// each command's text.
pub fn split_script(script: &str) -> Vec<String> {
    let mut text = String::new();
    for line in script.lines() {
        text.push_str(strip_comment(line));
        text.push('\n');
    }
    split_outside_strings(&text)
        .into_iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|c| !c.is_empty())
        .collect()
}

fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn split_outside_strings(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_string, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ';' if !in_string => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl Command {
    /// Every command's name, aliases included (`diagnostics` for `status`, `disconnect` for
    /// `cut`, `run` and `tick` for `advance`, `pushpayload` and `put` for writes …).
    pub const VERBS: [&'static str; 40] = [
        "cluster",
        "restore",
        "addnode",
        "removenode",
        "elect",
        "timeout",
        "advance",
        "run",
        "tick",
        "settle",
        "propose",
        "read",
        "put",
        "get",
        "pushpayload",
        "change",
        "transfer",
        "compact",
        "deliver",
        "drop",
        "clearqueue",
        "partition",
        "isolate",
        "cut",
        "disconnect",
        "connect",
        "heal",
        "net",
        "link",
        "delay",
        "crash",
        "restart",
        "expect",
        "check",
        "status",
        "diagnostics",
        "log",
        "trace",
        "queuelen",
        "messages",
    ];

    /// Parses one command in which nodes are ids (or `leader`).
    ///
    /// ```
    /// use testkit::{Command, NodeRef};
    /// let command = Command::parse("propose leader \"x=1\"").unwrap();
    /// assert!(matches!(command, Command::Propose { node: NodeRef::Leader, .. }));
    /// assert!(Command::parse("elect").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Command, ParseError> {
        Command::parse_with(text, &Names::default())
    }

    /// Parses one command in which nodes may also be called by `names`.
    ///
    /// ```
    /// use testkit::{Command, NodeRef, Session};
    /// let mut session = Session::new();
    /// session.run_line("addnode first").unwrap();
    /// let command = Command::parse_with("cut first -> 2", session.names()).unwrap();
    /// assert_eq!(command, Command::Cut { from: NodeRef::Id(1), to: NodeRef::Id(2), both: false });
    /// ```
    pub fn parse_with(text: &str, names: &Names) -> Result<Command, ParseError> {
        let error = |message: String| ParseError { input: text.trim().to_string(), message };
        let tokens = tokenize(text).map_err(error)?;
        let mut parser = Parser { tokens, pos: 0, names };
        let command = parser.command().map_err(error)?;
        parser.end().map_err(error)?;
        Ok(command)
    }
}

impl FromStr for Command {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Command::parse(s)
    }
}

type Parsed<T> = Result<T, String>;

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    names: &'a Names,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Parsed<Token> {
        let token = self.tokens.get(self.pos).cloned().ok_or("unexpected end of command")?;
        self.pos += 1;
        Ok(token)
    }

    fn end(&self) -> Parsed<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(format!("unexpected `{t}` after the end of the command")),
        }
    }

    fn at_end(&self) -> bool {
        self.peek().is_none()
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token::Sym(s)) if *s == sym)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        self.pos += usize::from(found);
        found
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let found = self.is_sym(sym);
        self.pos += usize::from(found);
        found
    }

    fn expect_word(&mut self, word: &str) -> Parsed<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(format!("expected `{word}`{}", self.found()))
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Parsed<()> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(format!("expected `{sym}`{}", self.found()))
        }
    }

    fn found(&self) -> String {
        self.peek().map_or_else(|| ", found the end".to_string(), |t| format!(", found `{t}`"))
    }

    fn crash_point(&mut self) -> Parsed<crate::CrashPoint> {
        let word = self.word()?;
        word.parse().map_err(|e| format!("unknown crash point `{word}`; {e}"))
    }

    fn word(&mut self) -> Parsed<String> {
        match self.next()? {
            Token::Word(w) => Ok(w),
            t => Err(format!("expected a word, found `{t}`")),
        }
    }

    fn number(&mut self) -> Parsed<u64> {
        match self.next()? {
            Token::Num(n) => Ok(n),
            t => Err(format!("expected a number, found `{t}`")),
        }
    }

    fn probability(&mut self) -> Parsed<f64> {
        let p = match self.next()? {
            Token::Num(n) => n as f64,
            Token::Float(x) => x,
            t => return Err(format!("expected a probability, found `{t}`")),
        };
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            Err(format!("a probability must be between 0 and 1, found {p}"))
        }
    }

    fn string(&mut self) -> Parsed<String> {
        match self.next()? {
            Token::Str(s) => Ok(s),
            Token::Word(w) => Ok(w),
            Token::Num(n) => Ok(n.to_string()),
            Token::Float(x) => Ok(x.to_string()),
            t => Err(format!("expected a string, found `{t}`")),
        }
    }

    /// A node: its id, or its name.
    fn node(&mut self) -> Parsed<NodeId> {
        match self.peek() {
            None => Err("expected a node, found the end".into()),
            Some(Token::Num(0)) => Err("node id 0 is reserved; nodes are numbered from 1".into()),
            Some(Token::Num(_)) => self.number(),
            Some(Token::Word(w)) => match self.names.id(w) {
                Some(id) => {
                    self.pos += 1;
                    Ok(id)
                }
                None if w == "leader" => Err("expected a node's id or name, found `leader`".into()),
                None => Err(self.names.unknown(w)),
            },
            Some(t) => Err(format!("expected a node, found `{t}`")),
        }
    }

    fn node_ref(&mut self) -> Parsed<NodeRef> {
        if self.eat_word("leader") {
            Ok(NodeRef::Leader)
        } else {
            self.node().map(NodeRef::Id)
        }
    }

    /// `[1, 2, 3]` (possibly empty).
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Parsed<T>) -> Parsed<Vec<T>> {
        self.expect_sym("[")?;
        let mut items = Vec::new();
        while !self.eat_sym("]") {
            items.push(item(self)?);
            if !self.eat_sym(",") {
                self.expect_sym("]")?;
                break;
            }
        }
        Ok(items)
    }

    fn node_list(&mut self) -> Parsed<Vec<NodeId>> {
        self.list(Self::node)
    }

    fn nodes(&mut self) -> Parsed<Nodes> {
        if self.eat_word("all") {
            Ok(Nodes::All)
        } else if self.is_sym("[") {
            self.node_list().map(Nodes::List)
        } else {
            self.node_ref().map(Nodes::One)
        }
    }

    /// `[on <node>]` at the end: the node a client talks to, the leader unless named.
    fn via(&mut self) -> Parsed<NodeRef> {
        if self.eat_word("on") {
            self.node_ref()
        } else {
            Ok(NodeRef::Leader)
        }
    }

    /// `1 -> 2` (one way), `1 <-> 2` or `1 2` (both ways).
    fn link(&mut self) -> Parsed<(NodeRef, NodeRef, bool)> {
        let from = self.node_ref()?;
        let both = if self.eat_sym("->") {
            false
        } else {
            self.eat_sym("<->");
            true
        };
        let to = self.node_ref()?;
        if from == to {
            return Err("a link joins two different nodes".into());
        }
        Ok((from, to, both))
    }

    /// `[1, 2] | [3]` or `1, 2 | 3`: groups of nodes.
    fn groups(&mut self) -> Parsed<Vec<Vec<NodeRef>>> {
        let mut groups = Vec::new();
        loop {
            let group = if self.is_sym("[") {
                self.list(Self::node_ref)?
            } else {
                let mut group = vec![self.node_ref()?];
                while self.eat_sym(",") {
                    group.push(self.node_ref()?);
                }
                group
            };
            if group.is_empty() {
                return Err("a group without nodes".into());
            }
            groups.push(group);
            if !self.eat_sym("|") {
                return Ok(groups);
            }
        }
    }

    /// `10%`, `0.1`, `1`, `off`: a share of the messages.
    fn rate(&mut self) -> Parsed<f64> {
        if self.eat_word("off") {
            return Ok(0.0);
        }
        let rate = match self.next()? {
            Token::Num(n) if self.eat_sym("%") => n as f64 / 100.0,
            Token::Float(x) if self.eat_sym("%") => x / 100.0,
            Token::Num(n) => n as f64,
            Token::Float(x) => x,
            t => return Err(format!("expected a rate (10%, 0.1 or off), found `{t}`")),
        };
        if (0.0..=1.0).contains(&rate) {
            Ok(rate)
        } else {
            Err("a rate is between 0% and 100% (or 0 and 1)".into())
        }
    }

    /// `5-50ms`, `5..50`, `20ms`, `20`: a delay range in milliseconds.
    fn delay(&mut self) -> Parsed<(u64, u64)> {
        let min = self.number()?;
        let max = if self.eat_sym("-") || self.eat_sym("..") { self.number()? } else { min };
        self.eat_word("ms");
        if min > max {
            return Err("the shortest delay comes first".into());
        }
        Ok((min, max))
    }

    /// `[first]` before a message filter: the word, unless it names the sender (`first -> 2`).
    fn first_only(&mut self) -> bool {
        let names_a_node = matches!(self.tokens.get(self.pos + 1), Some(Token::Sym("->" | "<->")));
        !names_a_node && self.eat_word("first")
    }

    /// An optional count (`trace 5`), or the default.
    fn count(&mut self) -> Parsed<usize> {
        let count = if self.at_end() { DEFAULT_COUNT } else { self.number()? };
        usize::try_from(count).map_err(|_| format!("{count} is too many"))
    }

    /// `1`, `*` (any node).
    fn node_or_any(&mut self) -> Parsed<Option<NodeId>> {
        if self.eat_sym("*") {
            Ok(None)
        } else {
            self.node().map(Some)
        }
    }

    /// `from -> to [Kind]`.
    fn filter(&mut self) -> Parsed<MessageFilter> {
        let from = self.node_or_any()?;
        self.expect_sym("->")?;
        let to = self.node_or_any()?;
        let kind = match self.peek() {
            Some(Token::Word(_)) => Some(self.word()?),
            _ => None,
        };
        Ok(MessageFilter { from, to, kind })
    }

    fn cmp(&mut self) -> Parsed<Cmp> {
        match self.next()? {
            Token::Sym("=" | "==") => Ok(Cmp::Eq),
            Token::Sym("!=") => Ok(Cmp::Ne),
            Token::Sym("<") => Ok(Cmp::Lt),
            Token::Sym("<=") => Ok(Cmp::Le),
            Token::Sym(">") => Ok(Cmp::Gt),
            Token::Sym(">=") => Ok(Cmp::Ge),
            t => Err(format!("expected a comparison (=, !=, <, <=, >, >=), found `{t}`")),
        }
    }

    /// `300`, `300ms`, `2s`, `2 * election_timeout`, `heartbeat`.
    fn duration(&mut self) -> Parsed<Duration> {
        let count = match self.peek() {
            Some(Token::Num(_)) => Some(self.number()?),
            _ => None,
        };
        self.eat_sym("*");
        let unit = match self.peek() {
            Some(Token::Word(_)) => self.word()?,
            _ => "ms".to_string(),
        };
        let n = count.unwrap_or(1);
        match unit.as_str() {
            "ms" if count.is_some() => Ok(Duration::Millis(n)),
            "s" if count.is_some() => Ok(Duration::Millis(n.saturating_mul(1000))),
            "election_timeout" | "election_timeouts" => Ok(Duration::ElectionTimeouts(n)),
            "heartbeat" | "heartbeats" => Ok(Duration::Heartbeats(n)),
            other => Err(format!(
                "expected a duration (300ms, 2s, 2 * election_timeout, heartbeat), found `{other}`"
            )),
        }
    }

    /// `on`, `off`, `true`, `false`, or nothing (on).
    fn switch(&mut self) -> Parsed<bool> {
        if !self.eat_sym("=") {
            return Ok(true);
        }
        match self.word()?.as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" => Ok(false),
            other => Err(format!("expected on or off, found `{other}`")),
        }
    }

    fn range(&mut self) -> Parsed<(u64, u64)> {
        let low = self.number()?;
        let high = if self.eat_sym("..") { self.number()? } else { low };
        Ok((low, high))
    }

    fn value<T>(&mut self, item: impl FnOnce(&mut Self) -> Parsed<T>) -> Parsed<T> {
        self.expect_sym("=")?;
        item(self)
    }

    /// `delay=1..20, drop=0.1, duplicate=0.01, reorder=0.1` (commas optional).
    fn link_faults(&mut self, faults: &mut LinkFaults, key: &str) -> Parsed<bool> {
        match key {
            "delay" => (faults.delay_min, faults.delay_max) = self.value(Self::range)?,
            "drop" => faults.drop = self.value(Self::probability)?,
            "duplicate" => faults.duplicate = self.value(Self::probability)?,
            "reorder" => faults.reorder = self.value(Self::probability)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn faults(&mut self) -> Parsed<LinkFaults> {
        let mut faults = LinkFaults::default();
        while !self.at_end() {
            let key = self.word()?;
            if !self.link_faults(&mut faults, &key)? {
                return Err(format!(
                    "unknown network setting `{key}`; expected delay, drop, duplicate or reorder"
                ));
            }
            self.eat_sym(",");
        }
        Ok(faults)
    }

    fn command(&mut self) -> Parsed<Command> {
        let verb = self.word()?;
        Ok(match verb.as_str() {
            "cluster" => Command::Cluster(self.cluster()?),
            "addnode" => match self.peek() {
                None => Command::AddNode { node: None, name: None },
                Some(Token::Word(w)) if self.names.id(w).is_none() => {
                    let name = self.word()?;
                    Names::check(&name)?;
                    Command::AddNode { node: None, name: Some(name) }
                }
                Some(_) => Command::AddNode { node: Some(self.node()?), name: None },
            },
            "removenode" => Command::RemoveNode(self.node_ref()?),
            "restore" => {
                let node = self.node()?;
                self.expect_word("term")?;
                let term = self.number()?;
                let vote = if self.eat_word("vote") { Some(self.node()?) } else { None };
                self.expect_word("log")?;
                Command::Restore { node, term, vote, log: self.list(Self::number)? }
            }
            "elect" => Command::Elect(self.node()?),
            "timeout" => Command::Timeout(self.node()?),
            "advance" | "run" if self.at_end() => Command::Advance(DEFAULT_ADVANCE),
            "advance" | "run" => Command::Advance(self.duration()?),
            "tick" if self.at_end() => Command::Advance(Duration::Heartbeats(1)),
            "tick" => Command::Advance(Duration::Heartbeats(self.number()?)),
            "settle" => Command::Settle,
            "propose" => {
                let node = self.node_ref()?;
                let command = self.string()?;
                let (label, expect) = self.label_and_outcome()?;
                Command::Propose { node, command, label, expect }
            }
            "read" => {
                let node = self.node_ref()?;
                let key = self.string()?;
                let (label, expect) = self.label_and_outcome()?;
                Command::Read { node, key, label, expect }
            }
            "put" => {
                let key = self.string()?;
                if key.contains('=') || self.is_sym("=") {
                    return Err("a key cannot contain `=`; put x 1 writes x=1".into());
                }
                let value = self.string()?;
                Command::Put { command: format!("{key}={value}"), node: self.via()? }
            }
            "pushpayload" => {
                let payload = self.number()?;
                Command::Put { command: payload.to_string(), node: self.via()? }
            }
            "get" => {
                let key = self.string()?;
                Command::Get { key, node: self.via()? }
            }
            "change" => {
                let node = self.node_ref()?;
                let change = self.change()?;
                let (label, expect) = self.label_and_outcome()?;
                Command::Change { node, change, label, expect }
            }
            "transfer" => {
                let (node, to) = match self.tokens.get(self.pos + 1) {
                    Some(Token::Word(w)) if w == "to" => {
                        let node = self.node_ref()?;
                        self.pos += 1;
                        (node, self.node()?)
                    }
                    _ => (NodeRef::Leader, self.node()?),
                };
                let (label, expect) = self.label_and_outcome()?;
                Command::Transfer { node, to, label, expect }
            }
            "compact" => Command::Compact(self.node_ref()?),
            "drop" if !self.tokens.iter().any(|t| matches!(t, Token::Sym("->"))) => {
                Command::DropRate(self.rate()?)
            }
            "deliver" | "drop" => {
                let first_only = self.first_only();
                let filter = self.filter()?;
                if verb == "deliver" {
                    Command::Deliver { filter, first_only }
                } else {
                    Command::Drop { filter, first_only }
                }
            }
            "clearqueue" => Command::ClearQueue,
            "partition" => Command::Partition(self.groups()?),
            "isolate" => Command::Isolate(self.node_ref()?),
            "cut" | "disconnect" | "connect" => {
                let (from, to, both) = self.link()?;
                if verb == "connect" {
                    Command::Connect { from, to, both }
                } else {
                    Command::Cut { from, to, both }
                }
            }
            "heal" => Command::Heal,
            "net" if self.eat_word("queue") => Command::CutMode(CutMode::Queue),
            "net" if self.eat_word("lose") => Command::CutMode(CutMode::Lose),
            "net" => Command::Faults { link: None, faults: self.faults()? },
            "delay" => {
                let (min, max) = self.delay()?;
                Command::Delay { min, max }
            }
            "link" => {
                let from = self.node()?;
                self.expect_sym("->")?;
                let to = self.node()?;
                Command::Faults { link: Some((from, to)), faults: self.faults()? }
            }
            "crash" => {
                let node = self.node_ref()?;
                let at = if self.eat_word("at") { Some(self.crash_point()?) } else { None };
                Command::Crash { node, at }
            }
            "restart" => Command::Restart(self.node()?),
            "expect" => Command::Expect(self.expectation()?),
            "check" => Command::Check,
            "status" | "diagnostics" => Command::Status(match self.peek() {
                None => StatusView::Cluster,
                Some(Token::Word(w)) if w == "full" => {
                    self.pos += 1;
                    StatusView::Full
                }
                Some(_) => StatusView::Node(self.node_ref()?),
            }),
            "log" => {
                let node = self.node_ref()?;
                let limit = if self.eat_word("all") { None } else { Some(self.count()?) };
                Command::Log { node, limit }
            }
            "trace" => Command::Trace(self.count()?),
            "queuelen" => Command::QueueLen,
            "messages" => Command::Messages,
            other => {
                return Err(match closest(other, Command::VERBS) {
                    Some(verb) => format!("unknown command `{other}`; did you mean `{verb}`?"),
                    None => format!("unknown command `{other}`"),
                })
            }
        })
    }

    fn cluster(&mut self) -> Parsed<ClusterOptions> {
        // `cluster c = [1, 2, 3]`: a name, for readability only.
        if matches!(self.tokens.get(self.pos + 1), Some(Token::Sym("="))) {
            self.word()?;
            self.pos += 1;
        }
        let voters = match self.peek() {
            Some(Token::Num(_)) => (1..=self.number()?).collect(),
            _ => self.node_list()?,
        };
        let mut options = ClusterOptions::new(voters);
        if !self.eat_word("with") {
            return Ok(options);
        }
        let braced = self.eat_sym("{");
        while !self.at_end() && !self.is_sym("}") {
            let key = self.word()?;
            let config = &mut options.config;
            match key.as_str() {
                "pre_vote" => config.pre_vote = self.switch()?,
                "check_quorum" => config.check_quorum = self.switch()?,
                "lease_reads" => config.lease_reads = self.switch()?,
                "election_timeout" => {
                    (config.election_timeout_min, config.election_timeout_max) = self.value(Self::range)?
                }
                "heartbeat" => config.heartbeat_interval = self.value(Self::number)?,
                "max_inflight" => config.max_inflight = self.value(Self::number)? as usize,
                "max_append_entries" => config.max_append_entries = self.value(Self::number)? as usize,
                "max_append_bytes" => config.max_append_bytes = self.value(Self::number)? as usize,
                "snapshot_chunk" => config.snapshot_chunk_bytes = self.value(Self::number)? as usize,
                "snapshot_every" => config.snapshot_every = self.value(Self::number)?,
                "snapshot_log_percent" => config.snapshot_log_percent = self.value(Self::number)?,
                "seed" => options.seed = self.value(Self::number)?,
                "spares" => options.spares = self.value(Self::node_list)?,
                "learners" => options.learners = self.value(Self::node_list)?,
                other => {
                    if !self.link_faults(&mut options.faults, other)? {
                        return Err(format!("unknown cluster option `{other}`"));
                    }
                }
            }
            self.eat_sym(",");
        }
        if braced {
            self.expect_sym("}")?;
        }
        Ok(options)
    }

    fn change(&mut self) -> Parsed<MembershipChange> {
        let kind = self.word()?;
        Ok(match kind.as_str() {
            "add_voter" => MembershipChange::AddVoter(self.node()?),
            "add_learner" => MembershipChange::AddLearner(self.node()?),
            "promote" => MembershipChange::Promote(self.node()?),
            "remove" => MembershipChange::Remove(self.node()?),
            "replace" => MembershipChange::ReplaceVoters(self.node_list()?),
            other => {
                return Err(format!(
                    "unknown change `{other}`; expected add_voter, add_learner, promote, remove or replace"
                ))
            }
        })
    }

    /// `[as label] [=> outcome]`.
    fn label_and_outcome(&mut self) -> Parsed<(Option<String>, Option<OutcomeSpec>)> {
        let label = if self.eat_word("as") { Some(self.string()?) } else { None };
        let outcome = if self.eat_sym("=>") { Some(self.outcome()?) } else { None };
        Ok((label, outcome))
    }

    fn outcome(&mut self) -> Parsed<OutcomeSpec> {
        if self.eat_sym("=") || matches!(self.peek(), Some(Token::Str(_))) {
            return self.string().map(OutcomeSpec::Value);
        }
        Ok(match self.word()?.as_str() {
            "ok" => OutcomeSpec::Ok,
            "committed" if self.eat_word("on") => OutcomeSpec::CommittedOn(self.node_list()?),
            "committed" => OutcomeSpec::Ok,
            "failed" => OutcomeSpec::Failed(if self.at_end() { None } else { Some(self.word()?) }),
            "pending" => OutcomeSpec::Pending,
            "lost" => OutcomeSpec::Lost,
            other => {
                return Err(format!(
                    "unknown outcome `{other}`; expected ok, committed [on [..]], \"value\", failed [Kind], pending or lost"
                ))
            }
        })
    }

    fn expectation(&mut self) -> Parsed<Expectation> {
        if self.eat_word("no") {
            self.expect_word("leader")?;
            return Ok(Expectation::Leader(None));
        }
        if self.is_word("leader") {
            // `leader = 2` and `leader in [..]` are about who leads; `leader term > 1` and the
            // like are about the leader node, parsed below.
            match self.tokens.get(self.pos + 1) {
                Some(Token::Sym("=" | "==")) => {
                    self.pos += 2;
                    return Ok(Expectation::Leader(Some(vec![self.node()?])));
                }
                Some(Token::Word(w)) if w == "in" => {
                    self.pos += 2;
                    return Ok(Expectation::Leader(Some(self.node_list()?)));
                }
                _ => {}
            }
        }
        if self.eat_word("logs") {
            self.expect_word("equal")?;
            return Ok(Expectation::LogsEqual);
        }
        if self.eat_word("op") {
            let label = self.string()?;
            return Ok(Expectation::Op { label, outcome: self.outcome()? });
        }
        if self.eat_word("messages") {
            let names_a_node = match self.peek() {
                Some(Token::Num(_)) => true,
                Some(Token::Word(w)) => self.names.id(w).is_some(),
                _ => self.is_sym("*"),
            };
            let filter = if names_a_node { self.filter()? } else { MessageFilter::default() };
            let cmp = self.cmp()?;
            return Ok(Expectation::InFlight { filter, cmp, count: self.number()? });
        }
        let nodes = self.nodes()?;
        let what = self.word()?;
        Ok(match what.as_str() {
            "is" => {
                let negated = self.eat_word("not");
                Expectation::Role { nodes, role: self.role()?, negated }
            }
            "up" | "down" => Expectation::Up { nodes, up: what == "up" },
            "log" if self.eat_word("terms") => {
                self.expect_sym("=")?;
                Expectation::LogTerms { nodes, terms: self.list(Self::number)? }
            }
            "log" => {
                self.expect_sym("=")?;
                Expectation::Log { nodes, entries: self.list(Self::entry)? }
            }
            "voters" | "outgoing" | "learners" => {
                let set = match what.as_str() {
                    "voters" => MemberSet::Voters,
                    "outgoing" => MemberSet::Outgoing,
                    _ => MemberSet::Learners,
                };
                self.expect_sym("=")?;
                Expectation::Members { nodes, set, ids: self.node_list()? }
            }
            "kv" => {
                let key = self.string()?;
                self.expect_sym("=")?;
                Expectation::Kv { nodes, key, value: self.string()? }
            }
            name => {
                let Some(&(field, _)) = Field::NAMES.iter().find(|(_, n)| *n == name) else {
                    return Err(format!("unknown expectation `{name}`"));
                };
                let cmp = self.cmp()?;
                let value = match field {
                    _ if self.eat_word("none") => None,
                    Field::Vote | Field::Leader => Some(self.node()?),
                    _ => Some(self.number()?),
                };
                Expectation::Field { nodes, field, cmp, value }
            }
        })
    }

    fn role(&mut self) -> Parsed<Role> {
        match self.word()?.as_str() {
            "leader" => Ok(Role::Leader),
            "follower" => Ok(Role::Follower),
            "candidate" => Ok(Role::Candidate),
            "pre_candidate" | "precandidate" => Ok(Role::PreCandidate),
            other => {
                Err(format!("unknown role `{other}`; expected leader, follower, candidate or pre_candidate"))
            }
        }
    }

    fn entry(&mut self) -> Parsed<EntrySpec> {
        match self.next()? {
            Token::Word(w) if w == "noop" => Ok(EntrySpec::Noop),
            Token::Word(w) if w == "config" => Ok(EntrySpec::Config),
            Token::Str(s) => Ok(EntrySpec::Command(s)),
            t => Err(format!("expected noop, config or a \"command\", found `{t}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Command {
        Command::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cluster_options() {
        let Command::Cluster(options) =
            parse("cluster [1, 2, 3] with { pre_vote=off, check_quorum, election_timeout=100..200, spares=[4], delay=2..5, drop=0.1 }")
        else {
            panic!("not a cluster command")
        };
        assert_eq!(options.voters, [1, 2, 3]);
        assert!(!options.config.pre_vote && options.config.check_quorum);
        assert_eq!((options.config.election_timeout_min, options.config.election_timeout_max), (100, 200));
        assert_eq!(options.spares, [4]);
        assert_eq!((options.faults.delay_min, options.faults.delay_max, options.faults.drop), (2, 5, 0.1));
        let Command::Cluster(options) = parse("cluster 5") else { panic!("not a cluster command") };
        assert_eq!(options.voters, [1, 2, 3, 4, 5]);
        let Command::Cluster(options) = parse("cluster c = [4, 5]") else { panic!("not a cluster command") };
        assert_eq!(options.voters, [4, 5]);
    }

    #[test]
    fn links_and_messages() {
        use NodeRef::{Id, Leader};
        let both = Command::Cut { from: Id(1), to: Id(2), both: true };
        for text in ["cut 1 <-> 2", "cut 1 <- > 2", "cut 1 2", "disconnect 1 2"] {
            assert_eq!(parse(text), both, "{text}");
        }
        assert_eq!(parse("connect 2 -> leader"), Command::Connect { from: Id(2), to: Leader, both: false });
        let groups = Command::Partition(vec![vec![Id(1)], vec![Id(2), Id(3)]]);
        for text in ["partition [1] | [2, 3]", "partition 1 | 2,3", "partition 1|[2, 3]"] {
            assert_eq!(parse(text), groups, "{text}");
        }
        assert_eq!(parse("isolate leader"), Command::Isolate(Leader));
        let filter = MessageFilter { from: None, to: Some(2), kind: Some("AppendEntries".into()) };
        assert_eq!(
            parse("deliver first * -> 2 AppendEntries"),
            Command::Deliver { filter, first_only: true }
        );
        assert_eq!(parse("advance 300ms"), Command::Advance(Duration::Millis(300)));
        assert_eq!(parse("advance 2s"), Command::Advance(Duration::Millis(2000)));
        assert_eq!(parse("advance 2 * election_timeout"), Command::Advance(Duration::ElectionTimeouts(2)));
        assert_eq!(parse("advance heartbeat"), Command::Advance(Duration::Heartbeats(1)));
        assert_eq!(parse("run"), Command::Advance(Duration::Millis(1_000)));
        assert_eq!(parse("run 500ms"), Command::Advance(Duration::Millis(500)));
        assert_eq!(parse("tick"), Command::Advance(Duration::Heartbeats(1)));
        assert_eq!(parse("tick 4"), Command::Advance(Duration::Heartbeats(4)));
    }

    #[test]
    fn network_settings() {
        for (text, rate) in [("drop 10%", 0.1), ("drop 10 %", 0.1), ("drop 0.25", 0.25), ("drop off", 0.0)] {
            assert_eq!(parse(text), Command::DropRate(rate), "{text}");
        }
        assert!(matches!(parse("drop first 1 -> 2"), Command::Drop { first_only: true, .. }));
        for text in ["delay 5-50ms", "delay 5 - 50ms", "delay 5..50", "delay 5-50 ms"] {
            assert_eq!(parse(text), Command::Delay { min: 5, max: 50 }, "{text}");
        }
        assert_eq!(parse("delay 20ms"), Command::Delay { min: 20, max: 20 });
        assert_eq!(parse("net queue"), Command::CutMode(CutMode::Queue));
        assert_eq!(parse("net lose"), Command::CutMode(CutMode::Lose));
        assert!(matches!(parse("net drop=0.5"), Command::Faults { link: None, .. }));
        assert_eq!(parse("clearqueue"), Command::ClearQueue);
    }

    #[test]
    fn the_original_repl_commands() {
        use NodeRef::{Id, Leader};
        assert_eq!(parse("addnode"), Command::AddNode { node: None, name: None });
        assert_eq!(parse("addnode 4"), Command::AddNode { node: Some(4), name: None });
        assert_eq!(parse("addnode first"), Command::AddNode { node: None, name: Some("first".into()) });
        assert_eq!(parse("removenode 3"), Command::RemoveNode(Id(3)));
        assert_eq!(parse("pushpayload 42"), Command::Put { node: Leader, command: "42".into() });
        assert_eq!(parse("put x 1 on 2"), Command::Put { node: Id(2), command: "x=1".into() });
        assert_eq!(
            parse("put greeting \"hello world\""),
            Command::Put { node: Leader, command: "greeting=hello world".into() }
        );
        assert_eq!(parse("get x on leader"), Command::Get { node: Leader, key: "x".into() });
        assert_eq!(parse("diagnostics"), Command::Status(StatusView::Cluster));
        assert_eq!(parse("diagnostics 2"), Command::Status(StatusView::Node(Id(2))));
        assert_eq!(parse("status full"), Command::Status(StatusView::Full));
        assert_eq!(parse("queuelen"), Command::QueueLen);
        assert_eq!(parse("log 3"), Command::Log { node: Id(3), limit: Some(20) });
        assert_eq!(parse("log leader all"), Command::Log { node: Leader, limit: None });
        assert_eq!(parse("trace 5"), Command::Trace(5));
        assert!(matches!(parse("transfer 3"), Command::Transfer { node: Leader, to: 3, .. }));
        assert!(matches!(parse("transfer 1 to 3 => ok"), Command::Transfer { node: Id(1), to: 3, .. }));
    }

    #[test]
    fn every_verb_has_a_parser() {
        for verb in Command::VERBS {
            let error = Command::parse(verb).err().map(|e| e.message).unwrap_or_default();
            assert!(!error.starts_with("unknown command"), "{verb}: {error}");
        }
    }

    #[test]
    fn names_stand_for_ids() {
        let mut names = Names::default();
        names.insert(1, "first").unwrap();
        names.insert(2, "second").unwrap();
        names.insert(3, "third").unwrap();
        let parse = |text: &str| Command::parse_with(text, &names).unwrap_or_else(|e| panic!("{e}"));
        let (first, second) = (NodeRef::Id(1), NodeRef::Id(2));
        assert_eq!(parse("disconnect first second"), Command::Cut { from: first, to: second, both: true });
        assert_eq!(parse("addnode first"), Command::AddNode { node: Some(1), name: None });
        assert_eq!(parse("elect second"), Command::Elect(2));
        assert_eq!(
            parse("partition first | second, 3"),
            Command::Partition(vec![vec![first], vec![second, NodeRef::Id(3)]])
        );
        let filter = MessageFilter { from: Some(1), to: Some(2), kind: None };
        assert_eq!(
            parse("deliver first -> second"),
            Command::Deliver { filter: filter.clone(), first_only: false }
        );
        assert_eq!(parse("deliver first first -> second"), Command::Deliver { filter, first_only: true });
        assert_eq!(
            parse("expect [first, second] is follower"),
            Command::Expect(Expectation::Role {
                nodes: Nodes::List(vec![1, 2]),
                role: Role::Follower,
                negated: false
            })
        );
        assert_eq!(parse("expect leader = second"), Command::Expect(Expectation::Leader(Some(vec![2]))));
        assert_eq!(
            parse("expect third vote = second"),
            Command::Expect(Expectation::Field {
                nodes: Nodes::One(NodeRef::Id(3)),
                field: Field::Vote,
                cmp: Cmp::Eq,
                value: Some(2)
            })
        );
        let error = Command::parse_with("crash frist", &names).unwrap_err();
        assert_eq!(error.message, "no node is called `frist`; did you mean `first`?");
        assert!(Command::parse_with("addnode leader", &names)
            .unwrap_err()
            .message
            .contains("cannot name a node"));
    }

    #[test]
    fn client_operations_with_outcomes() {
        assert_eq!(
            parse(r#"propose 1 b"x=1" as w => committed on [1, 2]"#),
            Command::Propose {
                node: NodeRef::Id(1),
                command: "x=1".into(),
                label: Some("w".into()),
                expect: Some(OutcomeSpec::CommittedOn(vec![1, 2])),
            }
        );
        assert_eq!(
            parse(r#"read leader "x" => "1""#),
            Command::Read {
                node: NodeRef::Leader,
                key: "x".into(),
                label: None,
                expect: Some(OutcomeSpec::Value("1".into()))
            }
        );
        assert_eq!(
            parse("change leader replace [2, 3, 4] => failed ChangeInProgress"),
            Command::Change {
                node: NodeRef::Leader,
                change: MembershipChange::ReplaceVoters(vec![2, 3, 4]),
                label: None,
                expect: Some(OutcomeSpec::Failed(Some("ChangeInProgress".into()))),
            }
        );
    }

    #[test]
    fn expectations() {
        let expect = |text: &str| match parse(text) {
            Command::Expect(e) => e,
            other => panic!("not an expectation: {other:?}"),
        };
        assert_eq!(expect("expect leader = 2"), Expectation::Leader(Some(vec![2])));
        assert_eq!(expect("expect leader in [2, 3]"), Expectation::Leader(Some(vec![2, 3])));
        assert_eq!(expect("expect no leader"), Expectation::Leader(None));
        assert_eq!(
            expect("expect leader is leader"),
            Expectation::Role { nodes: Nodes::One(NodeRef::Leader), role: Role::Leader, negated: false }
        );
        assert_eq!(
            expect("expect all is not candidate"),
            Expectation::Role { nodes: Nodes::All, role: Role::Candidate, negated: true }
        );
        assert_eq!(
            expect("expect leader term > 1"),
            Expectation::Field {
                nodes: Nodes::One(NodeRef::Leader),
                field: Field::Term,
                cmp: Cmp::Gt,
                value: Some(1)
            }
        );
        assert_eq!(
            expect("expect all vote = none"),
            Expectation::Field { nodes: Nodes::All, field: Field::Vote, cmp: Cmp::Eq, value: None }
        );
        assert_eq!(
            expect(r#"expect [1, 2] log = [noop, "x", config]"#),
            Expectation::Log {
                nodes: Nodes::List(vec![1, 2]),
                entries: vec![EntrySpec::Noop, EntrySpec::Command("x".into()), EntrySpec::Config]
            }
        );
        assert_eq!(
            expect("expect 1 log terms = [1, 1]"),
            Expectation::LogTerms { nodes: Nodes::One(NodeRef::Id(1)), terms: vec![1, 1] }
        );
        assert_eq!(
            expect("expect messages 1 -> * >= 2"),
            Expectation::InFlight {
                filter: MessageFilter { from: Some(1), ..MessageFilter::default() },
                cmp: Cmp::Ge,
                count: 2
            }
        );
        assert_eq!(
            expect("expect op w failed"),
            Expectation::Op { label: "w".into(), outcome: OutcomeSpec::Failed(None) }
        );
    }

    #[test]
    fn scripts_split_at_semicolons_outside_strings_and_comments() {
        let script = "cluster 3; // three nodes; elect 1\n propose 1 \"a;b\";\n\n elect\n 2 ;";
        assert_eq!(split_script(script), ["cluster 3", "propose 1 \"a;b\"", "elect 2"]);
    }

    #[test]
    fn errors_name_the_problem() {
        let error = Command::parse("elect x").unwrap_err();
        assert_eq!(error.input, "elect x");
        assert_eq!(error.message, "expected a node, found `x`");
        assert_eq!(Command::parse("frobnicate").unwrap_err().message, "unknown command `frobnicate`");
        assert_eq!(
            Command::parse("partiton 1 | 2").unwrap_err().message,
            "unknown command `partiton`; did you mean `partition`?"
        );
        assert_eq!(Command::parse("disconnect 1").unwrap_err().message, "expected a node, found the end");
        assert_eq!(Command::parse("cut 1 1").unwrap_err().message, "a link joins two different nodes");
        assert!(Command::parse("drop 150%").unwrap_err().message.contains("between 0% and 100%"));
        assert!(Command::parse("delay 9-1ms").unwrap_err().message.contains("shortest delay comes first"));
        assert!(Command::parse("put x=1 2").unwrap_err().message.contains("cannot contain `=`"));
        assert!(Command::parse("partition 1 |").unwrap_err().message.contains("expected a node"));
        assert!(Command::parse("elect 1 2").unwrap_err().message.contains("after the end"));
        assert!(Command::parse("net drop=2").unwrap_err().message.contains("between 0 and 1"));
        assert!(Command::parse("crash 1 at never").unwrap_err().message.contains("unknown crash point"));
    }
}
