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

/// The original REPL's first transcript (ORIGIN §A), as written: a session that begins with
/// `addnode` builds its cluster from nothing. The first node forms a cluster of its own and
/// elects itself; the others join through it.
const BUILD: &str = "\
addnode first
addnode second
addnode third
diagnostics
pushpayload 123
diagnostics
";

/// What [`BUILD`] prints (seed 0).
const BUILD_OUTPUT: &str = "\
\x20       0 ms  node 1 (first): started as Follower (term 0)
      199 ms  node 1 (first): Follower → Leader (term 1)
      199 ms  node 2 (second): started as Follower (term 0)
      200 ms  node 2 (second): term 0 → 1, follows 1
      203 ms  add_voter 2 (second) at node 1 (first): changed to voters {1, 2}
      203 ms  node 3 (third): started as Follower (term 0)
      204 ms  node 3 (third): term 0 → 1, follows 1
      205 ms  add_voter 3 (third) at node 1 (first): changed to voters {1, 2, 3}
time 206 ms, seed 0, leader 1 (first, term 1), voters {1, 2, 3}
node  name    role      term  leader  commit  applied  last  cut
1     first   Leader    1     1       3       3        3@1
2     second  Follower  1     1       3       3        3@1
3     third   Follower  1     1       3       3        3@1
      208 ms  write \"123\" at node 1 (first): committed at index 4
time 208 ms, seed 0, leader 1 (first, term 1), voters {1, 2, 3}
node  name    role      term  leader  commit  applied  last  cut
1     first   Leader    1     1       4       4        4@1
2     second  Follower  1     1       3       3        4@1
3     third   Follower  1     1       3       3        4@1
";

/// Its second transcript, as written but for the `run 1s` that virtual time needs: the
/// leader cut off from both followers.
const PARTITION: &str = "\
addnode first
addnode second
addnode third
disconnect first second
disconnect first third
run 1s
diagnostics
";

/// What [`PARTITION`] prints: there, `first` stayed Leader of term 1 next to the new leader;
/// here it steps down (check-quorum) and, cut off, does not raise its term (pre-vote).
const PARTITION_OUTPUT: &str = "\
\x20       0 ms  node 1 (first): started as Follower (term 0)
      199 ms  node 1 (first): Follower → Leader (term 1)
      199 ms  node 2 (second): started as Follower (term 0)
      200 ms  node 2 (second): term 0 → 1, follows 1
      203 ms  add_voter 2 (second) at node 1 (first): changed to voters {1, 2}
      203 ms  node 3 (third): started as Follower (term 0)
      204 ms  node 3 (third): term 0 → 1, follows 1
      205 ms  add_voter 3 (third) at node 1 (first): changed to voters {1, 2, 3}
cut: 1 ↔ 2
cut: 1 ↔ 2, 1 ↔ 3
      366 ms  node 3 (third): Follower → PreCandidate (term 1)
      368 ms  node 3 (third): PreCandidate → Candidate (term 2)
      369 ms  node 2 (second): term 1 → 2, no leader
      370 ms  node 3 (third): Candidate → Leader (term 2)
      371 ms  node 2 (second): follows 3
      499 ms  node 1 (first): Leader → Follower (term 1)
      695 ms  node 1 (first): Follower → PreCandidate (term 1)
  time 206 → 1206 ms
time 1206 ms, seed 0, leader 3 (third, term 2), voters {1, 2, 3}
node  name    role          term  leader  commit  applied  last  cut
1     first   PreCandidate  1     -       3       3        3@1   2 3
2     second  Follower      2     3       4       4        4@2   1
3     third   Leader        2     3       4       4        4@2   1
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
fn the_original_transcript_builds_a_three_node_cluster_from_nothing() {
    let run = with_stdin(BUILD);
    assert!(run.success, "{}", run.stdout);
    assert_eq!(run.stdout, BUILD_OUTPUT);
}

#[test]
fn the_original_partition_elects_a_new_leader_and_the_old_one_steps_down() {
    let run = with_stdin(PARTITION);
    assert!(run.success, "{}", run.stdout);
    assert_eq!(run.stdout, PARTITION_OUTPUT);
}

/// Without check-quorum, the original REPL's outcome: the cut-off leader stays Leader of term
/// 1 next to the new leader of term 2.
#[test]
fn without_check_quorum_the_old_leader_stays_leader_as_in_the_original() {
    let run = with_stdin(&format!("cluster [] with {{ check_quorum=off }}\n{PARTITION}"));
    assert!(run.success, "{}", run.stdout);
    assert_eq!(row(&run.stdout, 1)[1..4], ["first", "Leader", "1"], "{}", run.stdout);
    let new_leader = if row(&run.stdout, 2)[2] == "Leader" { 2 } else { 3 };
    assert_eq!(row(&run.stdout, new_leader)[2..4], ["Leader", "2"], "{}", run.stdout);
}

#[test]
fn a_script_runs_the_same_session_and_echoes_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = with_script(dir.path(), PARTITION);
    assert!(script.success, "{}", script.stdout);
    assert!(lines_of(&script.stdout).contains(&"> disconnect first second"), "{}", script.stdout);
    let unechoed: Vec<&str> = lines_of(&script.stdout).into_iter().filter(|l| !l.starts_with("> ")).collect();
    assert_eq!(unechoed, lines_of(PARTITION_OUTPUT));
    let piped = with_stdin(PARTITION);
    assert!(
        !piped.stdout.contains("tuitest>") && !piped.stdout.contains("Tab completes"),
        "no prompt or banner on a pipe:\n{}",
        piped.stdout
    );
}

/// The original REPL's queue: with `net queue`, what is sent on a cut link is held
/// (`queuelen` counts it) and delivered when the link is restored. `settle` lets no time
/// pass, so what reaches `third` is what was held: the entry `y=2`.
#[test]
fn queued_messages_are_delivered_on_reconnect() {
    let run = with_stdin(
        "addnode first\naddnode second\naddnode third\nnet queue\ndisconnect first third\nput y 2\nrun 100ms\n\
         queuelen\nlog third\nconnect first third\nsettle\nlog third\nqueuelen\n",
    );
    assert!(run.success, "{}", run.stdout);
    let out = lines_of(&run.stdout);
    let held = "3 messages in flight; 3 of them held on cut links, delivered when the links are restored";
    assert!(out.contains(&"cut links now hold their messages and deliver them when restored"), "{out:#?}");
    assert!(out.contains(&held), "{out:#?}");
    let logs: Vec<usize> =
        out.iter().enumerate().filter(|(_, l)| l.starts_with("node 3 (third): ")).map(|(i, _)| i).collect();
    assert_eq!(logs.len(), 2, "{out:#?}");
    assert_eq!(out[logs[0]], "node 3 (third): commit 3, applied 3", "before: no y=2");
    assert!(!out[logs[0]..logs[1]].iter().any(|l| l.contains("y=2")), "{out:#?}");
    assert_eq!(out[logs[1]], "node 3 (third): commit 4, applied 4", "after: the held entry and commit");
    assert_eq!(out[logs[1] + 5], "      4     1  \"y=2\"", "{out:#?}");
    assert_eq!(out.last(), Some(&"no messages in flight"));
}

/// The same steps without `net queue`: the cut link lost what crossed it, so nothing reaches
/// `third` until the next heartbeat.
#[test]
fn by_default_messages_on_a_cut_link_are_lost() {
    let run = with_stdin(
        "addnode first\naddnode second\naddnode third\ndisconnect first third\nput y 2\nrun 100ms\n\
         queuelen\nconnect first third\nsettle\nlog third\n",
    );
    assert!(run.success, "{}", run.stdout);
    assert!(run.stdout.contains("no messages in flight\n"), "{}", run.stdout);
    assert!(run.stdout.contains("node 3 (third): commit 3, applied 3\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("y=2\"\n"), "{}", run.stdout);
}

#[test]
fn mistakes_are_explained_in_one_line_and_the_session_goes_on() {
    let run = with_stdin("partiton 1 | 2\ncrash 9\ndisconnect 1\nput x 1\nrun 1s\nstatus\n");
    assert!(!run.success, "a failed command makes the exit status 1");
    let out = &run.stdout;
    for error in [
        "error: unknown command `partiton`; did you mean `partition`? (`help` lists every command)",
        "error: there is no node 9 (the nodes are 1, 2, 3)",
        "error: expected a node, found the end; usage: disconnect <a> <b>",
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
    for heading in ["Inspect:", "Network:", "Nodes:", "Clients:", "Time:", "Session:", "More of the scenario"]
    {
        assert!(out.contains(heading), "{out}");
    }
    assert!(out.contains("usage: queuelen\n") && out.contains("lost, not queued"), "{out}");
    assert!(out.contains("After `net queue`, a cut link holds its messages"), "{out}");
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
    let run = with_stdin("run 1s\naddnode\nremovenode 1\ntransfer 2 => ok\nstatus\n");
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

/// A session built node by node, with names and queued links, saves as a test that loads
/// back and ends where the session did.
#[test]
fn a_session_built_node_by_node_saves_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("built.rs");
    let session = PARTITION.replacen("disconnect", "net queue\ndisconnect", 1);
    let run = with_stdin(&format!("{session}save {}\n", saved.display()));
    assert!(run.success, "{}", run.stdout);
    let text = std::fs::read_to_string(&saved).unwrap();
    for line in ["cluster [] with { seed=0 };", "addnode first;", "net queue;", "expect leader = third;"] {
        assert!(text.contains(&format!("        {line}\n")), "missing `{line}` in\n{text}");
    }
    let replay = with_script(dir.path(), &format!("load {}\ndiagnostics\n", saved.display()));
    assert!(replay.success, "every step and expectation of the saved test holds:\n{}", replay.stdout);
    assert_eq!(row(&replay.stdout, 3)[1..4], ["third", "Leader", "2"], "{}", replay.stdout);
}

#[test]
fn a_saved_test_loads_back_into_the_repl() {
    let dir = tempfile::tempdir().unwrap();
    let saved = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/leader_partitioned.rs");
    let run = with_script(dir.path(), &format!("load {saved}\nstatus\n"));
    assert!(run.success, "every step and expectation of the saved test holds:\n{}", run.stdout);
    assert_eq!(row(&run.stdout, 1)[..5], ["1", "Leader", "2", "1", "4"], "{}", run.stdout);
}
