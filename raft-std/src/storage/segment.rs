//! One segment file of the log: an 8-byte magic tag, then records (see `record.rs`) with
//! consecutive indexes. The file is named after the index of its first record, zero-padded so
//! that names sort like indexes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{Entry, Index, Term};

use super::descriptors::retrying;
use super::error::StorageError;
use super::record::{self, Decoded};

/// Tag at the start of every segment file (the last byte is the format version).
pub(super) const MAGIC: &[u8; 8] = b"RAFTLOG\x01";

const EXTENSION: &str = "log";

/// What the log keeps in memory about a segment file.
#[derive(Debug)]
pub(super) struct Segment {
    /// Index of the first record (or of the next record, while the segment is empty).
    pub(super) first: Index,
    /// The file.
    pub(super) path: PathBuf,
    /// Byte offset and term of each record, in index order.
    pub(super) records: Vec<(u64, Term)>,
    /// Length of the file in bytes.
    pub(super) len: u64,
}

/// A torn tail found while scanning the last segment: what `recover` truncated.
#[derive(Debug)]
pub(super) struct TornTail {
    /// Where the valid data ends.
    pub(super) offset: u64,
    /// Bytes dropped.
    pub(super) dropped: u64,
    /// What the bytes looked like.
    pub(super) reason: &'static str,
}

impl Segment {
    /// The path of the segment whose first index is `first`.
    pub(super) fn path_for(dir: &Path, first: Index) -> PathBuf {
        dir.join(format!("{first:020}.{EXTENSION}"))
    }

    /// The first index encoded in a segment's file name, if `path` names a segment.
    pub(super) fn first_index_of(path: &Path) -> Option<Index> {
        if path.extension()? != EXTENSION {
            return None;
        }
        path.file_stem()?.to_str()?.parse().ok()
    }

    /// Index of the record that would come next.
    pub(super) fn next_index(&self) -> Index {
        self.first + self.records.len() as Index
    }

    /// Term of the record at `index`, if this segment holds it.
    pub(super) fn term_at(&self, index: Index) -> Option<Term> {
        let position = index.checked_sub(self.first)?;
        self.records.get(usize::try_from(position).ok()?).map(|&(_, term)| term)
    }

    /// Byte offset of the record at `index`, if this segment holds it.
    pub(super) fn offset_of(&self, index: Index) -> Option<u64> {
        let position = index.checked_sub(self.first)?;
        self.records.get(usize::try_from(position).ok()?).map(|&(offset, _)| offset)
    }

    /// Creates an empty segment starting at `first`, its file preallocated to `size` bytes,
    /// durably when `sync` is set.
    pub(super) fn create(
        dir: &Path,
        first: Index,
        sync: bool,
        size: u64,
    ) -> Result<(Segment, File), StorageError> {
        let path = Segment::path_for(dir, first);
        let mut file =
            retrying("create", || OpenOptions::new().create(true).truncate(true).write(true).open(&path))
                .map_err(StorageError::io("create", &path))?;
        file.write_all(MAGIC).map_err(StorageError::io("write", &path))?;
        let segment = Segment { first, path, records: Vec::new(), len: MAGIC.len() as u64 };
        segment.preallocate(&file, size)?;
        if sync {
            file.sync_all().map_err(StorageError::io("fsync", &segment.path))?;
            super::checked_file::sync_dir(dir)?;
        }
        Ok((segment, file))
    }

    /// Opens the segment to write records at its end.
    pub(super) fn open_for_writing(&self) -> Result<File, StorageError> {
        retrying("open", || OpenOptions::new().write(true).open(&self.path))
            .map_err(StorageError::io("open", &self.path))
    }

    /// Makes the file `size` bytes long, zeros after the records, with its blocks allocated, so
    /// that an append only writes data: fdatasync then has no file size or block allocation to
    /// make durable (about a third faster here), and recovery reads the zeros as unwritten
    /// space. Where the file system cannot allocate ahead, the file just grows as it is
    /// written.
    pub(super) fn preallocate(&self, file: &File, size: u64) -> Result<(), StorageError> {
        if size <= self.len {
            return Ok(());
        }
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), self.len, size - self.len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
            Err(error) => Err(StorageError::io("preallocate", &self.path)(error.into())),
        }
    }

    /// Cuts the file back to its records (dropping preallocated space), then preallocates
    /// `size` bytes again (0: none, for a sealed segment).
    pub(super) fn cut(&self, file: &File, size: u64, sync: bool) -> Result<(), StorageError> {
        file.set_len(self.len).map_err(StorageError::io("truncate", &self.path))?;
        self.preallocate(file, size)?;
        if sync {
            file.sync_all().map_err(StorageError::io("fsync", &self.path))?;
        }
        Ok(())
    }

    /// Reads and checks a segment file whose name says it starts at `first`.
    ///
    /// Returns the segment, the entries it holds with an index above `keep_after`, and, when
    /// `is_last` and the file ends in a torn write, where the valid data ends. A torn write
    /// anywhere but at the end of the last segment, a checksum failure with data after it,
    /// or an index out of sequence is [`StorageError::Corrupt`].
    pub(super) fn scan(
        path: &Path,
        first: Index,
        is_last: bool,
        keep_after: Index,
    ) -> Result<(Segment, Vec<Entry>, Option<TornTail>), StorageError> {
        let bytes = retrying("read", || fs::read(path)).map_err(StorageError::io("read", path))?;
        let mut segment = Segment { first, path: path.to_path_buf(), records: Vec::new(), len: 0 };
        let mut entries = Vec::new();
        let torn = |offset: usize, reason| {
            if is_last {
                Ok(TornTail { offset: offset as u64, dropped: (bytes.len() - offset) as u64, reason })
            } else {
                Err(StorageError::corrupt(
                    path,
                    offset as u64,
                    format!("{reason} in a segment that is not the last"),
                ))
            }
        };
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // Created but never finished: the header itself is torn.
            return Ok((segment, entries, Some(torn(0, "incomplete segment header")?)));
        }
        if !bytes.starts_with(MAGIC) {
            return Err(StorageError::corrupt(path, 0, "not a log segment (wrong header)"));
        }
        let mut offset = MAGIC.len();
        let mut tail = None;
        while offset < bytes.len() {
            match record::decode(&bytes[offset..]) {
                Decoded::Record { entry, len } => {
                    let expected = segment.next_index();
                    if entry.index != expected {
                        let reason = format!("record holds index {}, expected {expected}", entry.index);
                        return Err(StorageError::corrupt(path, offset as u64, reason));
                    }
                    segment.records.push((offset as u64, entry.term));
                    if entry.index > keep_after {
                        entries.push(entry);
                    }
                    offset += len;
                }
                // Preallocated space that was never written: the clean end of the segment.
                Decoded::Torn(_) if !record::followed_by_data(&bytes[offset..]) => break,
                Decoded::Torn(reason) => {
                    tail = Some(torn(offset, reason)?);
                    break;
                }
                Decoded::Damaged { reason, end }
                    if !record::followed_by_data(&bytes[(offset + end).min(bytes.len())..]) =>
                {
                    tail = Some(torn(offset, reason)?);
                    break;
                }
                Decoded::Damaged { reason, .. } => {
                    return Err(StorageError::corrupt(
                        path,
                        offset as u64,
                        format!("{reason}, with data after it"),
                    ))
                }
                Decoded::Corrupt(reason) => return Err(StorageError::corrupt(path, offset as u64, reason)),
            }
        }
        segment.len = offset as u64;
        Ok((segment, entries, tail))
    }
}
