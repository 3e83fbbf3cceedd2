//! [`LogStore`]: the durable half of a node's storage.

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::future::Future;

use crate::membership::Membership;
use crate::types::{Entry, HardState, Index, SnapshotInfo, SnapshotMeta};

/// What a [`LogStore`] holds when a node starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    /// Term and vote, as last saved.
    pub hard_state: HardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// The index of the last log entry: the log holds every index from just after the
    /// snapshot (or from 1) through this one. Equal to the snapshot's last index when the log
    /// after it is empty.
    pub last_index: Index,
    /// The configuration to start with when neither the snapshot nor the log holds one: the
    /// initial voters of a new cluster, or empty for a node that waits to be added.
    ///
    /// Storage persists it when first created and returns the stored value afterwards: a
    /// restart with different command-line peers must not silently change the voters.
    pub bootstrap: Membership,
}

/// Where a node keeps what Raft must not forget: term and vote, the log, and the bytes of the
/// latest snapshot.
///
/// The executor ([`crate::carry_out`]) calls these methods one at a time, in the order of
/// the Raft rules (persist, then send): a call that returns `Ok` must be durable, because
/// messages that reveal it may be sent right after. An `Err` stops the node, which must not
/// speak once it cannot keep its promises.
///
/// Snapshot bytes arrive in chunks, from the leader or from the local state machine: a chunk
/// at offset 0 begins a new *staged* snapshot (dropping any staged one), later chunks continue
/// it at consecutive offsets, and [`install_snapshot`](LogStore::install_snapshot) makes the
/// staged bytes the current snapshot. A crash while staging leaves the current snapshot as it
/// was.
///
/// Futures are `Send`, so a node can run on a multi-threaded runtime; on a single-threaded
/// executor this only asks that the store's own types are `Send`, as flash drivers and
/// `heapless` containers are.
pub trait LogStore: Send {
    /// The storage error, reported through [`Error::Storage`](crate::Error::Storage).
    type Error: fmt::Debug + fmt::Display + Send;

    /// Reads term, vote, the snapshot's description and the log's bounds (once, at start).
    /// Storage that finds itself incomplete or damaged answers an error naming what is wrong;
    /// it never starts with less than it promised.
    fn load(&mut self) -> impl Future<Output = Result<LogState, Self::Error>> + Send;

    /// Reads the log entries with indexes `from..=to`, which [`load`](LogStore::load) or
    /// later writes said are there.
    fn read_entries(
        &mut self,
        from: Index,
        to: Index,
    ) -> impl Future<Output = Result<Vec<Entry>, Self::Error>> + Send;

    /// Durably records the current term and vote.
    fn save_hard_state(&mut self, state: HardState) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Durably drops every entry at or after `truncate_from` (when given), then appends
    /// `entries`, which continue the log without gaps.
    fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Durably stores `data` at byte `offset` of the staged snapshot; offset 0 begins a new one.
    fn write_snapshot_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes the staged snapshot, described by `meta`, the current one, and discards the log
    /// it covers, as one crash-safe step (Raft §7): the entries up to `meta.last` when the
    /// log holds that entry (same index and term), otherwise the entire log. A conflicting
    /// suffix must never survive behind the snapshot.
    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Reads `len` bytes of the current snapshot from `offset` (fewer only where it ends).
    fn read_snapshot(
        &mut self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;
}

impl<L: LogStore + ?Sized> LogStore for &mut L {
    type Error = L::Error;

    fn load(&mut self) -> impl Future<Output = Result<LogState, Self::Error>> + Send {
        (**self).load()
    }

    fn read_entries(
        &mut self,
        from: Index,
        to: Index,
    ) -> impl Future<Output = Result<Vec<Entry>, Self::Error>> + Send {
        (**self).read_entries(from, to)
    }

    fn save_hard_state(&mut self, state: HardState) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).save_hard_state(state)
    }

    fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).write_log(truncate_from, entries)
    }

    fn write_snapshot_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).write_snapshot_chunk(offset, data)
    }

    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).install_snapshot(meta)
    }

    fn read_snapshot(
        &mut self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send {
        (**self).read_snapshot(offset, len)
    }
}
