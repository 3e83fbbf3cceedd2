//! [`CommandCounter`]: the benchmarks' state machine, which counts applied commands and keeps
//! nothing else, so that what they measure is the protocol and its storage.

use raft_core::{
    Bytes, Entry, Payload, RestoreError, SnapshotMeta, SnapshotReader, SnapshotWriter, StateMachine,
};

/// Counts the commands applied (no-ops and configurations are applied but not counted); a
/// query answers the count, little-endian, and a snapshot is the count.
///
/// ```
/// use futures::executor::block_on;
/// use raft_core::{Command, Entry, Payload, StateMachine};
/// use testkit::CommandCounter;
///
/// let mut counter = CommandCounter::default();
/// let command = Entry { term: 1, index: 1, payload: Payload::Command(Command::from_static(b"x")) };
/// block_on(counter.apply(&command)).unwrap();
/// block_on(counter.apply(&Entry { term: 1, index: 2, payload: Payload::Noop })).unwrap();
/// assert_eq!(counter.count(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CommandCounter(u64);

impl CommandCounter {
    /// The commands applied so far.
    pub fn count(&self) -> u64 {
        self.0
    }
}

impl StateMachine for CommandCounter {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        self.0 += u64::from(matches!(entry.payload, Payload::Command(_)));
        Ok(Bytes::new())
    }

    async fn query(&mut self, _: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(Bytes::copy_from_slice(&self.0.to_le_bytes()))
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        Ok(out.write(&self.0.to_le_bytes()).await?)
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let bytes = from.read_to_end().await?;
        let bytes = bytes.try_into().map_err(|_| RestoreError("a count is 8 bytes".into()))?;
        self.0 = u64::from_le_bytes(bytes);
        Ok(())
    }
}
