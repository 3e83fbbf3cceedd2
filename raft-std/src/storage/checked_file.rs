//! Whole files replaced atomically and guarded by a checksum: term and vote, the snapshot, the
//! bootstrap configuration.
//!
//! Layout: an 8-byte magic tag naming the kind of file, the payload length (u64 LE), the
//! payload's CRC32 (u32 LE), then the payload. A write goes to `<name>.tmp`, is fsynced, renamed
//! over `<name>`, and the directory is fsynced, so a reader sees the old file or the new one,
//! never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::descriptors::retrying;
use super::error::StorageError;

const HEADER_LEN: usize = 8 + 8 + 4;

/// Suffix of files being written; leftovers from a crash are removed on open.
pub(super) const TEMP_SUFFIX: &str = "tmp";

/// Atomically replaces `path` with `payload`, durably when `sync` is set.
pub(super) fn write(path: &Path, magic: &[u8; 8], payload: &[u8], sync: bool) -> Result<(), StorageError> {
    let temp = path.with_extension(TEMP_SUFFIX);
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    let mut file = retrying("create", || File::create(&temp)).map_err(StorageError::io("create", &temp))?;
    file.write_all(&bytes).map_err(StorageError::io("write", &temp))?;
    if sync {
        file.sync_all().map_err(StorageError::io("fsync", &temp))?;
    }
    drop(file);
    fs::rename(&temp, path).map_err(StorageError::io("rename into place", path))?;
    if sync {
        sync_dir(parent(path))?;
    }
    Ok(())
}

/// Reads the payload of `path`, or `None` if the file does not exist. A file with the wrong
/// tag, a short file or a checksum mismatch is [`StorageError::Corrupt`]: these files are only
/// ever replaced whole, so damage is never a torn write.
pub(super) fn read(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>, StorageError> {
    let mut bytes = match retrying("read", || fs::read(path)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", path)(e)),
    };
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(StorageError::corrupt(path, 0, "missing or wrong file header"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    if len != (bytes.len() - HEADER_LEN) as u64 {
        return Err(StorageError::corrupt(path, 8, format!("header says {len} bytes of content")));
    }
    let payload = bytes.split_off(HEADER_LEN);
    if crc32fast::hash(&payload) != crc {
        return Err(StorageError::corrupt(path, HEADER_LEN as u64, "content fails its checksum"));
    }
    Ok(Some(payload))
}

/// Fsyncs a directory, making renames, creations and removals in it durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    retrying("open directory", || File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync directory", dir))
}

/// Removes `*.tmp` files a crash left behind in `dir`.
pub(super) fn remove_leftovers(dir: &Path) -> Result<(), StorageError> {
    for entry in retrying("list", || fs::read_dir(dir)).map_err(StorageError::io("list", dir))? {
        let path: PathBuf = entry.map_err(StorageError::io("list", dir))?.path();
        if path.extension().is_some_and(|e| e == TEMP_SUFFIX) {
            fs::remove_file(&path).map_err(StorageError::io("remove", &path))?;
        }
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTFILE";

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert_eq!(read(&path, MAGIC).unwrap(), None);
        write(&path, MAGIC, b"hello", true).unwrap();
        write(&path, MAGIC, b"hello again", true).unwrap();
        assert_eq!(read(&path, MAGIC).unwrap().as_deref(), Some(&b"hello again"[..]));
        assert!(!path.with_extension(TEMP_SUFFIX).exists());
    }

    #[test]
    fn damage_is_reported_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write(&path, MAGIC, b"hello", false).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let error = read(&path, MAGIC).unwrap_err().to_string();
        assert!(error.contains("state") && error.contains("checksum"), "{error}");
        assert!(matches!(read(&path, b"OTHERTAG"), Err(StorageError::Corrupt { offset: 0, .. })));
    }
}
