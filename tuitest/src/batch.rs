//! Commands read line by line from a pipe or a file: no banner, no prompt, no echo.

use std::io::{self, BufRead, Write};

use crate::shell::Shell;

/// Runs each line of `input` (until `quit` or the end), writing what it prints to `output`.
/// Returns how many commands failed.
pub fn run_lines(shell: &mut Shell, input: impl BufRead, mut output: impl Write) -> io::Result<usize> {
    let mut failures = 0;
    for line in input.lines() {
        let reply = shell.execute(&line?);
        output.write_all(reply.output.as_bytes())?;
        output.flush()?;
        failures += reply.failures;
        if reply.quit {
            break;
        }
    }
    Ok(failures)
}
