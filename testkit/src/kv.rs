//! [`KvStore`]: the key-value state machine every simulated node runs.

use std::collections::BTreeMap;

use raft_core::{
    Bytes, Entry, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
};

use crate::digest::Digest;

/// A key-value map driven by the replicated log.
///
/// A command `key=value` stores `value` under `key`; a command without `=` stores an empty
/// value under the whole command (so any byte string is a valid command). A query is a key;
/// its answer is the stored value, empty when the key is absent.
///
/// ```
/// use futures::executor::block_on;
/// use raft_core::{Bytes, Command, Entry, Payload, StateMachine};
/// use testkit::KvStore;
/// let mut kv = KvStore::default();
/// let put = Entry { term: 1, index: 1, payload: Payload::Command(Command::from_static(b"x=1")) };
/// block_on(kv.apply(&put)).unwrap();
/// assert_eq!(block_on(kv.query(b"x")).unwrap(), Bytes::from_static(b"1"));
/// assert_eq!(kv.get(b"x"), Some(&Bytes::from_static(b"1")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<Bytes, Bytes>,
}

/// Splits a command into key and value (see [`KvStore`]).
pub fn split_command(command: &[u8]) -> (Bytes, Bytes) {
    match command.iter().position(|&b| b == b'=') {
        Some(at) => (Bytes::copy_from_slice(&command[..at]), Bytes::copy_from_slice(&command[at + 1..])),
        None => (Bytes::copy_from_slice(command), Bytes::new()),
    }
}

impl KvStore {
    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A digest of the whole contents: equal stores have equal digests.
    pub(crate) fn digest(&self) -> u64 {
        self.map.iter().fold(Digest::new(), |d, (k, v)| d.field(k).field(v)).finish()
    }
}

impl StateMachine for KvStore {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        if let Payload::Command(command) = &entry.payload {
            let (key, value) = split_command(command);
            self.map.insert(key, value);
        }
        Ok(Bytes::new())
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(self.map.get(query).cloned().unwrap_or_default())
    }

    /// One chunk per key: length-prefixed key, then length-prefixed value.
    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        let mut chunk = Vec::new();
        for (key, value) in &self.map {
            chunk.clear();
            for field in [key, value] {
                let len =
                    u32::try_from(field.len()).map_err(|_| RestoreError("a field over 4 GiB".into()))?;
                chunk.extend_from_slice(&len.to_le_bytes());
                chunk.extend_from_slice(field);
            }
            out.write(&chunk).await?;
        }
        Ok(())
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let bytes = from.read_to_end().await?;
        let mut snapshot = &bytes[..];
        let mut map = BTreeMap::new();
        while !snapshot.is_empty() {
            let key = take_field(&mut snapshot)?;
            let value = take_field(&mut snapshot)?;
            map.insert(key, value);
        }
        self.map = map;
        Ok(())
    }
}

/// Takes one length-prefixed field off the front of `input`.
fn take_field(input: &mut &[u8]) -> Result<Bytes, RestoreError> {
    let (len, rest) =
        input.split_first_chunk::<4>().ok_or_else(|| RestoreError("truncated length prefix".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(RestoreError("truncated field".into()));
    }
    let (field, rest) = rest.split_at(len);
    *input = rest;
    Ok(Bytes::copy_from_slice(field))
}
