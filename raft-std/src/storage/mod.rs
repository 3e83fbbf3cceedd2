//! [`FileState`]: a durable [`LogStore`] in a data directory.
//!
//! ```text
//! <data dir>/
//!   bootstrap        the configuration the directory was created with
//!   hard_state       term and vote, replaced atomically
//!   snapshot         what the latest snapshot covers and which data file holds it
//!   snapshot-<term>-<index>.data
//!                    the snapshot's bytes (see `snapshot_file.rs`)
//!   log/<first index>.log
//!                    append-only segments of length- and CRC32-framed entries
//! ```
//!
//! All file I/O runs on tokio's blocking thread pool, so a slow fsync never stalls the runtime.
//! [`FileState`]'s docs list what opening does with each missing or damaged file.
//! The application's state machine is not stored here: it is rebuilt from the snapshot and
//! the log at start (or keeps its own durable state, see
//! [`StateMachine::durable_index`](raft_core::StateMachine::durable_index)).

mod checked_file;
mod descriptors;
mod error;
mod log;
mod metrics;
mod record;
mod segment;
mod snapshot_file;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::{
    Bytes, Entry, HardState, Index, LogId, LogState, LogStore, Membership, NodeId, SnapshotMeta,
};

pub use self::error::StorageError;
use self::log::SegmentLog;
use self::metrics::{seconds_since, StorageMetrics};
use self::snapshot_file::SnapshotFiles;

const HARD_STATE_FILE: &str = "hard_state";
const BOOTSTRAP_FILE: &str = "bootstrap";
const LOG_DIR: &str = "log";
const HARD_STATE_MAGIC: &[u8; 8] = b"RAFTHS\x00\x01";
const BOOTSTRAP_MAGIC: &[u8; 8] = b"RAFTBOOT";

/// When [`FileState`] calls fsync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write, before the write is reported done: what Raft's safety needs.
    #[default]
    Always,
    /// Never: writes survive a process crash but not a power loss. For tests only.
    Never,
}

/// Tuning for [`FileState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// When to fsync (default: always).
    pub fsync: FsyncPolicy,
    /// A log segment is sealed and a new one started once it reaches this many bytes
    /// (default 64 MiB). Compaction removes whole segments, so smaller segments free disk
    /// space sooner after a snapshot.
    pub segment_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { fsync: FsyncPolicy::Always, segment_bytes: 64 << 20 }
    }
}

/// A durable [`LogStore`]: log segments, term and vote, and snapshots in a data directory.
///
/// Open it with [`FileState::open`] (which recovers from a crash), then hand it, with the
/// application's state machine, to
/// [`RaftStreamExt::into_raft_events`](raft_core::RaftStreamExt::into_raft_events) or let
/// [`RaftNode`](crate::RaftNode) do so. Its async methods need a tokio runtime.
///
/// ```
/// use raft_core::Membership;
/// use raft_std::{FileState, StorageOptions};
///
/// let dir = tempfile::tempdir()?;
/// let state = FileState::open(dir.path(), Membership::new([1]), StorageOptions::default())?;
/// assert_eq!(state.last_index()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Opening a file while the process or the system is out of file descriptors (`EMFILE`,
/// `ENFILE`) is retried with backoff for up to 10 s before it counts as a storage failure:
/// exhausted descriptors are not a broken disk, and pass once connections elsewhere close.
///
/// # Missing and damaged files
///
/// [`FileState::open`] never starts with less than the directory promised. What it does with
/// each file missing or damaged (by an operator, a bad disk or a restore from an incomplete
/// backup); each row is checked by `raft-std/tests/storage.rs`:
///
/// | file | state | outcome |
/// | --- | --- | --- |
/// | all | none exists (a new or empty directory) | a new store: term 0 and the given bootstrap configuration are written |
/// | `hard_state` | missing, the directory holds a log, a snapshot or a bootstrap configuration | [`StorageError::Missing`] (`hard_state`): the node may have voted, and must not vote again in that term |
/// | `hard_state` | damaged | [`StorageError::Corrupt`] (`hard_state`) |
/// | `bootstrap` | missing, `hard_state` is term 0 without a vote, no log, no snapshot | a creation that a crash interrupted: the given configuration is written |
/// | `bootstrap` | missing, anything else is there | [`StorageError::Missing`] (`bootstrap`) |
/// | `bootstrap` | damaged | [`StorageError::Corrupt`] (`bootstrap`) |
/// | `log/*.log` | one missing between others | [`StorageError::Corrupt`]: the segment after the gap does not continue the one before |
/// | `log/*.log` | the first ones missing, and no snapshot covers their entries | [`StorageError::Corrupt`]: the log starts after the snapshot's end |
/// | `log/*.log` | a record damaged before the end of the log | [`StorageError::Corrupt`], naming the file and offset |
/// | `log/*.log` | the last record incomplete or zero-filled (a crash while appending) | truncated, with a warning; those entries were never acknowledged |
/// | `log/*.log` | the newest ones (or all) missing | **not detectable here**: the directory records no last index, so the store opens with the shorter log. Raft then treats the node like one that lost entries: the leader notices (raft-core's lost-entry recovery, `lost_entries` in its diagnostics) and sends them again. Still wipe such a node (below): it may have counted toward a commit or an election with the entries it lost |
/// | `snapshot` (the record) | missing | its data file is removed as a leftover; a log compacted past it is then [`StorageError::Corrupt`] (the log starts after the snapshot's end); an uncompacted log opens without a snapshot |
/// | `snapshot` (the record) | damaged | [`StorageError::Corrupt`] (`snapshot`) |
/// | `snapshot-<term>-<index>.data` | missing | [`StorageError::Missing`] (the data file) |
/// | `snapshot-<term>-<index>.data` | damaged (size or checksum) | [`StorageError::Corrupt`] (the data file) |
/// | `*.tmp`, `snapshot.staged`, data files no record names | left by a crash | removed |
///
/// **The safe way out** of every error above is to wipe the node's data directory and add it
/// to the cluster again as a new member, which receives everything from the leader: remove it
/// from the configuration (from a healthy member), delete or move its directory, start it
/// empty and waiting to be added ([`NodeConfig::join`](crate::NodeConfig::join)), and add it
/// ([`RaftNode::add_member`](crate::RaftNode::add_member)), preferably under a new id, so that
/// no peer can mistake it for the node that made the old promises. raft-kv's README shows the
/// commands. Restoring the files instead is only safe if they are exactly the ones the node
/// last wrote.
pub struct FileState {
    disk: Arc<Mutex<Disk>>,
    /// Entries read while opening, handed out by the first reads instead of reading again.
    recovered: VecDeque<Entry>,
}

/// Everything on disk, used from the blocking thread pool.
struct Disk {
    dir: PathBuf,
    sync: bool,
    hard_state: HardState,
    snapshot: SnapshotFiles,
    /// When the staged snapshot's first chunk arrived.
    staging_since: Option<std::time::Instant>,
    bootstrap: Membership,
    log: SegmentLog,
}

impl FileState {
    /// Opens the data directory `dir` (creating it if needed) and recovers: a torn last log
    /// record is truncated with a warning; damage anywhere else is a
    /// [`StorageError::Corrupt`] naming the file and offset, and a missing file the rest of the
    /// directory depends on is a [`StorageError::Missing`]. It never starts with less state
    /// than it promised before: see [`FileState`] for every case.
    ///
    /// `bootstrap` is the configuration of a new cluster (or empty for a node that waits to be
    /// added). It is stored the first time; later opens use the stored one, so a restart with
    /// different peers cannot silently change who votes.
    ///
    /// This reads the whole log with blocking I/O: call it at startup, or from
    /// `tokio::task::spawn_blocking`.
    pub fn open(
        dir: impl AsRef<Path>,
        bootstrap: Membership,
        options: StorageOptions,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let sync = options.fsync == FsyncPolicy::Always;
        std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
        checked_file::remove_leftovers(dir)?;
        let hard_state_path = dir.join(HARD_STATE_FILE);
        let hard_state: Option<HardState> = read(&hard_state_path, HARD_STATE_MAGIC)?;
        let snapshot = SnapshotFiles::open(dir, sync)?;
        let snapshot_id = snapshot.info().map_or(LogId::default(), |s| s.meta.last);
        let (log, entries) = SegmentLog::open(&dir.join(LOG_DIR), snapshot_id, sync, options.segment_bytes)?;
        let holds_state = snapshot_id.index > 0 || log.next_index() > 1;
        let bootstrap_path = dir.join(BOOTSTRAP_FILE);
        let stored_bootstrap: Option<Membership> = read(&bootstrap_path, BOOTSTRAP_MAGIC)?;
        if hard_state.is_none() && (holds_state || stored_bootstrap.is_some()) {
            return Err(StorageError::Missing {
                path: hard_state_path,
                reason:
                    "the directory holds a log, a snapshot or its bootstrap configuration, but not the term \
                         and vote that go with them",
            });
        }
        // A term or a vote is a promise; term 0 without a vote is what a new directory starts with.
        let promised = holds_state || hard_state.is_some_and(|state| state != HardState::default());
        let bootstrap = match stored_bootstrap {
            Some(stored) => {
                if stored != bootstrap {
                    tracing::warn!(
                        stored = %stored, given = %bootstrap,
                        "the data directory was created with another bootstrap configuration; keeping the stored one"
                    );
                }
                stored
            }
            None if promised => {
                return Err(StorageError::Missing {
                    path: bootstrap_path,
                    reason: "the directory holds state but not the configuration it was created with",
                })
            }
            None => {
                // A new directory (or one whose creation a crash interrupted): term and vote
                // first, so that a directory with a bootstrap configuration always has them.
                if hard_state.is_none() {
                    let bytes = encode("term and vote", &HardState::default())?;
                    checked_file::write(&hard_state_path, HARD_STATE_MAGIC, &bytes, sync)?;
                }
                let bytes = encode("bootstrap configuration", &bootstrap)?;
                checked_file::write(&bootstrap_path, BOOTSTRAP_MAGIC, &bytes, sync)?;
                bootstrap
            }
        };
        let hard_state = hard_state.unwrap_or_default();
        tracing::info!(
            dir = %dir.display(), term = hard_state.term, snapshot_index = snapshot_id.index,
            last_index = log.next_index() - 1, "storage opened"
        );
        let disk =
            Disk { dir: dir.to_path_buf(), sync, hard_state, snapshot, staging_since: None, bootstrap, log };
        Ok(FileState { disk: Arc::new(Mutex::new(disk)), recovered: entries.into() })
    }

    /// The index of the last stored log entry (the snapshot's when the log after it is empty).
    pub fn last_index(&self) -> Result<Index, StorageError> {
        Ok(lock(&self.disk)?.log.next_index() - 1)
    }

    /// Labels the store's metrics (log append and fsync latency, snapshots) with `node`, as
    /// [`RaftNode`](crate::RaftNode)'s own series are; unlabelled until then.
    pub fn label_metrics(&self, node: NodeId) -> Result<(), StorageError> {
        let metrics = StorageMetrics::new(vec![::metrics::Label::new("node", node.to_string())]);
        lock(&self.disk)?.log.metrics = Some(metrics);
        Ok(())
    }

    /// Runs `work` on the disk from tokio's blocking pool.
    async fn on_disk<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Disk) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let disk = Arc::clone(&self.disk);
        // The blocking pool's threads do not inherit the caller's span: carry it over.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&mut *lock(&disk)?)))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

impl LogStore for FileState {
    type Error = StorageError;

    async fn load(&mut self) -> Result<LogState, StorageError> {
        let disk = lock(&self.disk)?;
        Ok(LogState {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.info().cloned(),
            last_index: disk.log.next_index() - 1,
            bootstrap: disk.bootstrap.clone(),
        })
    }

    async fn read_entries(&mut self, from: Index, to: Index) -> Result<Vec<Entry>, StorageError> {
        while self.recovered.front().is_some_and(|e| e.index < from) {
            self.recovered.pop_front();
        }
        let covered = self.recovered.front().is_some_and(|e| e.index == from)
            && self.recovered.back().is_some_and(|e| e.index >= to);
        if covered {
            let count = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
            return Ok(self.recovered.drain(..count).collect());
        }
        self.recovered.clear();
        self.on_disk(move |disk| {
            let mut entries = disk.log.read_after(from - 1)?;
            entries.retain(|e| e.index <= to);
            Ok(entries)
        })
        .await
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), StorageError> {
        self.on_disk(move |disk| {
            let bytes = encode("term and vote", &state)?;
            checked_file::write(&disk.dir.join(HARD_STATE_FILE), HARD_STATE_MAGIC, &bytes, disk.sync)?;
            disk.hard_state = state;
            Ok(())
        })
        .await
    }

    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.recovered.clear();
        let entries = entries.to_vec();
        self.on_disk(move |disk| {
            if let Some(index) = truncate_from {
                if index < disk.log.next_index() {
                    tracing::info!(from = index, "truncating a conflicting log suffix");
                }
                disk.log.truncate_from(index)?;
            }
            disk.log.append(&entries)
        })
        .await
    }

    async fn write_snapshot_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let data = data.to_vec();
        self.on_disk(move |disk| {
            if offset == 0 {
                disk.staging_since = Some(std::time::Instant::now());
            }
            disk.snapshot.stage(offset, &data)
        })
        .await
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        self.recovered.clear();
        let meta = meta.clone();
        self.on_disk(move |disk| {
            let info = disk.snapshot.install(&meta)?;
            let last = meta.last;
            // Raft §7: keep the log after the snapshot only if it contains the snapshot's
            // last entry; otherwise it is discarded entirely.
            if disk.log.term_at(last.index) == Some(last.term) {
                disk.log.discard_through(last.index)?;
            } else {
                disk.log.reset(last.index + 1)?;
            }
            let metrics = disk.log.metrics();
            metrics.snapshots.increment(1);
            if let Some(since) = disk.staging_since.take() {
                metrics.snapshot.record(seconds_since(since));
            }
            tracing::info!(
                index = last.index,
                term = last.term,
                bytes = info.size,
                "snapshot installed; log compacted"
            );
            Ok(())
        })
        .await
    }

    async fn read_snapshot(&mut self, offset: u64, len: usize) -> Result<Bytes, StorageError> {
        self.on_disk(move |disk| disk.snapshot.read(offset, len).map(Bytes::from)).await
    }
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|source| StorageError::Encode { what, source })
}

/// Reads and decodes a checked file, if it exists.
fn read<T: serde::de::DeserializeOwned>(path: &Path, magic: &[u8; 8]) -> Result<Option<T>, StorageError> {
    let Some(bytes) = checked_file::read(path, magic)? else { return Ok(None) };
    let value = postcard::from_bytes(&bytes)
        .map_err(|e| StorageError::corrupt(path, 0, format!("content does not decode: {e}")))?;
    Ok(Some(value))
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, StorageError> {
    mutex.lock().map_err(|_| StorageError::Poisoned)
}
