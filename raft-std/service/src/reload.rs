//! [`Reloading`]: a value loaded from files, loaded again when they change, without a restart
//! (the HTTPS server configuration, [`ServerTls`](crate::tls::ServerTls); the roles file,
//! [`RolesFile`](crate::auth::RolesFile)).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use raft_std::FileWatch;

/// Loads a value from files.
type Load<T> = dyn Fn() -> Result<Arc<T>, String> + Send + Sync;

/// A value loaded from files, and loaded again when they change: readers take the
/// [`current`](Reloading::current) value (one atomic swap replaces it, so a reader sees the
/// old value or the new one, whole); [`watch`](Reloading::watch) looks at the files'
/// modification times, sizes and inodes ([`FileWatch`]) and reloads. A reload that fails —
/// a missing, unreadable or half-written file, a certificate with the wrong key, a roles
/// file with a mistake — keeps the current value and logs a warning that names the file;
/// the next change to the files is tried again.
pub struct Reloading<T> {
    /// What the value is, for the log (`the HTTPS certificate`, `the roles file`).
    what: &'static str,
    files: Arc<FileWatch>,
    load: Box<Load<T>>,
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Loads the value with `load` from `paths` (every file `load` reads; errors should name
    /// the file at fault). `what` names it in log lines.
    pub fn load<P: Into<PathBuf>>(
        what: &'static str,
        paths: impl IntoIterator<Item = P>,
        load: impl Fn() -> Result<Arc<T>, String> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, String> {
        let files = Arc::new(FileWatch::new(paths));
        let current = RwLock::new(load()?);
        Ok(Reloading { what, files, load: Box::new(load), current })
    }

    /// The value as last loaded.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the files now: on success the value is replaced, on failure it is kept and the
    /// error says which file is wrong. Reads files: call it where blocking is fine.
    pub fn reload(&self) -> Result<(), String> {
        self.files.mark();
        let value = (self.load)()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = value;
        Ok(())
    }

    /// Every `every`, reloads the value if its files changed, logging the outcome (a failure as
    /// a warning). Runs until dropped: spawn it, and abort it when the value is no longer
    /// used.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let files = Arc::clone(&self.files);
        files
            .poll(every, move || match self.reload() {
                Ok(()) => tracing::info!("reloaded {}", self.what),
                Err(error) => {
                    tracing::warn!(%error, "cannot reload {}; keeping the version loaded before", self.what)
                }
            })
            .await;
    }
}

impl<T> fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading").field("what", &self.what).field("files", &self.files.paths()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to 5 s for `condition`.
    async fn eventually(condition: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_bad_file_keeps_the_value_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("number");
        std::fs::write(&path, "1").unwrap();
        let read = {
            let path = path.clone();
            move || {
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                text.trim().parse::<u32>().map(Arc::new).map_err(|e| format!("{}: {e}", path.display()))
            }
        };
        let number = Arc::new(Reloading::load("the number", [&path], read).unwrap());
        assert_eq!(*number.current(), 1);
        let watching = tokio::spawn(Arc::clone(&number).watch(Duration::from_millis(10)));

        // A bad file is not loaded (after ten looks or so).
        std::fs::write(&path, "two").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*number.current(), 1);
        std::fs::write(&path, "22").unwrap();
        assert!(eventually(|| *number.current() == 22).await);

        std::fs::remove_file(&path).unwrap();
        assert!(number.reload().unwrap_err().contains("No such file"));
        assert_eq!(*number.current(), 22);
        watching.abort();
    }
}
