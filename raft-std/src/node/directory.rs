//! [`Directory`]: the application's state machine plus a replicated table of node addresses.
//!
//! Adding a member commits its address through the log before the configuration change, so
//! every node, including ones that join later (through a snapshot), learns where every member
//! listens and can reach it when it campaigns or leads.
//!
//! Commands in the log are the application's bytes inside an [`DirectoryCommand`], and the snapshot is
//! the application's inside an [`Image`]; both carry a version tag (see `versioned.rs`).

use std::collections::BTreeMap;
use std::fmt;

use raft_core::{
    Bytes, Entry, NodeId, Payload, SnapshotAborted, SnapshotMeta, SnapshotReader, SnapshotWriter,
    StateMachine,
};
use serde::{Deserialize, Serialize};

use super::addresses::Addresses;
use super::versioned::{self, FormatError};

/// The log entry format this build writes and reads.
const COMMAND_VERSION: u8 = 1;
/// The snapshot format this build writes and reads.
const IMAGE_VERSION: u8 = 1;

/// What a command in the log carries: an application command or a node's address.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum DirectoryCommand {
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

/// An [`DirectoryCommand`] read in place, borrowing from the entry's bytes (the same encoding).
#[derive(Debug, Deserialize)]
pub(super) enum DirectoryCommandRef<'a> {
    /// See [`DirectoryCommand::App`].
    App(&'a [u8]),
    /// See [`DirectoryCommand::Address`].
    Address {
        /// The node.
        id: NodeId,
        /// Its `host:port`.
        address: &'a str,
    },
}

impl DirectoryCommand {
    /// The entry's bytes, after its version tag.
    pub(super) fn encode(&self) -> Result<Bytes, postcard::Error> {
        versioned::encode(COMMAND_VERSION, self)
    }

    /// Reads an entry; another version or undecodable bytes are an error.
    pub(super) fn decode(bytes: &[u8]) -> Result<DirectoryCommand, FormatError> {
        versioned::decode(COMMAND_VERSION, "log entry", bytes)
    }

    /// Reads an entry without copying it; fails where [`decode`](DirectoryCommand::decode) fails.
    pub(super) fn view(bytes: &[u8]) -> Result<DirectoryCommandRef<'_>, FormatError> {
        versioned::decode(COMMAND_VERSION, "log entry", bytes)
    }
}

/// Why a [`Directory`] stopped the node.
#[derive(Debug)]
pub(crate) enum DirectoryError<E> {
    /// The application's state machine failed.
    App(E),
    /// A log entry or snapshot of a format this build cannot read.
    Format(FormatError),
    /// The snapshot's storage failed (the node reports the storage error itself).
    Aborted,
}

impl<E: fmt::Display> fmt::Display for DirectoryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::App(e) => e.fmt(f),
            DirectoryError::Format(e) => e.fmt(f),
            DirectoryError::Aborted => SnapshotAborted.fmt(f),
        }
    }
}

impl<E> From<SnapshotAborted> for DirectoryError<E> {
    fn from(_: SnapshotAborted) -> Self {
        DirectoryError::Aborted
    }
}

/// Wraps the application state machine `M`; passes replicated addresses on to `learned`.
///
/// Its snapshot is a version tag, the address table (a little-endian `u32` length, then
/// postcard), and then the application's own snapshot, streamed through.
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
    type Error = DirectoryError<M::Error>;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, Self::Error> {
        let Payload::Command(command) = &entry.payload else {
            return self.app.apply(entry).await.map_err(DirectoryError::App);
        };
        match DirectoryCommand::decode(command) {
            Ok(DirectoryCommand::App(command)) => {
                let entry =
                    Entry { term: entry.term, index: entry.index, payload: Payload::Command(command.into()) };
                self.app.apply(&entry).await.map_err(DirectoryError::App)
            }
            Ok(DirectoryCommand::Address { id, address }) => {
                self.learn(id, address);
                Ok(Bytes::new())
            }
            // A newer raft-std on another node wrote it. This node cannot apply it and must not
            // go on as if it had: it stops, saying to upgrade.
            Err(error @ FormatError::UnknownVersion { .. }) => Err(DirectoryError::Format(error)),
            Err(error) => {
                // The right version but undecodable: a corrupted or foreign entry, which every
                // node ignores alike, so the replicas stay identical.
                tracing::warn!(index = entry.index, %error, "ignoring an undecodable command");
                Ok(Bytes::new())
            }
        }
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, Self::Error> {
        self.app.query(query).await.map_err(DirectoryError::App)
    }

    async fn build_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), Self::Error> {
        let table = versioned::encode(IMAGE_VERSION, &self.addresses).map_err(|e| {
            DirectoryError::Format(FormatError::Malformed { what: "address table", reason: e.to_string() })
        })?;
        let len = u32::try_from(table.len()).map_err(|_| {
            DirectoryError::Format(FormatError::Malformed {
                what: "address table",
                reason: "over 4 GiB".into(),
            })
        })?;
        out.write(&len.to_le_bytes()).await?;
        out.write(&table).await?;
        self.app.build_snapshot(meta, out).await.map_err(DirectoryError::App)
    }

    async fn restore(
        &mut self,
        meta: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), Self::Error> {
        let mut rest = Prefixed { front: Vec::new(), inner: from };
        let truncated = || FormatError::Malformed { what: "snapshot", reason: "it ends early".into() };
        let len = rest.take(4).await?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| DirectoryError::Format(truncated()))?);
        let table = rest.take(len as usize).await?;
        if table.len() != len as usize {
            return Err(DirectoryError::Format(truncated()));
        }
        let addresses: BTreeMap<NodeId, String> =
            versioned::decode(IMAGE_VERSION, "snapshot", &table).map_err(DirectoryError::Format)?;
        self.app.restore(meta, &mut rest).await.map_err(DirectoryError::App)?;
        self.addresses.clear();
        for (id, address) in addresses {
            self.learn(id, address);
        }
        Ok(())
    }
}

/// A snapshot stream with some bytes already read off its front and kept for the next read.
struct Prefixed<'a, R> {
    front: Vec<u8>,
    inner: &'a mut R,
}

impl<R: SnapshotReader> Prefixed<'_, R> {
    /// Reads exactly `len` bytes (fewer only where the stream ends).
    async fn take(&mut self, len: usize) -> Result<Vec<u8>, SnapshotAborted> {
        while self.front.len() < len {
            match self.inner.read().await? {
                Some(chunk) => self.front.extend_from_slice(&chunk),
                None => break,
            }
        }
        let rest = self.front.split_off(len.min(self.front.len()));
        Ok(std::mem::replace(&mut self.front, rest))
    }
}

impl<R: SnapshotReader> SnapshotReader for Prefixed<'_, R> {
    async fn read(&mut self) -> Result<Option<Bytes>, SnapshotAborted> {
        if self.front.is_empty() {
            return self.inner.read().await;
        }
        Ok(Some(Bytes::from(std::mem::take(&mut self.front))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Index, LogId, Membership};
    use std::collections::VecDeque;

    fn command(index: Index, bytes: Bytes) -> Entry {
        Entry { term: 1, index, payload: Payload::Command(bytes.into()) }
    }

    /// Streams a snapshot back in chunks of three bytes, to cross the table's boundary.
    fn chunks(bytes: &[u8]) -> VecDeque<Bytes> {
        bytes.chunks(3).map(Bytes::copy_from_slice).collect()
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta { last: LogId::new(1, 2), membership: Membership::new([1]) }
    }

    #[tokio::test]
    async fn addresses_are_passed_on_and_survive_snapshots() {
        let learned = Addresses::default();
        let mut directory = Directory::new(Vec::<Bytes>::new(), learned.clone());
        let app = DirectoryCommand::App(Bytes::from_static(b"x")).encode().unwrap();
        directory.apply(&command(1, app)).await.unwrap();
        let address = DirectoryCommand::Address { id: 4, address: "127.0.0.1:7004".into() }.encode().unwrap();
        directory.apply(&command(2, address)).await.unwrap();
        assert_eq!(learned.take().get(&4).map(String::as_str), Some("127.0.0.1:7004"));
        assert!(learned.take().is_empty(), "taken once");
        let address = DirectoryCommand::Address { id: 4, address: "127.0.0.1:7004".into() }.encode().unwrap();
        assert!(matches!(
            DirectoryCommand::view(&address),
            Ok(DirectoryCommandRef::Address { id: 4, address: "127.0.0.1:7004" })
        ));
        let app = DirectoryCommand::App(Bytes::from_static(b"x")).encode().unwrap();
        assert!(matches!(DirectoryCommand::view(&app), Ok(DirectoryCommandRef::App(b"x"))));
        assert_eq!(directory.app, [Bytes::from_static(b"x")]);

        let mut image = Vec::new();
        directory.build_snapshot(&meta(), &mut image).await.unwrap();
        let other = Addresses::default();
        let mut restored = Directory::new(Vec::<Bytes>::new(), other.clone());
        restored.restore(&meta(), &mut chunks(&image)).await.unwrap();
        assert_eq!(restored.app, directory.app);
        assert_eq!(other.take().get(&4).map(String::as_str), Some("127.0.0.1:7004"));
        assert!(restored.restore(&meta(), &mut chunks(b"garbage")).await.is_err());
    }

    #[tokio::test]
    async fn entries_and_snapshots_of_another_version_are_refused() {
        let mut directory = Directory::new(Vec::<Bytes>::new(), Addresses::default());
        let mut entry = DirectoryCommand::App(Bytes::from_static(b"x")).encode().unwrap().to_vec();
        entry[0] = COMMAND_VERSION + 1;
        let error = directory.apply(&command(1, Bytes::from(entry))).await.unwrap_err();
        assert!(error.to_string().contains("log entry format version 2 is not supported"), "{error}");
        assert!(directory.app.is_empty(), "an entry of an unknown version is not applied");

        let mut image = Vec::new();
        directory.build_snapshot(&meta(), &mut image).await.unwrap();
        image[4] = IMAGE_VERSION + 1;
        let error = directory.restore(&meta(), &mut chunks(&image)).await.unwrap_err();
        assert!(error.to_string().contains("snapshot format version 2 is not supported"), "{error}");
    }
}
