//! Scripted sessions of the `tuitest` binary, through `--script` and through standard input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary, with colors off whatever the environment says.
fn tuitest() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tuitest"));
    command.env("NO_COLOR", "1");
    command
}

/// What a run printed, and whether it succeeded.
struct Run {
    stdout: String,
    success: bool,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        assert!(output.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
        Run {
            stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
            success: output.status.success(),
        }
    }
}

/// Runs the binary with `input` on standard input.
fn with_stdin(input: &str) -> Run {
    let mut child = tuitest()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tuitest starts");
    child.stdin.take().expect("a pipe").write_all(input.as_bytes()).expect("tuitest reads its input");
    child.wait_with_output().expect("tuitest ends").into()
}

/// Runs the binary with `--script FILE`, `script` written to FILE in `dir`.
fn with_script(dir: &Path, script: &str) -> Run {
    let file = dir.join("session.txt");
    std::fs::write(&file, script).expect("the script is written");
    tuitest().arg("--script").arg(&file).stdin(Stdio::null()).output().expect("tuitest runs").into()
}

/// The original REPL's demonstration (ORIGIN §A): three nodes, a payload, the leader cut off
/// from both followers. With seed 0, node 3 is elected first.
const DEMONSTRATION: &str = "\
run 1s
expect 3 is leader
pushpayload 42
disconnect 3 1
disconnect 3 2
run 1s
diagnostics
";

fn lines_of(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The row of node `id` in the last `status` table of `output`, split into cells.
fn row(output: &str, id: u64) -> Vec<String> {
    let prefix = format!("{id} ");
    let line = output.lines().rfind(|l| l.starts_with(&prefix)).expect("a status row");
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn the_original_demonstration_elects_a_new_leader_and_the_old_one_steps_down() {
    let dir = tempfile::tempdir().unwrap();
    let run = with_script(dir.path(), DEMONSTRATION);
    assert!(run.success, "{}", run.stdout);
    let out = &run.stdout;
    for event in [
        "node 3: Candidate → Leader (term 1)",
        "write \"42\" at node 3: committed at index 2",
        "node 3: Leader → Follower (term 1)", // check-quorum: it lost contact with a majority
        "node 1: Candidate → Leader (term 2)",
    ] {
        assert!(out.contains(event), "missing `{event}` in\n{out}");
    }
    assert!(lines_of(out).contains(&"> disconnect 3 1"), "--script echoes each command:\n{out}");
    assert_eq!(row(out, 1)[..5], ["1", "Leader", "2", "1", "3"], "{out}");
    assert_eq!(row(out, 2)[..4], ["2", "Follower", "2", "1"], "{out}");
    assert_eq!(row(out, 3)[1..3], ["PreCandidate", "1"], "the old leader no longer leads:\n{out}");
    assert_eq!(row(out, 3)[7..], ["1", "2"], "node 3 is cut off from 1 and 2:\n{out}");
}

/// Without check-quorum, the original REPL's transcript: the cut-off leader stays Leader of
/// term 1 next to the new leader of term 2.
#[test]
fn without_check_quorum_the_old_leader_stays_leader_as_in_the_original() {
    let run = with_stdin(&format!("cluster 3 with {{ check_quorum=off }}\n{DEMONSTRATION}"));
    assert!(run.success, "{}", run.stdout);
    assert_eq!(row(&run.stdout, 1)[1..3], ["Leader", "2"], "{}", run.stdout);
    assert_eq!(row(&run.stdout, 3)[1..3], ["Leader", "1"], "{}", run.stdout);
}

#[test]
fn standard_input_runs_the_same_session_without_prompts_or_echo() {
    let dir = tempfile::tempdir().unwrap();
    let script = with_script(dir.path(), DEMONSTRATION);
    let piped = with_stdin(DEMONSTRATION);
    assert!(piped.success);
    let unechoed: Vec<&str> = lines_of(&script.stdout).into_iter().filter(|l| !l.starts_with("> ")).collect();
    assert_eq!(lines_of(&piped.stdout), unechoed);
    assert!(
        !piped.stdout.contains("tuitest>") && !piped.stdout.contains("Tab completes"),
        "{}",
        piped.stdout
    );
}

#[test]
fn mistakes_are_explained_in_one_line_and_the_session_goes_on() {
    let run = with_stdin("partiton 1 | 2\ncrash 9\ndisconnect 1\nput x 1\nrun 1s\nstatus\n");
    assert!(!run.success, "a failed command makes the exit status 1");
    let out = &run.stdout;
    for error in [
        "error: unknown command `partiton`; did you mean `partition`? (`help` lists every command)",
        "error: there is no node 9 (the nodes are 1, 2, 3)",
        "error: missing arguments; usage: disconnect <a> <b>",
        "error: there is no leader now (`run 1s` gives an election time)",
    ] {
        assert!(lines_of(out).contains(&error), "missing `{error}` in\n{out}");
    }
    assert_eq!(row(out, 3)[1], "Leader", "the commands after the mistakes ran:\n{out}");
}

#[test]
fn a_failing_script_line_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let run = with_script(dir.path(), "run 1s\n\n// a comment\nexpect 1 is leader\nstatus\n");
    assert!(!run.success);
    let expected = format!(
        "{}, line 4: error: expectation failed: node 1 is Follower, expected Leader",
        dir.path().join("session.txt").display()
    );
    assert!(lines_of(&run.stdout).contains(&expected.as_str()), "{}", run.stdout);
    assert!(run.stdout.contains("error: 1 of the 3 commands in"), "{}", run.stdout);
    assert!(run.stdout.contains("> status"), "the script goes on after a failure:\n{}", run.stdout);
}

#[test]
fn help_lists_every_command_and_explains_each() {
    let run = with_stdin("help\nhelp queuelen\nhelp diagnostics\nhelp nonsense\n");
    let out = &run.stdout;
    for heading in ["Inspect:", "Network:", "Nodes:", "Clients:", "Time:", "Session:", "Scenario language"] {
        assert!(out.contains(heading), "{out}");
    }
    assert!(out.contains("usage: queuelen\n") && out.contains("lost, not queued"), "{out}");
    assert!(out.contains("usage: status [node | full]"), "{out}");
    assert!(out.contains("error: no command is called `nonsense`"), "{out}");
}

#[test]
fn the_queue_is_the_messages_in_flight() {
    let run =
        with_stdin("run 1s\npushpayload 42\ndisconnect 3 1\nqueuelen\nmessages\nclearqueue\nqueuelen\n");
    assert!(run.success, "{}", run.stdout);
    let out = lines_of(&run.stdout);
    let after = |line: &str| out.iter().position(|l| *l == line).map(|i| out[i + 1]);
    assert!(after("dropped 2 messages") == Some("no messages in flight"), "{out:#?}");
    let queued =
        "2 messages in flight; 1 of them on a cut link or to a crashed node: lost on arrival, unless the \
                  link is restored (or the node restarted) first";
    assert!(after(queued).is_some_and(|l| l.starts_with("3 -> 1 Heartbeat (term 1")), "{out:#?}");
}

#[test]
fn nodes_join_and_leave_and_leadership_moves() {
    let run = with_stdin("run 1s\naddnode\nremovenode 1\ntransfer 2\nstatus\n");
    assert!(run.success, "{}", run.stdout);
    let out = &run.stdout;
    for event in [
        "node 4: started as Follower (term 0)",
        "add_voter 4 at node 3: changed to voters {1, 2, 3, 4}",
        "remove 1 at node 3: changed to voters {2, 3, 4}",
        "transfer to 2 at node 3: transferred to 2",
    ] {
        assert!(out.contains(event), "missing `{event}` in\n{out}");
    }
    assert_eq!(row(out, 2)[1], "Leader", "{out}");
}

/// The commands of the README's walkthrough, up to `save`.
const WALKTHROUGH: &str = "\
run 1s
put x 1
partition 3 | 1,2
put y 2 on 3
status
put y 3
heal
run 1s
log 3
get y
";

/// `save` writes what `leader_partitioned.rs`, a test of this crate, holds: the test that
/// runs there is what `save` writes today.
#[test]
fn a_saved_session_is_a_test_that_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("leader_partitioned.rs");
    let run = with_stdin(&format!("{WALKTHROUGH}save {}\n", saved.display()));
    assert!(run.success, "{}", run.stdout);
    assert!(run.stdout.contains("write \"y=2\" at node 3: failed Superseded"), "{}", run.stdout);
    assert!(run.stdout.contains("read \"y\" at node 1: value \"3\""), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), include_str!("leader_partitioned.rs"));
}

#[test]
fn a_saved_test_loads_back_into_the_repl() {
    let dir = tempfile::tempdir().unwrap();
    let saved = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/leader_partitioned.rs");
    let run = with_script(dir.path(), &format!("load {saved}\nstatus\n"));
    assert!(run.success, "every step and expectation of the saved test holds:\n{}", run.stdout);
    assert_eq!(row(&run.stdout, 1)[..5], ["1", "Leader", "2", "1", "4"], "{}", run.stdout);
}
