//! The line editor's helper: Tab completes command names, node ids and names, and file names;
//! a dimmed hint shows a command's arguments once its name is typed.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Context;
use testkit::CrashPoint;

use crate::catalog::{self, Args};
use crate::shell::Shell;
use crate::style::Style;

/// Completion and hints for the REPL's line editor.
pub struct Helper {
    shell: Arc<Mutex<Shell>>,
    files: FilenameCompleter,
    style: Style,
}

impl Helper {
    /// A helper that completes the node ids and names of `shell`'s cluster.
    pub fn new(shell: Arc<Mutex<Shell>>, style: Style) -> Self {
        Helper { shell, files: FilenameCompleter::new(), style }
    }
}

/// Where the word being typed starts, and the words it may become. `None`: complete a file
/// name.
fn candidates(before: &str, nodes: &[String]) -> Option<(usize, Vec<String>)> {
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let (typed, earlier) = (&before[start..], before[..start].split_whitespace().collect::<Vec<_>>());
    let words: Vec<String> = match earlier.first() {
        None => catalog::all_names().map(String::from).collect(),
        Some(verb) => match catalog::find(verb).map(|spec| spec.args) {
            _ if earlier.last() == Some(&"at") => {
                CrashPoint::ALL.iter().map(|p| p.name().to_string()).collect()
            }
            Some(Args::Nodes) => nodes.iter().cloned().chain(["leader".to_string()]).collect(),
            Some(Args::Words(words)) => words.iter().map(|w| w.to_string()).collect(),
            Some(Args::Commands) => catalog::all_names().map(String::from).collect(),
            Some(Args::Files) => return None,
            Some(Args::Free) | None => Vec::new(),
        },
    };
    let mut matching: Vec<String> = words.into_iter().filter(|w| w.starts_with(typed)).collect();
    matching.sort_unstable();
    matching.dedup();
    Some((start, matching))
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let nodes = self.shell.lock().unwrap_or_else(PoisonError::into_inner).node_words();
        match candidates(&line[..pos], &nodes) {
            None => self.files.complete(line, pos, ctx),
            Some((start, words)) => {
                let pairs =
                    words.into_iter().map(|w| Pair { replacement: format!("{w} "), display: w }).collect();
                Ok((start, pairs))
            }
        }
    }
}

impl Hinter for Helper {
    type Hint = String;

    /// After `name ` (the cursor at the end): the command's arguments.
    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        let name = line.strip_suffix(' ').filter(|name| pos == line.len() && !name.contains(' '))?;
        let usage = catalog::find(name)?.usage;
        (!usage.is_empty()).then(|| usage.to_string())
    }
}

impl Highlighter for Helper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(self.style.dim(hint))
    }
}

impl Validator for Helper {}

impl rustyline::Helper for Helper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(before: &str) -> Option<(usize, Vec<String>)> {
        candidates(before, &["1", "2", "3", "first"].map(String::from))
    }

    #[test]
    fn commands_nodes_and_words() {
        assert_eq!(complete("sta"), Some((0, vec!["status".to_string()])));
        assert_eq!(
            complete("disconnect 1 "),
            Some((13, ["1", "2", "3", "first", "leader"].map(String::from).to_vec()))
        );
        assert_eq!(complete("crash l"), Some((6, vec!["leader".to_string()])));
        assert_eq!(complete("crash f"), Some((6, vec!["first".to_string()])));
        assert_eq!(complete("auto o"), Some((5, vec!["off".to_string(), "on".to_string()])));
        assert_eq!(complete("crash 2 at before_s"), Some((11, vec!["before_send".to_string()])));
        assert_eq!(complete("help queue"), Some((5, vec!["queuelen".to_string()])));
        assert_eq!(complete("save te"), None, "file names");
        assert_eq!(complete("heal "), Some((5, Vec::new())));
    }
}
