//! `tuitest`: the REPL on a simulated raft-core cluster. See the crate README.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use testkit::ClusterOptions;
use tuitest::{run_interactive, run_lines, Settings, Shell, Style};

const USAGE: &str = "\
usage: tuitest [--nodes N] [--seed N] [--script FILE]

A REPL on a simulated raft-core cluster in virtual time (default: 3 nodes, seed 0; a
session that begins with `addnode` builds its cluster node by node instead, and so does
--nodes 0). At a terminal it is interactive (`help` lists the commands); with a pipe or a
file on standard input it runs one line after another. --script FILE runs the commands of
FILE and exits. The exit status is 1 if a command failed.";

/// What the command line asked for.
struct Options {
    /// How many nodes, if told.
    nodes: Option<u64>,
    seed: u64,
    script: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options { nodes: None, seed: 0, script: None };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number =
            |text: String, name: &str| text.parse().map_err(|_| format!("{name}: `{text}` is not a number"));
        match arg.as_str() {
            "--nodes" => options.nodes = Some(number(value("--nodes")?, "--nodes")?),
            "--seed" => options.seed = number(value("--seed")?, "--seed")?,
            "--script" => options.script = Some(PathBuf::from(value("--script")?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("tuitest: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let interactive = options.script.is_none() && io::stdin().is_terminal() && io::stdout().is_terminal();
    let style = Style::detect();
    let settings = Settings { style, realtime: interactive };
    let shell = match options.nodes {
        Some(nodes) => {
            Shell::new(ClusterOptions { seed: options.seed, ..ClusterOptions::new(1..=nodes) }, settings)
        }
        None => Shell::with_default_cluster(options.seed, settings),
    };
    let mut shell = match shell {
        Ok(shell) => shell,
        Err(error) => {
            eprintln!("tuitest: {error}");
            return ExitCode::FAILURE;
        }
    };
    let failures = if let Some(script) = options.script {
        let reply = shell.load(&script);
        print!("{}", reply.output);
        reply.failures
    } else if interactive {
        if let Err(error) = run_interactive(shell, style) {
            eprintln!("tuitest: {error}");
            return ExitCode::FAILURE;
        }
        0
    } else {
        match run_lines(&mut shell, io::stdin().lock(), io::stdout().lock()) {
            Ok(failures) => failures,
            Err(error) => {
                eprintln!("tuitest: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments() {
        let options = parse(&["--seed", "7", "--nodes", "5", "--script", "s.txt"]).unwrap();
        assert_eq!((options.nodes, options.seed, options.script), (Some(5), 7, Some(PathBuf::from("s.txt"))));
        let defaults = parse(&[]).unwrap();
        assert_eq!((defaults.nodes, defaults.seed, defaults.script), (None, 0, None));
        assert_eq!(parse(&["--seed"]).err().unwrap(), "--seed needs a value");
        assert_eq!(parse(&["--nodes", "x"]).err().unwrap(), "--nodes: `x` is not a number");
        assert_eq!(parse(&["--nodes", "0"]).unwrap().nodes, Some(0), "a cluster built node by node");
        assert_eq!(parse(&["-v"]).err().unwrap(), "unknown argument `-v`");
    }
}
