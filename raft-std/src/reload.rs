//! [`FileWatch`]: whether files something was loaded from changed since, and a poll loop to
//! load them again (the TLS transport's credentials; raft-service's HTTPS certificate and
//! roles file).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// One file as last looked at: modification time, size and inode. A file replaced by a
/// rename (the safe way to write one) gets a new inode even when its time and size look the
/// same.
type FileStamp = (Option<SystemTime>, u64, u64);

/// Files that something was loaded from, and whether they changed since: their modification
/// times, sizes and inodes, recorded when they were read ([`mark`](FileWatch::mark)) and
/// compared later ([`changed`](FileWatch::changed)). A missing file (say, in the middle of a
/// rename) counts as a change once, when it goes missing, and again when it is back.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use raft_std::FileWatch;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("settings");
/// std::fs::write(&path, "a").unwrap();
/// let watch = Arc::new(FileWatch::new([&path])); // before reading the file
/// let _settings = std::fs::read_to_string(&path).unwrap();
/// assert!(!watch.changed());
/// std::fs::write(&path, "ab").unwrap();
/// assert!(watch.changed(), "the size changed");
/// assert!(!watch.changed(), "and that change was seen");
///
/// // A service looks every few seconds, in a blocking task, until it aborts the task.
/// let poll = tokio::spawn(Arc::clone(&watch).poll(Duration::from_secs(5), move || {
///     match std::fs::read_to_string(&path) {
///         Ok(_settings) => { /* use them from now on */ }
///         Err(error) => eprintln!("keeping the current settings: {error}"),
///     }
/// }));
/// poll.abort();
/// # }
/// ```
#[derive(Debug)]
pub struct FileWatch {
    paths: Vec<PathBuf>,
    /// The files as last recorded; `None` if one of them could not be looked at.
    seen: Mutex<Option<Vec<FileStamp>>>,
}

impl FileWatch {
    /// Watches `paths`, recording them as they are now: create it just before reading them.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> FileWatch {
        let paths: Vec<PathBuf> = paths.into_iter().map(Into::into).collect();
        let seen = Mutex::new(stamp(&paths));
        FileWatch { paths, seen }
    }

    /// The files watched.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Records the files as they are now. Call it just before reading them, so that a write
    /// that lands while they are read shows as a change at the next look.
    pub fn mark(&self) {
        *self.lock() = stamp(&self.paths);
    }

    /// Whether a file changed since it was last recorded or looked at; records it as it is
    /// now. Looks at the file system: call it where blocking for a moment is fine.
    pub fn changed(&self) -> bool {
        let now = stamp(&self.paths);
        let mut seen = self.lock();
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    /// Every `every`, looks whether the files [`changed`](FileWatch::changed) and, if so, calls
    /// `on_change` (which loads them again, and on failure keeps what it had and says why);
    /// both in a blocking task, since they touch the file system. Runs until dropped: spawn
    /// it, and abort it when what it reloads goes away.
    pub async fn poll(self: Arc<Self>, every: Duration, on_change: impl Fn() + Send + Sync + 'static) {
        let on_change = Arc::new(on_change);
        loop {
            tokio::time::sleep(every).await;
            let (watch, on_change) = (Arc::clone(&self), Arc::clone(&on_change));
            // A panicking `on_change` is the caller's bug; the next look tries again.
            let _ = tokio::task::spawn_blocking(move || {
                if watch.changed() {
                    on_change();
                }
            })
            .await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<FileStamp>>> {
        // A plain value, replaced whole: a panic elsewhere cannot leave it half-written.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The files' stamps, or `None` if one cannot be looked at.
fn stamp(paths: &[PathBuf]) -> Option<Vec<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    let look = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len(), m.ino()));
    paths.iter().map(|path| look(path)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn changes_are_seen_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").unwrap();
        std::fs::write(&b, "1").unwrap();
        let watch = FileWatch::new([&a, &b]);
        assert_eq!(watch.paths(), [a.clone(), b.clone()]);
        assert!(!watch.changed());

        // Replaced by a rename with the same size (and maybe the same time): a new inode.
        let staged = dir.path().join("b.new");
        std::fs::write(&staged, "2").unwrap();
        std::fs::rename(&staged, &b).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());

        // Missing: one change; back: another.
        std::fs::remove_file(&a).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        std::fs::write(&a, "1").unwrap();
        assert!(watch.changed());

        // `mark` records without reporting.
        std::fs::write(&a, "12").unwrap();
        watch.mark();
        assert!(!watch.changed());
    }

    #[tokio::test(start_paused = true)]
    async fn poll_calls_back_on_change_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "1").unwrap();
        let watch = Arc::new(FileWatch::new([&path]));
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let poll = tokio::spawn(Arc::clone(&watch).poll(Duration::from_secs(1), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let calls_now = || calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(calls_now(), 0);
        std::fs::write(&path, "22").unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(calls_now(), 1);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(calls_now(), 1);
        poll.abort();
    }
}
