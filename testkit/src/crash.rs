//! [`CrashPoint`]: where inside the handling of a `Ready` a crash lands.

use std::fmt;
use std::str::FromStr;

/// Where, while a node carries out a [`Ready`](raft_core::Ready), an armed crash lands.
///
/// The Ready is carried out in its documented order — save the hard state, install a
/// snapshot, write the log, send, apply — and a crash can fall between any two steps. An
/// armed crash waits for the first Ready with work at its point: something to persist
/// (`BeforePersist`), a hard state (`AfterHardState`), a snapshot to install
/// (`AfterSnapshot`), messages (`BeforeSend`, `AfterSend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// Before anything of the Ready is durable.
    BeforePersist,
    /// The hard state is durable; the snapshot and the log write are not.
    AfterHardState,
    /// Hard state and snapshot are durable; the log write is not.
    AfterSnapshot,
    /// Everything is durable; no message has left.
    BeforeSend,
    /// The messages left; nothing was applied or answered.
    AfterSend,
}

impl CrashPoint {
    /// Every crash point, in the order a Ready passes them.
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::BeforePersist,
        CrashPoint::AfterHardState,
        CrashPoint::AfterSnapshot,
        CrashPoint::BeforeSend,
        CrashPoint::AfterSend,
    ];

    /// The name used in commands ("before_persist" …).
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforePersist => "before_persist",
            CrashPoint::AfterHardState => "after_hard_state",
            CrashPoint::AfterSnapshot => "after_snapshot",
            CrashPoint::BeforeSend => "before_send",
            CrashPoint::AfterSend => "after_send",
        }
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CrashPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
            format!("unknown crash point `{s}`; expected one of {}", names.join(", "))
        })
    }
}
