//! One command → [`Input`]. The REPL's own commands — those that make no sense in a test:
//! `help`, `save`, `load`, `auto`, `seed`, `reset`, `quit` — are read here; every other
//! command is testkit's scenario language, read by its one parser ([`Session::parse`]).

use std::path::PathBuf;

use testkit::{closest, Command, Session};

use crate::catalog::{self, Spec};

/// One parsed command.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// `help [command]`
    Help(Option<String>),
    /// `auto on|off`
    Auto(bool),
    /// `seed n`
    Seed(u64),
    /// `reset [nodes]`
    Reset(Option<u64>),
    /// `save file`
    Save(PathBuf),
    /// `load file`
    Load(PathBuf),
    /// `quit`
    Quit,
    /// A command of testkit's scenario language.
    Scenario(Command),
}

/// `problem; usage: …`
fn usage(spec: &Spec, problem: impl std::fmt::Display) -> String {
    format!("{problem}; usage: {}", spec.usage_line())
}

/// Parses one command (without `;` or comments: see [`crate::scenario::line_commands`]);
/// nodes may be called by the names `session` knows.
pub fn parse(text: &str, session: &Session) -> Result<Input, String> {
    let text = text.trim();
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let Some(spec) = catalog::find(verb) else {
        return Err(match closest(verb, catalog::all_names()) {
            Some(name) => {
                format!("unknown command `{verb}`; did you mean `{name}`? (`help` lists every command)")
            }
            None => format!("unknown command `{verb}` (`help` lists every command)"),
        });
    };
    let rest = rest.trim();
    let words: Vec<&str> = rest.split_whitespace().collect();
    let number =
        |word: &str| word.parse::<u64>().map_err(|_| usage(spec, format!("`{word}` is not a number")));
    let path = || match rest {
        "" => Err(usage(spec, "missing file name")),
        path => Ok(PathBuf::from(path)),
    };
    Ok(match (spec.name, words.as_slice()) {
        ("help", []) => Input::Help(None),
        ("help", [name]) => Input::Help(Some(name.to_string())),
        ("auto", ["on"]) => Input::Auto(true),
        ("auto", ["off"]) => Input::Auto(false),
        ("auto", _) => return Err(usage(spec, "expected on or off")),
        ("seed", [seed]) => Input::Seed(number(seed)?),
        ("reset", []) => Input::Reset(None),
        ("reset", [nodes]) => Input::Reset(Some(number(nodes)?)),
        ("save", _) => Input::Save(path()?),
        ("load", _) => Input::Load(path()?),
        ("quit", []) => Input::Quit,
        ("help" | "seed" | "reset" | "quit", _) => {
            return Err(usage(spec, format!("unexpected arguments to `{}`", spec.name)))
        }
        _ => Input::Scenario(session.parse(text).map_err(|e| usage(spec, e.message))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::{NodeRef, StatusView};

    fn parsed(text: &str) -> Input {
        parse(text, &Session::new()).unwrap_or_else(|e| panic!("`{text}`: {e}"))
    }

    fn error(text: &str) -> String {
        parse(text, &Session::new()).expect_err(text)
    }

    #[test]
    fn the_repl_s_own_commands() {
        assert_eq!(parsed("help"), Input::Help(None));
        assert_eq!(parsed("? queuelen"), Input::Help(Some("queuelen".into())));
        assert_eq!(parsed("auto on"), Input::Auto(true));
        assert_eq!(parsed("seed 7"), Input::Seed(7));
        assert_eq!(parsed("reset"), Input::Reset(None));
        assert_eq!(parsed("reset 5"), Input::Reset(Some(5)));
        assert_eq!(parsed("save my test.rs"), Input::Save(PathBuf::from("my test.rs")));
        assert_eq!(parsed("exit"), Input::Quit);
    }

    #[test]
    fn every_other_command_is_the_scenario_language() {
        assert_eq!(
            parsed("diagnostics 2"),
            Input::Scenario(Command::Status(StatusView::Node(NodeRef::Id(2))))
        );
        assert!(matches!(parsed("partition 3 | 1,2"), Input::Scenario(Command::Partition(_))));
        assert!(matches!(parsed("expect 1 is leader"), Input::Scenario(Command::Expect(_))));
        let mut session = Session::new();
        session.run_line("addnode first").unwrap();
        assert_eq!(
            parse("crash first", &session),
            Ok(Input::Scenario(Command::Crash { node: NodeRef::Id(1), at: None }))
        );
    }

    #[test]
    fn mistakes_get_one_line_explanations() {
        assert_eq!(
            error("partiton 1 | 2"),
            "unknown command `partiton`; did you mean `partition`? (`help` lists every command)"
        );
        assert_eq!(
            error("sav x.rs").split(';').nth(1),
            Some(" did you mean `save`? (`help` lists every command)")
        );
        assert_eq!(error("frobnicate"), "unknown command `frobnicate` (`help` lists every command)");
        assert_eq!(error("disconnect 1"), "expected a node, found the end; usage: disconnect <a> <b>");
        assert_eq!(error("crash one"), "expected a node, found `one`; usage: crash <node> [at <point>]");
        assert_eq!(error("drop 150%"), "a rate is between 0% and 100% (or 0 and 1); usage: drop <rate>");
        assert_eq!(error("heal now"), "unexpected `now` after the end of the command; usage: heal");
        assert!(error("run soon").starts_with("expected a duration"));
        assert!(error("crash 1 at never").contains("unknown crash point"));
        assert!(error("auto maybe").contains("expected on or off"));
        for text in [
            "put x",
            "put x=1 2",
            "get",
            "pushpayload x",
            "partition 1 |",
            "delay",
            "delay 9-1ms",
            "addnode 0",
            "seed",
            "save",
        ] {
            assert!(error(text).contains("; usage: "), "{text}");
        }
    }
}
