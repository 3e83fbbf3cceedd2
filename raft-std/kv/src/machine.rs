//! The replicated key-value state machine: string keys and values, with put, delete and
//! compare-and-swap, under a quota. Commands, queries and answers travel as postcard.
//!
//! # The quota
//!
//! The store counts its size: the bytes of every key and value it holds, updated by every
//! command and recomputed from the entries when a snapshot is restored. A write that would
//! grow the store past its quota is refused ([`Outcome::QuotaExceeded`]) and raises the
//! quota alarm; while the alarm is raised, every write that grows the store is refused, even
//! one that would fit, so that a full store does not creep up to its limit a few bytes at a
//! time. Reads, deletes and writes that shrink the store always work, and the first write that
//! shrinks the store clears the alarm.
//!
//! The decision is made here, when the command is applied, from the store's size and alarm and
//! the quota the command carries, which the node that accepted the write put there (its
//! `--quota-bytes`). All three are the same on every replica (the alarm travels in snapshots),
//! so every replica makes the same decision, even if the nodes run with different quotas: a
//! node's quota applies to the writes it accepts.

use std::collections::BTreeMap;

use raft_core::{
    Bytes, Entry, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
};
use serde::{Deserialize, Serialize};

/// A write, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set `key` to `value`, with no quota: written by raft-kv before quotas existed, and
    /// still applied so that such logs replay the same.
    Put { key: String, value: String },
    /// Remove `key`.
    Delete { key: String },
    /// Compare-and-swap with no quota, as [`Command::Put`] is.
    Cas { key: String, from: Option<String>, to: Option<String> },
    /// Set `key` to `value`, unless that grows the store past `quota` bytes (or the alarm
    /// is raised).
    PutWithin { key: String, value: String, quota: u64 },
    /// Set `key` to `to` (remove it if `None`) only if its value is `from` (absent if `None`),
    /// and unless that grows the store past `quota` bytes (or the alarm is raised).
    CasWithin { key: String, from: Option<String>, to: Option<String>, quota: u64 },
}

/// A read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The value of `key`: answered with an `Option<String>`.
    Get { key: String },
    /// The store's size and alarm: answered with a [`Usage`].
    Usage,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A put: the value it replaced.
    Put { previous: Option<String> },
    /// A delete: the value it removed.
    Delete { previous: Option<String> },
    /// A compare-and-swap: whether it swapped, and the value the key holds now.
    Cas { swapped: bool, current: Option<String> },
    /// The command did not decode (never produced by this service's own API).
    Invalid(String),
    /// The write would have grown the store past `quota` bytes, or the alarm was raised:
    /// nothing changed. `used` is the store's size.
    QuotaExceeded { used: u64, quota: u64 },
}

/// The store's size and quota alarm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of keys and values held.
    pub bytes: u64,
    /// Whether a write was refused since the store last shrank.
    pub alarm: bool,
}

/// The key-value store.
#[derive(Debug, Default)]
pub struct KvStore {
    entries: BTreeMap<String, String>,
    usage: Usage,
}

/// The bytes an entry counts for.
fn size(key: &str, value: &str) -> u64 {
    (key.len() as u64).saturating_add(value.len() as u64)
}

impl KvStore {
    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Put { key, value } => self.put(key, value, u64::MAX),
            Command::PutWithin { key, value, quota } => self.put(key, value, quota),
            Command::Delete { key } => {
                let previous = self.entries.remove(&key);
                if let Some(value) = &previous {
                    self.resize(size(&key, value), 0);
                }
                Outcome::Delete { previous }
            }
            Command::Cas { key, from, to } => self.compare_and_swap(key, from, to, u64::MAX),
            Command::CasWithin { key, from, to, quota } => self.compare_and_swap(key, from, to, quota),
        }
    }

    fn put(&mut self, key: String, value: String, quota: u64) -> Outcome {
        let before = self.entries.get(&key).map_or(0, |old| size(&key, old));
        if let Err(refused) = self.admit(before, size(&key, &value), quota) {
            return refused;
        }
        Outcome::Put { previous: self.entries.insert(key, value) }
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        from: Option<String>,
        to: Option<String>,
        quota: u64,
    ) -> Outcome {
        let current = self.entries.get(&key);
        if current != from.as_ref() {
            return Outcome::Cas { swapped: false, current: current.cloned() };
        }
        let before = current.map_or(0, |old| size(&key, old));
        let after = to.as_ref().map_or(0, |new| size(&key, new));
        if let Err(refused) = self.admit(before, after, quota) {
            return refused;
        }
        match &to {
            Some(value) => self.entries.insert(key, value.clone()),
            None => self.entries.remove(&key),
        };
        Outcome::Cas { swapped: true, current: to }
    }

    /// Accounts for an entry of `before` bytes becoming `after` bytes, or refuses the change
    /// (see the module docs).
    fn admit(&mut self, before: u64, after: u64, quota: u64) -> Result<(), Outcome> {
        let used = self.usage.bytes;
        let total = used - before.min(used) + after;
        if after > before && (self.usage.alarm || total > quota) {
            self.usage.alarm = true;
            return Err(Outcome::QuotaExceeded { used, quota });
        }
        self.resize(before, after);
        Ok(())
    }

    /// An entry of `before` bytes became `after` bytes; shrinking clears the alarm.
    fn resize(&mut self, before: u64, after: u64) {
        self.usage.bytes = self.usage.bytes.saturating_sub(before).saturating_add(after);
        if after < before {
            self.usage.alarm = false;
        }
    }
}

impl StateMachine for KvStore {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        let Payload::Command(command) = &entry.payload else { return Ok(Bytes::new()) };
        let outcome = match postcard::from_bytes(command) {
            Ok(command) => self.execute(command),
            Err(e) => Outcome::Invalid(e.to_string()),
        };
        Ok(encode(&outcome))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(match postcard::from_bytes(query) {
            Ok(Query::Get { key }) => encode(&self.entries.get(&key)),
            Ok(Query::Usage) => encode(&self.usage),
            Err(_) => encode(&None::<String>),
        })
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        // The entries and the alarm; the size is recomputed on restore.
        Ok(out.write(&encode(&(&self.entries, self.usage.alarm))).await?)
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let snapshot = from.read_to_end().await?;
        // Snapshots taken before quotas hold the entries alone (and no alarm).
        let image = postcard::from_bytes::<(BTreeMap<String, String>, bool)>(&snapshot)
            .or_else(|_| postcard::from_bytes(&snapshot).map(|entries| (entries, false)));
        let (entries, alarm) = image.map_err(|e| RestoreError(e.to_string()))?;
        let bytes = entries.iter().map(|(key, value)| size(key, value)).fold(0, u64::saturating_add);
        self.entries = entries;
        self.usage = Usage { bytes, alarm };
        Ok(())
    }
}

/// postcard encodes these types into a `Vec` without error (they have no sequences of unknown
/// length).
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(value).expect("postcard encodes fixed-shape types into a Vec"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::collections::VecDeque;

    fn apply(store: &mut KvStore, command: &[u8]) -> Bytes {
        let entry =
            Entry { term: 1, index: 1, payload: Payload::Command(Bytes::copy_from_slice(command).into()) };
        block_on(store.apply(&entry)).unwrap()
    }

    fn run(store: &mut KvStore, command: Command) -> Outcome {
        postcard::from_bytes(&apply(store, &encode(&command))).unwrap()
    }

    fn get(store: &mut KvStore, key: &str) -> Option<String> {
        postcard::from_bytes(&block_on(store.query(&encode(&Query::Get { key: key.into() }))).unwrap())
            .unwrap()
    }

    #[test]
    fn put_delete_and_compare_and_swap() {
        let mut store = KvStore::default();
        let put = |value: &str| Command::Put { key: "k".into(), value: value.into() };
        assert_eq!(run(&mut store, put("1")), Outcome::Put { previous: None });
        assert_eq!(run(&mut store, put("2")), Outcome::Put { previous: Some("1".into()) });
        let cas = |from: Option<&str>, to: Option<&str>| Command::Cas {
            key: "k".into(),
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        assert_eq!(
            run(&mut store, cas(Some("1"), Some("3"))),
            Outcome::Cas { swapped: false, current: Some("2".into()) }
        );
        assert_eq!(
            run(&mut store, cas(Some("2"), Some("3"))),
            Outcome::Cas { swapped: true, current: Some("3".into()) }
        );
        assert_eq!(get(&mut store, "k").as_deref(), Some("3"));
        assert_eq!(
            run(&mut store, Command::Delete { key: "k".into() }),
            Outcome::Delete { previous: Some("3".into()) }
        );
        assert_eq!(
            run(&mut store, cas(None, Some("new"))),
            Outcome::Cas { swapped: true, current: Some("new".into()) }
        );
        assert!(matches!(
            postcard::from_bytes(&apply(&mut store, b"\xff\xff")).unwrap(),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn snapshots_restore_the_same_store() {
        let mut store = KvStore::default();
        run(&mut store, Command::Put { key: "a".into(), value: "1".into() });
        let meta = SnapshotMeta::default();
        let mut image = Vec::new();
        block_on(store.build_snapshot(&meta, &mut image)).unwrap();
        let mut restored = KvStore::default();
        block_on(restored.restore(&meta, &mut VecDeque::from([Bytes::from(image)]))).unwrap();
        assert_eq!(get(&mut restored, "a").as_deref(), Some("1"));
        assert!(
            block_on(restored.restore(&meta, &mut VecDeque::from([Bytes::from_static(b"\xff")]))).is_err()
        );
    }

    fn usage(store: &mut KvStore) -> Usage {
        postcard::from_bytes(&block_on(store.query(&encode(&Query::Usage))).unwrap()).unwrap()
    }

    fn put_within(key: &str, value: &str, quota: u64) -> Command {
        Command::PutWithin { key: key.into(), value: value.into(), quota }
    }

    #[test]
    fn the_quota_refuses_growth_raises_the_alarm_and_deletes_clear_it() {
        let mut store = KvStore::default();
        assert_eq!(run(&mut store, put_within("a", "12345", 10)), Outcome::Put { previous: None });
        assert_eq!(usage(&mut store), Usage { bytes: 6, alarm: false });
        // 6 + 1 + 4 = 11 > 10: refused, nothing changes, the alarm is raised.
        assert_eq!(
            run(&mut store, put_within("b", "1234", 10)),
            Outcome::QuotaExceeded { used: 6, quota: 10 }
        );
        assert_eq!(get(&mut store, "b"), None);
        assert_eq!(usage(&mut store), Usage { bytes: 6, alarm: true });
        // While alarmed, growth that would fit is refused too; shrinking and reads work.
        assert!(matches!(run(&mut store, put_within("c", "", 10)), Outcome::QuotaExceeded { .. }));
        assert_eq!(get(&mut store, "a").as_deref(), Some("12345"));
        assert_eq!(
            run(&mut store, put_within("a", "1", 10)),
            Outcome::Put { previous: Some("12345".into()) }
        );
        assert_eq!(usage(&mut store), Usage { bytes: 2, alarm: false }, "shrinking clears the alarm");
        assert_eq!(run(&mut store, put_within("b", "1234", 10)), Outcome::Put { previous: None });
        let cas = Command::CasWithin {
            key: "b".into(),
            from: Some("1234".into()),
            to: Some("123456789".into()),
            quota: 10,
        };
        assert!(matches!(run(&mut store, cas), Outcome::QuotaExceeded { used: 7, quota: 10 }));
        assert_eq!(
            run(&mut store, Command::Delete { key: "b".into() }),
            Outcome::Delete { previous: Some("1234".into()) }
        );
        assert_eq!(usage(&mut store), Usage { bytes: 2, alarm: false });
        // Commands from before quotas have none.
        assert_eq!(
            run(&mut store, Command::Put { key: "big".into(), value: "x".repeat(100) }),
            Outcome::Put { previous: None }
        );
        assert_eq!(usage(&mut store).bytes, 105);
    }

    #[test]
    fn snapshots_carry_the_alarm_and_restore_the_size() {
        let mut store = KvStore::default();
        run(&mut store, put_within("a", "123", 5));
        run(&mut store, put_within("b", "123", 5));
        assert_eq!(usage(&mut store), Usage { bytes: 4, alarm: true });
        let meta = SnapshotMeta::default();
        let mut image = Vec::new();
        block_on(store.build_snapshot(&meta, &mut image)).unwrap();
        let mut restored = KvStore::default();
        block_on(restored.restore(&meta, &mut VecDeque::from([Bytes::from(image)]))).unwrap();
        assert_eq!(usage(&mut restored), Usage { bytes: 4, alarm: true });

        // A snapshot taken before quotas: the entries alone.
        let legacy = encode(&BTreeMap::from([("k".to_string(), "value".to_string())]));
        let mut restored = KvStore::default();
        block_on(restored.restore(&meta, &mut VecDeque::from([legacy]))).unwrap();
        assert_eq!(usage(&mut restored), Usage { bytes: 6, alarm: false });
        assert_eq!(get(&mut restored, "k").as_deref(), Some("value"));
    }
}
