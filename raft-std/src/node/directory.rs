//! [`Directory`]: the application's state machine plus a replicated table of node addresses.
//!
//! Adding a member commits its address through the log before the configuration change, so
//! every node, including ones that join later (through a snapshot), learns where every member
//! listens and can reach it when it campaigns or leads.
//!
//! Commands in the log are the application's bytes inside an [`Envelope`], and the snapshot is
//! the application's inside an [`Image`]; both carry a version tag (see `versioned.rs`).

use std::collections::BTreeMap;

use raft_core::{Bytes, Index, NodeId, RestoreError, StateMachine};
use serde::{Deserialize, Serialize};

use super::addresses::Addresses;
use super::versioned::{self, FormatError};

/// The log entry format this build writes and reads.
const ENVELOPE_VERSION: u8 = 1;
/// The snapshot format this build writes and reads.
const IMAGE_VERSION: u8 = 1;

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
    /// The entry's bytes, after its version tag.
    pub(super) fn encode(&self) -> Result<Bytes, postcard::Error> {
        versioned::encode(ENVELOPE_VERSION, self)
    }

    /// Reads an entry; another version or undecodable bytes are an error.
    pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, FormatError> {
        versioned::decode(ENVELOPE_VERSION, "log entry", bytes)
    }
}

/// The snapshot of a [`Directory`].
#[derive(Serialize, Deserialize)]
struct Image {
    addresses: BTreeMap<NodeId, String>,
    app: Bytes,
}

/// Wraps the application state machine `M`; passes replicated addresses on to `learned`.
pub(super) struct Directory<M> {
    app: M,
    addresses: BTreeMap<NodeId, String>,
    learned: Addresses,
}

impl<M> Directory<M> {
    pub(super) fn new(app: M, learned: Addresses) -> Self {
        Directory { app, addresses: BTreeMap::new(), learned }
    }

    fn learn(&mut self, id: NodeId, address: String) {
        if self.addresses.get(&id) != Some(&address) {
            tracing::info!(peer = id, %address, "learned a member's address");
            self.addresses.insert(id, address.clone());
        }
        self.learned.learn(id, address);
    }
}

impl<M: StateMachine> StateMachine for Directory<M> {
    fn apply(&mut self, index: Index, command: &[u8]) -> Bytes {
        match Envelope::decode(command) {
            Ok(Envelope::App(command)) => self.app.apply(index, &command),
            Ok(Envelope::Address { id, address }) => {
                self.learn(id, address);
                Bytes::new()
            }
            Err(error @ FormatError::UnknownVersion { .. }) => {
                // A newer raft-std on another node wrote it. This node cannot apply it, and
                // says so loudly: its state machine now lags the others.
                tracing::error!(index, %error, "cannot apply a log entry; upgrade this node");
                Bytes::new()
            }
            Err(error) => {
                // Only RaftNode proposes, so this is a foreign or corrupted entry. Ignoring it on
                // every node keeps the replicas identical.
                tracing::warn!(index, %error, "ignoring an undecodable command");
                Bytes::new()
            }
        }
    }

    fn query(&self, query: &[u8]) -> Bytes {
        self.app.query(query)
    }

    fn snapshot(&self) -> Bytes {
        let image = Image { addresses: self.addresses.clone(), app: self.app.snapshot() };
        // Fails only for types postcard cannot encode (sequences of unknown length); an empty
        // snapshot would then fail to restore, loudly, rather than be taken for a valid one.
        versioned::encode(IMAGE_VERSION, &image).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot encode the snapshot");
            Bytes::new()
        })
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let image: Image = versioned::decode(IMAGE_VERSION, "snapshot", snapshot)
            .map_err(|e| RestoreError(e.to_string()))?;
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
    fn addresses_are_passed_on_and_survive_snapshots() {
        let learned = Addresses::default();
        let mut directory = Directory::new(Vec::<Bytes>::new(), learned.clone());
        directory.apply(1, &Envelope::App(Bytes::from_static(b"x")).encode().unwrap());
        directory.apply(2, &Envelope::Address { id: 4, address: "127.0.0.1:7004".into() }.encode().unwrap());
        assert_eq!(learned.take().get(&4).map(String::as_str), Some("127.0.0.1:7004"));
        assert!(learned.take().is_empty(), "taken once");
        assert_eq!(directory.app, [Bytes::from_static(b"x")]);

        let other = Addresses::default();
        let mut restored = Directory::new(Vec::<Bytes>::new(), other.clone());
        restored.restore(&directory.snapshot()).unwrap();
        assert_eq!(restored.app, directory.app);
        assert_eq!(other.take().get(&4).map(String::as_str), Some("127.0.0.1:7004"));
        assert!(restored.restore(b"garbage").is_err());
    }

    #[test]
    fn entries_and_snapshots_of_another_version_are_refused() {
        let mut directory = Directory::new(Vec::<Bytes>::new(), Addresses::default());
        let mut entry = Envelope::App(Bytes::from_static(b"x")).encode().unwrap().to_vec();
        entry[0] = ENVELOPE_VERSION + 1;
        assert!(matches!(Envelope::decode(&entry), Err(FormatError::UnknownVersion { found: 2, .. })));
        directory.apply(1, &entry);
        assert!(directory.app.is_empty(), "an entry of an unknown version is not applied");

        let mut snapshot = directory.snapshot().to_vec();
        snapshot[0] = IMAGE_VERSION + 1;
        let error = directory.restore(&snapshot).unwrap_err();
        assert!(error.to_string().contains("snapshot format version 2 is not supported"), "{error}");
    }
}
