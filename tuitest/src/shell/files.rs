//! Files: `save` writes the session as a test, `load` runs the commands of a file.

use std::fs;
use std::path::Path;

use super::{Flow, Reply, Shell};
use crate::scenario::{file_commands, render, test_name};

/// How deeply `load`s may nest (a file that loads itself stops there).
const MAX_NESTED_LOADS: usize = 8;

impl Shell {
    /// Writes the session so far as a `seq_test!` test.
    pub(super) fn save(&mut self, path: &Path) -> Result<(), String> {
        let name = test_name(path);
        let text = render(&name, &self.recording, &self.session);
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let commands = self.recording.len() + 1;
        self.say(format!("saved {commands} commands to {} as the test `{name}`", path.display()));
        self.say(run_hint(path));
        Ok(())
    }

    /// Runs every command of the file at `path`, echoing each (`> command`), even after one
    /// fails; fails if any did.
    pub(super) fn load_file(&mut self, path: &Path) -> Result<Flow, String> {
        if self.loading == MAX_NESTED_LOADS {
            return Err(format!(
                "{} loads inside each other; is a file loading itself?",
                MAX_NESTED_LOADS + 1
            ));
        }
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let commands = file_commands(&text);
        let mut reply = Reply::default();
        self.loading += 1;
        for (location, command) in &commands {
            self.say(self.settings.style.dim(&format!("> {command}")));
            let location = format!("{}, {location}", path.display());
            self.perform(|shell| shell.command(command), Some(&location), &mut reply);
            if reply.quit {
                break;
            }
        }
        self.loading -= 1;
        match reply.failures {
            0 if reply.quit => Ok(Flow::Quit),
            0 => Ok(Flow::Continue),
            failed => {
                Err(format!("{failed} of the {} commands in {} failed", commands.len(), path.display()))
            }
        }
    }
}

/// How to run a test saved at `path`: with `cargo test -p CRATE --test NAME` when it is in
/// a crate's `tests/` directory.
fn run_hint(path: &Path) -> String {
    let target = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let tests = full.parent().filter(|dir| dir.file_name().is_some_and(|name| name == "tests"));
    match tests.and_then(Path::parent).filter(|krate| krate.join("Cargo.toml").is_file()) {
        Some(krate) => {
            let name = krate.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            format!("run it: cargo test -p {name} --test {target}")
        }
        None => format!(
            "to run it, put it in a crate's tests/ directory (with testkit as a dependency) and run \
             `cargo test --test {target}`"
        ),
    }
}
