//! [`FileState`]: a durable [`PersistentState`] in a data directory.
//!
//! ```text
//! <data dir>/
//!   bootstrap        the configuration the directory was created with
//!   hard_state       term and vote, replaced atomically
//!   snapshot         the latest snapshot, replaced atomically
//!   log/<first index>.log
//!                    append-only segments of length- and CRC32-framed entries
//! ```
//!
//! All file I/O runs on tokio's blocking thread pool, so a slow fsync never stalls the runtime.
//! The application's [`StateMachine`] lives in memory: it is rebuilt from the snapshot on open
//! and re-applied from the log as the node learns which entries are committed.

mod checked_file;
mod error;
mod log;
mod metrics;
mod record;
mod segment;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::{
    AppliedState, Bytes, Entry, HardState, Index, InitialState, LogId, Membership, NodeId, PersistentState,
    Snapshot, SnapshotMeta, StateMachine,
};

pub use self::error::StorageError;
use self::log::SegmentLog;
use self::metrics::{seconds_since, StorageMetrics};

const HARD_STATE_FILE: &str = "hard_state";
const SNAPSHOT_FILE: &str = "snapshot";
const BOOTSTRAP_FILE: &str = "bootstrap";
const LOG_DIR: &str = "log";
const HARD_STATE_MAGIC: &[u8; 8] = b"RAFTHS\x00\x01";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTSNP\x01";
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

/// A durable [`PersistentState`]: log segments, term and vote, and snapshots in a data
/// directory, wrapping the application's [`StateMachine`].
///
/// Open it with [`FileState::open`] (which recovers from a crash), then hand it to
/// [`RaftStreamExt::into_raft_events`](raft_core::RaftStreamExt::into_raft_events) or let
/// [`RaftNode`](crate::RaftNode) do so. Its async methods need a tokio runtime.
///
/// ```
/// use raft_core::{Bytes, Membership};
/// use raft_std::{FileState, StorageOptions};
///
/// let dir = tempfile::tempdir()?;
/// let state: FileState<Vec<Bytes>> =
///     FileState::open(dir.path(), Membership::new([1]), Vec::new(), StorageOptions::default())?;
/// assert_eq!(state.reader().applied_index()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileState<M> {
    disk: Arc<Mutex<Disk>>,
    machine: Arc<Mutex<AppliedState<M>>>,
    /// Entries read while opening, handed out by the first `load`.
    recovered: Option<Vec<Entry>>,
}

/// Everything on disk, used from the blocking thread pool.
struct Disk {
    dir: PathBuf,
    sync: bool,
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    bootstrap: Membership,
    log: SegmentLog,
}

impl<M: StateMachine> FileState<M> {
    /// Opens the data directory `dir` (creating it if needed) and recovers: a torn last log
    /// record is truncated with a warning, damage anywhere else is a
    /// [`StorageError::Corrupt`] naming the file and offset, and `machine` is restored from
    /// the latest snapshot.
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
        machine: M,
        options: StorageOptions,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let sync = options.fsync == FsyncPolicy::Always;
        std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
        checked_file::remove_leftovers(dir)?;
        let bootstrap = stored_bootstrap(dir, bootstrap, sync)?;
        let hard_state: HardState = read(&dir.join(HARD_STATE_FILE), HARD_STATE_MAGIC)?.unwrap_or_default();
        let snapshot: Option<Snapshot> = read(&dir.join(SNAPSHOT_FILE), SNAPSHOT_MAGIC)?;
        let snapshot_id = snapshot.as_ref().map_or(LogId::default(), |s| s.meta.last);
        let mut machine = AppliedState::new(machine);
        if let Some(snapshot) = &snapshot {
            machine.restore(snapshot)?;
        }
        let (log, entries) = SegmentLog::open(&dir.join(LOG_DIR), snapshot_id, sync, options.segment_bytes)?;
        tracing::info!(
            dir = %dir.display(), term = hard_state.term, snapshot_index = snapshot_id.index,
            last_index = log.next_index() - 1, "storage opened"
        );
        let disk = Disk { dir: dir.to_path_buf(), sync, hard_state, snapshot, bootstrap, log };
        Ok(FileState {
            disk: Arc::new(Mutex::new(disk)),
            machine: Arc::new(Mutex::new(machine)),
            recovered: Some(entries),
        })
    }
}

impl<M> FileState<M> {
    /// Labels the store's metrics with `node` (unlabelled until then).
    pub(crate) fn label_metrics(&self, node: NodeId) -> Result<(), StorageError> {
        let metrics = StorageMetrics::new(vec![::metrics::Label::new("node", node.to_string())]);
        lock(&self.disk)?.log.metrics = Some(metrics);
        Ok(())
    }

    /// A handle that reads the state machine while the node runs (for stale reads, metrics or
    /// tests).
    pub fn reader(&self) -> StateReader<M> {
        StateReader { machine: Arc::clone(&self.machine) }
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

/// Reads a [`FileState`]'s state machine from outside the node. Cheap to clone.
pub struct StateReader<M> {
    machine: Arc<Mutex<AppliedState<M>>>,
}

impl<M> Clone for StateReader<M> {
    fn clone(&self) -> Self {
        StateReader { machine: Arc::clone(&self.machine) }
    }
}

impl<M: StateMachine> StateReader<M> {
    /// Answers `query` from the state machine as it is now: possibly stale, never blocked by
    /// disk I/O.
    pub fn query(&self, query: &[u8]) -> Result<Bytes, StorageError> {
        Ok(lock(&self.machine)?.query(query))
    }

    /// The index of the last entry applied to the state machine.
    pub fn applied_index(&self) -> Result<Index, StorageError> {
        Ok(lock(&self.machine)?.applied_index())
    }

    /// Runs `f` on the state machine.
    pub fn with<T>(&self, f: impl FnOnce(&M) -> T) -> Result<T, StorageError> {
        Ok(f(lock(&self.machine)?.machine()))
    }
}

impl<M> PersistentState for FileState<M>
where
    M: StateMachine + Send + 'static,
{
    type Error = StorageError;

    async fn load(&mut self) -> Result<InitialState, StorageError> {
        let recovered = self.recovered.take();
        let applied = lock(&self.machine)?.applied_index();
        self.on_disk(move |disk| {
            let snapshot_index = disk.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
            let entries = match recovered {
                Some(entries) => entries,
                None => disk.log.read_after(snapshot_index)?,
            };
            Ok(InitialState {
                hard_state: disk.hard_state,
                snapshot: disk.snapshot.clone(),
                entries,
                applied,
                bootstrap: disk.bootstrap.clone(),
            })
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

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, StorageError> {
        Ok(lock(&self.machine)?.apply(entry))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, StorageError> {
        Ok(lock(&self.machine)?.query(query))
    }

    async fn snapshot(&mut self, meta: SnapshotMeta) -> Result<Snapshot, StorageError> {
        let machine = Arc::clone(&self.machine);
        self.on_disk(move |disk| {
            let start = std::time::Instant::now();
            let snapshot = lock(&machine)?.snapshot(meta);
            disk.store_snapshot(&snapshot)?;
            disk.log.discard_through(snapshot.meta.last.index)?;
            let metrics = disk.log.metrics();
            metrics.snapshot.record(seconds_since(start));
            metrics.taken.increment(1);
            tracing::info!(
                index = snapshot.meta.last.index,
                term = snapshot.meta.last.term,
                bytes = snapshot.data.len(),
                "snapshot taken; log compacted"
            );
            Ok(snapshot)
        })
        .await
    }

    async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let snapshot = snapshot.clone();
        let machine = Arc::clone(&self.machine);
        self.on_disk(move |disk| {
            let last = snapshot.meta.last;
            lock(&machine)?.restore(&snapshot)?;
            disk.store_snapshot(&snapshot)?;
            // Raft §7: keep the log after the snapshot only if it contains the snapshot's
            // last entry; otherwise it is discarded entirely.
            if disk.log.term_at(last.index) == Some(last.term) {
                disk.log.discard_through(last.index)?;
            } else {
                disk.log.reset(last.index + 1)?;
            }
            disk.log.metrics().installed.increment(1);
            tracing::info!(
                index = last.index,
                term = last.term,
                bytes = snapshot.data.len(),
                "snapshot installed from the leader"
            );
            Ok(())
        })
        .await
    }
}

impl Disk {
    fn store_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        checked_file::write(
            &self.dir.join(SNAPSHOT_FILE),
            SNAPSHOT_MAGIC,
            &encode("snapshot", snapshot)?,
            self.sync,
        )?;
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }
}

/// The bootstrap configuration stored in `dir`, storing `given` if there is none yet.
fn stored_bootstrap(dir: &Path, given: Membership, sync: bool) -> Result<Membership, StorageError> {
    let path = dir.join(BOOTSTRAP_FILE);
    match read::<Membership>(&path, BOOTSTRAP_MAGIC)? {
        Some(stored) => {
            if stored != given {
                tracing::warn!(
                    stored = %stored, given = %given,
                    "the data directory was created with another bootstrap configuration; keeping the stored one"
                );
            }
            Ok(stored)
        }
        None => {
            checked_file::write(&path, BOOTSTRAP_MAGIC, &encode("bootstrap configuration", &given)?, sync)?;
            Ok(given)
        }
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
