//! Text → [`Command`]: a tokenizer and a small recursive-descent parser.
//!
//! Whitespace (including newlines) separates tokens; `;` separates commands in a script;
//! `//` starts a comment that runs to the end of the line.

use std::fmt;
use std::str::FromStr;

use raft_core::{MembershipChange, NodeId, Role};

use crate::command::{
    Cmp, Command, Duration, EntrySpec, Expectation, Field, MemberSet, NodeRef, Nodes, OutcomeSpec,
};
use crate::network::{LinkFaults, MessageFilter};
use crate::options::ClusterOptions;

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

/// Longest first, so `<->` wins over `<-` and `<`.
const SYMBOLS: [&str; 19] =
    ["<->", "->", "=>", "==", "!=", "<=", ">=", "..", "=", "<", ">", "[", "]", ",", "|", "*", "{", "}", ":"];

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
    /// Parses one command.
    ///
    /// ```
    /// use testkit::{Command, NodeRef};
    /// let command = Command::parse("propose leader \"x=1\"").unwrap();
    /// assert!(matches!(command, Command::Propose { node: NodeRef::Leader, .. }));
    /// assert!(Command::parse("elect").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Command, ParseError> {
        let error = |message: String| ParseError { input: text.trim().to_string(), message };
        let tokens = tokenize(text).map_err(error)?;
        let mut parser = Parser { tokens, pos: 0 };
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

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
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
            t => Err(format!("expected a string, found `{t}`")),
        }
    }

    fn node(&mut self) -> Parsed<NodeId> {
        match self.number()? {
            0 => Err("node id 0 is reserved".into()),
            id => Ok(id),
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

    fn link(&mut self) -> Parsed<(NodeId, NodeId, bool)> {
        let from = self.node()?;
        let both = if self.eat_sym("<->") {
            true
        } else {
            self.expect_sym("->")?;
            false
        };
        Ok((from, self.node()?, both))
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
            "s" if count.is_some() => Ok(Duration::Millis(n * 1000)),
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
            "advance" => Command::Advance(self.duration()?),
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
            "change" => {
                let node = self.node_ref()?;
                let change = self.change()?;
                let (label, expect) = self.label_and_outcome()?;
                Command::Change { node, change, label, expect }
            }
            "transfer" => {
                let node = self.node_ref()?;
                self.expect_word("to")?;
                let to = self.node()?;
                let (label, expect) = self.label_and_outcome()?;
                Command::Transfer { node, to, label, expect }
            }
            "compact" => Command::Compact(self.node_ref()?),
            "deliver" | "drop" => {
                let first_only = self.eat_word("first");
                let filter = self.filter()?;
                if verb == "deliver" {
                    Command::Deliver { filter, first_only }
                } else {
                    Command::Drop { filter, first_only }
                }
            }
            "partition" => {
                let mut groups = vec![self.node_list()?];
                while self.eat_sym("|") {
                    groups.push(self.node_list()?);
                }
                Command::Partition(groups)
            }
            "isolate" => Command::Isolate(self.node()?),
            "cut" | "connect" => {
                let (from, to, both) = self.link()?;
                if verb == "cut" {
                    Command::Cut { from, to, both }
                } else {
                    Command::Connect { from, to, both }
                }
            }
            "heal" => Command::Heal,
            "net" => Command::Faults { link: None, faults: self.faults()? },
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
            "status" => Command::Status,
            "messages" => Command::Messages,
            other => return Err(format!("unknown command `{other}`")),
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
            let filter = if self.is_sym("*") || matches!(self.peek(), Some(Token::Num(_))) {
                self.filter()?
            } else {
                MessageFilter::default()
            };
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
                let value = if self.eat_word("none") { None } else { Some(self.number()?) };
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
        assert_eq!(parse("cut 1 <-> 2"), Command::Cut { from: 1, to: 2, both: true });
        assert_eq!(parse("cut 1 <- > 2"), Command::Cut { from: 1, to: 2, both: true });
        assert_eq!(parse("connect 2 -> 1"), Command::Connect { from: 2, to: 1, both: false });
        assert_eq!(parse("partition [1] | [2, 3]"), Command::Partition(vec![vec![1], vec![2, 3]]));
        let filter = MessageFilter { from: None, to: Some(2), kind: Some("AppendEntries".into()) };
        assert_eq!(
            parse("deliver first * -> 2 AppendEntries"),
            Command::Deliver { filter, first_only: true }
        );
        assert_eq!(parse("advance 300ms"), Command::Advance(Duration::Millis(300)));
        assert_eq!(parse("advance 2s"), Command::Advance(Duration::Millis(2000)));
        assert_eq!(parse("advance 2 * election_timeout"), Command::Advance(Duration::ElectionTimeouts(2)));
        assert_eq!(parse("advance heartbeat"), Command::Advance(Duration::Heartbeats(1)));
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
        assert!(error.message.contains("expected a number"), "{error}");
        assert!(Command::parse("frobnicate").unwrap_err().message.contains("unknown command"));
        assert!(Command::parse("elect 1 2").unwrap_err().message.contains("after the end"));
        assert!(Command::parse("net drop=2").unwrap_err().message.contains("between 0 and 1"));
        assert!(Command::parse("crash 1 at never").unwrap_err().message.contains("unknown crash point"));
    }
}
