//! The replicated key-value state machine: string keys and values, with put, delete and
//! compare-and-swap. Commands, queries and answers travel as postcard.

use std::collections::BTreeMap;

use raft_core::{
    Bytes, Entry, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
};
use serde::{Deserialize, Serialize};

/// A write, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set `key` to `value`.
    Put { key: String, value: String },
    /// Remove `key`.
    Delete { key: String },
    /// Set `key` to `to` (remove it if `None`) only if its value is `from` (absent if `None`).
    Cas { key: String, from: Option<String>, to: Option<String> },
}

/// A read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The value of `key`.
    Get { key: String },
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
}

/// The key-value store.
#[derive(Debug, Default)]
pub struct KvStore {
    entries: BTreeMap<String, String>,
}

impl KvStore {
    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Put { key, value } => Outcome::Put { previous: self.entries.insert(key, value) },
            Command::Delete { key } => Outcome::Delete { previous: self.entries.remove(&key) },
            Command::Cas { key, from, to } => {
                let current = self.entries.get(&key);
                if current != from.as_ref() {
                    return Outcome::Cas { swapped: false, current: current.cloned() };
                }
                match &to {
                    Some(value) => self.entries.insert(key, value.clone()),
                    None => self.entries.remove(&key),
                };
                Outcome::Cas { swapped: true, current: to }
            }
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
        let value = match postcard::from_bytes(query) {
            Ok(Query::Get { key }) => self.entries.get(&key).cloned(),
            Err(_) => None,
        };
        Ok(encode(&value))
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        Ok(out.write(&encode(&self.entries)).await?)
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let snapshot = from.read_to_end().await?;
        self.entries = postcard::from_bytes(&snapshot).map_err(|e| RestoreError(e.to_string()))?;
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
        let mut image = Image(Vec::new());
        block_on(store.build_snapshot(&meta, &mut image)).unwrap();
        let mut restored = KvStore::default();
        block_on(restored.restore(&meta, &mut Chunk(Some(Bytes::from(image.0))))).unwrap();
        assert_eq!(get(&mut restored, "a").as_deref(), Some("1"));
        assert!(block_on(restored.restore(&meta, &mut Chunk(Some(Bytes::from_static(b"\xff"))))).is_err());
    }

    struct Image(Vec<u8>);

    impl SnapshotWriter for Image {
        async fn write(&mut self, chunk: &[u8]) -> Result<(), raft_core::SnapshotAborted> {
            self.0.extend_from_slice(chunk);
            Ok(())
        }
    }

    struct Chunk(Option<Bytes>);

    impl SnapshotReader for Chunk {
        async fn read(&mut self) -> Result<Option<Bytes>, raft_core::SnapshotAborted> {
            Ok(self.0.take())
        }
    }
}
