//! Opening files while the process or the system is out of file descriptors.
//!
//! `EMFILE` (this process holds as many descriptors as its limit allows) and `ENFILE` (the
//! system's table is full) say nothing about the disk: they pass once some connection or file
//! elsewhere is closed. Stopping the node for them would turn a burst of clients into an
//! outage, so every operation here that needs a new descriptor (creating or opening a file,
//! opening a directory to fsync or list it) is retried while it fails that way: after 1 ms,
//! then after pauses that double up to 500 ms, for at most 10 s ([`RETRY_FOR`]) in all, with a
//! warning when the first attempt fails. Only if descriptors are still exhausted after that
//! does the operation fail with [`StorageError::Io`](super::StorageError::Io), which stops the
//! node as any storage failure does. The wait happens on the blocking thread pool: the node's
//! task waits for its storage, as it would for a slow disk.

use std::io;
use std::time::{Duration, Instant};

/// How long an operation that fails for lack of file descriptors is retried.
pub(super) const RETRY_FOR: Duration = Duration::from_secs(10);
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Runs `open` (something that creates a file descriptor), retrying it while it fails because
/// descriptors are exhausted, for up to [`RETRY_FOR`].
pub(super) fn retrying<T>(what: &str, mut open: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match open() {
            Err(error) if exhausted(&error) && start.elapsed() < RETRY_FOR => {
                if pause == FIRST_PAUSE {
                    tracing::warn!(%error, what, "out of file descriptors; retrying for up to {RETRY_FOR:?}");
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
            result => {
                if pause != FIRST_PAUSE && result.is_ok() {
                    tracing::info!(what, waited = ?start.elapsed(), "file descriptors available again");
                }
                return result;
            }
        }
    }
}

/// Whether `error` means the process or the system has no file descriptor left.
fn exhausted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_descriptor_exhaustion_is_retried() {
        let mut attempts = 0;
        let result = retrying("test", || {
            attempts += 1;
            if attempts < 3 {
                Err(io::Error::from_raw_os_error(libc::EMFILE))
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(result.unwrap(), 3);
        let mut attempts = 0;
        let result: io::Result<()> = retrying("test", || {
            attempts += 1;
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        });
        assert_eq!((result.unwrap_err().raw_os_error(), attempts), (Some(libc::ENOSPC), 1));
    }
}
