//! [`Style`]: ANSI colors when standard output is a terminal, plain text otherwise.

use std::io::IsTerminal;

use raft_core::Role;

/// Whether and how to color output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Plain text.
    pub fn plain() -> Self {
        Style { color: false }
    }

    /// Colors when standard output is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { color: std::io::stdout().is_terminal() && !no_color }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A role's name (padded to `width`), in the role's color: leaders green, candidates
    /// yellow.
    pub fn role(self, role: Role, width: usize) -> String {
        let text = format!("{:<width$}", role.to_string());
        match role {
            Role::Leader => self.paint("1;32", &text),
            Role::Candidate => self.paint("1;33", &text),
            Role::PreCandidate => self.paint("33", &text),
            Role::Follower => text,
        }
    }

    /// Something broken or lost (a crashed node, cut links), in red.
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Secondary text (times, headers), dimmed.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// An error message, in bold red.
    pub fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_escapes_and_pads_like_colors() {
        assert_eq!(Style::plain().role(Role::Leader, 8), "Leader  ");
        let colored = Style { color: true };
        assert_eq!(colored.role(Role::Leader, 8), "\x1b[1;32mLeader  \x1b[0m");
        assert_eq!(colored.role(Role::Follower, 0), "Follower");
        assert_eq!(Style::plain().bad("down"), "down");
    }
}
