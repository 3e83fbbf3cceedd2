//! [`SimError`]: why a simulator operation, a command or a scenario step failed.

use std::fmt;

use crate::parse::ParseError;
use crate::rule::Violation;

/// Why a simulator operation, a command or a scenario step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The run broke a safety rule: a bug in the protocol (or an inconsistent scenario setup).
    Violation(Violation),
    /// An `expect` command did not hold.
    Expectation(String),
    /// The request cannot run in the cluster's current state (unknown node, node down …).
    Invalid(String),
    /// A command line could not be parsed.
    Parse(ParseError),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Violation(v) => v.fmt(f),
            SimError::Expectation(e) => write!(f, "expectation failed: {e}"),
            SimError::Invalid(e) => write!(f, "cannot run this command: {e}"),
            SimError::Parse(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SimError {}

impl From<Violation> for SimError {
    fn from(v: Violation) -> Self {
        SimError::Violation(v)
    }
}

impl From<ParseError> for SimError {
    fn from(e: ParseError) -> Self {
        SimError::Parse(e)
    }
}

/// Shorthand for `Err(SimError::Invalid(..))`.
pub(crate) fn invalid<T>(message: impl Into<String>) -> Result<T, SimError> {
    Err(SimError::Invalid(message.into()))
}
