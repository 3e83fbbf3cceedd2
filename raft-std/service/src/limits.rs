//! The process's open-file limit, and the share of it that HTTP clients may hold.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, logging the change,
/// and returns the soft limit now in force (`None`: unlimited).
///
/// A server holds one descriptor per client connection, per peer link and per open log
/// segment; the soft limit (often 1,024) is a default for interactive shells, not for servers.
/// If the raise is refused, the old limit stays and a warning says so.
pub fn raise_open_file_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        tracing::info!(open_file_limit = ?limit.current, "open-file limit (RLIMIT_NOFILE) is already at its hard limit");
        return limit.current;
    }
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = ?limit.current, to = ?limit.maximum, "raised the open-file limit (RLIMIT_NOFILE) to its hard limit");
            limit.maximum
        }
        Err(error) => {
            tracing::warn!(limit = ?limit.current, %error, "cannot raise the open-file limit (RLIMIT_NOFILE); keeping it");
            limit.current
        }
    }
}

/// The connection cap to use: `wanted`, but never more than half of `open_file_limit`, so
/// that clients alone can never exhaust the descriptors the node needs for its storage, its
/// peers and its logs. At least 1.
pub fn connection_cap(wanted: usize, open_file_limit: Option<u64>) -> usize {
    let Some(limit) = open_file_limit else { return wanted.max(1) };
    let half = usize::try_from(limit / 2).unwrap_or(usize::MAX);
    if wanted > half {
        tracing::warn!(
            wanted, open_file_limit = limit, cap = half,
            "--http-max-connections is more than half the open-file limit; lowering it (raise `ulimit -n` to allow more)"
        );
    }
    wanted.min(half).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_at_half_the_descriptors() {
        assert_eq!(connection_cap(1024, Some(1024)), 512);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(100, None), 100);
        assert_eq!(connection_cap(10, Some(1)), 1);
    }
}
