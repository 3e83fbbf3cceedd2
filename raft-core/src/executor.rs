//! The executor: the one implementation of the [`Ready`] contract.
//!
//! [`carry_out`] does a `Ready`'s work against a [`LogStore`] and a [`StateMachine`], in its
//! documented order: persist, send, apply, read, report, snapshot. [`start`] builds a
//! [`Node`] from what they hold. The stream driver, raft-std's `RaftNode` and the testkit
//! simulator all run these same functions; the simulator passes an [`Observer`] that checks
//! the safety rules at each step and lands crashes between steps, so its fault schedules
//! exercise the code path applications run.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::ops::ControlFlow;
use core::str::FromStr;

use crate::config::{Config, ConfigError};
use crate::event::{Applied, Event, Outgoing};
use crate::message::{InstallSnapshot, Message};
use crate::node::Node;
use crate::ready::{Ready, SnapshotSend};
use crate::storage::{LogStore, SnapshotAborted, SnapshotReader, SnapshotWriter, StateMachine};
use crate::types::{Entry, Index, InitialState, NodeId, SnapshotInfo, SnapshotMeta, Term};

/// Entries read from the log store per call while a node starts.
const LOAD_BATCH: u64 = 1024;

/// Why a node stopped. A node that cannot keep a promise stops rather than break it.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<S, M> {
    /// The [`LogStore`] failed.
    Storage(S),
    /// The [`StateMachine`] failed.
    StateMachine(M),
    /// The configuration or node id is unusable.
    Config(ConfigError),
    /// What storage holds contradicts itself or the contract.
    Inconsistent(Inconsistency),
}

impl<S: fmt::Display, M: fmt::Display> fmt::Display for Error<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Storage(e) => write!(f, "storage failed, node stopped: {e}"),
            Error::StateMachine(e) => write!(f, "the state machine failed, node stopped: {e}"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Inconsistent(e) => write!(f, "storage is inconsistent, node stopped: {e}"),
        }
    }
}

impl<S: fmt::Debug + fmt::Display, M: fmt::Debug + fmt::Display> core::error::Error for Error<S, M> {}

/// What is wrong with what storage handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inconsistency {
    /// The log store returned entries that do not continue the log.
    LogGap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// The log's entries go down in term.
    TermsDecrease {
        /// Where the term went down.
        index: Index,
    },
    /// The log ends before the snapshot it follows.
    LogBeforeSnapshot {
        /// The log's last index.
        last_index: Index,
        /// The snapshot's last index.
        snapshot_index: Index,
    },
    /// The stored term is older than the log's last entry: term and vote were lost (a
    /// missing or rolled-back hard-state file). Starting would risk a second vote in a term.
    HardStateBehindLog {
        /// The stored term.
        term: Term,
        /// The term of the last log entry.
        last_log_term: Term,
    },
    /// The state machine has applied entries the log does not hold.
    StateMachineAhead {
        /// What the state machine says it applied.
        applied: Index,
        /// The log's last index.
        last_index: Index,
    },
    /// A snapshot read came back shorter than the snapshot's recorded size.
    SnapshotTruncated {
        /// Where the read started.
        offset: u64,
        /// The bytes asked for.
        wanted: u64,
        /// The bytes returned.
        got: u64,
    },
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Inconsistency::LogGap { expected, got } => {
                write!(f, "the log skips from index {} to {got}", expected - 1)
            }
            Inconsistency::TermsDecrease { index } => write!(f, "log terms decrease at index {index}"),
            Inconsistency::LogBeforeSnapshot { last_index, snapshot_index } => {
                write!(f, "the log ends at {last_index}, before the snapshot's last index {snapshot_index}")
            }
            Inconsistency::HardStateBehindLog { term, last_log_term } => write!(
                f,
                "the stored term {term} is older than the last log entry's term {last_log_term}: term and vote \
                 were lost; wipe this node's data and add it back to the cluster as a new member"
            ),
            Inconsistency::StateMachineAhead { applied, last_index } => write!(
                f,
                "the state machine has applied through {applied} but the log ends at {last_index}"
            ),
            Inconsistency::SnapshotTruncated { offset, wanted, got } => {
                write!(f, "reading {wanted} snapshot bytes at offset {offset} returned {got}")
            }
        }
    }
}

impl core::error::Error for Inconsistency {}

/// Where, inside a [`Ready`], an [`Observer`] is told the work has got to (and where the
/// simulator lands its crashes). A checkpoint is passed only when work lies on its far side:
/// `AfterHardState` only when a hard state was saved, `BeforeSend` only when messages wait …
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Before anything of the Ready is durable.
    BeforePersist,
    /// The hard state is durable; snapshot and log writes are not.
    AfterHardState,
    /// Hard state and the received snapshot (chunks, or its installation) are durable; the
    /// log write is not.
    AfterSnapshot,
    /// No message has left; everything is durable (unless the Ready sends first, when
    /// nothing is).
    BeforeSend,
    /// The messages left; nothing was applied or answered (nor, when the Ready sends first,
    /// made durable).
    AfterSend,
}

impl Checkpoint {
    /// Every checkpoint, in the order a Ready passes them (one that sends first passes the
    /// send checkpoints before the persist ones).
    pub const ALL: [Checkpoint; 5] = [
        Checkpoint::BeforePersist,
        Checkpoint::AfterHardState,
        Checkpoint::AfterSnapshot,
        Checkpoint::BeforeSend,
        Checkpoint::AfterSend,
    ];

    /// Its name in scenarios ("before_persist" …).
    pub const fn name(self) -> &'static str {
        match self {
            Checkpoint::BeforePersist => "before_persist",
            Checkpoint::AfterHardState => "after_hard_state",
            Checkpoint::AfterSnapshot => "after_snapshot",
            Checkpoint::BeforeSend => "before_send",
            Checkpoint::AfterSend => "after_send",
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A checkpoint name that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCheckpoint;

impl fmt::Display for UnknownCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of ")?;
        for (i, point) in Checkpoint::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(point.name())?;
        }
        Ok(())
    }
}

impl FromStr for Checkpoint {
    type Err = UnknownCheckpoint;

    fn from_str(s: &str) -> Result<Self, UnknownCheckpoint> {
        Checkpoint::ALL.into_iter().find(|p| p.name() == s).ok_or(UnknownCheckpoint)
    }
}

/// One step of carrying out a [`Ready`], as an [`Observer`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step<'a> {
    /// The work got to a checkpoint.
    Checkpoint(Checkpoint),
    /// A message is about to leave.
    Sending {
        /// The recipient.
        to: NodeId,
        /// The message.
        message: &'a Message,
    },
    /// An entry was applied to the state machine.
    Applied(&'a Entry),
    /// The state machine was replaced by a snapshot.
    Restored(&'a SnapshotMeta),
    /// The state machine is about to be snapshotted, as of this point in the log.
    Snapshotting(&'a SnapshotMeta),
}

/// Watches [`carry_out`] step by step. Answering [`ControlFlow::Break`] stops the work right
/// there, as a crash would: nothing after it happens. Applications pass `&mut ()`, which
/// watches nothing.
pub trait Observer<L, M>: Send {
    /// Called at each step, with the stores as they are at that moment.
    fn observe(&mut self, step: Step<'_>, log: &L, machine: &M) -> ControlFlow<()>;
}

impl<L, M> Observer<L, M> for () {
    fn observe(&mut self, _: Step<'_>, _: &L, _: &M) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// How far [`carry_out`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a taken snapshot must be reported with Node::snapshot_taken"]
pub enum Carried {
    /// All of the Ready is done. Report a snapshot taken in its last step to
    /// [`Node::snapshot_taken`].
    Done(Option<SnapshotInfo>),
    /// The observer stopped the work.
    Stopped,
}

type Outcome<T, L, M> = Result<T, Error<<L as LogStore>::Error, <M as StateMachine>::Error>>;

macro_rules! observe {
    ($observer:expr, $step:expr, $log:expr, $machine:expr) => {
        observe!($observer, $step, $log, $machine, Carried::Stopped)
    };
    ($observer:expr, $step:expr, $log:expr, $machine:expr, $stopped:expr) => {
        if $observer.observe($step, $log, $machine).is_break() {
            return Ok($stopped);
        }
    };
}

/// Carries out a [`Ready`] in its documented order, handing what it produces for the
/// transport and the application to `out` as it goes (a `Vec<Outgoing>`, or a sink that
/// routes messages at once):
///
/// 1. persist the hard state, the received snapshot chunks (and install a complete snapshot,
///    restoring the state machine from it), then the log write;
/// 2. send the messages, reading the snapshot chunks to send from the log store;
/// 3. apply the committed entries, answering the proposals made here;
/// 4. serve the reads;
/// 5. report the events;
/// 6. take the snapshot asked for, into the log store.
///
/// When the Ready allows it ([`Ready::send_first`]: a leader's replication), steps 1 and 2
/// swap: the messages leave before the leader's own log write, so the followers' writes
/// overlap it.
///
/// ```
/// use raft_core::{carry_out, Carried, Config, Incoming, InitialState, Instant, MemState, Membership, Node};
/// use futures::executor::block_on;
///
/// let mut log: MemState = MemState::new(Membership::new([1]));
/// let mut machine: Vec<raft_core::Bytes> = Vec::new();
/// let initial = InitialState { bootstrap: Membership::new([1]), ..InitialState::default() };
/// let mut node = Node::new(1, Config::default(), initial).unwrap();
/// node.step(Incoming::Tick(Instant::from_millis(0)));
/// node.step(Incoming::Tick(Instant::from_millis(1_000))); // a single voter elects itself
/// let mut out = Vec::new();
/// let carried = block_on(carry_out(node.take_ready(), &mut log, &mut machine, &mut (), &mut out)).unwrap();
/// assert_eq!(carried, Carried::Done(None));
/// assert_eq!(log.last_log_id().index, 1); // the new leader's no-op is durable
/// ```
pub async fn carry_out<L, M, O, Out>(
    mut ready: Ready<'_>,
    log: &mut L,
    machine: &mut M,
    observer: &mut O,
    out: &mut Out,
) -> Outcome<Carried, L, M>
where
    L: LogStore,
    M: StateMachine,
    O: Observer<L, M>,
    Out: Extend<Outgoing>,
{
    let messages = core::mem::take(&mut ready.messages);
    let snapshot_sends = core::mem::take(&mut ready.snapshot_sends);
    let persist_first = !ready.send_first;
    // 1. Persist (or 2. first, when the Ready allows it).
    if persist_first && !persist(&ready, log, machine, observer).await? {
        return Ok(Carried::Stopped);
    }
    // 2. Send.
    if !send(messages, snapshot_sends, log, machine, observer, out).await? {
        return Ok(Carried::Stopped);
    }
    if !persist_first && !persist(&ready, log, machine, observer).await? {
        return Ok(Carried::Stopped);
    }

    // 3. Apply, answering the proposals made here.
    let mut proposals = ready.proposals.into_iter().peekable();
    for entry in ready.apply {
        let response = machine.apply(entry).await.map_err(Error::StateMachine)?;
        observe!(observer, Step::Applied(entry), log, machine);
        if let Some((index, id)) = proposals.next_if(|&(index, _)| index == entry.index) {
            let result = Ok(Applied { index, response });
            out.extend(Some(Outgoing::Event(Event::Proposal { id, result })));
        }
    }

    // 4. Reads.
    for read in ready.reads {
        let answer = machine.query(&read.query).await.map_err(Error::StateMachine)?;
        out.extend(Some(Outgoing::Event(Event::Read { id: read.id, result: Ok(answer) })));
    }

    // 5. Report.
    out.extend(ready.events.into_iter().map(Outgoing::Event));

    // 6. Snapshot.
    let Some(meta) = ready.take_snapshot else { return Ok(Carried::Done(None)) };
    observe!(observer, Step::Snapshotting(&meta), log, machine);
    let mut writer = LogWriter { log: &mut *log, offset: 0, error: None };
    let built = machine.build_snapshot(&meta, &mut writer).await;
    let (size, error) = (writer.offset, writer.error.take());
    if let Some(error) = error {
        return Err(Error::Storage(error));
    }
    built.map_err(Error::StateMachine)?;
    if size == 0 {
        // An empty state still needs its (empty) staged snapshot begun.
        log.write_snapshot_chunk(0, &[]).await.map_err(Error::Storage)?;
    }
    log.install_snapshot(&meta).await.map_err(Error::Storage)?;
    Ok(Carried::Done(Some(SnapshotInfo { meta, size })))
}

/// Step 1 of [`carry_out`]: makes the Ready's hard state, snapshot and log write durable.
/// Returns false when the observer stopped it.
async fn persist<L, M, O>(
    ready: &Ready<'_>,
    log: &mut L,
    machine: &mut M,
    observer: &mut O,
) -> Outcome<bool, L, M>
where
    L: LogStore,
    M: StateMachine,
    O: Observer<L, M>,
{
    let writes_log = ready.truncate_from.is_some() || !ready.entries.is_empty();
    let stages = !ready.snapshot_chunks.is_empty() || ready.install_snapshot.is_some();
    if ready.hard_state.is_some() || stages || writes_log {
        observe!(observer, Step::Checkpoint(Checkpoint::BeforePersist), log, machine, false);
    }
    if let Some(hard_state) = ready.hard_state {
        log.save_hard_state(hard_state).await.map_err(Error::Storage)?;
        observe!(observer, Step::Checkpoint(Checkpoint::AfterHardState), log, machine, false);
    }
    for chunk in &ready.snapshot_chunks {
        log.write_snapshot_chunk(chunk.offset, &chunk.data).await.map_err(Error::Storage)?;
    }
    if let Some(snapshot) = &ready.install_snapshot {
        log.install_snapshot(&snapshot.meta).await.map_err(Error::Storage)?;
        restore_machine(log, machine, snapshot).await?;
        observe!(observer, Step::Restored(&snapshot.meta), log, machine, false);
    }
    if stages {
        observe!(observer, Step::Checkpoint(Checkpoint::AfterSnapshot), log, machine, false);
    }
    if writes_log {
        log.write_log(ready.truncate_from, ready.entries).await.map_err(Error::Storage)?;
    }
    Ok(true)
}

/// Step 2 of [`carry_out`]: hands the messages to `out`, reading the snapshot chunks to send
/// from the log store. Returns false when the observer stopped it.
async fn send<L, M, O, Out>(
    messages: Vec<(NodeId, Message)>,
    snapshot_sends: Vec<SnapshotSend>,
    log: &mut L,
    machine: &mut M,
    observer: &mut O,
    out: &mut Out,
) -> Outcome<bool, L, M>
where
    L: LogStore,
    M: StateMachine,
    O: Observer<L, M>,
    Out: Extend<Outgoing>,
{
    let sends = !messages.is_empty() || !snapshot_sends.is_empty();
    if sends {
        observe!(observer, Step::Checkpoint(Checkpoint::BeforeSend), log, machine, false);
    }
    for (to, message) in messages {
        observe!(observer, Step::Sending { to, message: &message }, log, machine, false);
        out.extend(Some(Outgoing::Send { to, message }));
    }
    for send in snapshot_sends {
        let data = log.read_snapshot(send.offset, send.len).await.map_err(Error::Storage)?;
        if data.len() != send.len {
            let (offset, wanted, got) = (send.offset, send.len as u64, data.len() as u64);
            return Err(Error::Inconsistent(Inconsistency::SnapshotTruncated { offset, wanted, got }));
        }
        let chunk =
            InstallSnapshot { term: send.term, meta: send.meta, offset: send.offset, data, done: send.done };
        let message = Message::InstallSnapshot(Box::new(chunk));
        observe!(observer, Step::Sending { to: send.to, message: &message }, log, machine, false);
        out.extend(Some(Outgoing::Send { to: send.to, message }));
    }
    if sends {
        observe!(observer, Step::Checkpoint(Checkpoint::AfterSend), log, machine, false);
    }
    Ok(true)
}

/// Carries out every [`Ready`] the node has, reporting snapshots back to it.
pub async fn advance<L, M, Out>(
    node: &mut Node,
    log: &mut L,
    machine: &mut M,
    out: &mut Out,
) -> Outcome<(), L, M>
where
    L: LogStore,
    M: StateMachine,
    Out: Extend<Outgoing>,
{
    while node.has_ready() {
        if let Carried::Done(Some(snapshot)) =
            carry_out(node.take_ready(), log, machine, &mut (), out).await?
        {
            node.snapshot_taken(snapshot);
        }
    }
    Ok(())
}

/// Builds node `id` from what its stores hold: term, vote and the log from the log store;
/// the state machine restored from the latest snapshot unless its own durable state reaches
/// at least as far ([`StateMachine::durable_index`]).
pub async fn start<L, M>(id: NodeId, config: Config, log: &mut L, machine: &mut M) -> Outcome<Node, L, M>
where
    L: LogStore,
    M: StateMachine,
{
    config.validate().map_err(Error::Config)?;
    if id == 0 {
        return Err(Error::Config(ConfigError::ReservedNodeId));
    }
    let state = log.load().await.map_err(Error::Storage)?;
    let snapshot_id = state.snapshot.as_ref().map(|s| s.meta.last).unwrap_or_default();
    if state.last_index < snapshot_id.index {
        let (last_index, snapshot_index) = (state.last_index, snapshot_id.index);
        return Err(Error::Inconsistent(Inconsistency::LogBeforeSnapshot { last_index, snapshot_index }));
    }
    let mut applied = machine.durable_index();
    if let Some(snapshot) = state.snapshot.as_ref().filter(|s| s.meta.last.index > applied) {
        restore_machine(log, machine, snapshot).await?;
        applied = snapshot.meta.last.index;
    }
    if applied > state.last_index {
        let last_index = state.last_index;
        return Err(Error::Inconsistent(Inconsistency::StateMachineAhead { applied, last_index }));
    }
    let entries = read_log::<L, M>(log, snapshot_id.index + 1, state.last_index, snapshot_id.term).await?;
    let last_log_term = entries.last().map_or(snapshot_id.term, |e| e.term);
    if state.hard_state.term < last_log_term {
        let term = state.hard_state.term;
        return Err(Error::Inconsistent(Inconsistency::HardStateBehindLog { term, last_log_term }));
    }
    let initial = InitialState {
        hard_state: state.hard_state,
        snapshot: state.snapshot,
        entries,
        applied,
        bootstrap: state.bootstrap,
    };
    Node::new(id, config, initial).map_err(Error::Config)
}

/// Reads `from..=to` in batches, checking that indexes follow each other and terms never
/// decrease (starting above `prev_term`).
async fn read_log<L: LogStore, M: StateMachine>(
    log: &mut L,
    from: Index,
    to: Index,
    prev_term: Term,
) -> Outcome<Vec<Entry>, L, M> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut next = from;
    let mut term = prev_term;
    while next <= to {
        let last = to.min(next.saturating_add(LOAD_BATCH - 1));
        for entry in log.read_entries(next, last).await.map_err(Error::Storage)? {
            if entry.index != next || entry.index > last {
                return Err(Error::Inconsistent(Inconsistency::LogGap { expected: next, got: entry.index }));
            }
            if entry.term < term {
                return Err(Error::Inconsistent(Inconsistency::TermsDecrease { index: entry.index }));
            }
            term = entry.term;
            next += 1;
            entries.push(entry);
        }
        if next <= last {
            return Err(Error::Inconsistent(Inconsistency::LogGap { expected: next, got: last + 1 }));
        }
    }
    Ok(entries)
}

/// Replaces the state machine with the log store's current snapshot.
async fn restore_machine<L: LogStore, M: StateMachine>(
    log: &mut L,
    machine: &mut M,
    snapshot: &SnapshotInfo,
) -> Outcome<(), L, M> {
    let mut reader = LogReader { log, offset: 0, size: snapshot.size, error: None };
    let restored = machine.restore(&snapshot.meta, &mut reader).await;
    if let Some(error) = reader.error {
        return Err(Error::Storage(error));
    }
    restored.map_err(Error::StateMachine)
}

/// Chunk size for reading a snapshot back into the state machine.
const RESTORE_CHUNK: usize = 64 << 10;

/// Streams the log store's current snapshot to [`StateMachine::restore`].
struct LogReader<'a, L: LogStore> {
    log: &'a mut L,
    offset: u64,
    size: u64,
    error: Option<L::Error>,
}

impl<L: LogStore> SnapshotReader for LogReader<'_, L> {
    async fn read(&mut self) -> Result<Option<Bytes>, SnapshotAborted> {
        if self.error.is_some() {
            return Err(SnapshotAborted);
        }
        let left = self.size.saturating_sub(self.offset);
        if left == 0 {
            return Ok(None);
        }
        let len = usize::try_from(left).unwrap_or(usize::MAX).min(RESTORE_CHUNK);
        match self.log.read_snapshot(self.offset, len).await {
            Ok(chunk) if !chunk.is_empty() => {
                self.offset += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Ok(_) => Ok(None),
            Err(error) => {
                self.error = Some(error);
                Err(SnapshotAborted)
            }
        }
    }
}

/// Stages what [`StateMachine::build_snapshot`] writes in the log store.
struct LogWriter<'a, L: LogStore> {
    log: &'a mut L,
    offset: u64,
    error: Option<L::Error>,
}

impl<L: LogStore> SnapshotWriter for LogWriter<'_, L> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), SnapshotAborted> {
        if self.error.is_some() {
            return Err(SnapshotAborted);
        }
        if chunk.is_empty() && self.offset > 0 {
            return Ok(());
        }
        match self.log.write_snapshot_chunk(self.offset, chunk).await {
            Ok(()) => {
                self.offset += chunk.len() as u64;
                Ok(())
            }
            Err(error) => {
                self.error = Some(error);
                Err(SnapshotAborted)
            }
        }
    }
}
