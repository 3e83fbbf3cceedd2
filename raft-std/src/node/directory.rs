//! [`Directory`]: the application's state machine plus a replicated table of node addresses.
//!
//! Adding a member commits its address through the log before the configuration change, so
//! every node, including ones that join later (through a snapshot), learns where every member
//! listens and can reach it when it campaigns or leads.

use std::collections::BTreeMap;

use raft_core::{Bytes, Index, NodeId, RestoreError, StateMachine};
use serde::{Deserialize, Serialize};

use crate::transport::PeerBook;

/// postcard only fails on sequences of unknown length, and these types have none.
const INFALLIBLE: &str = "postcard encodes fixed-shape types into a Vec without error";

/// What a command in the log carries: an application command or a node's address.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Envelope {
    /// Handed to the application state machine.
    App(Bytes),
    /// Where node `id` listens.
    Address {
        /// The node.
        id: NodeId,
        /// Its `host:port`.
        address: String,
    },
}

impl Envelope {
    pub(super) fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect(INFALLIBLE))
    }
}

/// The snapshot of a [`Directory`].
#[derive(Serialize, Deserialize)]
struct Image {
    addresses: BTreeMap<NodeId, String>,
    app: Bytes,
}

/// Wraps the application state machine `M`; keeps `book` up to date with replicated addresses.
pub(super) struct Directory<M> {
    app: M,
    addresses: BTreeMap<NodeId, String>,
    book: PeerBook,
}

impl<M> Directory<M> {
    pub(super) fn new(app: M, book: PeerBook) -> Self {
        Directory { app, addresses: BTreeMap::new(), book }
    }

    fn learn(&mut self, id: NodeId, address: String) {
        if self.book.insert(id, address.clone()) {
            tracing::info!(peer = id, %address, "learned a member's address");
        }
        self.addresses.insert(id, address);
    }
}

impl<M: StateMachine> StateMachine for Directory<M> {
    fn apply(&mut self, index: Index, command: &[u8]) -> Bytes {
        match postcard::from_bytes::<Envelope>(command) {
            Ok(Envelope::App(command)) => self.app.apply(index, &command),
            Ok(Envelope::Address { id, address }) => {
                self.learn(id, address);
                Bytes::new()
            }
            Err(e) => {
                // Only RaftNode proposes, so this is a foreign or corrupted entry. Ignoring it on
                // every node keeps the replicas identical.
                tracing::warn!(index, error = %e, "ignoring an undecodable command");
                Bytes::new()
            }
        }
    }

    fn query(&self, query: &[u8]) -> Bytes {
        self.app.query(query)
    }

    fn snapshot(&self) -> Bytes {
        let image = Image { addresses: self.addresses.clone(), app: self.app.snapshot() };
        Bytes::from(postcard::to_allocvec(&image).expect(INFALLIBLE))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let image: Image = postcard::from_bytes(snapshot).map_err(|e| RestoreError(e.to_string()))?;
        self.app.restore(&image.app)?;
        self.addresses.clear();
        for (id, address) in image.addresses {
            self.learn(id, address);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_reach_the_book_and_survive_snapshots() {
        let book = PeerBook::new();
        let mut directory = Directory::new(Vec::<Bytes>::new(), book.clone());
        directory.apply(1, &Envelope::App(Bytes::from_static(b"x")).encode());
        directory.apply(2, &Envelope::Address { id: 4, address: "127.0.0.1:7004".into() }.encode());
        assert_eq!(book.get(4).as_deref(), Some("127.0.0.1:7004"));
        assert_eq!(directory.app, [Bytes::from_static(b"x")]);

        let other_book = PeerBook::new();
        let mut restored = Directory::new(Vec::<Bytes>::new(), other_book.clone());
        restored.restore(&directory.snapshot()).unwrap();
        assert_eq!(restored.app, directory.app);
        assert_eq!(other_book.get(4).as_deref(), Some("127.0.0.1:7004"));
        assert!(restored.restore(b"garbage").is_err());
    }
}
