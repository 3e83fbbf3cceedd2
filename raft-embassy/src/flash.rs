//! [`FlashLog`]: a node's durable Raft state (term and vote, log, snapshot) on NOR flash.
//!
//! # Why sequential-storage
//!
//! The store sits on [sequential-storage](https://docs.rs/sequential-storage)'s key-value map
//! over any `embedded-storage-async` [`NorFlash`]. Of the two well-kept flash stores for
//! embassy, it fits best:
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
//! # Layout
//!
//! | key | value | written |
//! | --- | --- | --- |
//! | setup | format version, log capacity, bootstrap configuration | once, on first load |
//! | hard state | term and vote | on each change |
//! | entry slot `index % log_capacity` | epoch and log entry | per appended entry |
//! | cut | epoch and index: entries from that index written before that epoch are void | per truncation |
//! | snapshot chunk (generation, number) | a piece of snapshot data | per snapshot |
//! | snapshot | metadata, data length and CRC-32, generation, latest cut | per snapshot, last |
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
//! * [`FlashLog::write_log`] returns once every entry is written, so acknowledged entries survive;
//!   an interrupted write leaves the old log, or the truncated log with a prefix of the new
//!   entries, which is what Raft allows for an unacknowledged write.
//! * [`FlashLog::store_snapshot`] writes the chunks under the generation not in use, then the
//!   snapshot item, which names the generation, checks the data by length and CRC, and carries
//!   the cut that discards a log contradicting the snapshot (Raft §7). That item is the commit:
//!   a power cut before it leaves the previous snapshot and log, after it the new ones.
//!
//! # Cost
//!
//! An appended entry costs one flash item (its encoded size plus an 8-byte header on flash with
//! 4-byte words), a term or vote change one small item, a truncation one more, a snapshot its
//! data in `max_item_bytes` chunks plus one item. RAM: one buffer of `max_item_bytes` and a few
//! words; loading also holds the log window while it is read.
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

use crc::{Crc, CRC_32_ISCSI};
use embedded_storage_async::nor_flash::NorFlash;
use raft_core::{Bytes, Entry, HardState, Index, LogId, Membership, Snapshot, SnapshotMeta};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{Key, MapConfig, MapConfigError, MapStorage, SerializationError, Value};
use serde::{Deserialize, Serialize};

/// The layout version written into the setup record.
const FORMAT_VERSION: u8 = 1;
/// The CRC over a snapshot's data.
const SNAPSHOT_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
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
    /// `max_snapshot_bytes` needs more than 65535 chunks of `max_item_bytes`.
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
            FlashConfigError::SnapshotTooManyChunks => {
                f.write_str("max_snapshot_bytes needs more than 65535 chunks: raise max_item_bytes")
            }
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
    /// A record does not fit `max_item_bytes` (an entry's command too large, or a membership
    /// too large for the setup or snapshot record): raise `max_item_bytes` or keep commands
    /// smaller.
    ItemTooLarge {
        /// The log index of the entry, if the record is one.
        index: Option<Index>,
        /// The configured `max_item_bytes`.
        max: usize,
    },
    /// A snapshot is larger than `max_snapshot_bytes`.
    SnapshotTooLarge {
        /// The snapshot's size in bytes.
        bytes: usize,
        /// The configured maximum.
        max: usize,
    },
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
            FlashLogError::ItemTooLarge { index: Some(index), max } => {
                write!(f, "log entry {index} does not fit max_item_bytes ({max}): raise it or send smaller commands")
            }
            FlashLogError::ItemTooLarge { index: None, max } => {
                write!(f, "a record does not fit max_item_bytes ({max}): raise it")
            }
            FlashLogError::SnapshotTooLarge { bytes, max } => {
                write!(f, "a snapshot of {bytes} bytes exceeds max_snapshot_bytes ({max})")
            }
            FlashLogError::NotLoaded => f.write_str("the flash store was used before load()"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashLogError<E> {}

/// What [`FlashLog::load`] found in flash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Term and vote, as last saved.
    pub hard_state: HardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The log entries after the snapshot, in index order.
    pub entries: Vec<Entry>,
    /// The bootstrap configuration recorded on first load.
    pub bootstrap: Membership,
}

/// A node's durable Raft state in a range of NOR flash: term and vote, a log window of up to
/// `log_capacity` entries, and the latest snapshot (see the crate's README for the
/// layout and why each step is crash-safe).
///
/// Call [`load`](Self::load) first; every other method needs it. Methods are cancel-unsafe
/// like any flash write: drop a future only when the node stops anyway (a power cut is
/// handled, and so is the node's task being dropped mid-write, on the next load).
///
/// ```
/// # use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash, NorFlashErrorKind};
/// # struct Ram(Vec<u8>);
/// # impl ErrorType for Ram { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Ram {
/// #     const READ_SIZE: usize = 1;
/// #     async fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
/// #         out.copy_from_slice(&self.0[at as usize..][..out.len()]); Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Ram {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 1024;
/// #     async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xff); Ok(())
/// #     }
/// #     async fn write(&mut self, at: u32, data: &[u8]) -> Result<(), Self::Error> {
/// #         for (b, d) in self.0[at as usize..].iter_mut().zip(data) { *b &= d } Ok(())
/// #     }
/// # }
/// use futures::executor::block_on;
/// use raft_core::{Entry, HardState, Membership, Payload};
/// use raft_embassy::{FlashLog, FlashLogConfig};
///
/// let flash = Ram(vec![0xff; 8 * 1024]);
/// let mut log = FlashLog::new(flash, FlashLogConfig::new(0..8 * 1024)).unwrap();
/// let bootstrap = Membership::new([1, 2, 3]);
/// block_on(async {
///     log.load(&bootstrap).await.unwrap();
///     log.save_hard_state(HardState { term: 2, vote: Some(1) }).await.unwrap();
///     let entry = Entry { term: 2, index: 1, payload: Payload::Noop };
///     log.write_log(None, &[entry.clone()]).await.unwrap();
///
///     // A reboot: everything in RAM is gone, the flash stays.
///     let mut log = FlashLog::new(log.into_flash(), FlashLogConfig::new(0..8 * 1024)).unwrap();
///     let restored = log.load(&Membership::default()).await.unwrap();
///     assert_eq!(restored.hard_state, HardState { term: 2, vote: Some(1) });
///     assert_eq!(restored.entries, [entry]);
///     assert_eq!(restored.bootstrap, bootstrap, "the first load's configuration is kept");
/// });
/// ```
pub struct FlashLog<F: NorFlash> {
    map: MapStorage<Slot, F, Cache<Uncached, Uncached, Uncached, Slot>>,
    buf: Vec<u8>,
    capacity: u32,
    max_item_bytes: usize,
    max_snapshot_bytes: usize,
    loaded: bool,
    hard_state: HardState,
    /// The latest cut; its epoch is the one new entries are written with.
    cut: Cut,
    snapshot: Option<SnapshotRecord>,
    /// The first index the log window can hold: right after the snapshot.
    first: Index,
    /// The last index in the log (`first - 1` when it is empty).
    last: Index,
}

impl<F: NorFlash> FlashLog<F> {
    /// A store in `config.range` of `flash`. Checks the configuration against the flash's
    /// geometry; reads nothing yet.
    pub fn new(flash: F, config: FlashLogConfig) -> Result<Self, FlashLogError<F::Error>> {
        let erase_size = F::ERASE_SIZE;
        let map_config = MapConfig::<F>::try_new(config.range.clone()).map_err(|e| {
            FlashLogError::Config(match e {
                MapConfigError::StartRangeNotAtPageBoundary => {
                    FlashConfigError::StartNotPageAligned { erase_size }
                }
                MapConfigError::EndRangeNotAtPageBoundary => {
                    FlashConfigError::EndNotPageAligned { erase_size }
                }
                MapConfigError::RangeTooSmall => FlashConfigError::RangeTooSmall { erase_size },
                _ => FlashConfigError::UnsupportedGeometry,
            })
        })?;
        let capacity = flash.capacity();
        if config.range.end as usize > capacity {
            return Err(FlashLogError::Config(FlashConfigError::RangeOutsideFlash { capacity }));
        }
        if config.log_capacity == 0 {
            return Err(FlashLogError::Config(FlashConfigError::ZeroLogCapacity));
        }
        let word = F::WRITE_SIZE.max(F::READ_SIZE);
        let overhead =
            MapStorage::<Slot, F, Cache<Uncached, Uncached, Uncached, Slot>>::item_overhead_size() as usize;
        let max = erase_size.saturating_sub(2 * word + overhead) / word * word;
        if !(MIN_ITEM_BYTES..=max).contains(&config.max_item_bytes) {
            return Err(FlashLogError::Config(FlashConfigError::ItemSize { min: MIN_ITEM_BYTES, max }));
        }
        if config.max_snapshot_bytes.div_ceil(config.max_item_bytes - CHUNK_KEY_BYTES) > usize::from(u16::MAX)
        {
            return Err(FlashLogError::Config(FlashConfigError::SnapshotTooManyChunks));
        }
        Ok(FlashLog {
            map: MapStorage::new(flash, map_config, Cache::new_uncached()),
            buf: alloc::vec![0; config.max_item_bytes.next_multiple_of(word)],
            capacity: config.log_capacity,
            max_item_bytes: config.max_item_bytes,
            max_snapshot_bytes: config.max_snapshot_bytes,
            loaded: false,
            hard_state: HardState::default(),
            cut: Cut::default(),
            snapshot: None,
            first: 1,
            last: 0,
        })
    }

    /// Reads everything durable: term and vote, the snapshot and the log after it. On the first
    /// load of an empty range, records `bootstrap` (the initial voters, or an empty set for a
    /// node that waits to be added); later loads return the recorded one.
    pub async fn load(&mut self, bootstrap: &Membership) -> Result<Restored, FlashLogError<F::Error>> {
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
        let Scan { setup, hard_state, cut, snapshot, mut slots, any } = scan;
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
                let setup = Setup {
                    version: FORMAT_VERSION,
                    log_capacity: self.capacity,
                    bootstrap: bootstrap.clone(),
                };
                self.store(Slot::Setup, &setup, None).await?;
                setup.bootstrap
            }
        };

        let latest_cut =
            [cut, snapshot.as_ref().and_then(|s| s.cut)].into_iter().flatten().max_by_key(|c| c.epoch);
        let cut = latest_cut.unwrap_or_default();
        let first = snapshot.as_ref().map_or(0, |s| s.meta.last.index) + 1;
        let mut entries = Vec::new();
        let mut previous_epoch = 0;
        for index in (first..).take(self.capacity as usize) {
            let Some(record) = slots.get_mut(self.slot(index) as usize).and_then(Option::take) else { break };
            let voided = index >= cut.from && record.epoch < cut.epoch;
            if record.entry.index != index
                || record.epoch < previous_epoch
                || record.epoch > cut.epoch
                || voided
            {
                break;
            }
            previous_epoch = record.epoch;
            entries.push(record.entry);
        }
        drop(slots);

        let restored_snapshot = match &snapshot {
            Some(record) => {
                let data = self.read_snapshot_data(record).await?;
                Some(Snapshot { meta: record.meta.clone(), data })
            }
            None => None,
        };
        self.hard_state = hard_state.unwrap_or_default();
        self.cut = cut;
        self.snapshot = snapshot;
        self.first = first;
        self.last = first - 1 + entries.len() as Index;
        self.loaded = true;
        Ok(Restored { hard_state: self.hard_state, snapshot: restored_snapshot, entries, bootstrap })
    }

    /// Reads every item once; the last value of each key is its current one.
    async fn scan(&mut self) -> Result<Scan, FlashLogError<F::Error>> {
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

    /// Durably records the term and vote (one item: a power cut leaves the old or the new pair).
    pub async fn save_hard_state(&mut self, state: HardState) -> Result<(), FlashLogError<F::Error>> {
        self.check_loaded()?;
        self.store(Slot::HardState, &state, None).await?;
        self.hard_state = state;
        Ok(())
    }

    /// Durably drops every entry at or after `truncate_from` (when given), then appends
    /// `entries`, which must continue the log without gaps. Checks gaps and capacity before
    /// writing anything. Returns once every entry is on flash.
    pub async fn write_log(
        &mut self,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), FlashLogError<F::Error>> {
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

    /// Durably stores `snapshot` and discards the log it covers, as one crash-safe step
    /// (Raft §7): the entries through the snapshot's last index when the log holds that entry
    /// (same index and term), otherwise the whole log. Serves both a snapshot the node took
    /// (the log always holds its last entry) and one installed from the leader.
    pub async fn store_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), FlashLogError<F::Error>> {
        self.check_loaded()?;
        let data = &snapshot.data;
        if data.len() > self.max_snapshot_bytes {
            return Err(FlashLogError::SnapshotTooLarge { bytes: data.len(), max: self.max_snapshot_bytes });
        }
        let last = snapshot.meta.last;
        let keep_log = self.snapshot.as_ref().is_some_and(|s| s.meta.last == last)
            || (self.first..=self.last).contains(&last.index) && self.term_at(last.index).await? == last.term;
        let generation = self.snapshot.as_ref().map_or(0, |s| s.generation ^ 1);
        for (number, chunk) in data.chunks(self.chunk_bytes()).enumerate() {
            // Cannot overflow: the configuration bounds the number of chunks.
            let key = Slot::Chunk { generation, number: number as u16 };
            self.store_raw(key, chunk).await?;
        }
        let cut = if keep_log { self.cut } else { Cut { epoch: self.cut.epoch + 1, from: last.index + 1 } };
        let record = SnapshotRecord {
            meta: snapshot.meta.clone(),
            len: data.len() as u32,
            crc: SNAPSHOT_CRC.checksum(data),
            generation,
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

    /// The entries with indexes in `range`, read from flash. Fails with
    /// [`FlashLogError::Corrupt`] if one of them is not in the log window.
    pub async fn entries(&mut self, range: Range<Index>) -> Result<Vec<Entry>, FlashLogError<F::Error>> {
        self.check_loaded()?;
        if range.start < self.first || range.end > self.last + 1 {
            return Err(FlashLogError::Corrupt("a read outside the log window"));
        }
        let mut entries = Vec::with_capacity((range.end.saturating_sub(range.start)) as usize);
        for index in range {
            entries.push(self.read_entry(index).await?);
        }
        Ok(entries)
    }

    /// The stored snapshot, read from flash.
    pub async fn snapshot(&mut self) -> Result<Option<Snapshot>, FlashLogError<F::Error>> {
        self.check_loaded()?;
        let Some(record) = self.snapshot.clone() else { return Ok(None) };
        let data = self.read_snapshot_data(&record).await?;
        Ok(Some(Snapshot { meta: record.meta, data }))
    }

    /// The stored term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored snapshot's last entry, if there is a snapshot.
    pub fn snapshot_last(&self) -> Option<LogId> {
        self.snapshot.as_ref().map(|s| s.meta.last)
    }

    /// The first index of the log window (right after the snapshot).
    pub fn first_index(&self) -> Index {
        self.first
    }

    /// The last index in the log (`first_index() - 1` when the window is empty).
    pub fn last_index(&self) -> Index {
        self.last
    }

    /// Erases the whole range: the node loses its term, vote, log and snapshot. Only for a
    /// node that the cluster no longer counts (removed, or being re-added as a new member).
    pub async fn erase_all(&mut self) -> Result<(), FlashLogError<F::Error>> {
        self.map.erase_all().await.map_err(store_error(None, self.max_item_bytes))?;
        self.loaded = false;
        Ok(())
    }

    /// Gives the flash back (a new `FlashLog` over it must be loaded again).
    pub fn into_flash(self) -> F {
        self.map.destroy().0
    }

    fn check_loaded(&self) -> Result<(), FlashLogError<F::Error>> {
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

    async fn store<T: Serialize>(
        &mut self,
        key: Slot,
        value: &T,
        index: Option<Index>,
    ) -> Result<(), FlashLogError<F::Error>> {
        self.store_value(key, &Encoded(value), index).await
    }

    async fn store_raw(&mut self, key: Slot, value: &[u8]) -> Result<(), FlashLogError<F::Error>> {
        self.store_value(key, &value, None).await
    }

    /// The one place that writes: through a trait object, so that sequential-storage's store
    /// is compiled once, not once per record type (a few KiB of flash).
    async fn store_value(
        &mut self,
        key: Slot,
        value: &dyn Value<'_>,
        index: Option<Index>,
    ) -> Result<(), FlashLogError<F::Error>> {
        let max = self.max_item_bytes;
        self.map.store_item_generic(&mut self.buf, &key, value).await.map_err(store_error(index, max))
    }

    async fn fetch<T: for<'de> Deserialize<'de>>(
        &mut self,
        key: Slot,
    ) -> Result<Option<T>, FlashLogError<F::Error>> {
        match self.map.fetch_item::<&[u8]>(&mut self.buf, &key).await.map_err(read_error)? {
            Some(value) => decode(value).map(Some),
            None => Ok(None),
        }
    }

    async fn read_entry(&mut self, index: Index) -> Result<Entry, FlashLogError<F::Error>> {
        match self.fetch::<LogRecord>(Slot::Entry(self.slot(index))).await? {
            Some(record) if record.entry.index == index => Ok(record.entry),
            _ => Err(FlashLogError::Corrupt("a log entry of the window is missing")),
        }
    }

    async fn term_at(&mut self, index: Index) -> Result<raft_core::Term, FlashLogError<F::Error>> {
        Ok(self.read_entry(index).await?.term)
    }

    async fn read_snapshot_data(
        &mut self,
        record: &SnapshotRecord,
    ) -> Result<Bytes, FlashLogError<F::Error>> {
        let len = record.len as usize;
        if len > self.max_snapshot_bytes {
            return Err(FlashLogError::Corrupt("the snapshot record names a size over max_snapshot_bytes"));
        }
        let mut data = Vec::with_capacity(len);
        let chunks = len.div_ceil(self.chunk_bytes());
        for number in 0..chunks {
            let key = Slot::Chunk { generation: record.generation, number: number as u16 };
            let chunk = self.map.fetch_item::<&[u8]>(&mut self.buf, &key).await.map_err(read_error)?;
            let Some(chunk) = chunk else {
                return Err(FlashLogError::Corrupt("a snapshot chunk is missing"));
            };
            data.extend_from_slice(chunk);
        }
        if data.len() != len || SNAPSHOT_CRC.checksum(&data) != record.crc {
            return Err(FlashLogError::Corrupt("the snapshot data fails its length or CRC check"));
        }
        Ok(Bytes::from(data))
    }
}

impl<F: NorFlash> fmt::Debug for FlashLog<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashLog")
            .field("range", &self.map.flash_range())
            .field("loaded", &self.loaded)
            .field("hard_state", &self.hard_state)
            .field("snapshot_last", &self.snapshot_last())
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
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
    /// The entry slots' current values.
    slots: Vec<Option<LogRecord>>,
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

/// A log entry in its slot.
#[derive(Debug, Deserialize)]
struct LogRecord {
    epoch: u64,
    entry: Entry,
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
    use raft_core::{Payload, Term};

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
        Entry { term, index, payload: Payload::Command(Bytes::from(alloc::format!("command {index}"))) }
    }

    fn snapshot(term: Term, index: Index, len: usize) -> Snapshot {
        let meta = SnapshotMeta { last: LogId::new(term, index), membership: Membership::new([1, 2, 3]) };
        Snapshot { meta, data: (0..len).map(|i| (i * 7 + index as usize) as u8).collect::<Vec<u8>>().into() }
    }

    fn fresh() -> (Log, SimFlash) {
        let flash = SimFlash::new(PAGES);
        let mut log = Log::new(flash.clone(), config()).unwrap();
        block_on(log.load(&Membership::new([1, 2, 3]))).unwrap();
        (log, flash)
    }

    /// A power cycle: a new store over the same flash, loaded.
    fn reboot(flash: &SimFlash) -> (Log, Restored) {
        let mut log = Log::new(flash.clone(), config()).unwrap();
        let restored = block_on(log.load(&Membership::default())).unwrap();
        (log, restored)
    }

    fn indexes(restored: &Restored) -> Vec<(Term, Index)> {
        restored.entries.iter().map(|e| (e.term, e.index)).collect()
    }

    #[test]
    fn everything_survives_a_reboot() {
        let (mut log, flash) = fresh();
        block_on(log.save_hard_state(HardState { term: 3, vote: Some(2) })).unwrap();
        let entries: Vec<Entry> = (1..=5).map(|i| entry(3, i)).collect();
        block_on(log.write_log(None, &entries)).unwrap();
        let (_, restored) = reboot(&flash);
        assert_eq!(restored.hard_state, HardState { term: 3, vote: Some(2) });
        assert_eq!(restored.entries, entries);
        assert_eq!(restored.snapshot, None);
        assert_eq!(restored.bootstrap, Membership::new([1, 2, 3]));
        assert_eq!(flash.0.borrow().rewrites, 0, "no word is programmed twice");
    }

    #[test]
    fn truncations_survive_with_or_without_new_entries() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        block_on(log.write_log(Some(4), &[entry(2, 4)])).unwrap();
        assert_eq!(indexes(&reboot(&flash).1), [(1, 1), (1, 2), (1, 3), (2, 4)], "5 and 6 stay cut");
        block_on(log.write_log(Some(3), &[])).unwrap();
        let (mut log, restored) = reboot(&flash);
        assert_eq!(indexes(&restored), [(1, 1), (1, 2)], "a truncation without entries");
        // Appending again must not resurrect the old entries 4.. behind the new 3.
        block_on(log.write_log(None, &[entry(3, 3)])).unwrap();
        assert_eq!(indexes(&reboot(&flash).1), [(1, 1), (1, 2), (3, 3)]);
    }

    #[test]
    fn a_snapshot_the_log_continues_keeps_the_rest_of_the_log() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        let taken = snapshot(1, 4, 300); // several chunks
        block_on(log.store_snapshot(&taken)).unwrap();
        let (mut log, restored) = reboot(&flash);
        assert_eq!(restored.snapshot.as_ref(), Some(&taken));
        assert_eq!(indexes(&restored), [(1, 5), (1, 6)]);
        assert_eq!(block_on(log.snapshot()).unwrap(), Some(taken));
        assert_eq!(block_on(log.entries(5..7)).unwrap(), [entry(1, 5), entry(1, 6)]);
    }

    #[test]
    fn a_snapshot_the_log_contradicts_discards_the_whole_log() {
        let (mut log, flash) = fresh();
        block_on(log.write_log(None, &(1..=6).map(|i| entry(1, i)).collect::<Vec<_>>())).unwrap();
        let installed = snapshot(2, 4, 40); // 4@2: the log has 4@1
        block_on(log.store_snapshot(&installed)).unwrap();
        let (mut log, restored) = reboot(&flash);
        assert_eq!(restored.snapshot, Some(installed));
        assert!(restored.entries.is_empty(), "no conflicting suffix survives behind the snapshot");
        block_on(log.write_log(None, &[entry(2, 5)])).unwrap();
        assert_eq!(indexes(&reboot(&flash).1), [(2, 5)], "6@1 stays void");
        // A snapshot past the end of the log empties it too.
        block_on(log.store_snapshot(&snapshot(2, 9, 10))).unwrap();
        let restored = reboot(&flash).1;
        assert!(restored.entries.is_empty());
        assert_eq!(restored.snapshot.unwrap().meta.last, LogId::new(2, 9));
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
            block_on(log.store_snapshot(&snapshot(
                term.min(entries[1].term),
                start + 1,
                50 + round as usize,
            )))
            .unwrap();
        }
        let (_, restored) = reboot(&flash);
        assert_eq!(restored.snapshot.unwrap().meta.last.index, 238);
        assert_eq!(restored.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [239, 240]);
        assert_eq!(restored.hard_state.term, term);
        assert!(flash.spent() > 4 * (PAGES * SimFlash::PAGE) as u64, "the pages were erased several times");
        assert_eq!(flash.0.borrow().rewrites, 0);
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
        block_on(log.store_snapshot(&snapshot(1, 2, 10))).unwrap();
        assert_eq!(
            block_on(log.write_log(None, &[large])),
            Err(FlashLogError::ItemTooLarge { index: Some(9), max: 96 })
        );
        assert_eq!(
            block_on(log.store_snapshot(&snapshot(1, 3, 2000))),
            Err(FlashLogError::SnapshotTooLarge { bytes: 2000, max: 1024 })
        );
        assert_eq!(indexes(&reboot(&flash).1), (3..=8).map(|i| (1, i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_range_says_so() {
        let flash = SimFlash::new(2);
        let config = FlashLogConfig { range: 0..512, log_capacity: 64, ..config() };
        let mut log = Log::new(flash, config).unwrap();
        block_on(log.load(&Membership::new([1]))).unwrap();
        let result = (1..=64).try_for_each(|i| block_on(log.write_log(None, &[entry(1, i)])));
        assert_eq!(result, Err(FlashLogError::Full));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let new = |config| Log::new(SimFlash::new(PAGES), config).map(|_| ()).unwrap_err();
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
        let mut other = Log::new(flash.clone(), FlashLogConfig { log_capacity: 16, ..config() }).unwrap();
        assert_eq!(
            block_on(other.load(&Membership::default())),
            Err(FlashLogError::LayoutMismatch { stored: 8, configured: 16 })
        );
        assert_eq!(block_on(other.write_log(None, &[entry(1, 2)])), Err(FlashLogError::NotLoaded));

        let garbage = SimFlash::new(PAGES);
        let mut seed = 0x2545_f491_u32;
        for byte in garbage.0.borrow_mut().bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *byte = seed as u8;
        }
        let mut log = Log::new(garbage, config()).unwrap();
        // Whatever sequential-storage makes of noise, the store must not panic or invent a log.
        match block_on(log.load(&Membership::new([1]))) {
            Ok(restored) => {
                assert_eq!(restored, Restored { bootstrap: Membership::new([1]), ..Restored::default() })
            }
            Err(error) => {
                assert!(matches!(error, FlashLogError::Corrupt(_) | FlashLogError::Full), "{error:?}")
            }
        }
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
}
