//! Sessions as files: a [`Recording`] written as a `seq_test!` test (`save`), and the
//! commands of a file read back (`load`, `--script`).

use std::path::Path;

use raft_core::Role;
use testkit::{split_script, OpKind, OpOutcome, Session};

use crate::recording::Recording;

/// The name of the test saved to `path`: its file stem as a Rust identifier.
pub fn test_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    match name.chars().next() {
        None => "scenario".to_string(),
        Some(c) if c.is_ascii_digit() => format!("scenario_{name}"),
        Some(_) => name,
    }
}

/// The word for a role in `expect` commands.
fn role_word(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// The label testkit gives a request sent without `as` (what [`Session::request`] finds it by).
fn default_label(kind: &OpKind) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match kind {
        OpKind::Propose { command } => text(command),
        OpKind::Read { query } => format!("read {}", text(query)),
        OpKind::Change(_) => "change".to_string(),
        OpKind::Transfer { .. } => "transfer".to_string(),
    }
}

/// An outcome as `expect op` spells it.
fn outcome_spec(outcome: &OpOutcome) -> String {
    match outcome {
        OpOutcome::Pending => "pending".to_string(),
        OpOutcome::Committed { .. } => "committed".to_string(),
        OpOutcome::Value(value) => format!("{:?}", String::from_utf8_lossy(value)),
        OpOutcome::Changed(_) | OpOutcome::Transferred(_) => "ok".to_string(),
        OpOutcome::Failed { kind, .. } => format!("failed {kind}"),
        OpOutcome::Lost => "lost".to_string(),
    }
}

/// `expect` commands for where the session is now: each node's role, term and commit index
/// (or that it is down), who leads, and how each request ended (those a label still names).
/// Nodes are called by their names where they have one. None without a node.
pub fn final_expectations(session: &Session) -> Vec<String> {
    let Some(sim) = session.simulator() else { return Vec::new() };
    let names = session.names();
    let mut lines = Vec::new();
    for id in sim.ids() {
        let node = names.of(id);
        match sim.node(id) {
            Some(raft) => {
                lines.push(format!("expect {node} is {}", role_word(raft.role())));
                lines.push(format!("expect {node} term = {}", raft.term()));
                lines.push(format!("expect {node} commit = {}", raft.commit_index()));
            }
            None => lines.push(format!("expect {node} down")),
        }
    }
    lines.push(
        sim.leader()
            .map_or_else(|| "expect no leader".to_string(), |id| format!("expect leader = {}", names.of(id))),
    );
    for op in sim.history().ops() {
        let label = default_label(&op.kind);
        if session.request(&label) == Some(op.id) {
            lines.push(format!("expect op {label:?} {}", outcome_spec(&op.outcome)));
        }
    }
    lines
}

/// The session as a test file: a `seq_test!` named `name` that replays `recording` and
/// checks that it ends where `session` is now.
pub fn render(name: &str, recording: &Recording, session: &Session) -> String {
    let mut text = format!(
        "//! A tuitest session, saved with `save`. The test replays it exactly (same seed, same\n\
         //! commands) and checks that the cluster ends where the session did.\n\
         \n\
         use testkit::seq_test;\n\
         \n\
         #[test]\n\
         fn {name}() {{\n    seq_test! {{\n"
    );
    for command in recording.commands() {
        text.push_str(&format!("        {command};\n"));
    }
    text.push_str("        // Where the session ended.\n");
    for expectation in final_expectations(session) {
        text.push_str(&format!("        {expectation};\n"));
    }
    text.push_str("    };\n}\n");
    text
}

/// The commands of a line: `;` separates commands; `//` starts a comment, and so does `#` at
/// the start of the line or after a space (outside strings).
pub fn line_commands(line: &str) -> Vec<String> {
    split_script(without_hash_comment(line))
}

/// `line` up to a `#` comment.
fn without_hash_comment(line: &str) -> &str {
    let (mut in_string, mut escaped, mut after_space) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string && after_space => return &line[..i],
            _ => {}
        }
        after_space = c.is_whitespace();
    }
    line
}

/// The commands of a file, each with where it is (`line 3`, or `command 3` inside a
/// `seq_test!`): a saved test's scenario, or else the commands of each line.
pub fn file_commands(text: &str) -> Vec<(String, String)> {
    if let Some(body) = seq_test_body(text) {
        let commands = split_script(body).into_iter().enumerate();
        return commands.map(|(i, command)| (format!("command {}", i + 1), command)).collect();
    }
    let lines = text.lines().enumerate();
    lines
        .flat_map(|(i, line)| line_commands(line).into_iter().map(move |c| (format!("line {}", i + 1), c)))
        .collect()
}

/// The text between the braces of the first `seq_test! { … }`, skipping strings and comments
/// when matching braces.
fn seq_test_body(text: &str) -> Option<&str> {
    let open = text.match_indices("seq_test!").find_map(|(at, name)| {
        let after = &text[at + name.len()..];
        after.trim_start().starts_with('{').then(|| text.len() - after.trim_start().len())
    })?;
    let mut depth = 0;
    let (mut in_string, mut escaped, mut in_comment) = (false, false, false);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'\n' if in_comment => in_comment = false,
            _ if in_comment => {}
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'/' if bytes.get(i + 1) == Some(&b'/') => in_comment = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..i]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use testkit::ClusterOptions;

    #[test]
    fn test_names_are_identifiers() {
        assert_eq!(test_name(&PathBuf::from("tests/leader-isolated.rs")), "leader_isolated");
        assert_eq!(test_name(&PathBuf::from("3 nodes.rs")), "scenario_3_nodes");
        assert_eq!(test_name(&PathBuf::from("")), "scenario");
    }

    #[test]
    fn a_saved_test_reads_back_as_its_commands() {
        let mut recording = Recording::new(ClusterOptions::new([1, 2, 3]));
        recording.advance(1_000);
        recording.line("propose 1 \"a}b;c\"");
        let mut session = Session::new();
        for command in recording.commands() {
            session.run_line(&command).unwrap();
        }
        let text = render("t", &recording, &session);
        assert!(
            text.contains("fn t() {\n    seq_test! {\n        cluster [1, 2, 3] with { seed=0 };\n"),
            "{text}"
        );
        let commands: Vec<String> = file_commands(&text).into_iter().map(|(_, c)| c).collect();
        let mut expected = recording.commands();
        expected.extend(final_expectations(&session));
        assert_eq!(commands, expected);
        assert_eq!(file_commands(&text)[1].0, "command 2");
        assert_eq!(expected.last().unwrap(), "expect op \"a}b;c\" failed NotLeader");
    }

    #[test]
    fn command_files_have_one_or_more_commands_per_line() {
        let text = "# a comment\nrun 1s // comment\n\nput x 1; get x   # two\nput y \"a # b\"\nsave a#b.rs\n";
        let commands = file_commands(text);
        let expected = [
            ("line 2", "run 1s"),
            ("line 4", "put x 1"),
            ("line 4", "get x"),
            ("line 5", "put y \"a # b\""),
            ("line 6", "save a#b.rs"),
        ];
        assert_eq!(commands, expected.map(|(w, c)| (w.to_string(), c.to_string())));
    }

    #[test]
    fn final_expectations_hold() {
        let script = "cluster 3; advance 1s; propose leader \"x=1\"; read leader \"x\"; settle; crash 1";
        let session = Session::run_script(script).unwrap();
        let lines = final_expectations(&session);
        assert_eq!(lines[..2], ["expect 1 down", "expect 2 is follower"]);
        assert!(lines.contains(&"expect op \"x=1\" committed".to_string()), "{lines:?}");
        assert!(lines.contains(&"expect op \"read x\" \"1\"".to_string()), "{lines:?}");
        let mut replay = Session::run_script(script).unwrap();
        for line in &lines {
            replay.run_line(line).unwrap_or_else(|e| panic!("`{line}`: {e}"));
        }
    }
}
