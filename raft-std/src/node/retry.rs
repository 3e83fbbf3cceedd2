//! Which failed attempts a [`RaftNode`](crate::RaftNode) retries before its deadline.
//!
//! Only failures that prove the request was **not** applied are retried: no leader, a leader
//! that refused it, an entry a newer leader replaced, a forward that could not be queued.
//! Anything that might have taken effect is returned to the caller.

use std::time::Duration;

use raft_core::{MembershipError, ProposeError, ReadError, TransferError};

use super::error::RequestError;
use super::wire::{Failure, Outcome, Response};

/// First pause between attempts; doubles up to [`MAX_PAUSE`].
pub(super) const MIN_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between attempts.
pub(super) const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What to do after an attempt.
pub(super) enum Next {
    /// Return this to the caller.
    Done(Result<Response, RequestError>),
    /// Try again after a pause; return this if the deadline comes first.
    Retry(RequestError),
}

/// Decides whether an attempt's outcome is final.
pub(super) fn after(outcome: Outcome) -> Next {
    let failure = match outcome {
        Ok(response) => return Next::Done(Ok(response)),
        Err(failure) => failure,
    };
    match failure {
        Failure::Propose(ProposeError::NotLeader { leader } | ProposeError::Superseded { leader })
        | Failure::Read(ReadError::NotLeader { leader } | ReadError::LeadershipLost { leader })
        | Failure::Membership(MembershipError::NotLeader { leader })
        | Failure::Transfer(TransferError::NotLeader { leader })
        | Failure::NotLeader { leader } => Next::Retry(RequestError::NotLeader { leader }),
        Failure::Undelivered { leader } => Next::Retry(RequestError::NotLeader { leader: Some(leader) }),
        Failure::Propose(ProposeError::TransferInProgress) | Failure::Read(ReadError::Timeout) => {
            Next::Retry(RequestError::NotLeader { leader: None })
        }
        Failure::Propose(
            error @ (ProposeError::ResponseLost { .. } | ProposeError::OutcomeUnknown { .. }),
        ) => Next::Done(Err(RequestError::Proposal(error))),
        Failure::Membership(MembershipError::ChangeInProgress) => {
            Next::Retry(RequestError::Membership(MembershipError::ChangeInProgress))
        }
        Failure::Membership(error) => Next::Done(Err(RequestError::Membership(error))),
        Failure::Denied(reason) => Next::Done(Err(RequestError::Denied(reason))),
        Failure::Invalid(reason) => Next::Done(Err(RequestError::Protocol(reason))),
        Failure::Transfer(error) => Next::Done(Err(RequestError::Transfer(error))),
        Failure::Propose(error) => {
            Next::Done(Err(RequestError::Protocol(format!("unknown proposal failure {error:?}"))))
        }
        Failure::Read(error) => {
            Next::Done(Err(RequestError::Protocol(format!("unknown read failure {error:?}"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_prove_nothing_happened_are_retried() {
        let retried = |failure| matches!(after(Err(failure)), Next::Retry(_));
        assert!(retried(Failure::Propose(ProposeError::NotLeader { leader: Some(2) })));
        assert!(retried(Failure::Propose(ProposeError::Superseded { leader: None })));
        assert!(retried(Failure::Read(ReadError::LeadershipLost { leader: None })));
        assert!(retried(Failure::Undelivered { leader: 3 }));
        assert!(retried(Failure::NotLeader { leader: None }));
        assert!(retried(Failure::Membership(MembershipError::ChangeInProgress)));
        assert!(!retried(Failure::Membership(MembershipError::LeadershipLost { leader: None })));
        assert!(!retried(Failure::Transfer(TransferError::TimedOut)));
        assert!(retried(Failure::Read(ReadError::Timeout)), "reads are always safe to repeat");
        assert!(!retried(Failure::Propose(ProposeError::OutcomeUnknown { index: 4 })));
        assert!(!retried(Failure::Propose(ProposeError::ResponseLost { index: 4 })));
        assert!(!retried(Failure::Denied("no".into())) && !retried(Failure::Invalid("no".into())));
    }
}
