//! The demo scenario, shared by the firmware (`main.rs`) and the host test `tests/cluster.rs`.
//!
//! Three Raft nodes run as tasks of one embassy executor. Each keeps its term, vote, log
//! (a 64-entry window) and snapshots in a [`FlashLog`] on its own RAM-backed [`RamFlash`], which
//! survives the node's power cycles, and exchanges postcard frames with the others through a
//! [`LocalNetwork`]. A controller task acts as client and operator:
//!
//! 1. waits until all three nodes follow one leader;
//! 2. commits 100 commands through it and checks, with a linearizable read on every node, that
//!    all three state machines applied the same commands in the same order;
//! 3. has every node snapshot its state and compact its log (`Incoming::Compact`);
//! 4. isolates the leader, hands it one proposal (which must never commit), and waits until the
//!    two others elect a new leader in a later term, which commits more commands;
//! 5. heals the network and waits until every node follows one leader, the orphaned proposal
//!    has failed, and all logs and state machines are identical again. The old leader catches
//!    up by log replication, replacing its orphaned entry, or, when the new leader committed
//!    `snapshot_every` (32) commands or more meanwhile, by an InstallSnapshot;
//! 6. power-cycles the leader: its task and everything in its RAM are dropped, its inbox is
//!    emptied and its links cut; the other two elect a leader and commit 10 more commands; then
//!    the node boots again from its flash alone (it reports the term and log index it
//!    restored), rejoins, and all three converge once more.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::ops::{RangeFrom, RangeInclusive};

use embassy_executor::{SpawnError, Spawner};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{with_deadline, Duration, Instant, Timer};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use raft_core::{
    Bytes, Config, Diagnostics, Entry, Event, Incoming, Index, LogStore, Membership, NodeId, Outgoing,
    Payload, ProposeError, RaftStreamExt, ReadError, RequestId, RestoreError, Role, SnapshotMeta,
    SnapshotReader, SnapshotWriter, StateMachine, Term,
};
use raft_embassy::{EmbassyClock, FlashLog, FlashLogConfig, LocalNetwork, NetworkStats};

type Cs = CriticalSectionRawMutex;

/// The cluster.
const NODES: [NodeId; 3] = [1, 2, 3];
/// Log entries each node keeps on flash; a snapshot compacts the log every half window.
pub const LOG_WINDOW: usize = 64;
/// Each node's flash: 16 pages of 1 KiB, about six times what a full window and two snapshot
/// generations take, so pages are not recycled on every append.
pub const FLASH_BYTES: usize = 16 * 1024;
/// A NOR erase page of the simulated flash.
const FLASH_PAGE: usize = 1024;
/// Commands committed while the power-cycled node is off.
const WHILE_OFF: u64 = 10;
/// Commands committed before the partition.
const FIRST_BATCH: u64 = 100;
/// Commands to commit during the partition so that the new leader compacts away what the old
/// leader lacks: more than `snapshot_every` (32), so the old leader catches up by
/// InstallSnapshot, which also replaces the entry it appended while isolated.
pub const SNAPSHOT_CATCH_UP: u64 = 40;
/// Proposals in flight at once, so that uncommitted entries stay well inside the log window.
const PROPOSAL_WINDOW: u64 = 16;
/// Time allowed for each step (an election takes a few hundred milliseconds).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Tag of the proposal handed to the isolated leader.
const ORPHAN: RequestId = 1_000_000;
/// Tags of reads start here.
const FIRST_READ: RequestId = 2_000_000;

static NETWORK: LocalNetwork<Cs, 3, 32> = LocalNetwork::new(NODES);
/// Client requests for each node.
static CLIENTS: [Channel<Cs, Incoming, 4>; 3] = [const { Channel::new() }; 3];
static OBSERVED: Mutex<Cs, RefCell<Observed>> = Mutex::new(RefCell::new(Observed::new()));
/// Raised whenever a node reports an event.
static CHANGED: Signal<Cs, ()> = Signal::new();
/// Each node's flash contents: they outlive the node's task, as flash outlives a power cut.
static FLASH: [Mutex<Cs, RefCell<[u8; FLASH_BYTES]>>; 3] =
    [const { Mutex::new(RefCell::new([0; FLASH_BYTES])) }; 3];
/// Cuts a node's power: its task drops everything it holds.
static POWER_OFF: [Signal<Cs, ()>; 3] = [const { Signal::new() }; 3];
/// Restores a node's power: it boots again from its flash.
static POWER_ON: [Signal<Cs, ()>; 3] = [const { Signal::new() }; 3];

fn slot(id: NodeId) -> usize {
    (id - 1) as usize
}

/// The demo's state machine: counts commands and chains them through a CRC-64, so equal
/// digests mean the same commands were applied in the same order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    commands: u64,
    hash: u64,
}

/// The CRC the digest chains commands through (the crate's frames use the `crc` crate too).
const DIGEST_CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_ECMA_182);

impl Digest {
    fn to_bytes(self) -> Bytes {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.commands.to_le_bytes());
        bytes[8..].copy_from_slice(&self.hash.to_le_bytes());
        Bytes::copy_from_slice(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (commands, hash) = bytes.split_first_chunk::<8>()?;
        Some(Digest {
            commands: u64::from_le_bytes(*commands),
            hash: u64::from_le_bytes(hash.try_into().ok()?),
        })
    }
}

impl StateMachine for Digest {
    type Error = RestoreError;

    async fn apply(&mut self, entry: &Entry) -> Result<Bytes, RestoreError> {
        if let Payload::Command(command) = &entry.payload {
            self.commands += 1;
            let mut digest = DIGEST_CRC.digest_with_initial(self.hash);
            digest.update(command);
            self.hash = digest.finalize();
        }
        Ok(Bytes::new())
    }

    async fn query(&mut self, _query: &[u8]) -> Result<Bytes, RestoreError> {
        Ok(self.to_bytes())
    }

    async fn build_snapshot(
        &mut self,
        _: &SnapshotMeta,
        out: &mut impl SnapshotWriter,
    ) -> Result<(), RestoreError> {
        Ok(out.write(&self.to_bytes()).await?)
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        from: &mut impl SnapshotReader,
    ) -> Result<(), RestoreError> {
        let bytes = from.read_to_end().await?;
        *self =
            Digest::from_bytes(&bytes).ok_or_else(|| RestoreError("a digest snapshot is 16 bytes".into()))?;
        Ok(())
    }
}

/// What the nodes have reported, as the controller sees it.
struct Observed {
    roles: [Option<(Role, Term, Option<NodeId>)>; 3],
    /// Outcomes not yet taken by the controller (a few at a time: a list beats a map here).
    proposals: Vec<(RequestId, Result<Index, ProposeError>)>,
    reads: Vec<(RequestId, Result<Bytes, ReadError>)>,
    diagnostics: [Option<Diagnostics>; 3],
    compactions: u32,
    stopped: Option<(NodeId, String)>,
    /// The term and last log index each node restored from flash at its latest boot.
    restored: [Option<(Term, Index)>; 3],
}

impl Observed {
    const fn new() -> Self {
        Observed {
            roles: [None; 3],
            proposals: Vec::new(),
            reads: Vec::new(),
            diagnostics: [const { None }; 3],
            compactions: 0,
            stopped: None,
            restored: [None; 3],
        }
    }

    fn record(&mut self, node: NodeId, event: Event) {
        match event {
            Event::RoleChanged { role, term, leader } => self.roles[slot(node)] = Some((role, term, leader)),
            Event::Proposal { id, result } => self.proposals.push((id, result.map(|applied| applied.index))),
            Event::Read { id, result } => self.reads.push((id, result)),
            Event::Diagnostics(diagnostics) => self.diagnostics[slot(node)] = Some(*diagnostics),
            Event::Compacted { .. } => self.compactions += 1,
            _ => {}
        }
    }

    /// The leader, and its term, that every node of `group` (itself included) follows.
    fn agreed_leader(&self, group: &[NodeId]) -> Option<(NodeId, Term)> {
        let (_, term, leader) = self.roles[slot(group[0])]?;
        let leader = leader.filter(|leader| group.contains(leader))?;
        let follows =
            |id: NodeId| matches!(self.roles[slot(id)], Some((_, t, l)) if t == term && l == Some(leader));
        let leads = matches!(self.roles[slot(leader)], Some((Role::Leader, ..)));
        (leads && group.iter().all(|&id| follows(id))).then_some((leader, term))
    }
}

/// Removes and returns the outcome of request `id`, if it has arrived.
fn take<T>(outcomes: &mut Vec<(RequestId, T)>, id: RequestId) -> Option<T> {
    let position = outcomes.iter().position(|(request, _)| *request == id)?;
    Some(outcomes.swap_remove(position).1)
}

/// A NOR flash in RAM: one node's [`FLASH`] region, 1 KiB erase pages, 4-byte words. Like
/// real NOR, a write can only clear bits and an erase sets a page to `0xff`.
struct RamFlash(&'static Mutex<Cs, RefCell<[u8; FLASH_BYTES]>>);

impl RamFlash {
    /// Erases the whole region, as a new chip comes (cold boot only).
    fn format(&self) {
        self.0.lock(|memory| memory.borrow_mut().fill(0xff));
    }

    fn check(offset: u32, len: usize, align: usize) -> Result<usize, NorFlashErrorKind> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            Err(NorFlashErrorKind::NotAligned)
        } else if start.checked_add(len).is_none_or(|end| end > FLASH_BYTES) {
            Err(NorFlashErrorKind::OutOfBounds)
        } else {
            Ok(start)
        }
    }
}

impl ErrorType for RamFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorFlashErrorKind> {
        let start = Self::check(offset, bytes.len(), 1)?;
        self.0.lock(|memory| bytes.copy_from_slice(&memory.borrow()[start..start + bytes.len()]));
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH_BYTES
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = FLASH_PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorFlashErrorKind> {
        let start = Self::check(from, to.saturating_sub(from) as usize, FLASH_PAGE)?;
        self.0.lock(|memory| memory.borrow_mut()[start..to as usize].fill(0xff));
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), NorFlashErrorKind> {
        let start = Self::check(offset, data.len(), 4)?;
        self.0.lock(|memory| {
            for (cell, byte) in memory.borrow_mut()[start..].iter_mut().zip(data) {
                *cell &= byte;
            }
        });
        Ok(())
    }
}

/// One node: its inputs are its network inbox, its client channel and the ticker; its outputs
/// go to the network and to [`OBSERVED`]. A power cut drops the running node with all it
/// holds; power back on boots it again from its flash.
#[embassy_executor::task(pool_size = 3)]
async fn node(id: NodeId) {
    let slot = slot(id);
    loop {
        let running = core::pin::pin!(run_node(id));
        match select(running, POWER_OFF[slot].wait()).await {
            Either::Left((reason, _)) => {
                OBSERVED.lock(|observed| observed.borrow_mut().stopped = Some((id, reason)));
                CHANGED.signal(());
                return;
            }
            Either::Right(((), _)) => POWER_ON[slot].wait().await,
        }
    }
}

/// Runs node `id` from its flash until its store fails; returns why it stopped.
async fn run_node(id: NodeId) -> String {
    NETWORK.clear_inbox(id);
    let Some(inbox) = NETWORK.inbox(id) else { return "not on the network".into() };
    let inputs = futures_util::stream::select(inbox, CLIENTS[slot(id)].receiver());
    let flash_config = FlashLogConfig {
        log_capacity: LOG_WINDOW as u32,
        max_item_bytes: 128,
        max_snapshot_bytes: 256,
        ..FlashLogConfig::new(0..FLASH_BYTES as u32)
    };
    let mut log = match FlashLog::new(RamFlash(&FLASH[slot(id)]), flash_config, Membership::new(NODES)) {
        Ok(log) => log,
        Err(error) => return error.to_string(),
    };
    // What the flash holds, to report; the node's start loads it again.
    let restored = match log.load().await {
        Ok(state) => (state.hard_state.term, state.last_index),
        Err(error) => return error.to_string(),
    };
    OBSERVED.lock(|observed| observed.borrow_mut().restored[slot(id)] = Some(restored));
    let config = Config { snapshot_every: LOG_WINDOW as u64 / 2, seed: id, ..Config::default() };
    // The node sleeps until its next deadline or input (no periodic tick).
    let mut outputs = inputs.into_raft_events_with_clock(id, (log, Digest::default()), config, EmbassyClock);
    while let Some(output) = outputs.next().await {
        match output {
            // A frame lost to a cut link or a full inbox is retransmitted by Raft.
            Ok(Outgoing::Send { to, message }) => _ = NETWORK.send(id, to, message),
            Ok(Outgoing::Event(event)) => {
                OBSERVED.lock(|observed| observed.borrow_mut().record(id, event));
                CHANGED.signal(());
            }
            Err(error) => return error.to_string(),
        }
    }
    "the event stream ended".into()
}

/// The outcome of a successful run.
#[derive(Debug)]
pub struct Report {
    first: (NodeId, Term),
    second: (NodeId, Term),
    partition_commands: u64,
    digest: Digest,
    index: Index,
    compactions: u32,
    /// The power-cycled node, the term and index it restored from flash, and the index all
    /// three converged at afterwards.
    power_cycled: (NodeId, Term, Index, Index),
    frames: NetworkStats,
    elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((first, first_term), (second, second_term)) = (self.first, self.second);
        write!(
            f,
            "node {first} elected (term {first_term}), {FIRST_BATCH} entries committed on 3 nodes; node {first} \
             isolated, node {second} elected (term {second_term}), {} more committed; healed and \
             converged at index {} with {} commands (digest {:016x}); {} snapshots; node {} power-cycled, \
             restored from flash at term {} index {}, rejoined and converged at index {}; {}; {} ms",
            self.partition_commands,
            self.index,
            self.digest.commands,
            self.digest.hash,
            self.compactions,
            self.power_cycled.0,
            self.power_cycled.1,
            self.power_cycled.2,
            self.power_cycled.3,
            self.frames,
            self.elapsed.as_millis()
        )
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    /// A node task could not be started.
    Spawn(SpawnError),
    /// A step did not finish within [`STEP_TIMEOUT`].
    Timeout(&'static str),
    /// A node's event stream ended (its store failed).
    NodeStopped(NodeId, String),
    /// A proposal to the leader failed.
    Proposal(RequestId, ProposeError),
    /// A read kept failing.
    Read(NodeId, ReadError),
    /// A node answered a read with something that is not a digest.
    BadAnswer(NodeId),
    /// The state machines differ, or miss commands.
    Diverged([Digest; 3]),
    /// The isolated leader's proposal was committed: Raft's safety is broken.
    OrphanCommitted(Index),
    /// A power-cycled node restored less than it had: a term or entries were lost.
    LostOnRestart { term: (Term, Term), index: (Index, Index) },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Spawn(error) => write!(f, "cannot start a node: {error}"),
            Failure::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Failure::NodeStopped(id, reason) => write!(f, "node {id} stopped: {reason}"),
            Failure::Proposal(id, error) => write!(f, "proposal {id} failed: {error}"),
            Failure::Read(id, error) => write!(f, "read on node {id} failed: {error}"),
            Failure::BadAnswer(id) => write!(f, "node {id} answered a read with a malformed digest"),
            Failure::Diverged(digests) => write!(f, "state machines diverged: {digests:?}"),
            Failure::OrphanCommitted(index) => {
                write!(f, "the isolated leader's proposal was committed at index {index}")
            }
            Failure::LostOnRestart { term, index } => write!(
                f,
                "a power-cycled node restored term {} and index {} but had reached term {} and index {}",
                term.1, index.1, term.0, index.0
            ),
        }
    }
}

/// Runs the scenario (module docs) on `spawner`'s executor, committing `partition_commands`
/// while the first leader is isolated; `log` prints progress lines.
pub async fn run(
    spawner: Spawner,
    partition_commands: u64,
    log: fn(fmt::Arguments<'_>),
) -> Result<Report, Failure> {
    let started = Instant::now();
    for id in NODES {
        RamFlash(&FLASH[slot(id)]).format();
        spawner.spawn(node(id).map_err(Failure::Spawn)?);
    }
    let mut reads = FIRST_READ..;

    let first = wait_for("a leader", |o| o.agreed_leader(&NODES)).await?;
    log(format_args!("node {} elected leader of term {}", first.0, first.1));
    propose(first.0, 1..=FIRST_BATCH).await?;
    let (_, index) = converge(FIRST_BATCH, &mut reads).await?;
    log(format_args!("{FIRST_BATCH} entries committed and applied on all nodes (log index {index})"));
    for id in NODES {
        submit(id, Incoming::Compact).await;
    }
    until_diagnostics("every log to be compacted", |d| d.iter().all(|d| d.first_index > index).then_some(()))
        .await?;

    NETWORK.isolate(first.0);
    submit(first.0, Incoming::Propose { id: ORPHAN, command: command(ORPHAN).into() }).await;
    let others: Vec<NodeId> = NODES.into_iter().filter(|&id| id != first.0).collect();
    let second =
        wait_for("a new leader", |o| o.agreed_leader(&others).filter(|&(_, term)| term > first.1)).await?;
    log(format_args!("node {} isolated; node {} elected leader of term {}", first.0, second.0, second.1));
    propose(second.0, FIRST_BATCH + 1..=FIRST_BATCH + partition_commands).await?;

    NETWORK.heal();
    let leader = wait_for("all nodes to follow one leader", |o| o.agreed_leader(&NODES)).await?;
    log(format_args!("healed; all nodes follow node {} in term {}", leader.0, leader.1));
    if let Ok(index) = wait_for("the orphaned proposal to fail", |o| take(&mut o.proposals, ORPHAN)).await? {
        return Err(Failure::OrphanCommitted(index));
    }
    let (digest, index) = converge(FIRST_BATCH + partition_commands, &mut reads).await?;
    let compactions = OBSERVED.lock(|o| o.borrow().compactions);

    let power_cycled = power_cycle(leader, index, FIRST_BATCH + partition_commands, &mut reads, log).await?;
    Ok(Report {
        first,
        second,
        partition_commands,
        digest,
        index,
        compactions,
        power_cycled,
        frames: NETWORK.stats(),
        elapsed: started.elapsed(),
    })
}

/// Step 6: cuts `victim`'s power (everything but its flash is lost), commits [`WHILE_OFF`]
/// commands through the other two, boots it again from flash and waits until all three agree.
/// `index` is the log index all nodes had reached, `committed` the commands so far. Returns
/// the victim, the term and index it restored, and the index the cluster converged at.
async fn power_cycle(
    (victim, term): (NodeId, Term),
    index: Index,
    committed: u64,
    reads: &mut RangeFrom<RequestId>,
    log: fn(fmt::Arguments<'_>),
) -> Result<(NodeId, Term, Index, Index), Failure> {
    NETWORK.isolate(victim);
    POWER_OFF[slot(victim)].signal(());
    OBSERVED.lock(|o| {
        let mut observed = o.borrow_mut();
        observed.roles[slot(victim)] = None;
        observed.restored[slot(victim)] = None;
    });
    let others: Vec<NodeId> = NODES.into_iter().filter(|&id| id != victim).collect();
    let leader =
        wait_for("a leader while one node is off", |o| o.agreed_leader(&others).filter(|&(_, t)| t > term))
            .await?;
    propose(leader.0, committed + 1..=committed + WHILE_OFF).await?;

    NETWORK.heal();
    POWER_ON[slot(victim)].signal(());
    let restored = wait_for("the node to boot from flash", |o| o.restored[slot(victim)]).await?;
    log(format_args!(
        "node {victim} power-cycled: restored from flash at term {} index {}; node {} led term {} meanwhile",
        restored.0, restored.1, leader.0, leader.1
    ));
    if restored.0 < term || restored.1 < index {
        return Err(Failure::LostOnRestart { term: (term, restored.0), index: (index, restored.1) });
    }
    wait_for("all nodes to follow one leader again", |o| o.agreed_leader(&NODES)).await?;
    let (_, converged) = converge(committed + WHILE_OFF, reads).await?;
    log(format_args!("node {victim} rejoined; all nodes converged at index {converged}"));
    Ok((victim, restored.0, restored.1, converged))
}

/// Hands a request to node `id`.
async fn submit(id: NodeId, request: Incoming) {
    CLIENTS[slot(id)].send(request).await;
}

fn command(id: RequestId) -> Bytes {
    Bytes::copy_from_slice(&id.to_le_bytes())
}

/// Proposes the commands tagged `ids` to `leader`, at most [`PROPOSAL_WINDOW`] at a time, and
/// waits until each is committed.
async fn propose(leader: NodeId, ids: RangeInclusive<RequestId>) -> Result<(), Failure> {
    let mut next = *ids.start();
    for id in ids.clone() {
        while ids.contains(&next) && next < id + PROPOSAL_WINDOW {
            submit(leader, Incoming::Propose { id: next, command: command(next).into() }).await;
            next += 1;
        }
        wait_for("a proposal to commit", |o| take(&mut o.proposals, id))
            .await?
            .map_err(|error| Failure::Proposal(id, error))?;
    }
    Ok(())
}

/// Checks that all state machines applied the same `commands` (a linearizable read on every
/// node), then waits until all logs end at the same, applied entry. Returns the digest and that
/// entry's index.
async fn converge(commands: u64, reads: &mut RangeFrom<RequestId>) -> Result<(Digest, Index), Failure> {
    let mut digests = [Digest::default(); 3];
    for id in NODES {
        digests[slot(id)] = read_digest(id, reads).await?;
    }
    if digests.iter().any(|d| *d != digests[0] || d.commands != commands) {
        return Err(Failure::Diverged(digests));
    }
    let same_log = |d: &[Diagnostics; 3]| {
        let key = |d: &Diagnostics| (d.last_log, d.commit_index, d.applied_index);
        let same = d.iter().all(|n| key(n) == key(&d[0])) && d[0].applied_index == d[0].last_log.index;
        same.then_some(d[0].applied_index)
    };
    let index = until_diagnostics("the logs to converge", same_log).await?;
    Ok((digests[0], index))
}

/// Asks every node for its [`Diagnostics`] until `check` accepts them.
async fn until_diagnostics<T>(
    what: &'static str,
    mut check: impl FnMut(&[Diagnostics; 3]) -> Option<T>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        OBSERVED.lock(|o| o.borrow_mut().diagnostics = [const { None }; 3]);
        for id in NODES {
            submit(id, Incoming::Diagnostics).await;
        }
        let all = wait_for("diagnostics", |o| match &o.diagnostics {
            [Some(a), Some(b), Some(c)] => Some([a.clone(), b.clone(), c.clone()]),
            _ => None,
        })
        .await?;
        if let Some(found) = check(&all) {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout(what));
        }
        Timer::after_millis(20).await;
    }
}

/// Reads node `id`'s digest, retrying while it knows no leader to confirm the read.
async fn read_digest(id: NodeId, reads: &mut RangeFrom<RequestId>) -> Result<Digest, Failure> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let request = reads.next().unwrap_or(FIRST_READ);
        submit(id, Incoming::Read { id: request, query: Bytes::new() }).await;
        match wait_for("a read", |o| take(&mut o.reads, request)).await? {
            Ok(answer) => return Digest::from_bytes(&answer).ok_or(Failure::BadAnswer(id)),
            Err(error) if Instant::now() >= deadline => return Err(Failure::Read(id, error)),
            Err(_) => Timer::after_millis(20).await,
        }
    }
}

/// Waits until `check` finds what it looks for in [`OBSERVED`], a node stops, or
/// [`STEP_TIMEOUT`] passes.
async fn wait_for<T>(
    what: &'static str,
    mut check: impl FnMut(&mut Observed) -> Option<T>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let found = OBSERVED.lock(|observed| {
            let observed = &mut *observed.borrow_mut();
            match &observed.stopped {
                Some((id, reason)) => Some(Err(Failure::NodeStopped(*id, reason.clone()))),
                None => check(observed).map(Ok),
            }
        });
        if let Some(result) = found {
            return result;
        }
        if with_deadline(deadline, CHANGED.wait()).await.is_err() {
            return Err(Failure::Timeout(what));
        }
    }
}
