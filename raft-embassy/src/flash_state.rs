//! [`FlashState`]: today's [`PersistentState`] over a [`FlashLog`], plus the application state
//! machine. A thin adapter: the log store does the work, the state machine lives in RAM and is
//! rebuilt from the snapshot on every load.

use core::fmt;

use embedded_storage_async::nor_flash::NorFlash;
use raft_core::{
    AppliedState, Bytes, Entry, HardState, Index, InitialState, Membership, PersistentState, RestoreError,
    Snapshot, SnapshotMeta, StateMachine,
};

use crate::flash::{FlashLog, FlashLogError};

/// A [`PersistentState`] whose term, vote, log and snapshots are on flash ([`FlashLog`]) and
/// whose state machine `M` is in RAM: after a power cut the node restores `M` from the snapshot
/// and applies the rest of the log again as it learns it is committed.
///
/// Unlike [`RamState`](crate::RamState) it keeps no copy of the log in RAM (raft-core keeps its
/// own): its RAM is the state machine and the flash store's item buffer.
pub struct FlashState<F: NorFlash, M> {
    log: FlashLog<F>,
    state: AppliedState<M>,
    bootstrap: Membership,
    restored: Option<InitialState>,
}

/// Why a [`FlashState`] operation failed. Each one stops the node.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashStateError<E> {
    /// The flash store failed.
    Store(FlashLogError<E>),
    /// A snapshot could not be restored into the state machine.
    Restore(RestoreError),
}

impl<E: fmt::Debug> fmt::Display for FlashStateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashStateError::Store(e) => e.fmt(f),
            FlashStateError::Restore(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashStateError<E> {}

impl<E> From<FlashLogError<E>> for FlashStateError<E> {
    fn from(error: FlashLogError<E>) -> Self {
        FlashStateError::Store(error)
    }
}

impl<F: NorFlash, M: StateMachine> FlashState<F, M> {
    /// A store over `log` for the state machine `machine` (as it is before any entry), with
    /// `bootstrap` as the initial configuration if the flash holds none yet.
    pub fn new(log: FlashLog<F>, machine: M, bootstrap: Membership) -> Self {
        FlashState { log, state: AppliedState::new(machine), bootstrap, restored: None }
    }

    /// Loads from flash now rather than when the node starts, and tells what was restored
    /// (to log it at boot, say). The node's start then uses this load.
    pub async fn restore(&mut self) -> Result<&InitialState, FlashStateError<F::Error>> {
        let restored = self.log.load(&self.bootstrap).await?;
        if let Some(snapshot) = &restored.snapshot {
            self.state.restore(snapshot).map_err(FlashStateError::Restore)?;
        }
        Ok(self.restored.insert(InitialState {
            hard_state: restored.hard_state,
            snapshot: restored.snapshot,
            entries: restored.entries,
            applied: self.state.applied_index(),
            bootstrap: restored.bootstrap,
        }))
    }

    /// The application state machine.
    pub fn machine(&self) -> &M {
        self.state.machine()
    }

    /// The last applied index.
    pub fn applied_index(&self) -> Index {
        self.state.applied_index()
    }

    /// The flash store.
    pub fn log(&self) -> &FlashLog<F> {
        &self.log
    }

    /// Gives the flash store back.
    pub fn into_log(self) -> FlashLog<F> {
        self.log
    }
}

impl<F: NorFlash, M: StateMachine> PersistentState for FlashState<F, M> {
    type Error = FlashStateError<F::Error>;

    async fn load(&mut self) -> Result<InitialState, Self::Error> {
        if self.restored.is_none() {
            self.restore().await?;
        }
        Ok(self.restored.take().unwrap_or_default())
    }

    async fn save_hard_state(&mut self, state: HardState) -> Result<(), Self::Error> {
        Ok(self.log.save_hard_state(state).await?)
    }

    async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), Self::Error> {
        Ok(self.log.write_log(truncate_from, entries).await?)
    }

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, Self::Error> {
        Ok(self.state.apply(entry))
    }

    async fn query(&mut self, query: &[u8]) -> Result<Bytes, Self::Error> {
        Ok(self.state.query(query))
    }

    async fn snapshot(&mut self, meta: SnapshotMeta) -> Result<Snapshot, Self::Error> {
        let snapshot = self.state.snapshot(meta);
        self.log.store_snapshot(&snapshot).await?;
        Ok(snapshot)
    }

    async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.state.restore(snapshot).map_err(FlashStateError::Restore)?;
        Ok(self.log.store_snapshot(snapshot).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::FlashLogConfig;
    use crate::sim_flash::SimFlash;
    use alloc::vec::Vec;
    use futures::executor::block_on;
    use futures::{stream, StreamExt};
    use raft_core::{Event, Incoming, Instant, Outgoing, RaftStreamExt};

    fn boot(flash: &SimFlash) -> FlashState<SimFlash, Vec<Bytes>> {
        let config = FlashLogConfig { log_capacity: 16, max_item_bytes: 128, ..FlashLogConfig::new(0..4096) };
        FlashState::new(FlashLog::new(flash.clone(), config).unwrap(), Vec::new(), Membership::new([1]))
    }

    /// A one-node cluster commits, snapshots and commits more; after a power cycle its term,
    /// log and state machine are back.
    #[test]
    fn a_node_restarts_from_flash() {
        let flash = SimFlash::new(16);
        let mut inputs =
            vec![Incoming::Tick(Instant::from_millis(0)), Incoming::Tick(Instant::from_millis(500))];
        inputs.extend((1..=3).map(|id| Incoming::Propose { id, command: Bytes::from(vec![id as u8]) }));
        inputs.push(Incoming::Compact);
        inputs.extend((4..=5).map(|id| Incoming::Propose { id, command: Bytes::from(vec![id as u8]) }));
        let outputs: Vec<_> = block_on(stream::iter(inputs).into_raft_events(1, boot(&flash)).collect());
        let committed = outputs
            .iter()
            .filter(|o| matches!(o, Ok(Outgoing::Event(Event::Proposal { result: Ok(_), .. }))))
            .count();
        assert_eq!(committed, 5, "{outputs:?}");

        let mut state = boot(&flash);
        let restored = block_on(state.restore()).unwrap().clone();
        assert_eq!(restored.hard_state.term, 1);
        let snapshot = restored.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        assert!(snapshot > 1, "a snapshot was taken: {restored:?}");
        let indexes: Vec<Index> = restored.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, (snapshot + 1..=6).collect::<Vec<_>>(), "a no-op and five commands");
        assert_eq!(restored.applied, snapshot);
        assert_eq!(state.machine().len() as Index, snapshot - 1, "the snapshot restored the state machine");
        assert_eq!(block_on(state.load()).unwrap(), restored, "load() hands over what restore() read");
    }
}
