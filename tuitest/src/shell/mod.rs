//! [`Shell`]: a REPL session — the simulated cluster, what happened to it as a recording,
//! and the command dispatcher. It never prints: each call returns its output.

use std::path::Path;
use std::time::Instant;

use testkit::{ClusterOptions, Command, Session, SimError, Simulator, StatusView};

use crate::catalog;
use crate::cluster_line::cluster_line;
use crate::input::{self, Input};
use crate::observer::Observer;
use crate::pacer::Pacer;
use crate::recording::Recording;
use crate::scenario::line_commands;
use crate::style::Style;
use crate::table::{node_detail, table};

mod confirm;
mod files;
mod time;

/// What the REPL shows when the cluster has no node yet.
const NO_NODE: &str = "no node yet: `addnode NAME` adds the first (it forms a cluster of its own)";

/// How a shell presents itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Colors, or plain text.
    pub style: Style,
    /// Whether `auto on` may let virtual time follow the wall clock (only at an interactive
    /// terminal: elsewhere the outcome would depend on how fast input arrives).
    pub realtime: bool,
}

/// What a call printed and whether the user asked to leave.
#[derive(Debug, Default)]
pub struct Reply {
    /// Everything to print, errors included (`error: …` lines), in order.
    pub output: String,
    /// How many commands failed.
    pub failures: usize,
    /// `quit` ran.
    pub quit: bool,
}

/// Whether to go on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// A REPL session on a simulated cluster.
///
/// ```
/// use testkit::ClusterOptions;
/// use tuitest::{Settings, Shell};
/// let mut shell = Shell::new(ClusterOptions::new([1, 2, 3]), Settings::default()).unwrap();
/// let reply = shell.execute("run 1s; status");
/// assert_eq!(reply.failures, 0);
/// assert!(reply.output.contains("Leader"));
/// ```
#[derive(Debug)]
pub struct Shell {
    session: Session,
    /// The cluster's options and every command that changed the cluster since.
    recording: Recording,
    /// What `reset` and `seed` start over with.
    base: ClusterOptions,
    /// The cluster is the one a session starts with when not told otherwise: if the session
    /// begins with `addnode`, a cluster built from nothing replaces it.
    default_cluster: bool,
    observer: Observer,
    settings: Settings,
    /// Running while `auto` is on.
    pacer: Option<Pacer>,
    /// How many `load`s are running inside each other.
    loading: usize,
    /// The output of the command running.
    out: String,
}

impl Shell {
    /// A session on a new cluster built with `options` (without voters: no node yet).
    pub fn new(options: ClusterOptions, settings: Settings) -> Result<Shell, String> {
        let mut session = Session::new();
        session.run_line(&cluster_line(&options)).map_err(|e| e.to_string())?;
        Ok(Shell {
            observer: session.simulator().map(Observer::new).unwrap_or_default(),
            recording: Recording::new(options.clone()),
            base: options,
            default_cluster: false,
            session,
            settings,
            pacer: None,
            loading: 0,
            out: String::new(),
        })
    }

    /// A session on the cluster a session starts with when not told otherwise: three nodes
    /// with this seed. A session that begins with `addnode` builds its cluster from nothing
    /// instead, as the REPL this project descends from did.
    pub fn with_default_cluster(seed: u64, settings: Settings) -> Result<Shell, String> {
        let shell = Shell::new(ClusterOptions { seed, ..ClusterOptions::new([1, 2, 3]) }, settings)?;
        Ok(Shell { default_cluster: true, ..shell })
    }

    /// A few lines that greet an interactive user.
    pub fn banner(&self) -> String {
        let seed = self.base.seed;
        let head = format!("tuitest: a simulated raft-core cluster in virtual time (seed {seed}).");
        let help = "`help` lists the commands, `help <command>` explains one; Tab completes; Ctrl-D leaves.";
        let Some(sim) = self.session.simulator() else { return format!("{head}\n{NO_NODE}.\n{help}\n") };
        let ids: Vec<String> = sim.ids().iter().map(|&id| self.session.names().show(id)).collect();
        format!(
            "{head}\n{} nodes ({}), no leader yet. Time stands still until you `tick`, `run 1s` or `auto on`.\n{help}\n",
            ids.len(),
            ids.join(", ")
        )
    }

    /// The words that name the cluster's nodes: ids and names.
    pub fn node_words(&self) -> Vec<String> {
        let ids = self.session.simulator().map(Simulator::ids).unwrap_or_default();
        let names = self.session.names().iter().map(|(_, name)| name.to_string());
        ids.iter().map(ToString::to_string).chain(names).collect()
    }

    /// Runs one line: one or more commands separated by `;`.
    pub fn execute(&mut self, line: &str) -> Reply {
        let mut reply = Reply::default();
        for command in line_commands(line) {
            self.perform(|shell| shell.command(&command), None, &mut reply);
            if reply.quit {
                break;
            }
        }
        reply.output = std::mem::take(&mut self.out);
        reply
    }

    /// Runs the commands of the file at `path`, as `load` does.
    pub fn load(&mut self, path: &Path) -> Reply {
        let mut reply = Reply::default();
        self.perform(|shell| shell.load_file(path), None, &mut reply);
        reply.output = std::mem::take(&mut self.out);
        reply
    }

    /// Runs a command, then reports what changed; an error goes to the output too (after
    /// `location`, when given) and counts as a failure in `reply`.
    fn perform(
        &mut self,
        command: impl FnOnce(&mut Self) -> Result<Flow, String>,
        location: Option<&str>,
        reply: &mut Reply,
    ) {
        let result = command(self);
        let Shell { session, observer, out, settings, .. } = self;
        look(session, observer, out, settings.style);
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => reply.quit = true,
            Err(message) => {
                reply.failures += 1;
                let location = location.map_or_else(String::new, |l| format!("{l}: "));
                self.say(self.settings.style.error(&format!("{location}error: {message}")));
            }
        }
    }

    fn say(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if text.is_empty() {
            return;
        }
        self.out.push_str(text);
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// The simulator, or why there is none.
    fn sim(&self) -> Result<&Simulator, String> {
        self.session.simulator().ok_or_else(|| NO_NODE.to_string())
    }

    fn command(&mut self, text: &str) -> Result<Flow, String> {
        match input::parse(text, &self.session)? {
            Input::Help(None) => self.say(catalog::overview()),
            Input::Help(Some(name)) => match catalog::find(&name) {
                Some(spec) => self.say(spec.help()),
                None => return Err(format!("no command is called `{name}` (`help` lists them)")),
            },
            Input::Auto(on) => self.set_auto(on)?,
            Input::Seed(seed) => self.start(ClusterOptions { seed, ..self.base.clone() })?,
            Input::Reset(None) => self.start(self.base.clone())?,
            Input::Reset(Some(nodes)) => {
                self.start(ClusterOptions { voters: (1..=nodes).collect(), ..self.base.clone() })?
            }
            Input::Save(path) => self.save(&path)?,
            Input::Load(path) => return self.load_file(&path),
            Input::Quit => return Ok(Flow::Quit),
            Input::Scenario(command) => self.scenario(&command, text)?,
        }
        Ok(Flow::Continue)
    }

    /// Runs a command of the scenario language: `status` as the REPL draws it, `cluster` as
    /// a new start, the rest on the session, recorded; then says what it did to the network
    /// or the clock.
    fn scenario(&mut self, command: &Command, text: &str) -> Result<(), String> {
        let style = self.settings.style;
        match command {
            Command::Cluster(options) => return self.start(options.clone()),
            Command::Status(StatusView::Cluster) => {
                let sim = self.sim()?;
                self.say(table(sim, self.session.names(), &sim.ids(), style));
                return Ok(());
            }
            Command::Status(StatusView::Node(node)) => {
                let sim = self.sim()?;
                let id = self.session.node_id(*node).map_err(|e| self.explain(e))?;
                self.say(node_detail(sim, self.session.names(), id, style));
                return Ok(());
            }
            Command::AddNode { .. } if self.default_cluster && self.recording.is_empty() => {
                self.replace(ClusterOptions { voters: Vec::new(), ..self.base.clone() })?;
            }
            _ => {}
        }
        let before = self.before();
        let output = self.run_recorded(command, text)?;
        if is_display(command) {
            self.say(output);
        } else {
            let notes: Vec<String> = output.lines().map(|line| format!("  {line}")).collect();
            self.say(notes.join("\n"));
        }
        self.confirm(command, before);
        Ok(())
    }

    /// Starts over on a new cluster built with `options`; they become what `reset` starts
    /// over with.
    fn start(&mut self, options: ClusterOptions) -> Result<(), String> {
        self.replace(options)?;
        self.say(format!("new cluster: `{}`", cluster_line(&self.base)));
        Ok(())
    }

    /// Starts over as [`Shell::start`] does, silently.
    fn replace(&mut self, options: ClusterOptions) -> Result<(), String> {
        let fresh = Shell::new(options, self.settings)?;
        let out = std::mem::take(&mut self.out);
        *self = Shell { out, loading: self.loading, pacer: self.pacer.take(), ..fresh };
        Ok(())
    }

    /// Runs a command on the session, reporting events as they happen, and records it (as
    /// `text`) unless it only displays something: when it succeeds, and also when it fails
    /// after changing the cluster, since the rest of the session depends on what it did.
    fn run_recorded(&mut self, command: &Command, text: &str) -> Result<String, String> {
        let progress = |session: &Session| {
            session.simulator().map(|sim| (sim.steps(), sim.now(), sim.history().ops().len(), sim.ids()))
        };
        let before = progress(&self.session);
        let Shell { session, observer, out, settings, .. } = self;
        let style = settings.style;
        let result = session.run_observed(command, &mut |session| look(session, observer, out, style));
        match result {
            Ok(output) => {
                if !is_display(command) {
                    self.recording.line(text);
                }
                Ok(output)
            }
            Err(error) if progress(&self.session) != before => {
                self.recording.line(text);
                let note =
                    "it changed the cluster before failing, so it is recorded: a saved test fails here too";
                Err(format!("{}\n({note})", self.explain(error)))
            }
            Err(error) => Err(self.explain(error)),
        }
    }

    /// The message for a failed simulator step: a broken safety rule comes with the cluster
    /// table and the latest events.
    fn explain(&self, error: SimError) -> String {
        match error {
            SimError::Violation(violation) => {
                format!(
                    "{violation}\nthis is a bug in raft-core; `save` keeps the session that found it\n{}",
                    self.session.context()
                )
            }
            SimError::Invalid(message) => message,
            error => error.to_string(),
        }
    }

    /// Turns `auto` on or off.
    fn set_auto(&mut self, on: bool) -> Result<(), String> {
        if on && !self.settings.realtime {
            return Err("`auto` needs an interactive terminal; in a script, `run` lets time pass".into());
        }
        if on {
            self.sim()?;
        }
        self.pacer = on.then(Pacer::default);
        let state =
            if on { "virtual time now follows the wall clock" } else { "time stands still between commands" };
        self.say(state);
        Ok(())
    }

    /// With `auto` on, lets the virtual time that passed on the wall clock since the last call
    /// pass in the cluster too; returns what happened (empty when nothing did).
    pub fn catch_up(&mut self, now: Instant) -> String {
        let Some(ms) = self.pacer.as_mut().map(|pacer| pacer.elapsed(now)) else { return String::new() };
        if let Err(error) = self.advance(ms) {
            self.pacer = None;
            self.say(self.settings.style.error(&format!("error: {error}\n`auto` is off")));
        }
        std::mem::take(&mut self.out)
    }
}

/// Reports what changed since the observer's last look.
fn look(session: &Session, observer: &mut Observer, out: &mut String, style: Style) {
    if let Some(sim) = session.simulator() {
        for event in observer.look(sim, session.names(), style) {
            out.push_str(&event);
        }
    }
}

/// Whether `command` only shows something (and is not recorded).
fn is_display(command: &Command) -> bool {
    matches!(
        command,
        Command::Status(_) | Command::Log { .. } | Command::Trace(_) | Command::QueueLen | Command::Messages
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn shell(realtime: bool) -> Shell {
        Shell::new(ClusterOptions::new([1, 2, 3]), Settings { style: Style::plain(), realtime }).unwrap()
    }

    #[test]
    fn auto_lets_wall_clock_time_pass_and_records_it() {
        let mut shell = shell(true);
        let start = Instant::now();
        assert_eq!(shell.catch_up(start + Duration::from_secs(5)), "", "auto is off");
        assert_eq!(shell.execute("auto on").output, "virtual time now follows the wall clock\n");
        assert_eq!(shell.catch_up(start), "", "the first call starts the clock");
        let events = shell.catch_up(start + Duration::from_millis(600));
        assert!(events.contains("node 3: Candidate → Leader (term 1)"), "{events}");
        shell.catch_up(start + Duration::from_millis(1_000));
        shell.execute("auto off");
        assert_eq!(shell.catch_up(start + Duration::from_secs(9)), "");
        assert_eq!(shell.recording.commands()[1..], ["advance 1000ms"]);
        assert_eq!(shell.sim().unwrap().now(), 1_000);
    }

    #[test]
    fn auto_needs_a_terminal() {
        let reply = shell(false).execute("auto on");
        assert_eq!(reply.failures, 1);
        assert!(reply.output.starts_with("error: `auto` needs an interactive terminal"), "{}", reply.output);
    }

    #[test]
    fn displays_are_not_recorded_and_commands_are_recorded_as_typed() {
        let mut shell = shell(false);
        let reply = shell.execute(
            "run 1s; status; diagnostics 2; log leader; trace 3; queuelen; messages; put x 1; expect 3 is leader",
        );
        assert_eq!(reply.failures, 0, "{}", reply.output);
        assert_eq!(shell.recording.commands()[1..], ["run 1s", "put x 1", "expect 3 is leader"]);
    }

    #[test]
    fn a_step_that_fails_after_changing_the_cluster_is_recorded() {
        let mut shell = shell(false);
        let reply = shell.execute("isolate 1; elect 1; expect 1 is leader");
        assert_eq!(reply.failures, 2, "{}", reply.output);
        assert!(reply.output.contains("so it is recorded"), "{}", reply.output);
        assert_eq!(shell.recording.commands()[1..], ["isolate 1", "elect 1"]);
    }

    #[test]
    fn seed_and_reset_start_over() {
        let mut shell = shell(false);
        shell.execute("run 1s; seed 7");
        assert_eq!(shell.recording.commands(), ["cluster [1, 2, 3] with { seed=7 }"]);
        shell.execute("reset 5");
        assert_eq!(shell.node_words(), ["1", "2", "3", "4", "5"]);
        assert_eq!(shell.recording.commands(), ["cluster [1, 2, 3, 4, 5] with { seed=7 }"]);
    }

    #[test]
    fn a_new_node_joins_the_running_cluster() {
        let mut shell = shell(false);
        let reply = shell.execute("run 1s; put x 1; crash 1; addnode; status");
        assert_eq!(reply.failures, 0, "{}", reply.output);
        assert_eq!(shell.recording.commands()[0], "cluster [1, 2, 3] with { seed=0 }");
        assert!(
            reply.output.contains("add_voter 4 at node 3: changed to voters {1, 2, 3, 4}"),
            "{}",
            reply.output
        );
    }

    #[test]
    fn a_session_that_begins_with_addnode_builds_its_cluster_from_nothing() {
        let settings = Settings { style: Style::plain(), realtime: false };
        let mut shell = Shell::with_default_cluster(4, settings).unwrap();
        let reply = shell.execute("addnode first; addnode second");
        assert_eq!(reply.failures, 0, "{}", reply.output);
        assert!(
            reply.output.starts_with("        0 ms  node 1 (first): started as Follower"),
            "{}",
            reply.output
        );
        assert_eq!(shell.node_words(), ["1", "2", "first", "second"]);
        assert_eq!(
            shell.recording.commands(),
            ["cluster [] with { seed=4 }", "addnode first", "addnode second"]
        );
        let mut explicit = Shell::new(ClusterOptions::new([1, 2, 3]), settings).unwrap();
        assert_eq!(explicit.execute("addnode first").failures, 1, "no leader yet to add it through");
    }

    #[test]
    fn a_cluster_without_nodes_says_how_to_add_one() {
        let settings = Settings { style: Style::plain(), realtime: false };
        let mut shell = Shell::new(ClusterOptions::new([]), settings).unwrap();
        assert!(shell.banner().contains(NO_NODE), "{}", shell.banner());
        for line in ["status", "run 1s", "diagnostics 1"] {
            let reply = shell.execute(line);
            assert_eq!(reply.failures, 1, "{line}");
            assert!(reply.output.contains("addnode NAME"), "{line}: {}", reply.output);
        }
    }
}
