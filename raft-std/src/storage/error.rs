//! [`StorageError`]: everything that can go wrong with a data directory.

use std::io;
use std::path::{Path, PathBuf};

use raft_core::Index;

/// Why a [`FileState`](crate::FileState) operation failed.
///
/// Every variant names what to do about it. Any error returned while the node runs stops the
/// node (see [`raft_core::LogStore`]): a node that cannot persist must not speak.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed (disk full, permissions, missing directory …).
    #[error("cannot {action} {}: {source}; check the disk and the data directory's permissions", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file holds bytes that fail their checksum or cannot be decoded, somewhere other than
    /// a torn tail (which is repaired on open).
    #[error(
        "corrupt data in {} at byte offset {offset}: {reason}. The node refuses to start rather \
         than lose or invent log entries: restore the file, or wipe this node's data directory \
         and add the node to the cluster again",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in the file the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file the rest of the data directory depends on is missing: starting without it could
    /// break a promise the node made (a vote, an acknowledged entry).
    #[error(
        "{} is missing: {reason}. The node refuses to start rather than forget what it promised: \
         restore the file, or wipe this node's data directory and add the node to the cluster again \
         as a new member",
        path.display()
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// Why it is needed.
        reason: &'static str,
    },
    /// A snapshot chunk did not continue the staged snapshot (a bug in the caller).
    #[error("snapshot chunk at offset {got}, expected {expected}")]
    ChunkOutOfOrder {
        /// The offset the next chunk needed.
        expected: u64,
        /// The offset it had.
        got: u64,
    },
    /// A snapshot read with no snapshot installed (a bug in the caller).
    #[error("no snapshot is installed")]
    NoSnapshot,
    /// `write_log` was handed entries that do not continue the log (a bug in the caller).
    #[error("log write would leave a gap: expected index {expected}, got {got}")]
    Gap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// A value could not be serialized (a bug: Raft's types always serialize).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },
    /// A storage thread panicked in an earlier call, so the files' state is unknown.
    #[error("a storage thread panicked in an earlier call; restart the node")]
    Poisoned,
    /// The blocking task that performs file I/O failed.
    #[error("the storage task failed: {0}; restart the node")]
    Task(String),
}

impl StorageError {
    /// An [`StorageError::Io`] for `action` on `path`.
    pub(crate) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> StorageError + 'a {
        move |source| StorageError::Io { action, path: path.to_path_buf(), source }
    }

    /// A [`StorageError::Corrupt`] at `offset` of `path`.
    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() }
    }
}
