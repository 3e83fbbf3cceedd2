//! The interactive REPL: a line editor with history and completion, and, while `auto` is
//! on, a thread that lets virtual time follow the wall clock as the prompt waits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};

use crate::helper::Helper;
use crate::shell::Shell;
use crate::style::Style;

const PROMPT: &str = "tuitest> ";

/// How often the `auto` thread lets time pass.
const PACE: Duration = Duration::from_millis(50);

fn lock(shell: &Mutex<Shell>) -> MutexGuard<'_, Shell> {
    shell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the command history is kept: `$HOME/.tuitest_history`.
fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".tuitest_history"))
}

/// Runs the REPL at the terminal until `quit` or Ctrl-D.
pub fn run_interactive(shell: Shell, style: Style) -> rustyline::Result<()> {
    let shell = Arc::new(Mutex::new(shell));
    let config = Config::builder().auto_add_history(true).completion_type(CompletionType::List).build();
    let mut editor: Editor<Helper, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(Helper::new(Arc::clone(&shell), style)));
    let history = history_file();
    if let Some(file) = &history {
        // The first session has no history yet.
        let _ = editor.load_history(file);
    }
    print!("{}", lock(&shell).banner());
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = {
        let (shell, stop, mut printer) =
            (Arc::clone(&shell), Arc::clone(&stop), editor.create_external_printer()?);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(PACE);
                let events = lock(&shell).catch_up(Instant::now());
                if !events.is_empty() && printer.print(events).is_err() {
                    break;
                }
            }
        })
    };
    let result = loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                let mut shell = lock(&shell);
                let reply = shell.execute(&line);
                print!("{}", reply.output); // before the `auto` thread prints what follows
                drop(shell);
                if reply.quit {
                    break Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => continue, // Ctrl-C drops the line, as in a shell
            Err(ReadlineError::Eof) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    stop.store(true, Ordering::Relaxed);
    // The thread only sleeps and takes the lock; it cannot panic, and ends within PACE.
    let _ = pacer.join();
    if let Some(file) = &history {
        if let Err(error) = editor.save_history(file) {
            eprintln!("tuitest: cannot save the history to {}: {error}", file.display());
        }
    }
    result
}
