//! [`FlashLog`]: a node's [`LogStore`] (term and vote, log, snapshot bytes) on NOR flash.
//!
//! # Why sequential-storage
//!
//! The store sits on [sequential-storage](https://docs.rs/sequential-storage)'s key-value map
//! over any `embedded-storage` [`NorFlash`]. Of the two well-kept flash stores for embassy, it
//! fits best:
//!
//! * every item write is atomic: items carry CRCs over header and data, a write torn by a power
//!   cut is ignored and the key's previous value stays current, and the crate repairs half-done
//!   page erasures and migrations on the next operation;
//! * it only appends, cycling through the pages of a caller-given range, so wear is spread
//!   evenly over the range and nothing outside it is touched;
//! * it needs no RAM beyond one item buffer (no cache is used here) and is small in code;
//! * page size, word size and range come from the `NorFlash` type at run time, where `ekv`
//!   fixes its page geometry when it is compiled and wants a larger store per page.
//!
//! `ekv` has multi-key transactions, which this store does without: every multi-item step is
//! made crash-safe by writing one *commit* item last (below).
//!
//! # Why a blocking flash driver
//!
//! raft-core's [`LogStore`] futures are `Send`, and a generic store cannot promise that of an
//! `embedded-storage-async` driver's futures (Rust cannot yet bound them). `FlashLog` therefore
//! takes the blocking `embedded-storage` [`NorFlash`], which every embassy HAL's internal flash
//! and most external flash drivers implement; the CPU waits for an internal flash write either
//! way.
//!
//! # Layout
//!
//! | key | value | written |
//! | --- | --- | --- |
//! | setup | format version, log capacity, bootstrap configuration | once, on first load |
//! | hard state | term and vote | on each change |
//! | entry slot `index % log_capacity` | epoch and log entry | per appended entry |
//! | cut | epoch and index: entries from that index written before that epoch are void | per truncation |
//! | snapshot chunk (generation, number) | `max_item_bytes - 4` bytes of snapshot data (the last chunk fewer) | while a snapshot is staged |
//! | snapshot | metadata, data length and CRC-32, generation, latest cut | per installed snapshot, last |
//!
//! The log is a ring of `log_capacity` slots: entry `i` lives in slot `i % log_capacity`, so the
//! flash holds a bounded number of keys and compacted entries need no deletion (their slots are
//! reused). Every entry is stored with the *epoch* current when it was written; a truncation
//! raises the epoch and records a *cut*. On load the log is the longest run of slots from the
//! snapshot on that hold the expected index, in non-decreasing epochs, none voided by the
//! latest cut. That rule rejects stale entries behind a truncation even when a power cut
//! interrupted the writing of their replacements.
//!
//! # Crash safety
//!
//! * Term and vote are one item: a power cut leaves the old or the new pair.
//! * `write_log` returns once every entry is written, so acknowledged entries survive; an
//!   interrupted write leaves the old log, or the truncated log with a prefix of the new
//!   entries, which is what Raft allows for an unacknowledged write.
//! * A snapshot is *staged* under the chunk generation the current snapshot does not use:
//!   `write_snapshot_chunk` takes chunks of any size (the leader's, or the state machine's),
//!   repacks them into flash chunks, and keeps in RAM only the remainder (less than one flash
//!   chunk) with a running length and CRC. A power cut while staging loses the transfer and
//!   nothing else: the current snapshot and its chunks are untouched.
//! * `install_snapshot` writes the remainder, then the snapshot record, which names the
//!   generation, checks the data by length and CRC, and carries the cut that discards a log
//!   contradicting the snapshot (Raft §7). That record is the commit: a power cut before it
//!   leaves the previous snapshot and log, after it the new ones.
//! * `load` checks the snapshot's length and CRC by streaming its chunks, one at a time.
//!
//! # Cost
//!
//! An appended entry costs one flash item (its encoded size plus an 8-byte header on flash with
//! 4-byte words), a term or vote change one small item, a truncation one more, a snapshot its
//! data in `max_item_bytes` chunks plus one item. RAM: one buffer of `max_item_bytes`, the
//! staged remainder (up to `max_item_bytes`) while a snapshot is staged, and a few words;
//! loading also holds the epoch and index of each slot of the log window.
//!
//! # Sizing the range
//!
//! The map needs every live item, plus one free page for its garbage collection, inside the
//! range: budget for `log_capacity` entries of your largest size, two copies of the largest
//! snapshot, and four small records, then double it so pages are not rewritten on every append.
//! A store that runs out reports [`FlashLogError::Full`].

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crc::{Crc, Digest, NoTable, CRC_32_ISCSI};
use embedded_storage::nor_flash::{ErrorType, NorFlash};
use raft_core::{Bytes, Entry, HardState, Index, LogState, LogStore, Membership, SnapshotInfo, SnapshotMeta};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{Key, MapConfig, MapConfigError, MapStorage, SerializationError, Value};
use serde::{Deserialize, Serialize};

/// The layout version written into the setup record.
const FORMAT_VERSION: u8 = 1;
/// The CRC over a snapshot's data, computed bit by bit: snapshots are small, and a lookup
/// table would cost 1 KiB of flash.
static SNAPSHOT_CRC: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
/// Bytes of a snapshot chunk's key.
const CHUNK_KEY_BYTES: usize = 4;
/// What sequential-storage's `Corrupted` error becomes.
const UNREPAIRED: &str = "sequential-storage found damage it could not repair";
/// The smallest `max_item_bytes` accepted: the records (setup, snapshot) need some room.
const MIN_ITEM_BYTES: usize = 64;

/// Where and how much a [`FlashLog`] stores. Every field has a documented default
/// ([`FlashLogConfig::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlashLogConfig {
    /// The flash addresses the store owns: whole erase pages, at least two. Nothing outside it
    /// is read, written or erased.
    pub range: Range<u32>,
    /// Log entries kept after the snapshot, like [`RamState`](crate::RamState)'s `N` (default
    /// 64). Set [`Config::snapshot_every`](raft_core::Config::snapshot_every) well below it. The
    /// flash keeps this many entry slots; changing it needs an erased range.
    pub log_capacity: u32,
    /// The largest item: an encoded log entry, the setup or snapshot record (which hold a
    /// membership), or a snapshot chunk (default 256). This is the store's RAM buffer; it must
    /// fit in a flash page.
    pub max_item_bytes: usize,
    /// The largest snapshot accepted, in bytes (default 4096). Bounds the flash the snapshot's
    /// two generations take.
    pub max_snapshot_bytes: usize,
}

impl FlashLogConfig {
    /// A configuration for `range` with the defaults: 64 log entries, 256-byte items, 4 KiB
    /// snapshots.
    pub const fn new(range: Range<u32>) -> Self {
        FlashLogConfig { range, log_capacity: 64, max_item_bytes: 256, max_snapshot_bytes: 4096 }
    }
}

/// A [`FlashLogConfig`] that cannot work with the flash it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashConfigError {
    /// `range.start` is not a multiple of the flash's erase size.
    StartNotPageAligned {
        /// The flash's erase size in bytes.
        erase_size: usize,
    },
    /// `range.end` is not a multiple of the flash's erase size.
    EndNotPageAligned {
        /// The flash's erase size in bytes.
        erase_size: usize,
    },
    /// The range holds fewer than two erase pages.
    RangeTooSmall {
        /// The flash's erase size in bytes.
        erase_size: usize,
    },
    /// The range ends beyond the flash.
    RangeOutsideFlash {
        /// The flash's capacity in bytes.
        capacity: usize,
    },
    /// The flash's pages or words do not suit sequential-storage (pages too small for an
    /// item, or words over 32 bytes).
    UnsupportedGeometry,
    /// `log_capacity` is 0.
    ZeroLogCapacity,
    /// `max_item_bytes` is below the minimum or does not fit in a flash page.
    ItemSize {
        /// The smallest value accepted.
        min: usize,
        /// The largest value the flash's pages allow.
        max: usize,
    },
    /// `max_snapshot_bytes` needs more than 65535 chunks of `max_item_bytes`, or is over 4 GiB.
    SnapshotTooManyChunks,
}

impl fmt::Display for FlashConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashConfigError::StartNotPageAligned { erase_size } => {
                write!(f, "the flash range must start on an erase page boundary (a multiple of {erase_size})")
            }
            FlashConfigError::EndNotPageAligned { erase_size } => {
                write!(f, "the flash range must end on an erase page boundary (a multiple of {erase_size})")
            }
            FlashConfigError::RangeTooSmall { erase_size } => {
                write!(f, "the flash range must hold at least two erase pages of {erase_size} bytes")
            }
            FlashConfigError::RangeOutsideFlash { capacity } => {
                write!(f, "the flash range ends beyond the flash's {capacity} bytes")
            }
            FlashConfigError::UnsupportedGeometry => {
                f.write_str("the flash's erase pages are too small or its words larger than 32 bytes")
            }
            FlashConfigError::ZeroLogCapacity => f.write_str("log_capacity must be at least 1"),
            FlashConfigError::ItemSize { min, max } => {
                write!(f, "max_item_bytes must be between {min} and {max} (what a flash page holds)")
            }
            FlashConfigError::SnapshotTooManyChunks => f.write_str(
                "max_snapshot_bytes needs more than 65535 chunks (raise max_item_bytes) or is over 4 GiB",
            ),
        }
    }
}

/// Why a [`FlashLog`] operation failed. Each one stops a node (the stream yields
/// [`raft_core::Error::Storage`] and ends); what to do is in each variant's description.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashLogError<E> {
    /// The flash driver failed (`E` is its error).
    Flash(E),
    /// The configuration does not fit the flash: fix it.
    Config(FlashConfigError),
    /// The flash range cannot hold the log window and snapshots: enlarge the range, or lower
    /// `log_capacity`, entry sizes or `max_snapshot_bytes`.
    Full,
    /// The flash holds data this store cannot trust or read; what is wrong is named. If it
    /// persists, erase the range ([`FlashLog::erase_all`]): the node then rejoins as a new
    /// member with an empty log, which is safe only if the cluster no longer counts it.
    Corrupt(&'static str),
    /// The range was written with another `log_capacity`: use that one, or erase the range.
    LayoutMismatch {
        /// The capacity recorded in flash.
        stored: u32,
        /// The configured capacity.
        configured: u32,
    },
    /// The log window would exceed `log_capacity` entries: set `Config::snapshot_every` below
    /// the capacity and limit uncommitted proposals.
    LogFull {
        /// The window's capacity, in entries.
        capacity: u32,
    },
    /// `write_log` was handed entries that do not continue the log.
    Gap {
        /// The index the next entry needed.
        expected: Index,
        /// The index it had.
        got: Index,
    },
    /// `read_entries` asked for entries the log does not hold.
    OutOfRange {
        /// First index asked for.
        from: Index,
        /// Last index asked for.
        to: Index,
    },
    /// A record does not fit `max_item_bytes` (an entry's command too large, or a membership
    /// too large for the setup or snapshot record): raise `max_item_bytes` or keep commands
    /// smaller.
    ItemTooLarge {
        /// The log index of the entry, if the record is one.
        index: Option<Index>,
        /// The configured `max_item_bytes`.
        max: usize,
    },
    /// The staged snapshot would grow past `max_snapshot_bytes`.
    SnapshotTooLarge {
        /// The size it would reach, in bytes.
        bytes: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A snapshot chunk did not continue the staged snapshot (or none was begun at offset 0).
    ChunkOutOfOrder {
        /// The offset the next chunk needed.
        expected: u64,
        /// The offset it had.
        got: u64,
    },
    /// `install_snapshot` without a staged snapshot.
    NothingStaged,
    /// `read_snapshot` without a stored snapshot.
    NoSnapshot,
    /// An operation other than `load` was called before `load`.
    NotLoaded,
}

impl<E: fmt::Debug> fmt::Display for FlashLogError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashLogError::Flash(e) => write!(f, "the flash driver failed: {e:?}"),
            FlashLogError::Config(e) => write!(f, "unusable flash store configuration: {e}"),
            FlashLogError::Full => f.write_str(
                "the flash range is full: enlarge it, or lower log_capacity, entry sizes or max_snapshot_bytes",
            ),
            FlashLogError::Corrupt(what) => {
                write!(f, "the flash holds data that cannot be trusted ({what}); erase the range if it persists")
            }
            FlashLogError::LayoutMismatch { stored, configured } => write!(
                f,
                "the flash range was written with log_capacity {stored}, not {configured}: use {stored} or erase the range"
            ),
            FlashLogError::LogFull { capacity } => write!(
                f,
                "the flash log window is full ({capacity} entries): set Config::snapshot_every below the \
                 capacity and limit uncommitted proposals"
            ),
            FlashLogError::Gap { expected, got } => {
                write!(f, "log write would leave a gap: expected index {expected}, got {got}")
            }
            FlashLogError::OutOfRange { from, to } => {
                write!(f, "the flash log does not hold entries {from}..={to}")
            }
            FlashLogError::ItemTooLarge { index: Some(index), max } => {
                write!(f, "log entry {index} does not fit max_item_bytes ({max}): raise it or send smaller commands")
            }
            FlashLogError::ItemTooLarge { index: None, max } => {
                write!(f, "a record does not fit max_item_bytes ({max}): raise it")
            }
            FlashLogError::SnapshotTooLarge { bytes, max } => {
                write!(f, "a snapshot of {bytes} bytes exceeds max_snapshot_bytes ({max})")
            }
            FlashLogError::ChunkOutOfOrder { expected, got } => {
                write!(f, "snapshot chunk at offset {got}, expected {expected}")
            }
            FlashLogError::NothingStaged => f.write_str("a snapshot install without staged snapshot bytes"),
            FlashLogError::NoSnapshot => f.write_str("a snapshot read with no snapshot stored"),
            FlashLogError::NotLoaded => f.write_str("the flash store was used before load()"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashLogError<E> {}

/// The error of a [`FlashLog`] over the flash driver `F`.
type Error<F> = FlashLogError<<F as ErrorType>::Error>;

/// A node's [`LogStore`] in a range of NOR flash: term and vote, a log window of up to
/// `log_capacity` entries, and the latest snapshot's bytes (see the crate's README for the
/// layout and why each step is crash-safe).
///
/// [`load`](LogStore::load) first; every other method needs it. Methods are cancel-unsafe like
/// any flash write: drop a future only when the node stops anyway (a power cut is handled, and
/// so is the node's task being dropped mid-write, on the next load).
///
/// ```
/// # use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash, NorFlashErrorKind};
/// # struct Ram(Vec<u8>);
/// # impl ErrorType for Ram { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Ram {
/// #     const READ_SIZE: usize = 1;
/// #     fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
/// #         out.copy_from_slice(&self.0[at as usize..][..out.len()]); Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Ram {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 1024;
/// #     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xff); Ok(())
/// #     }
/// #     fn write(&mut self, at: u32, data: &[u8]) -> Result<(), Self::Error> {
/// #         for (b, d) in self.0[at as usize..].iter_mut().zip(data) { *b &= d } Ok(())
/// #     }
/// # }
/// use futures::executor::block_on;
/// use raft_core::{Entry, HardState, LogStore, Membership, Payload};
/// use raft_embassy::{FlashLog, FlashLogConfig};
///
/// let flash = Ram(vec![0xff; 8 * 1024]);
/// let config = FlashLogConfig::new(0..8 * 1024);
/// let bootstrap = Membership::new([1, 2, 3]);
/// let mut log = FlashLog::new(flash, config.clone(), bootstrap.clone()).unwrap();
/// block_on(async {
///     log.load().await.unwrap();
///     log.save_hard_state(HardState { term: 2, vote: Some(1) }).await.unwrap();
///     let entry = Entry { term: 2, index: 1, payload: Payload::Noop };
///     log.write_log(None, &[entry.clone()]).await.unwrap();
///
///     // A reboot: everything in RAM is gone, the flash stays.
///     let mut log = FlashLog::new(log.into_flash(), config, Membership::default()).unwrap();
///     let state = log.load().await.unwrap();
///     assert_eq!(state.hard_state, HardState { term: 2, vote: Some(1) });
///     assert_eq!(state.last_index, 1);
///     assert_eq!(log.read_entries(1, 1).await.unwrap(), [entry]);
///     assert_eq!(state.bootstrap, bootstrap, "the first load's configuration is kept");
/// });
/// ```
pub struct FlashLog<F: NorFlash> {
    map: MapStorage<Slot, Blocking<F>, Cache<Uncached, Uncached, Uncached, Slot>>,
    buf: Vec<u8>,
    capacity: u32,
    max_item_bytes: usize,
    max_snapshot_bytes: usize,
    /// What the first load of an empty range records.
    bootstrap: Membership,
    loaded: bool,
    /// The latest cut; its epoch is the one new entries are written with.
    cut: Cut,
    snapshot: Option<SnapshotRecord>,
    staged: Option<Staged>,
    /// The first index the log window can hold: right after the snapshot.
    first: Index,
    /// The last index in the log (`first - 1` when it is empty).
    last: Index,
}

/// A snapshot being staged.
struct Staged {
    /// The chunk generation it is written under (the one the current snapshot does not use).
    generation: u8,
    /// Flash chunks written.
    chunks: u16,
    /// Bytes received: those in the written chunks and the remainder.
    len: u64,
    /// The CRC of the bytes received.
    crc: Digest<'static, u32, NoTable>,
    /// Bytes received and not yet written: less than one flash chunk.
    rest: Vec<u8>,
}

impl<F: NorFlash> FlashLog<F> {
    /// A store in `config.range` of `flash`, for a node whose initial configuration is
    /// `bootstrap` (the initial voters, or empty for a node that waits to be added). The first
    /// load of an empty range records `bootstrap`; later loads return the recorded one. Checks
    /// the configuration against the flash's geometry; reads nothing yet.
    pub fn new(flash: F, config: FlashLogConfig, bootstrap: Membership) -> Result<Self, Error<F>> {
        let erase_size = F::ERASE_SIZE;
        let config_error = |e| Err(FlashLogError::Config(e));
        let map_config = match MapConfig::<Blocking<F>>::try_new(config.range.clone()) {
            Ok(map_config) => map_config,
            Err(MapConfigError::StartRangeNotAtPageBoundary) => {
                return config_error(FlashConfigError::StartNotPageAligned { erase_size })
            }
            Err(MapConfigError::EndRangeNotAtPageBoundary) => {
                return config_error(FlashConfigError::EndNotPageAligned { erase_size })
            }
            Err(MapConfigError::RangeTooSmall) => {
                return config_error(FlashConfigError::RangeTooSmall { erase_size })
            }
            Err(_) => return config_error(FlashConfigError::UnsupportedGeometry),
        };
        let capacity = flash.capacity();
        if config.range.end as usize > capacity {
            return config_error(FlashConfigError::RangeOutsideFlash { capacity });
        }
        if config.log_capacity == 0 {
            return config_error(FlashConfigError::ZeroLogCapacity);
        }
        let word = F::WRITE_SIZE.max(F::READ_SIZE);
        let overhead =
            MapStorage::<Slot, Blocking<F>, Cache<Uncached, Uncached, Uncached, Slot>>::item_overhead_size()
                as usize;
        let max = erase_size.saturating_sub(2 * word + overhead) / word * word;
        if !(MIN_ITEM_BYTES..=max).contains(&config.max_item_bytes) {
            return config_error(FlashConfigError::ItemSize { min: MIN_ITEM_BYTES, max });
        }
        if config.max_snapshot_bytes.div_ceil(config.max_item_bytes - CHUNK_KEY_BYTES) > usize::from(u16::MAX)
            || u32::try_from(config.max_snapshot_bytes).is_err()
        {
            return config_error(FlashConfigError::SnapshotTooManyChunks);
        }
        Ok(FlashLog {
            map: MapStorage::new(Blocking(flash), map_config, Cache::new_uncached()),
            buf: alloc::vec![0; config.max_item_bytes.next_multiple_of(word)],
            capacity: config.log_capacity,
            max_item_bytes: config.max_item_bytes,
            max_snapshot_bytes: config.max_snapshot_bytes,
            bootstrap,
            loaded: false,
            cut: Cut::default(),
            snapshot: None,
            staged: None,
            first: 1,
            last: 0,
        })
    }

    /// Erases the whole range: the node loses its term, vote, log and snapshot. Only for a
    /// node that the cluster no longer counts (removed, or being re-added as a new member).
    pub async fn erase_all(&mut self) -> Result<(), Error<F>> {
        self.map.erase_all().await.map_err(store_error(None, self.max_item_bytes))?;
        self.loaded = false;
        Ok(())
    }

    /// Gives the flash back (a new `FlashLog` over it must be loaded again).
    pub fn into_flash(self) -> F {
        self.map.destroy().0 .0
    }

    async fn load_state(&mut self) -> Result<LogState, Error<F>> {
        let scan = match self.scan().await {
            // sequential-storage 8.0.2's `fetch_all_items` does not run its own repair when it
            // meets an interrupted page erase (a `?` inside its repair macro returns early);
            // `fetch_item` does, so have it repair and scan again.
            Err(FlashLogError::Corrupt(UNREPAIRED)) => {
                self.map.fetch_item::<&[u8]>(&mut self.buf, &Slot::Setup).await.map_err(read_error)?;
                self.scan().await
            }
            other => other,
        }?;
        let Scan { setup, hard_state, cut, snapshot, slots, any } = scan;
        let bootstrap = match setup {
            Some(setup) if setup.version != FORMAT_VERSION => {
                return Err(FlashLogError::Corrupt("the range holds another format version"))
            }
            Some(setup) if setup.log_capacity != self.capacity => {
                return Err(FlashLogError::LayoutMismatch {
                    stored: setup.log_capacity,
                    configured: self.capacity,
                })
            }
            Some(setup) => setup.bootstrap,
            None if any => return Err(FlashLogError::Corrupt("records without the setup record")),
            None => {
                let bootstrap = core::mem::take(&mut self.bootstrap);
                let setup = Setup { version: FORMAT_VERSION, log_capacity: self.capacity, bootstrap };
                self.store(Slot::Setup, &setup, None).await?;
                setup.bootstrap
            }
        };

        let latest_cut =
            [cut, snapshot.as_ref().and_then(|s| s.cut)].into_iter().flatten().max_by_key(|c| c.epoch);
        let cut = latest_cut.unwrap_or_default();
        let first = snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1;
        let mut last = first - 1;
        let mut previous_epoch = 0;
        for index in (first..).take(self.capacity as usize) {
            let Some(Some(head)) = slots.get(self.slot(index) as usize) else { break };
            let voided = index >= cut.from && head.epoch < cut.epoch;
            if head.index != index || head.epoch < previous_epoch || head.epoch > cut.epoch || voided {
                break;
            }
            previous_epoch = head.epoch;
            last = index;
        }
        drop(slots);

        let info = match &snapshot {
            Some(record) => {
                self.check_snapshot(record).await?;
                Some(SnapshotInfo { meta: record.meta.clone(), size: u64::from(record.len) })
            }
            None => None,
        };
        self.cut = cut;
        self.snapshot = snapshot;
        self.staged = None;
        self.first = first;
        self.last = last;
        self.loaded = true;
        Ok(LogState {
            hard_state: hard_state.unwrap_or_default(),
            snapshot: info,
            last_index: last,
            bootstrap,
        })
    }

    /// Reads every item once; the last value of each key is its current one.
    async fn scan(&mut self) -> Result<Scan, Error<F>> {
        let mut scan = Scan {
            setup: None,
            hard_state: None,
            cut: None,
            snapshot: None,
            slots: (0..self.capacity).map(|_| None).collect(),
            any: false,
        };
        let buf = &mut self.buf;
        let mut items = self.map.fetch_all_items(buf).await.map_err(read_error)?;
        // Items come oldest first.
        while let Some((key, value)) = items.next::<&[u8]>(buf).await.map_err(read_error)? {
            scan.any = true;
            match key {
                Slot::Setup => scan.setup = Some(decode(value)?),
                Slot::HardState => scan.hard_state = Some(decode(value)?),
                Slot::Cut => scan.cut = Some(decode(value)?),
                Slot::Snapshot => scan.snapshot = Some(decode(value)?),
                Slot::Entry(slot) => {
                    if let Some(place) = scan.slots.get_mut(slot as usize) {
                        *place = Some(decode(value)?);
                    }
                }
                Slot::Chunk { .. } => {}
            }
        }
        Ok(scan)
    }

    /// Checks the snapshot's data against its record's length and CRC, a chunk at a time.
    async fn check_snapshot(&mut self, record: &SnapshotRecord) -> Result<(), Error<F>> {
        if record.len as usize > self.max_snapshot_bytes {
            return Err(FlashLogError::Corrupt("the snapshot record names a size over max_snapshot_bytes"));
        }
        let mut crc = SNAPSHOT_CRC.digest();
        let chunks = (record.len as usize).div_ceil(self.chunk_bytes());
        for number in 0..chunks {
            // Cannot truncate: the size check above bounds the number of chunks.
            crc.update(self.read_chunk(record.generation, record.len, number as u16).await?);
        }
        if crc.finalize() != record.crc {
            return Err(FlashLogError::Corrupt("the snapshot data fails its CRC check"));
        }
        Ok(())
    }

    /// Chunk `number` of the snapshot of `len` bytes in `generation`, checked to have the
    /// length its place in the snapshot requires.
    async fn read_chunk(&mut self, generation: u8, len: u32, number: u16) -> Result<&[u8], Error<F>> {
        let chunk_bytes = self.chunk_bytes();
        let expected = (len as usize).saturating_sub(usize::from(number) * chunk_bytes).min(chunk_bytes);
        let key = Slot::Chunk { generation, number };
        match self.map.fetch_item::<&[u8]>(&mut self.buf, &key).await.map_err(read_error)? {
            Some(chunk) if chunk.len() == expected => Ok(chunk),
            Some(_) => Err(FlashLogError::Corrupt("a snapshot chunk has the wrong length")),
            None => Err(FlashLogError::Corrupt("a snapshot chunk is missing")),
        }
    }

    /// Writes the next flash chunk of the staged snapshot.
    async fn write_chunk(&mut self, staged: &mut Staged, data: &[u8]) -> Result<(), Error<F>> {
        let key = Slot::Chunk { generation: staged.generation, number: staged.chunks };
        self.store_value(key, &data, None).await?;
        // Cannot overflow: `max_snapshot_bytes` is checked to need at most 65535 chunks.
        staged.chunks += 1;
        Ok(())
    }

    /// Stages `data` at `offset`; see [`LogStore::write_snapshot_chunk`].
    async fn stage(&mut self, staged: &mut Staged, offset: u64, mut data: &[u8]) -> Result<(), Error<F>> {
        if offset != staged.len {
            return Err(FlashLogError::ChunkOutOfOrder { expected: staged.len, got: offset });
        }
        let len = staged.len.saturating_add(data.len() as u64);
        if len > self.max_snapshot_bytes as u64 {
            return Err(FlashLogError::SnapshotTooLarge { bytes: len, max: self.max_snapshot_bytes });
        }
        staged.crc.update(data);
        staged.len = len;
        let chunk_bytes = self.chunk_bytes();
        loop {
            let (head, tail) = data.split_at((chunk_bytes - staged.rest.len()).min(data.len()));
            staged.rest.extend_from_slice(head);
            data = tail;
            if staged.rest.len() < chunk_bytes {
                return Ok(());
            }
            let full = core::mem::take(&mut staged.rest);
            self.write_chunk(staged, &full).await?;
            staged.rest = full;
            staged.rest.clear();
        }
    }

    /// Makes `staged` the current snapshot; see [`LogStore::install_snapshot`].
    async fn install(&mut self, mut staged: Staged, meta: &SnapshotMeta) -> Result<(), Error<F>> {
        if !staged.rest.is_empty() {
            let rest = core::mem::take(&mut staged.rest);
            self.write_chunk(&mut staged, &rest).await?;
        }
        let last = meta.last;
        let keep_log = self.snapshot.as_ref().is_some_and(|s| s.meta.last == last)
            || (self.first..=self.last).contains(&last.index)
                && self.read_entry(last.index).await?.term == last.term;
        let cut = if keep_log { self.cut } else { Cut { epoch: self.cut.epoch + 1, from: last.index + 1 } };
        let record = SnapshotRecord {
            meta: meta.clone(),
            // Cannot truncate: `max_snapshot_bytes` is checked to fit a u32.
            len: staged.len as u32,
            crc: staged.crc.finalize(),
            generation: staged.generation,
            cut: Some(cut),
        };
        // The commit point.
        self.store(Slot::Snapshot, &record, None).await?;
        if !keep_log {
            self.last = last.index;
        }
        self.cut = cut;
        self.first = last.index + 1;
        self.snapshot = Some(record);
        Ok(())
    }

    fn check_loaded(&self) -> Result<(), Error<F>> {
        if self.loaded {
            Ok(())
        } else {
            Err(FlashLogError::NotLoaded)
        }
    }

    fn slot(&self, index: Index) -> u32 {
        // Cannot truncate: the remainder is below `capacity`, a u32.
        (index % Index::from(self.capacity)) as u32
    }

    fn chunk_bytes(&self) -> usize {
        self.max_item_bytes - CHUNK_KEY_BYTES
    }

    async fn store<T: Serialize + Sync>(
        &mut self,
        key: Slot,
        value: &T,
        index: Option<Index>,
    ) -> Result<(), Error<F>> {
        self.store_value(key, &Encoded(value), index).await
    }

    /// The one place that writes: through a trait object, so that sequential-storage's store
    /// is compiled once, not once per record type (a few KiB of flash).
    async fn store_value(
        &mut self,
        key: Slot,
        value: &(dyn Value<'_> + Sync),
        index: Option<Index>,
    ) -> Result<(), Error<F>> {
        let max = self.max_item_bytes;
        self.map.store_item_generic(&mut self.buf, &key, value).await.map_err(store_error(index, max))
    }

    async fn read_entry(&mut self, index: Index) -> Result<Entry, Error<F>> {
        let key = Slot::Entry(self.slot(index));
        match self.map.fetch_item::<&[u8]>(&mut self.buf, &key).await.map_err(read_error)? {
            Some(value) => match decode::<LogRecord, _>(value)? {
                record if record.entry.index == index => Ok(record.entry),
                _ => Err(FlashLogError::Corrupt("a log entry of the window was overwritten")),
            },
            None => Err(FlashLogError::Corrupt("a log entry of the window is missing")),
        }
    }
}

impl<F> LogStore for FlashLog<F>
where
    F: NorFlash + Send,
    F::Error: Send,
{
    type Error = Error<F>;

    /// Reads term and vote, the snapshot's description (checking its data by length and CRC)
    /// and the log's bounds. On the first load of an empty range, records the bootstrap
    /// configuration given to [`FlashLog::new`]; later loads return the recorded one.
    async fn load(&mut self) -> Result<LogState, Error<F>> {
        self.load_state().await
    }

    async fn read_entries(&mut self, from: Index, to: Index) -> Result<Vec<Entry>, Error<F>> {
        self.check_loaded()?;
        if from < self.first || to > self.last {
            return Err(FlashLogError::OutOfRange { from, to });
        }
        let mut entries = Vec::with_capacity(usize::try_from(to.saturating_sub(from) + 1).unwrap_or(0));
        for index in from..=to {
            entries.push(self.read_entry(index).await?);
        }
        Ok(entries)
    }

    /// One item: a power cut leaves the old or the new pair.
    async fn save_hard_state(&mut self, state: HardState) -> Result<(), Error<F>> {
        self.check_loaded()?;
        self.store(Slot::HardState, &state, None).await
    }

    /// Checks gaps and capacity before writing anything; returns once every entry is on flash.
    async fn write_log(&mut self, truncate_from: Option<Index>, entries: &[Entry]) -> Result<(), Error<F>> {
        self.check_loaded()?;
        // The truncation point, within the log: nothing before the snapshot can be dropped.
        let cut_at = truncate_from.map(|from| from.max(self.first)).filter(|&from| from <= self.last);
        let next = cut_at.unwrap_or(self.last + 1);
        for (expected, entry) in (next..).zip(entries) {
            if entry.index != expected {
                return Err(FlashLogError::Gap { expected, got: entry.index });
            }
        }
        if next - self.first + entries.len() as Index > Index::from(self.capacity) {
            return Err(FlashLogError::LogFull { capacity: self.capacity });
        }
        if let Some(from) = cut_at {
            // The commit point of the truncation: entries from `from` written before this epoch
            // are void from now on, whatever is still in their slots.
            let cut = Cut { epoch: self.cut.epoch + 1, from };
            self.store(Slot::Cut, &cut, None).await?;
            self.cut = cut;
            self.last = from - 1;
        }
        for entry in entries {
            let record = LogRecordRef { epoch: self.cut.epoch, entry };
            self.store(Slot::Entry(self.slot(entry.index)), &record, Some(entry.index)).await?;
            self.last = entry.index;
        }
        Ok(())
    }

    /// Repacks `data` into flash chunks under the generation the current snapshot does not
    /// use, keeping less than one chunk in RAM. A failed call drops the staged snapshot.
    async fn write_snapshot_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), Error<F>> {
        self.check_loaded()?;
        let staged = match self.staged.take() {
            _ if offset == 0 => Staged {
                generation: self.snapshot.as_ref().map_or(0, |s| s.generation ^ 1),
                chunks: 0,
                len: 0,
                crc: SNAPSHOT_CRC.digest(),
                rest: Vec::new(),
            },
            Some(staged) => staged,
            None => return Err(FlashLogError::ChunkOutOfOrder { expected: 0, got: offset }),
        };
        let mut staged = staged;
        self.stage(&mut staged, offset, data).await?;
        self.staged = Some(staged);
        Ok(())
    }

    /// Writes the staged remainder, then the snapshot record: the commit point, which also
    /// carries the cut that discards a log contradicting the snapshot.
    async fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), Error<F>> {
        self.check_loaded()?;
        let staged = self.staged.take().ok_or(FlashLogError::NothingStaged)?;
        self.install(staged, meta).await
    }

    /// Reads the flash chunks that cover the range.
    async fn read_snapshot(&mut self, offset: u64, len: usize) -> Result<Bytes, Error<F>> {
        self.check_loaded()?;
        let record = self.snapshot.as_ref().ok_or(FlashLogError::NoSnapshot)?;
        let (generation, size) = (record.generation, record.len);
        let end = offset.saturating_add(len as u64).min(u64::from(size));
        let chunk_bytes = self.chunk_bytes() as u64;
        let mut data = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let number = at / chunk_bytes;
            let start = number * chunk_bytes;
            // Cannot truncate: `at` is below the recorded size, checked when loaded.
            let chunk = self.read_chunk(generation, size, number as u16).await?;
            let piece = chunk.get((at - start) as usize..((end - start) as usize).min(chunk.len()));
            let piece = piece.ok_or(FlashLogError::Corrupt("a snapshot chunk has the wrong length"))?;
            data.extend_from_slice(piece);
            at = start + chunk.len() as u64;
        }
        Ok(Bytes::from(data))
    }
}

impl<F: NorFlash> fmt::Debug for FlashLog<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashLog")
            .field("range", &self.map.flash_range())
            .field("loaded", &self.loaded)
            .field("snapshot", &self.snapshot.as_ref().map(|s| s.meta.last))
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
    }
}

/// A blocking flash driver seen through sequential-storage's async traits: its futures are
/// ready at once, and `Send` whenever the driver is.
struct Blocking<F>(F);

impl<F: ErrorType> ErrorType for Blocking<F> {
    type Error = F::Error;
}

impl<F: NorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Blocking<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), F::Error> {
        self.0.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Blocking<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), F::Error> {
        self.0.erase(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), F::Error> {
        self.0.write(offset, bytes)
    }
}

/// The keys: a tag byte, then the key's fields in little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Setup,
    HardState,
    Cut,
    Snapshot,
    Chunk { generation: u8, number: u16 },
    Entry(u32),
}

impl Key for Slot {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let mut bytes = [0; 5];
        let len = match *self {
            Slot::Setup => 1,
            Slot::HardState => {
                bytes[0] = 1;
                1
            }
            Slot::Cut => {
                bytes[0] = 2;
                1
            }
            Slot::Snapshot => {
                bytes[0] = 3;
                1
            }
            Slot::Chunk { generation, number } => {
                bytes[0] = 4;
                bytes[1] = generation;
                bytes[2..4].copy_from_slice(&number.to_le_bytes());
                CHUNK_KEY_BYTES
            }
            Slot::Entry(slot) => {
                bytes[0] = 5;
                bytes[1..5].copy_from_slice(&slot.to_le_bytes());
                5
            }
        };
        let out = buffer.get_mut(..len).ok_or(SerializationError::BufferTooSmall)?;
        out.copy_from_slice(&bytes[..len]);
        Ok(len)
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        let field = |range: Range<usize>| buffer.get(range).ok_or(SerializationError::InvalidFormat);
        match buffer.first() {
            Some(0) => Ok((Slot::Setup, 1)),
            Some(1) => Ok((Slot::HardState, 1)),
            Some(2) => Ok((Slot::Cut, 1)),
            Some(3) => Ok((Slot::Snapshot, 1)),
            Some(4) => {
                let generation = field(1..2)?[0];
                let number = u16::from_le_bytes([field(2..3)?[0], field(3..4)?[0]]);
                Ok((Slot::Chunk { generation, number }, CHUNK_KEY_BYTES))
            }
            Some(5) => {
                let mut slot = [0; 4];
                slot.copy_from_slice(field(1..5)?);
                Ok((Slot::Entry(u32::from_le_bytes(slot)), 5))
            }
            _ => Err(SerializationError::InvalidFormat),
        }
    }
}

/// What one pass over the flash found: the current value of each record.
struct Scan {
    setup: Option<Setup>,
    hard_state: Option<HardState>,
    cut: Option<Cut>,
    snapshot: Option<SnapshotRecord>,
    /// The entry slots' current values (their epoch and index only).
    slots: Vec<Option<SlotHead>>,
    /// Whether the range held any item.
    any: bool,
}

/// Written once, on the first load of an empty range.
#[derive(Debug, Serialize, Deserialize)]
struct Setup {
    version: u8,
    log_capacity: u32,
    bootstrap: Membership,
}

/// Entries from `from` on whose epoch is below `epoch` are void.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cut {
    epoch: u64,
    from: Index,
}

/// The snapshot's commit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    len: u32,
    crc: u32,
    /// Which of the two chunk generations holds the data.
    generation: u8,
    /// The latest cut when the record was written (the snapshot's own, if it discarded the log).
    cut: Option<Cut>,
}

/// A log entry in its slot, as read back (the epoch matters only to `load`).
#[derive(Deserialize)]
struct LogRecord {
    _epoch: u64,
    entry: Entry,
}

/// The start of a [`LogRecord`]: all that `load` needs (postcard decodes a prefix).
#[derive(Deserialize)]
struct SlotHead {
    epoch: u64,
    _term: raft_core::Term,
    index: Index,
}

/// [`LogRecord`]'s encoding, from a borrowed entry.
#[derive(Serialize)]
struct LogRecordRef<'a> {
    epoch: u64,
    entry: &'a Entry,
}

/// A value stored with postcard. Values are read back as raw bytes and decoded by [`decode`].
struct Encoded<'a, T>(&'a T);

impl<T: Serialize> Value<'_> for Encoded<'_, T> {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        postcard::to_slice(self.0, buffer)
            .map(|written| written.len())
            .map_err(|_| SerializationError::BufferTooSmall)
    }

    fn deserialize_from(_buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        Err(SerializationError::InvalidFormat) // never read back through this type
    }
}

fn decode<'a, T: Deserialize<'a>, E>(value: &'a [u8]) -> Result<T, FlashLogError<E>> {
    postcard::from_bytes(value)
        .map_err(|_| FlashLogError::Corrupt("a record passed its CRC but does not decode"))
}

fn read_error<E>(error: sequential_storage::Error<E>) -> FlashLogError<E> {
    match error {
        sequential_storage::Error::Storage { value, .. } => FlashLogError::Flash(value),
        sequential_storage::Error::FullStorage => FlashLogError::Full,
        sequential_storage::Error::BufferTooSmall(_) | sequential_storage::Error::ItemTooBig => {
            FlashLogError::Corrupt(
                "an item is larger than max_item_bytes: was the range written with a larger one?",
            )
        }
        sequential_storage::Error::SerializationError(_) => {
            FlashLogError::Corrupt("an item's key does not decode")
        }
        sequential_storage::Error::Corrupted { .. } => FlashLogError::Corrupt(UNREPAIRED),
        _ => FlashLogError::Corrupt("sequential-storage reported an internal error"),
    }
}

fn store_error<E>(
    index: Option<Index>,
    max: usize,
) -> impl FnOnce(sequential_storage::Error<E>) -> FlashLogError<E> {
    move |error| match error {
        sequential_storage::Error::BufferTooSmall(_)
        | sequential_storage::Error::ItemTooBig
        | sequential_storage::Error::SerializationError(_) => FlashLogError::ItemTooLarge { index, max },
        error => read_error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_flash::{SimError, SimFlash};
    use alloc::vec;
    use futures::executor::block_on;
    use raft_core::{LogId, Payload, Term};

    type Log = FlashLog<SimFlash>;
    const PAGES: usize = 16;

    fn config() -> FlashLogConfig {
        FlashLogConfig {
            range: 0..(PAGES * SimFlash::PAGE) as u32,
            log_capacity: 8,
            max_item_bytes: 96,
            max_snapshot_bytes: 1024,
        }
    }

    fn entry(term: Term, index: Index) -> Entry {
        Entry {
            term,
            index,
            payload: Payload::Command(Bytes::from(alloc::format!("command {index}")).into()),
        }
    }

    fn meta(term: Term, index: Index) -> SnapshotMeta {
        SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1, 2, 3]) }
    }

    fn data(index: Index, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + index as usize) as u8).collect()
    }

    /// Stages `data` in chunks of `chunk` bytes, then installs it.
    fn install(log: &mut Log, meta: &SnapshotMeta, data: &[u8], chunk: usize) -> Result<(), Error<SimFlash>> {
        block_on(async {
            log.write_snapshot_chunk(0, &data[..chunk.min(data.len())]).await?;
            for (n, piece) in data.chunks(chunk).enumerate().skip(1) {
                log.write_snapshot_chunk((n * chunk) as u64, piece).await?;
            }
            log.install_snapshot(meta).await
        })
    }

    fn fresh() -> (Log, SimFlash) {
        let flash = SimFlash::new(PAGES);
        let mut log = Log::new(flash.clone(), config(), Membership::new([1, 2, 3])).unwrap();
        block_on(log.load()).unwrap();
        (log, flash)
    }

    /// What a reboot finds: a new store over the same flash, loaded, with its log and snapshot
    /// read back.
    struct Rebooted {
        log: Log,
        state: LogState,
        entries: Vec<Entry>,
        snapshot: Option<Vec<u8>>,
    }

    fn reboot(flash: &SimFlash) -> Rebooted {
        let mut log = Log::new(flash.clone(), config(), Membership::default()).unwrap();
        let state = block_on(log.load()).unwrap();
        let first = state.snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1;
        let entries = block_on(log.read_entries(first, state.last_index)).unwrap();
        let snapshot = state.snapshot.as_ref().map(|s| {
            let len = usize::try_from(s.size).unwrap();
            block_on(log.read_snapshot(0, len)).unwrap().to_vec()
        });
        Rebooted { log, state, entries, snapshot }
    }

    fn ids(entries: &[Entry]) -> Vec<(Term, Index)> {
        entries.iter().map(|e| (e.term, e.index)).collect()
    }

    #[test]
    fn everything_survives_a_reboot() {
        let (mut log, flash) = fresh();
        block_on(log.save_hard_state(HardState { term: 3, vote: Some(2) })).unwrap();
        let entries: Vec<Entry> = (1..=5).map(|i| entry(3, i)).collect();
        block_on(log.write_log(None, &entries)).unwrap();
        let rebooted = reboot(&flash);
        assert_eq!(rebooted.state.hard_state, HardState { term: 3, vote: Some(2) });
        assert_eq!(rebooted.entries, entries);
        assert_eq!(rebooted.state.snapshot, None);
        assert_eq!(rebooted.state.bootstrap, Membership::new([1, 2, 3]));
        assert_eq!(flash.chip().rewrites, 0, "no word is programmed twice");
    }

    #[test]
    fn truncations_survive_with_or_without_new_entries() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        block_on(log.write_log(Some(4), &[entry(2, 4)])).unwrap();
        assert_eq!(ids(&reboot(&flash).entries), [(1, 1), (1, 2), (1, 3), (2, 4)], "5 and 6 stay cut");
        block_on(log.write_log(Some(3), &[])).unwrap();
        let Rebooted { mut log, entries, .. } = reboot(&flash);
        assert_eq!(ids(&entries), [(1, 1), (1, 2)], "a truncation without entries");
        // Appending again must not resurrect the old entries 4.. behind the new 3.
        block_on(log.write_log(None, &[entry(3, 3)])).unwrap();
        assert_eq!(ids(&reboot(&flash).entries), [(1, 1), (1, 2), (3, 3)]);
    }

    #[test]
    fn a_snapshot_the_log_continues_keeps_the_rest_of_the_log() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        let taken = data(4, 300); // several flash chunks, staged in pieces that straddle them
        install(&mut log, &meta(1, 4), &taken, 37).unwrap();
        let Rebooted { mut log, state, entries, snapshot } = reboot(&flash);
        assert_eq!(state.snapshot, Some(SnapshotInfo { meta: meta(1, 4), size: 300 }));
        assert_eq!(snapshot.as_deref(), Some(&taken[..]));
        assert_eq!(ids(&entries), [(1, 5), (1, 6)]);
        assert_eq!(block_on(log.read_snapshot(90, 100)).unwrap(), taken[90..190], "a range across chunks");
        assert_eq!(block_on(log.read_snapshot(250, 100)).unwrap(), taken[250..], "fewer only at the end");
        assert_eq!(block_on(log.read_snapshot(400, 10)).unwrap(), Bytes::new());
        assert_eq!(block_on(log.read_entries(6, 7)), Err(FlashLogError::OutOfRange { from: 6, to: 7 }));
        assert_eq!(block_on(log.read_entries(4, 5)), Err(FlashLogError::OutOfRange { from: 4, to: 5 }));
    }

    #[test]
    fn chunks_of_any_size_make_the_same_snapshot() {
        let taken = data(2, 500);
        for chunk in [1, 91, 92, 93, 200, 500] {
            let (mut log, flash) = fresh();
            block_on(log.write_log(None, &[entry(1, 1), entry(1, 2)])).unwrap();
            install(&mut log, &meta(1, 2), &taken, chunk).unwrap();
            assert_eq!(reboot(&flash).snapshot.as_deref(), Some(&taken[..]), "chunks of {chunk} bytes");
        }
        let (mut log, flash) = fresh();
        install(&mut log, &meta(1, 0), &[], 1).unwrap();
        assert_eq!(reboot(&flash).snapshot, Some(vec![]), "an empty snapshot");
    }

    #[test]
    fn a_snapshot_the_log_contradicts_discards_the_whole_log() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        install(&mut log, &meta(2, 4), &data(4, 40), 40).unwrap(); // 4@2: the log has 4@1
        let Rebooted { mut log, state, entries, .. } = reboot(&flash);
        assert_eq!(state.snapshot.map(|s| s.meta), Some(meta(2, 4)));
        assert!(entries.is_empty(), "no conflicting suffix survives behind the snapshot");
        block_on(log.write_log(None, &[entry(2, 5)])).unwrap();
        assert_eq!(ids(&reboot(&flash).entries), [(2, 5)], "6@1 stays void");
        // A snapshot past the end of the log empties it too.
        install(&mut log, &meta(2, 9), &data(9, 10), 10).unwrap();
        let rebooted = reboot(&flash);
        assert!(rebooted.entries.is_empty());
        assert_eq!(rebooted.state.last_index, 9);
        assert_eq!(rebooted.state.snapshot.unwrap().meta.last, LogId::new(2, 9));
    }

    #[test]
    fn a_transfer_in_progress_changes_nothing_until_installed() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=4).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        install(&mut log, &meta(1, 2), &data(2, 200), 200).unwrap();
        // A new transfer, abandoned after two flash chunks' worth.
        block_on(log.write_snapshot_chunk(0, &data(9, 190))).unwrap();
        assert_eq!(
            block_on(log.write_snapshot_chunk(100, b"x")),
            Err(FlashLogError::ChunkOutOfOrder { expected: 190, got: 100 })
        );
        assert_eq!(block_on(log.install_snapshot(&meta(1, 3))), Err(FlashLogError::NothingStaged));
        let rebooted = reboot(&flash);
        assert_eq!(rebooted.snapshot, Some(data(2, 200)), "the installed snapshot is intact");
        assert_eq!(ids(&rebooted.entries), [(1, 3), (1, 4)]);
        let mut log = rebooted.log;
        assert_eq!(
            block_on(log.write_snapshot_chunk(5, b"x")),
            Err(FlashLogError::ChunkOutOfOrder { expected: 0, got: 5 })
        );
        assert_eq!(block_on(log.install_snapshot(&meta(1, 3))), Err(FlashLogError::NothingStaged));
    }

    #[test]
    fn the_ring_wraps_and_the_flash_pages_cycle() {
        let (mut log, flash) = fresh();
        let mut term = 1;
        for round in 0..60u64 {
            let start = round * 4 + 1;
            let entries: Vec<Entry> = (start..start + 4).map(|i| entry(term, i)).collect();
            block_on(log.write_log(None, &entries)).unwrap();
            if round % 7 == 3 {
                term += 1;
                block_on(log.save_hard_state(HardState { term, vote: Some(1) })).unwrap();
            }
            let snapshot = data(start + 1, 50 + round as usize);
            install(&mut log, &meta(entries[1].term, start + 1), &snapshot, 64).unwrap();
        }
        let rebooted = reboot(&flash);
        assert_eq!(rebooted.state.snapshot.unwrap().meta.last.index, 238);
        assert_eq!(rebooted.snapshot, Some(data(238, 109)));
        assert_eq!(rebooted.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [239, 240]);
        assert_eq!(rebooted.state.hard_state.term, term);
        assert!(flash.spent() > 4 * (PAGES * SimFlash::PAGE) as u64, "the pages were erased several times");
        assert_eq!(flash.chip().rewrites, 0);
    }

    #[test]
    fn failed_writes_change_nothing() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=8).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        assert_eq!(
            block_on(log.write_log(None, &[entry(1, 9)])),
            Err(FlashLogError::LogFull { capacity: 8 })
        );
        assert_eq!(
            block_on(log.write_log(None, &[entry(1, 10)])),
            Err(FlashLogError::Gap { expected: 9, got: 10 })
        );
        assert_eq!(
            block_on(log.write_log(Some(4), &[entry(2, 5)])),
            Err(FlashLogError::Gap { expected: 4, got: 5 })
        );
        let large = Entry { term: 1, index: 9, payload: Payload::Command(vec![0; 200].into()) };
        install(&mut log, &meta(1, 2), &data(2, 10), 10).unwrap();
        assert_eq!(
            block_on(log.write_log(None, &[large])),
            Err(FlashLogError::ItemTooLarge { index: Some(9), max: 96 })
        );
        assert_eq!(
            install(&mut log, &meta(1, 3), &data(3, 2000), 1000),
            Err(FlashLogError::SnapshotTooLarge { bytes: 2000, max: 1024 })
        );
        assert_eq!(block_on(log.install_snapshot(&meta(1, 3))), Err(FlashLogError::NothingStaged));
        let rebooted = reboot(&flash);
        assert_eq!(ids(&rebooted.entries), (3..=8).map(|i| (1, i)).collect::<Vec<_>>());
        assert_eq!(rebooted.snapshot, Some(data(2, 10)));
    }

    #[test]
    fn a_full_range_says_so() {
        let flash = SimFlash::new(2);
        let config = FlashLogConfig { range: 0..512, log_capacity: 64, ..config() };
        let mut log = Log::new(flash, config, Membership::new([1])).unwrap();
        block_on(log.load()).unwrap();
        let result = (1..=64).try_for_each(|i| block_on(log.write_log(None, &[entry(1, i)])));
        assert_eq!(result, Err(FlashLogError::Full));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let new =
            |config| Log::new(SimFlash::new(PAGES), config, Membership::default()).map(|_| ()).unwrap_err();
        let config = config();
        let erase_size = SimFlash::PAGE;
        let error = |e| FlashLogError::Config(e);
        assert_eq!(
            new(FlashLogConfig { range: 100..1024, ..config.clone() }),
            error(FlashConfigError::StartNotPageAligned { erase_size })
        );
        assert_eq!(
            new(FlashLogConfig { range: 0..1000, ..config.clone() }),
            error(FlashConfigError::EndNotPageAligned { erase_size })
        );
        assert_eq!(
            new(FlashLogConfig { range: 0..256, ..config.clone() }),
            error(FlashConfigError::RangeTooSmall { erase_size })
        );
        assert_eq!(
            new(FlashLogConfig { range: 0..8192, ..config.clone() }),
            error(FlashConfigError::RangeOutsideFlash { capacity: PAGES * erase_size })
        );
        assert_eq!(
            new(FlashLogConfig { log_capacity: 0, ..config.clone() }),
            error(FlashConfigError::ZeroLogCapacity)
        );
        assert_eq!(
            new(FlashLogConfig { max_snapshot_bytes: 92 * 65536, ..config.clone() }),
            error(FlashConfigError::SnapshotTooManyChunks)
        );
        assert!(matches!(
            new(FlashLogConfig { max_item_bytes: 300, ..config.clone() }),
            FlashLogError::Config(FlashConfigError::ItemSize { min: 64, max }) if max < 256
        ));
        assert!(new(FlashLogConfig { max_item_bytes: 300, ..config }).to_string().contains("max_item_bytes"));
    }

    #[test]
    fn another_layout_or_garbage_is_reported_not_misread() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &[entry(1, 1)])).unwrap();
        let other_config = FlashLogConfig { log_capacity: 16, ..config() };
        let mut other = Log::new(flash.clone(), other_config, Membership::default()).unwrap();
        assert_eq!(block_on(other.load()), Err(FlashLogError::LayoutMismatch { stored: 8, configured: 16 }));
        assert_eq!(block_on(other.write_log(None, &[entry(1, 2)])), Err(FlashLogError::NotLoaded));
        assert_eq!(block_on(other.read_snapshot(0, 1)), Err(FlashLogError::NotLoaded));
        assert_eq!(block_on(log.read_snapshot(0, 1)), Err(FlashLogError::NoSnapshot));

        let garbage = SimFlash::new(PAGES);
        let mut seed = 0x2545_f491_u32;
        for byte in garbage.chip().bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *byte = seed as u8;
        }
        let mut log = Log::new(garbage, config(), Membership::new([1])).unwrap();
        // Whatever sequential-storage makes of noise, the store must not panic or invent a log.
        match block_on(log.load()) {
            Ok(state) => {
                assert_eq!(state, LogState { bootstrap: Membership::new([1]), ..LogState::default() })
            }
            Err(error) => {
                assert!(matches!(error, FlashLogError::Corrupt(_) | FlashLogError::Full), "{error:?}")
            }
        }
    }

    #[test]
    fn a_damaged_snapshot_is_reported() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &[entry(1, 1), entry(1, 2)])).unwrap();
        install(&mut log, &meta(1, 2), &data(2, 200), 200).unwrap();
        // Drop the second chunk: a later item for its key, of the wrong length, replaces it.
        block_on(log.store_value(Slot::Chunk { generation: 0, number: 1 }, &&b"short"[..], None)).unwrap();
        let mut log = Log::new(flash.clone(), config(), Membership::default()).unwrap();
        assert_eq!(
            block_on(log.load()),
            Err(FlashLogError::Corrupt("a snapshot chunk has the wrong length"))
        );
    }

    #[test]
    fn a_flash_error_is_passed_on() {
        let (mut log, flash) = fresh();
        flash.cut_after(3, false);
        assert_eq!(
            block_on(log.save_hard_state(HardState { term: 1, vote: None })),
            Err(FlashLogError::Flash(SimError::PowerCut))
        );
        assert!(flash.is_dead());
    }

    /// A node takes a snapshot, compacts, restarts: raft-core's executor over the flash store.
    #[test]
    fn a_node_restarts_from_flash() {
        use futures::{stream, StreamExt};
        use raft_core::{Event, Incoming, Instant, Outgoing, RaftStreamExt};

        let flash = SimFlash::new(PAGES);
        let boot = || Log::new(flash.clone(), config(), Membership::new([1])).unwrap();
        let mut inputs =
            vec![Incoming::Tick(Instant::from_millis(0)), Incoming::Tick(Instant::from_millis(500))];
        let propose = |id: u64| Incoming::Propose { id, command: Bytes::from(vec![id as u8]).into() };
        inputs.extend((1..=3).map(propose));
        inputs.push(Incoming::Compact);
        inputs.extend((4..=5).map(propose));
        let machine: Vec<Bytes> = Vec::new();
        let outputs: Vec<_> = block_on(stream::iter(inputs).into_raft_events(1, (boot(), machine)).collect());
        let committed = outputs
            .iter()
            .filter(|o| matches!(o, Ok(Outgoing::Event(Event::Proposal { result: Ok(_), .. }))))
            .count();
        assert_eq!(committed, 5, "{outputs:?}");

        let mut log = boot();
        let state = block_on(log.load()).unwrap();
        assert_eq!(state.hard_state.term, 1);
        let snapshot = state.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        assert!(snapshot > 1, "a snapshot was taken: {state:?}");
        assert_eq!(state.last_index, 6, "a no-op and five commands");
        let mut machine: Vec<Bytes> = Vec::new();
        let node =
            block_on(raft_core::start(1, raft_core::Config::default(), &mut log, &mut machine)).unwrap();
        assert_eq!(machine.len() as Index, snapshot - 1, "the snapshot restored the state machine");
        assert_eq!(node.last_log_id().index, 6);
    }
}
