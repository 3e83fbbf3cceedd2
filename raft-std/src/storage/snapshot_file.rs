//! The snapshot on disk: a data file with the state machine's bytes, and the `snapshot` record
//! that names it.
//!
//! ```text
//! snapshot                              checked file: what the snapshot covers, its data file,
//!                                       size and CRC32, replaced atomically
//! snapshot-<term>-<index>.data          the bytes, immutable once installed
//! snapshot.staged                       chunks of the next snapshot as they arrive
//! ```
//!
//! Chunks (from the leader, or from the local state machine) append to `snapshot.staged`.
//! Installing fsyncs it, renames it to its data-file name, and then atomically replaces the
//! `snapshot` record: the commit point. A crash before it leaves the old snapshot in force; a
//! crash after it leaves the new one. Data files no record names are leftovers, removed on
//! open. Staged bytes need not be durable before installation: a crash forgets a transfer in
//! progress, and the leader starts it again from the first chunk.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft_core::{SnapshotInfo, SnapshotMeta};
use serde::{Deserialize, Serialize};

use super::checked_file::{self, sync_dir};
use super::descriptors::retrying;
use super::error::StorageError;

const RECORD_FILE: &str = "snapshot";
const STAGED_FILE: &str = "snapshot.staged";
const RECORD_MAGIC: &[u8; 8] = b"RAFTSNP\x02";
const DATA_PREFIX: &str = "snapshot-";
const DATA_SUFFIX: &str = ".data";
/// Bytes read at a time when checking a data file's CRC.
const CHECK_CHUNK: usize = 256 << 10;

/// The `snapshot` record.
#[derive(Serialize, Deserialize)]
struct Record {
    meta: SnapshotMeta,
    file: String,
    size: u64,
    crc: u32,
}

/// The installed snapshot.
struct Current {
    info: SnapshotInfo,
    data: File,
    path: PathBuf,
}

/// The snapshot being staged.
struct Staged {
    file: File,
    len: u64,
    crc: crc32fast::Hasher,
}

/// The snapshot files of one data directory.
pub(super) struct SnapshotFiles {
    dir: PathBuf,
    sync: bool,
    current: Option<Current>,
    staged: Option<Staged>,
}

impl SnapshotFiles {
    /// Reads the record and checks the data file it names (size and CRC), then removes
    /// leftovers of interrupted installations.
    pub(super) fn open(dir: &Path, sync: bool) -> Result<SnapshotFiles, StorageError> {
        let record_path = dir.join(RECORD_FILE);
        let current = match checked_file::read(&record_path, RECORD_MAGIC)? {
            None => None,
            Some(bytes) => {
                let record: Record = postcard::from_bytes(&bytes).map_err(|e| {
                    StorageError::corrupt(&record_path, 0, format!("content does not decode: {e}"))
                })?;
                Some(check_data(dir, &record_path, record)?)
            }
        };
        let keep = current.as_ref().map(|c| c.path.clone());
        for item in retrying("list", || fs::read_dir(dir)).map_err(StorageError::io("list", dir))? {
            let path = item.map_err(StorageError::io("list", dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let data = name.starts_with(DATA_PREFIX) && name.ends_with(DATA_SUFFIX);
            if (data && keep.as_ref() != Some(&path)) || name == STAGED_FILE {
                tracing::info!(file = %path.display(), "removing a snapshot file an interrupted installation left");
                fs::remove_file(&path).map_err(StorageError::io("remove", &path))?;
            }
        }
        Ok(SnapshotFiles { dir: dir.to_path_buf(), sync, current, staged: None })
    }

    /// The installed snapshot.
    pub(super) fn info(&self) -> Option<&SnapshotInfo> {
        self.current.as_ref().map(|c| &c.info)
    }

    /// Stores `data` at `offset` of the staged snapshot; offset 0 begins a new one.
    pub(super) fn stage(&mut self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let path = self.dir.join(STAGED_FILE);
        if offset == 0 {
            let file =
                retrying("create", || File::create(&path)).map_err(StorageError::io("create", &path))?;
            self.staged = Some(Staged { file, len: 0, crc: crc32fast::Hasher::new() });
        }
        let staged =
            self.staged.as_mut().ok_or(StorageError::ChunkOutOfOrder { expected: 0, got: offset })?;
        if offset != staged.len {
            return Err(StorageError::ChunkOutOfOrder { expected: staged.len, got: offset });
        }
        staged.file.write_all(data).map_err(StorageError::io("write", &path))?;
        staged.crc.update(data);
        staged.len += data.len() as u64;
        Ok(())
    }

    /// Makes the staged snapshot, described by `meta`, the installed one (see the module docs).
    pub(super) fn install(&mut self, meta: &SnapshotMeta) -> Result<SnapshotInfo, StorageError> {
        let staged_path = self.dir.join(STAGED_FILE);
        let Staged { file, len, crc } =
            self.staged.take().ok_or(StorageError::ChunkOutOfOrder { expected: 0, got: 0 })?;
        if self.sync {
            file.sync_all().map_err(StorageError::io("fsync", &staged_path))?;
        }
        drop(file);
        let name = format!("{DATA_PREFIX}{:020}-{:020}{DATA_SUFFIX}", meta.last.term, meta.last.index);
        let path = self.dir.join(&name);
        fs::rename(&staged_path, &path).map_err(StorageError::io("rename into place", &path))?;
        if self.sync {
            sync_dir(&self.dir)?;
        }
        let record = Record { meta: meta.clone(), file: name, size: len, crc: crc.finalize() };
        let bytes = postcard::to_allocvec(&record)
            .map_err(|source| StorageError::Encode { what: "snapshot record", source })?;
        checked_file::write(&self.dir.join(RECORD_FILE), RECORD_MAGIC, &bytes, self.sync)?;
        let data = retrying("open", || File::open(&path)).map_err(StorageError::io("open", &path))?;
        let info = SnapshotInfo { meta: meta.clone(), size: len };
        let previous = self.current.replace(Current { info: info.clone(), data, path });
        if let Some(previous) = previous.filter(|p| self.current.as_ref().is_some_and(|c| c.path != p.path)) {
            fs::remove_file(&previous.path).map_err(StorageError::io("remove", &previous.path))?;
        }
        Ok(info)
    }

    /// Reads `len` bytes of the installed snapshot from `offset` (fewer where it ends).
    pub(super) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let current = self.current.as_ref().ok_or(StorageError::NoSnapshot)?;
        let len = len.min(usize::try_from(current.info.size.saturating_sub(offset)).unwrap_or(usize::MAX));
        let mut buffer = vec![0; len];
        current.data.read_exact_at(&mut buffer, offset).map_err(StorageError::io("read", &current.path))?;
        Ok(buffer)
    }
}

/// Opens the data file a record names and checks its size and CRC.
fn check_data(dir: &Path, record_path: &Path, record: Record) -> Result<Current, StorageError> {
    let name_ok = record.file.starts_with(DATA_PREFIX) && !record.file.contains(['/', '\\']);
    if !name_ok {
        return Err(StorageError::corrupt(
            record_path,
            0,
            format!("names an invalid data file {:?}", record.file),
        ));
    }
    let path = dir.join(&record.file);
    let mut data =
        retrying("open", || OpenOptions::new().read(true).open(&path)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::Missing {
                path: path.clone(),
                reason: "the snapshot record names this data file, but it is gone",
            },
            _ => StorageError::io("open", &path)(e),
        })?;
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    let mut buffer = vec![0; CHECK_CHUNK];
    loop {
        let read = data.read(&mut buffer).map_err(StorageError::io("read", &path))?;
        if read == 0 {
            break;
        }
        crc.update(&buffer[..read]);
        size += read as u64;
    }
    if size != record.size || crc.finalize() != record.crc {
        let reason = format!("holds {size} bytes failing the recorded size {} or checksum", record.size);
        return Err(StorageError::corrupt(&path, 0, reason));
    }
    Ok(Current { info: SnapshotInfo { meta: record.meta, size }, data, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogId, Membership};

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta { last: LogId::new(1, index), membership: Membership::new([1]) }
    }

    #[test]
    fn staged_chunks_become_the_snapshot_on_install_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = SnapshotFiles::open(dir.path(), true).unwrap();
        files.stage(0, b"hello ").unwrap();
        files.stage(6, b"world").unwrap();
        assert!(matches!(files.stage(3, b"x"), Err(StorageError::ChunkOutOfOrder { expected: 11, got: 3 })));
        files.install(&meta(5)).unwrap();
        assert_eq!(files.read(6, 100).unwrap(), b"world");
        files.stage(0, b"newer").unwrap();
        files.install(&meta(9)).unwrap();
        let reopened = SnapshotFiles::open(dir.path(), true).unwrap();
        assert_eq!(reopened.info().map(|i| (i.meta.last.index, i.size)), Some((9, 5)));
        assert_eq!(reopened.read(0, 5).unwrap(), b"newer");
        let files: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "the record and one data file: {files:?}");
    }

    #[test]
    fn an_interrupted_installation_keeps_the_old_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = SnapshotFiles::open(dir.path(), true).unwrap();
        files.stage(0, b"old").unwrap();
        files.install(&meta(5)).unwrap();
        files.stage(0, b"half of a new one").unwrap();
        fs::write(dir.path().join("snapshot-00000000000000000001-00000000000000000009.data"), b"renamed")
            .unwrap();
        let reopened = SnapshotFiles::open(dir.path(), true).unwrap();
        assert_eq!(reopened.read(0, 10).unwrap(), b"old");
        assert!(!dir.path().join(STAGED_FILE).exists());
    }

    #[test]
    fn damaged_or_missing_data_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = SnapshotFiles::open(dir.path(), true).unwrap();
        files.stage(0, b"state").unwrap();
        files.install(&meta(5)).unwrap();
        let data = dir.path().join("snapshot-00000000000000000001-00000000000000000005.data");
        fs::write(&data, b"STATE").unwrap();
        assert!(matches!(SnapshotFiles::open(dir.path(), true), Err(StorageError::Corrupt { .. })));
        fs::remove_file(&data).unwrap();
        assert!(matches!(SnapshotFiles::open(dir.path(), true), Err(StorageError::Missing { .. })));
    }
}
