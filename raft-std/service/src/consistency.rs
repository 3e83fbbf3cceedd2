//! How fresh a read must be: the `?consistency=` query parameter every service's reads take.

use raft_core::Bytes;
use raft_std::{RaftNode, RequestError};
use serde::Deserialize;

/// `linearizable` (the default) or `stale`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Reflects every write acknowledged before the read (confirmed with the leader).
    #[default]
    Linearizable,
    /// This node's current state: no round trip, may be behind.
    Stale,
}

impl Consistency {
    /// Answers `query` from `node`'s state machine, this fresh.
    pub async fn read(self, node: &RaftNode, query: Bytes) -> Result<Bytes, RequestError> {
        match self {
            Consistency::Linearizable => node.read(query).await,
            Consistency::Stale => node.read_local(&query).await,
        }
    }
}

/// The query string of a read: `consistency`, and nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    #[serde(default)]
    pub consistency: Consistency,
}
