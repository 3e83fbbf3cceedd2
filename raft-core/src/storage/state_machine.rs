//! [`StateMachine`]: the application's half of a node's storage, and the chunked snapshot
//! streams it writes to and reads from.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use core::fmt;
use core::future::Future;

use crate::types::{Entry, Index, Payload, SnapshotMeta};

/// The application's deterministic state machine, which committed log entries are applied
/// to, in index order, exactly once per incarnation.
///
/// A failing method stops the node with [`Error::StateMachine`](crate::Error::StateMachine):
/// a replica that cannot apply an entry must not keep answering as if it had.
///
/// ```
/// use raft_core::{Bytes, Entry, Payload, SnapshotAborted, SnapshotMeta, SnapshotReader,
///                 SnapshotWriter, StateMachine};
///
/// /// Adds up the commands, each an 8-byte little-endian number.
/// #[derive(Default)]
/// struct Sum(u64);
///
/// #[derive(Debug)]
/// struct SumError(&'static str);
/// impl core::fmt::Display for SumError {
///     fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str(self.0) }
/// }
/// impl From<SnapshotAborted> for SumError {
///     fn from(_: SnapshotAborted) -> Self { SumError("the snapshot store failed") }
/// }
///
/// impl StateMachine for Sum {
///     type Error = SumError;
///     async fn apply(&mut self, entry: &Entry) -> Result<Bytes, SumError> {
///         let Payload::Command(command) = &entry.payload else { return Ok(Bytes::new()) };
///         let value = <[u8; 8]>::try_from(&command[..]).map_err(|_| SumError("not a number"))?;
///         self.0 = self.0.wrapping_add(u64::from_le_bytes(value));
///         Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
///     }
///     async fn query(&mut self, _query: &[u8]) -> Result<Bytes, SumError> {
///         Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
///     }
///     async fn build_snapshot(&mut self, _: &SnapshotMeta, out: &mut impl SnapshotWriter) -> Result<(), SumError> {
///         Ok(out.write(&self.0.to_le_bytes()).await?)
///     }
///     async fn restore(&mut self, _: &SnapshotMeta, from: &mut impl SnapshotReader) -> Result<(), SumError> {
///         let bytes = from.read_to_end().await?;
///         self.0 = u64::from_le_bytes(bytes.try_into().map_err(|_| SumError("bad snapshot"))?);
///         Ok(())
///     }
/// }
/// ```
pub trait StateMachine: Send {
    /// The state machine's error. [`From<SnapshotAborted>`] lets snapshot code pass a failed
    /// snapshot stream on with `?`.
    type Error: fmt::Debug + fmt::Display + From<SnapshotAborted> + Send;

    /// Applies a committed entry and returns the response for its proposer. No-op and
    /// configuration entries are applied too (answer them with an empty response), so a
    /// durable state machine sees every index.
    fn apply(&mut self, entry: &Entry) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;

    /// Answers a read-only query against the state as it is now.
    fn query(&mut self, query: &[u8]) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;

    /// Writes a snapshot of the state, which has applied exactly through `meta.last`, to
    /// `out`, in chunks of any size.
    fn build_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Replaces the state with the snapshot read from `from`, which covers the log through
    /// `meta.last`.
    fn restore(
        &mut self,
        meta: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// How far the state survives a restart on its own: the index of the last entry applied
    /// to durable state. The default, 0, is right for a state machine kept in memory: it is
    /// rebuilt from the latest snapshot and the log at every start.
    fn durable_index(&self) -> Index {
        0
    }
}

/// A snapshot stream failed underneath: the store it writes to or reads from reported an
/// error, which the node reports itself. Stop and return; nothing is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotAborted;

impl fmt::Display for SnapshotAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the snapshot's storage failed")
    }
}

impl core::error::Error for SnapshotAborted {}

/// Where [`StateMachine::build_snapshot`] writes a snapshot.
pub trait SnapshotWriter: Send {
    /// Appends `chunk` to the snapshot.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), SnapshotAborted>> + Send;
}

/// Where [`StateMachine::restore`] reads a snapshot from.
pub trait SnapshotReader: Send {
    /// The next chunk, or `None` at the end.
    fn read(&mut self) -> impl Future<Output = Result<Option<Bytes>, SnapshotAborted>> + Send;

    /// Reads the rest of the snapshot into one buffer (for state small enough to hold twice).
    fn read_to_end(&mut self) -> impl Future<Output = Result<Vec<u8>, SnapshotAborted>> + Send {
        async move {
            let mut all = Vec::new();
            while let Some(chunk) = self.read().await? {
                all.extend_from_slice(&chunk);
            }
            Ok(all)
        }
    }
}

/// Collects a snapshot in memory: for tests, and for images small enough to hold whole.
///
/// ```
/// use futures::executor::block_on;
/// use raft_core::{SnapshotReader, SnapshotWriter};
/// use std::collections::VecDeque;
///
/// let mut image = Vec::new();
/// block_on(image.write(b"snap")).unwrap();
/// block_on(image.write(b"shot")).unwrap();
/// let mut chunks = VecDeque::from([image.into()]);
/// assert_eq!(block_on(chunks.read_to_end()).unwrap(), b"snapshot");
/// ```
impl SnapshotWriter for Vec<u8> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), SnapshotAborted> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// Reads a snapshot held in memory, one chunk at a time.
impl SnapshotReader for VecDeque<Bytes> {
    async fn read(&mut self) -> Result<Option<Bytes>, SnapshotAborted> {
        Ok(self.pop_front())
    }
}

/// A state machine that cannot go on: a snapshot that does not decode, a command it cannot
/// apply. Handy as the error type of simple state machines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError(pub String);

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for RestoreError {}

impl From<SnapshotAborted> for RestoreError {
    fn from(aborted: SnapshotAborted) -> Self {
        RestoreError(aborted.to_string())
    }
}

/// Records every applied command; for tests and examples. A query is an 8-byte little-endian
/// position; its answer is the command applied at that position (empty if none).
impl StateMachine for Vec<Bytes> {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        if let Payload::Command(command) = &entry.payload {
            self.push(command.to_bytes());
        }
        Ok(Bytes::new())
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, RestoreError> {
        let position = <[u8; 8]>::try_from(query).map(u64::from_le_bytes).unwrap_or(u64::MAX);
        Ok(usize::try_from(position).ok().and_then(|p| self.get(p).cloned()).unwrap_or_default())
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        let mut frame = BytesMut::new();
        for command in self.iter() {
            frame.clear();
            let len =
                u32::try_from(command.len()).map_err(|_| RestoreError("a command over 4 GiB".into()))?;
            frame.put_u32_le(len);
            frame.put_slice(command);
            out.write(&frame).await?;
        }
        Ok(())
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let bytes = from.read_to_end().await?;
        let mut input = &bytes[..];
        let mut commands = Vec::new();
        while input.has_remaining() {
            if input.remaining() < 4 {
                return Err(RestoreError("snapshot: truncated length prefix".into()));
            }
            let len = input.get_u32_le() as usize;
            if input.remaining() < len {
                return Err(RestoreError("snapshot: truncated command".into()));
            }
            commands.push(Bytes::copy_from_slice(&input[..len]));
            input.advance(len);
        }
        *self = commands;
        Ok(())
    }
}
