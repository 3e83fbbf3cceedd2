//! [`Directory`]: the application's state machine plus a replicated table of node addresses.
//!
//! Adding a member commits its address through the log before the configuration change, so
//! every node, including ones that join later (through a snapshot), learns where every member
//! listens and can reach it when it campaigns or leads.

use std::collections::BTreeMap;
use std::fmt;

use raft_core::{
    Bytes, Entry, NodeId, Payload, SnapshotAborted, SnapshotMeta, SnapshotReader, SnapshotWriter,
    StateMachine,
};
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

/// Why a [`Directory`] failed.
#[derive(Debug)]
pub(crate) enum DirectoryError<E> {
    /// The application's state machine failed.
    App(E),
    /// A snapshot's address table does not decode.
    Image(String),
    /// The snapshot's storage failed (reported by the node itself).
    Aborted,
}

impl<E: fmt::Display> fmt::Display for DirectoryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::App(e) => e.fmt(f),
            DirectoryError::Image(e) => write!(f, "the snapshot's address table does not decode: {e}"),
            DirectoryError::Aborted => SnapshotAborted.fmt(f),
        }
    }
}

impl<E> From<SnapshotAborted> for DirectoryError<E> {
    fn from(_: SnapshotAborted) -> Self {
        DirectoryError::Aborted
    }
}

/// Wraps the application state machine `M`; keeps `book` up to date with replicated addresses.
///
/// Its snapshot is the address table (a little-endian `u32` length, then postcard), followed
/// by the application's own snapshot, streamed through.
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
    type Error = DirectoryError<M::Error>;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, Self::Error> {
        let Payload::Command(command) = &entry.payload else {
            return self.app.apply(entry).await.map_err(DirectoryError::App);
        };
        match postcard::from_bytes::<Envelope>(command) {
            Ok(Envelope::App(command)) => {
                let entry =
                    Entry { term: entry.term, index: entry.index, payload: Payload::Command(command) };
                self.app.apply(&entry).await.map_err(DirectoryError::App)
            }
            Ok(Envelope::Address { id, address }) => {
                self.learn(id, address);
                Ok(Bytes::new())
            }
            Err(e) => {
                // Only RaftNode proposes, so this is a foreign or corrupted entry. Ignoring it on
                // every node keeps the replicas identical.
                tracing::warn!(index = entry.index, error = %e, "ignoring an undecodable command");
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
        let table = postcard::to_allocvec(&self.addresses).expect(INFALLIBLE);
        let len = u32::try_from(table.len())
            .map_err(|_| DirectoryError::Image("address table over 4 GiB".into()))?;
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
        let len = rest.take(4).await?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| DirectoryError::Image("truncated".into()))?);
        let table = rest.take(len as usize).await?;
        let addresses: BTreeMap<NodeId, String> =
            postcard::from_bytes(&table).map_err(|e| DirectoryError::Image(e.to_string()))?;
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

    fn command(index: Index, envelope: Envelope) -> Entry {
        Entry { term: 1, index, payload: Payload::Command(envelope.encode()) }
    }

    /// Collects a snapshot.
    struct Collect(Vec<u8>);

    impl SnapshotWriter for Collect {
        async fn write(&mut self, chunk: &[u8]) -> Result<(), SnapshotAborted> {
            self.0.extend_from_slice(chunk);
            Ok(())
        }
    }

    /// Streams a snapshot back in chunks of three bytes, to cross the table's boundary.
    struct Chunks(VecDeque<Bytes>);

    impl SnapshotReader for Chunks {
        async fn read(&mut self) -> Result<Option<Bytes>, SnapshotAborted> {
            Ok(self.0.pop_front())
        }
    }

    #[tokio::test]
    async fn addresses_reach_the_book_and_survive_snapshots() {
        let book = PeerBook::new();
        let mut directory = Directory::new(Vec::<Bytes>::new(), book.clone());
        directory.apply(&command(1, Envelope::App(Bytes::from_static(b"x")))).await.unwrap();
        directory
            .apply(&command(2, Envelope::Address { id: 4, address: "127.0.0.1:7004".into() }))
            .await
            .unwrap();
        assert_eq!(book.get(4).as_deref(), Some("127.0.0.1:7004"));
        assert_eq!(directory.app, [Bytes::from_static(b"x")]);

        let meta = SnapshotMeta { last: LogId::new(1, 2), membership: Membership::new([1]) };
        let mut image = Collect(Vec::new());
        directory.build_snapshot(&meta, &mut image).await.unwrap();
        let mut chunks = Chunks(image.0.chunks(3).map(Bytes::copy_from_slice).collect());
        let other_book = PeerBook::new();
        let mut restored = Directory::new(Vec::<Bytes>::new(), other_book.clone());
        restored.restore(&meta, &mut chunks).await.unwrap();
        assert_eq!(restored.app, directory.app);
        assert_eq!(other_book.get(4).as_deref(), Some("127.0.0.1:7004"));
        let mut garbage = Chunks([Bytes::from_static(b"\xff\xff\xff\xff\x01")].into());
        assert!(restored.restore(&meta, &mut garbage).await.is_err());
    }
}
