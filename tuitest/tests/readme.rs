//! The READMEs' REPL sessions, run as written: this crate's README shows each command after a
//! `tuitest> ` prompt and what it prints below it, and the workspace README lists the
//! commands of its walkthrough. Each runs through standard input, in a directory laid out
//! like the workspace so that `save tuitest/tests/…` works as it does there.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PROMPT: &str = "tuitest> ";

/// One session of a README: the commands typed, and what they print.
#[derive(Debug, Default)]
struct Session {
    commands: Vec<String>,
    output: String,
}

/// The ```text blocks of `section` that show a session at the prompt.
fn prompt_blocks(section: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line == "```text" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            if block.first().is_some_and(|l| l.starts_with(PROMPT)) {
                blocks.push(block);
            }
        }
    }
    blocks
}

/// Adds a block's commands and output to `session`.
fn read_block(session: &mut Session, block: &[&str]) {
    for line in block {
        match line.strip_prefix(PROMPT) {
            Some(command) => session.commands.push(command.to_string()),
            None => {
                session.output.push_str(line);
                session.output.push('\n');
            }
        }
    }
}

/// The sessions of a README: the blocks of its walkthrough section are one session, each
/// other block is a session of its own.
fn sessions(readme: &str) -> Vec<Session> {
    let mut sessions = Vec::new();
    for section in readme.split("\n## ").skip(1) {
        let blocks = prompt_blocks(section);
        if section.starts_with("Walkthrough") {
            let mut session = Session::default();
            blocks.iter().for_each(|block| read_block(&mut session, block));
            sessions.push(session);
        } else {
            for block in blocks {
                let mut session = Session::default();
                read_block(&mut session, &block);
                sessions.push(session);
            }
        }
    }
    sessions
}

/// Runs `commands` through standard input in `dir`; returns the output and whether every
/// command succeeded.
fn run(dir: &Path, commands: &[String]) -> (String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuitest"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tuitest starts");
    let input: String = commands.iter().map(|c| format!("{c}\n")).collect();
    child.stdin.take().expect("a pipe").write_all(input.as_bytes()).expect("tuitest reads its input");
    let output = child.wait_with_output().expect("tuitest ends");
    assert!(output.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    (String::from_utf8(output.stdout).expect("UTF-8 output"), output.status.success())
}

/// A directory laid out like the workspace, for `save tuitest/tests/…`.
fn workspace_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tuitest/tests")).unwrap();
    std::fs::write(dir.path().join("tuitest/Cargo.toml"), "").unwrap();
    dir
}

#[test]
fn this_readme_s_sessions_print_what_it_shows() {
    let readme = include_str!("../README.md");
    let sessions = sessions(readme);
    assert_eq!(sessions.len(), 4, "the walkthrough, two transcripts and the queued links");
    for session in sessions {
        let dir = workspace_like();
        let (output, success) = run(dir.path(), &session.commands);
        assert!(success, "{:?}:\n{output}", session.commands);
        assert_eq!(output, session.output, "{:?}", session.commands);
    }
}

#[test]
fn the_workspace_readme_s_walkthrough_runs_as_written() {
    let readme = include_str!("../../README.md");
    let commands: Vec<String> =
        readme.lines().filter_map(|l| l.strip_prefix(PROMPT)).map(String::from).collect();
    assert!(commands.len() > 5 && commands.last().is_some_and(|c| c.starts_with("save ")), "{commands:?}");
    let dir = workspace_like();
    let (output, success) = run(dir.path(), &commands);
    assert!(success && !output.contains("error:"), "{output}");
    assert!(dir.path().join("tuitest/tests/my_partition.rs").is_file(), "{output}");
}
