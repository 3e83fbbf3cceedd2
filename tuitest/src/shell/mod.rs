//! [`Shell`]: a REPL session — the simulated cluster, what happened to it as a recording,
//! and the command dispatcher. It never prints: each call returns its output.

use std::path::Path;
use std::time::Instant;

use raft_core::NodeId;
use testkit::{ClusterOptions, Command, LinkFaults, Session, SimError, Simulator, StatusTable};

use crate::catalog;
use crate::cluster_line::cluster_line;
use crate::input::{self, Input, NodeArg, StatusView};
use crate::log_view::log_view;
use crate::observer::Observer;
use crate::pacer::Pacer;
use crate::recording::Recording;
use crate::scenario::line_commands;
use crate::style::Style;
use crate::table::{node_detail, table};

mod files;
mod network;
mod requests;
mod time;

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
    /// The faults of every link, as `drop`, `delay` and `net` left them.
    faults: LinkFaults,
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
    /// A session on a new cluster built with `options`.
    pub fn new(options: ClusterOptions, settings: Settings) -> Result<Shell, String> {
        let mut session = Session::new();
        session.run_line(&cluster_line(&options)).map_err(|e| e.to_string())?;
        let sim = session.simulator().expect("a cluster command builds a simulator");
        Ok(Shell {
            observer: Observer::new(sim),
            recording: Recording::new(options.clone()),
            faults: options.faults,
            base: options,
            session,
            settings,
            pacer: None,
            loading: 0,
            out: String::new(),
        })
    }

    /// A few lines that greet an interactive user.
    pub fn banner(&self) -> String {
        let sim = self.sim();
        let ids: Vec<String> = sim.ids().iter().map(NodeId::to_string).collect();
        format!(
            "tuitest: a simulated raft-core cluster in virtual time (seed {}).\n\
             {} nodes ({}), no leader yet. Time stands still until you `tick`, `run 1s` or `auto on`.\n\
             `help` lists the commands, `help <command>` explains one; Tab completes; Ctrl-D leaves.\n",
            sim.options().seed,
            ids.len(),
            ids.join(", ")
        )
    }

    /// The ids of the cluster's nodes.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.sim().ids()
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
        self.look();
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

    /// Reports what changed since the last look.
    fn look(&mut self) {
        let sim = self.session.simulator().expect("a shell always has a cluster");
        for event in self.observer.look(sim, self.settings.style) {
            self.out.push_str(&event);
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

    fn sim(&self) -> &Simulator {
        self.session.simulator().expect("a shell always has a cluster")
    }

    fn sim_mut(&mut self) -> &mut Simulator {
        self.session.simulator_mut().expect("a shell always has a cluster")
    }

    /// The node `arg` names, which must exist.
    fn node(&self, arg: NodeArg) -> Result<NodeId, String> {
        let sim = self.sim();
        match arg {
            NodeArg::Leader => {
                sim.leader().ok_or_else(|| "there is no leader now (`run 1s` gives an election time)".into())
            }
            NodeArg::Id(id) if sim.ids().contains(&id) => Ok(id),
            NodeArg::Id(id) => {
                let ids: Vec<String> = sim.ids().iter().map(NodeId::to_string).collect();
                Err(format!("there is no node {id} (the nodes are {})", ids.join(", ")))
            }
        }
    }

    fn command(&mut self, text: &str) -> Result<Flow, String> {
        let style = self.settings.style;
        match input::parse(text)? {
            Input::Help(None) => self.say(catalog::overview()),
            Input::Help(Some(name)) => match catalog::find(&name) {
                Some(spec) => self.say(spec.help()),
                None => return Err(format!("no command is called `{name}` (`help` lists them)")),
            },
            Input::Status(StatusView::Cluster) => self.say(table(self.sim(), &self.node_ids(), style)),
            Input::Status(StatusView::Node(node)) => {
                self.say(node_detail(self.sim(), self.node(node)?, style))
            }
            Input::Status(StatusView::Full) => self.say(StatusTable(self.sim()).to_string()),
            Input::Log { node, limit } => self.say(log_view(self.sim(), self.node(node)?, limit, style)),
            Input::Trace(count) => {
                let lines: Vec<String> = self.sim().trace().lines().map(ToString::to_string).collect();
                self.say(lines[lines.len().saturating_sub(count)..].join("\n"));
            }
            Input::QueueLen => self.queue_len(),
            Input::ClearQueue => self.clear_queue()?,
            Input::Link { connect, from, to, both } => self.link(connect, from, to, both)?,
            Input::Partition(groups) => self.partition(&groups)?,
            Input::Isolate(node) => self.change_links(&format!("isolate {}", self.node(node)?))?,
            Input::Heal => self.change_links("heal")?,
            Input::DropRate(rate) => self.set_faults(LinkFaults { drop: rate, ..self.faults })?,
            Input::Delay { min, max } => {
                self.set_faults(LinkFaults { delay_min: min, delay_max: max, ..self.faults })?
            }
            Input::Crash { node, at: None } => self.record(&format!("crash {}", self.node(node)?))?,
            Input::Crash { node, at: Some(point) } => {
                self.record(&format!("crash {} at {point}", self.node(node)?))?;
                self.say(format!("armed: the crash lands inside the node's next Ready with work {point}"));
            }
            Input::Restart(node) => self.record(&format!("restart {}", self.node(node)?))?,
            Input::AddNode(id) => self.add_node(id)?,
            Input::RemoveNode(node) => self.remove_node(node)?,
            Input::Transfer { from, to } => self.transfer(from, to)?,
            Input::Write { command, via } => self.write(&command, via)?,
            Input::Read { key, via } => self.read(&key, via)?,
            Input::Run(duration) => self.run_for(duration)?,
            Input::Auto(on) => self.set_auto(on)?,
            Input::Seed(seed) => self.start(ClusterOptions { seed, ..self.base.clone() })?,
            Input::Reset(None) => self.start(self.base.clone())?,
            Input::Reset(Some(nodes)) => {
                self.start(ClusterOptions { voters: (1..=nodes).collect(), ..self.base.clone() })?
            }
            Input::Save(path) => self.save(&path)?,
            Input::Load(path) => return self.load_file(&path),
            Input::Quit => return Ok(Flow::Quit),
            Input::Scenario(Command::Cluster(options)) => self.start(options)?,
            Input::Scenario(command) => {
                let output = self.run_recorded(&command, text)?;
                if let Command::Faults { link: None, faults } = command {
                    self.faults = faults;
                }
                self.say(output.trim_end());
            }
        }
        Ok(Flow::Continue)
    }

    /// Starts over on a new cluster built with `options`; they become what `reset` starts
    /// over with.
    fn start(&mut self, options: ClusterOptions) -> Result<(), String> {
        let fresh = Shell::new(options, self.settings)?;
        let out = std::mem::take(&mut self.out);
        *self = Shell { out, loading: self.loading, pacer: self.pacer.take(), ..fresh };
        self.say(format!("new cluster: `{}`", cluster_line(&self.base)));
        Ok(())
    }

    /// Parses `line` (a testkit command) and runs it as [`Shell::run_recorded`] does.
    fn record(&mut self, line: &str) -> Result<(), String> {
        let command = Command::parse(line).map_err(|e| e.to_string())?;
        let output = self.run_recorded(&command, line)?;
        self.say(output.trim_end());
        Ok(())
    }

    /// Runs a testkit command and records it (as `text`) if it changed the cluster: when it
    /// succeeds, and also when it fails after changing the cluster, since the rest of the
    /// session depends on what it did. Checks that hold are recorded too.
    fn run_recorded(&mut self, command: &Command, text: &str) -> Result<String, String> {
        let progress = |sim: &Simulator| (sim.steps(), sim.now(), sim.history().ops().len());
        let before = progress(self.sim());
        match self.session.run(command) {
            Ok(output) => {
                if !matches!(command, Command::Status | Command::Messages) {
                    self.recording.line(text);
                }
                Ok(output)
            }
            Err(error) if progress(self.sim()) != before => {
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
            error => error.to_string(),
        }
    }

    /// Turns `auto` on or off.
    fn set_auto(&mut self, on: bool) -> Result<(), String> {
        if on && !self.settings.realtime {
            return Err("`auto` needs an interactive terminal; in a script, `run` lets time pass".into());
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
        if let Err(error) = self.drive(ms, |_| false) {
            self.pacer = None;
            self.say(self.settings.style.error(&format!("error: {error}\n`auto` is off")));
        }
        std::mem::take(&mut self.out)
    }
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
        assert_eq!(shell.sim().now(), 1_000);
    }

    #[test]
    fn auto_needs_a_terminal() {
        let reply = shell(false).execute("auto on");
        assert_eq!(reply.failures, 1);
        assert!(reply.output.starts_with("error: `auto` needs an interactive terminal"), "{}", reply.output);
    }

    #[test]
    fn displays_are_not_recorded_and_node_ids_are_resolved() {
        let mut shell = shell(false);
        let reply =
            shell.execute("run 1s; status; log leader; trace 3; queuelen; put x 1; expect 3 is leader");
        assert_eq!(reply.failures, 0, "{}", reply.output);
        let commands = shell.recording.commands();
        assert_eq!(
            commands[1..],
            ["advance 1000ms", "propose 3 \"x=1\"", "advance 2ms", "expect 3 is leader"]
        );
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
        assert_eq!(shell.node_ids(), [1, 2, 3, 4, 5]);
        assert_eq!(shell.recording.commands(), ["cluster [1, 2, 3, 4, 5] with { seed=7 }"]);
    }

    #[test]
    fn a_new_node_joins_a_replayed_session() {
        let mut shell = shell(false);
        let reply = shell.execute("run 1s; put x 1; crash 1; addnode; status");
        assert_eq!(reply.failures, 0, "{}", reply.output);
        let commands = shell.recording.commands();
        assert_eq!(commands[0], "cluster [1, 2, 3] with { seed=0, spares=[4] }");
        assert!(commands.contains(&"change 3 add_voter 4".to_string()), "{commands:?}");
        assert!(
            reply.output.contains("add_voter 4 at node 3: changed to voters {1, 2, 3, 4}"),
            "{}",
            reply.output
        );
    }
}
