//! The real terminal program, driven through tmux: the banner and prompt, a command,
//! completion, colors, history and Ctrl-D. Skipped (with a message) where tmux is missing.

use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for the screen to show something before giving up. Generous: the test
/// waits for what it expects and never measures how long that took.
const PATIENCE: Duration = Duration::from_secs(20);

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// Starts `command` in a detached 100×40 session.
    fn start(command: &str) -> Tmux {
        let tmux = Tmux { socket: format!("tuitest-{}", std::process::id()) };
        let started = tmux.tmux(&["new-session", "-d", "-s", "repl", "-x", "100", "-y", "40", command]);
        assert!(started.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&started.stderr));
        tmux
    }

    fn send(&self, keys: &[&str]) {
        let sent = self.tmux(&[&["send-keys", "-t", "repl"], keys].concat());
        assert!(sent.status.success(), "tmux send-keys: {}", String::from_utf8_lossy(&sent.stderr));
    }

    /// The screen as text; with `escapes`, with its colors.
    fn screen(&self, escapes: bool) -> String {
        let args: &[&str] = if escapes {
            &["capture-pane", "-p", "-e", "-t", "repl"]
        } else {
            &["capture-pane", "-p", "-t", "repl"]
        };
        String::from_utf8_lossy(&self.tmux(args).stdout).into_owned()
    }

    fn running(&self) -> bool {
        self.tmux(&["has-session", "-t", "repl"]).status.success()
    }

    /// Waits until `done` holds, failing with `what` and the screen after [`PATIENCE`].
    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "no {what}; screen:\n{}", self.screen(false));
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the screen satisfies `ready`; returns the screen.
    fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, || ready(&self.screen(false)));
        self.screen(false)
    }

    /// Waits for an empty prompt on the last line (typing earlier could be lost).
    fn wait_for_prompt(&self) -> String {
        self.wait("prompt", |screen| screen.trim_end().lines().last() == Some("tuitest>"))
    }

    /// Types `line` at the prompt, presses Enter and waits for the next prompt.
    fn enter(&self, line: &str) -> String {
        self.wait_for_prompt();
        self.send(&[line, "Enter"]);
        self.wait(&format!("the output of `{line}`"), |screen| {
            let (_, after) = screen.rsplit_once(&format!("tuitest> {line}\n")).unwrap_or_default();
            after.trim_end().ends_with("tuitest>")
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn tmux_installed() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_terminal_program_completes_colors_remembers_and_exits_on_ctrl_d() {
    if !tmux_installed() {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux); the terminal test did not run");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_tuitest"));
    let command = format!("env -u NO_COLOR HOME='{}' '{}'", home.path().display(), binary.display());
    let tmux = Tmux::start(&command);

    let screen = tmux.wait_for_prompt();
    assert!(
        screen.starts_with("tuitest: a simulated raft-core cluster in virtual time (seed 0)."),
        "{screen}"
    );

    let screen = tmux.enter("run 1s");
    assert!(screen.contains("node 3: Candidate → Leader (term 1)"), "{screen}");

    tmux.send(&["diag", "Tab"]);
    tmux.wait("the completed command", |screen| screen.contains("tuitest> diagnostics "));
    tmux.send(&["BSpace", "Enter"]);
    tmux.wait("the status table", |screen| screen.contains("node  role      term  leader"));
    let colored = tmux.screen(true);
    assert!(colored.contains("32mLeader"), "a leader is green at a terminal:\n{colored}");

    tmux.wait_for_prompt();
    tmux.send(&["partition "]);
    tmux.wait("the hint", |screen| screen.contains("tuitest> partition <nodes> | <nodes> …"));
    tmux.send(&["C-u", "C-d"]);
    tmux.wait_until("end of the program", || !tmux.running());

    let history = std::fs::read_to_string(home.path().join(".tuitest_history")).expect("a history file");
    assert!(history.contains("run 1s") && history.contains("diagnostics"), "{history}");
}
