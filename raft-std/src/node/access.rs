//! [`Authorizer`]: the application's say, on the leader, over each request before it enters
//! the log — with the identity of the client who made it, carried from the node the client
//! called ([`RaftNode::with_caller`](crate::RaftNode::with_caller)).
//!
//! raft-std does not know users or roles: the caller is an opaque name the application gives
//! (a client certificate's subject, a user name), and the application decides. Without an
//! authorizer every request is carried out, as before.

use std::fmt;
use std::sync::Arc;

use raft_core::{MembershipChange, NodeId};

use super::directory::{DirectoryCommand, DirectoryCommandRef};
use super::wire::{Failure, Request};

/// A request the leader is about to carry out, as an [`Authorizer`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Access<'a> {
    /// What the request does.
    pub action: Action<'a>,
    /// Who asked: what the application attached to the handle the request was made on
    /// ([`RaftNode::with_caller`](crate::RaftNode::with_caller)), on whichever node that was;
    /// `None` for a handle without a caller.
    pub caller: Option<&'a str>,
    /// The member that forwarded the request to this leader (authenticated by the transport),
    /// or `None` when the client called the leader itself.
    pub via: Option<NodeId>,
}

/// What a request does, for an [`Authorizer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Action<'a> {
    /// Replicate an application command ([`RaftNode::propose`](crate::RaftNode::propose)).
    Propose(&'a [u8]),
    /// Record, in the log, where node `id` listens for its peers: every node will dial it
    /// there. The first step of [`add_learner`](crate::RaftNode::add_learner) and
    /// [`add_member`](crate::RaftNode::add_member).
    RecordAddress {
        /// The node.
        id: NodeId,
        /// Its `host:port`.
        address: &'a str,
    },
    /// Change the configuration (add a learner, promote, remove, replace the voters).
    ChangeMembership(&'a MembershipChange),
    /// Hand leadership to this voter.
    TransferLeadership(NodeId),
}

/// The application's decision on each write, membership change and leadership transfer,
/// made on the leader just before it enters the log: `Ok(())` carries it out, `Err(reason)`
/// fails it with [`RequestError::Denied`](crate::RequestError::Denied) (nothing is applied).
/// Set it in [`NodeConfig::authorizer`](crate::NodeConfig::authorizer), the same on every
/// node (any of them may lead). Reads and status are not shown to it: they change nothing and
/// are answered by the node the client called, which checks its own clients.
///
/// It runs on the node's task: keep it quick, and never block in it.
///
/// ```
/// use raft_std::{Action, Authorizer, NodeConfig};
///
/// let mut config = NodeConfig::new(1);
/// config.authorizer = Some(Authorizer::new(|access| match (&access.action, access.caller) {
///     (Action::Propose(_), _) => Ok(()),
///     (_, Some("admin")) => Ok(()),
///     _ => Err("membership and leadership are for admins".into()),
/// }));
/// ```
#[derive(Clone)]
pub struct Authorizer(Arc<Decide>);

/// What an [`Authorizer`] asks.
type Decide = dyn Fn(&Access<'_>) -> Result<(), String> + Send + Sync;

impl Authorizer {
    /// An authorizer that asks `decide`.
    pub fn new(decide: impl Fn(&Access<'_>) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Authorizer(Arc::new(decide))
    }

    /// Asks the authorizer about `access`, as the leader does (to test an application's rules).
    pub fn check(&self, access: &Access<'_>) -> Result<(), String> {
        (self.0)(access)
    }
}

impl<'a> Access<'a> {
    /// A request doing `action` for `caller`, forwarded by `via` (to test an [`Authorizer`]).
    pub fn new(action: Action<'a>, caller: Option<&'a str>, via: Option<NodeId>) -> Self {
        Access { action, caller, via }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorizer")
    }
}

/// Checks `request` before the leader carries it out: that a forwarded one is something a
/// member forwards, and well formed (a command the log could not apply would stop every
/// node); then, with an authorizer, that the application allows it.
pub(super) fn check(
    authorizer: Option<&Authorizer>,
    request: &Request,
    caller: Option<&str>,
    via: Option<NodeId>,
) -> Result<(), Failure> {
    if authorizer.is_none() && via.is_none() {
        return Ok(()); // this node's own client, through this node's own encoding
    }
    let action = match request {
        Request::Propose(command) => match DirectoryCommand::view(command) {
            Ok(DirectoryCommandRef::App(command)) => Action::Propose(command),
            Ok(DirectoryCommandRef::Address { id, address }) => Action::RecordAddress { id, address },
            Err(error) => return Err(Failure::Invalid(format!("the command cannot enter the log: {error}"))),
        },
        Request::ChangeMembership(change) => Action::ChangeMembership(change),
        Request::TransferLeadership(to) => Action::TransferLeadership(*to),
        Request::LeaderDiagnostics => return Ok(()),
        Request::Read(_) if via.is_some() => {
            return Err(Failure::Invalid("reads are served where they are made, never forwarded".into()))
        }
        Request::Read(_) => return Ok(()),
    };
    match authorizer {
        Some(Authorizer(decide)) => decide(&Access { action, caller, via }).map_err(Failure::Denied),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use raft_core::Bytes;

    use super::*;

    fn propose(command: &DirectoryCommand) -> Request {
        Request::Propose(command.encode().unwrap())
    }

    #[test]
    fn forwarded_requests_are_checked_and_shown_with_their_caller() {
        let address = propose(&DirectoryCommand::Address { id: 2, address: "evil:1".into() });
        let write = propose(&DirectoryCommand::App(Bytes::from_static(b"x")));
        // Without an authorizer, this node's own clients are not checked; forwards are.
        assert!(check(None, &write, None, None).is_ok());
        assert!(check(None, &address, None, Some(3)).is_ok());
        let invalid =
            |request: &Request| matches!(check(None, request, None, Some(3)), Err(Failure::Invalid(_)));
        assert!(invalid(&Request::Read(Bytes::new())), "reads are never forwarded");
        assert!(invalid(&Request::Propose(Bytes::from_static(b"\x01garbage"))));
        assert!(
            invalid(&Request::Propose(Bytes::from_static(b"\x09future"))),
            "a version the log cannot apply"
        );
        assert!(check(None, &Request::LeaderDiagnostics, None, Some(3)).is_ok());

        let seen = Mutex::new(Vec::new());
        let seen = std::sync::Arc::new(seen);
        let record = std::sync::Arc::clone(&seen);
        let authorizer = Authorizer::new(move |access| {
            record.lock().unwrap().push(format!("{:?} {:?} {:?}", access.action, access.caller, access.via));
            match (&access.action, access.caller) {
                (Action::Propose(_), _) | (_, Some("admin")) => Ok(()),
                _ => Err("admins only".into()),
            }
        });
        let denied = check(Some(&authorizer), &address, Some("mallory"), Some(3));
        assert!(matches!(denied, Err(Failure::Denied(ref reason)) if reason == "admins only"));
        assert!(check(Some(&authorizer), &address, Some("admin"), Some(3)).is_ok());
        assert!(check(Some(&authorizer), &write, None, None).is_ok());
        let transfer = check(Some(&authorizer), &Request::TransferLeadership(2), None, None);
        assert!(matches!(transfer, Err(Failure::Denied(_))));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], r#"RecordAddress { id: 2, address: "evil:1" } Some("mallory") Some(3)"#);
        assert_eq!(seen.len(), 4);
    }
}
