//! Frame budgets: does the largest message a [`Config`] lets raft-core send fit a transport's
//! frame buffer? Checked when a transport starts, so that a too-small buffer is a clear error
//! at boot rather than a snapshot catch-up that retries forever because every chunk is dropped.
//!
//! raft-core bounds its two large messages by [`Config::max_append_bytes`] (AppendEntries; the
//! per-entry estimate it counts, [`Entry::size_hint`](raft_core::Entry::size_hint), is an upper
//! bound of an entry's encoding for commands under 2 MiB) and [`Config::snapshot_chunk_bytes`]
//! (InstallSnapshot, which also carries the cluster configuration). The worst case is computed
//! by encoding those messages with every number at its widest. One limit remains the
//! application's: raft-core always sends at least one entry, so a single command larger than
//! `max_append_bytes - 24` still makes a larger frame; keep commands below that.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use raft_core::{
    AppendEntries, Bytes, Config, Entry, InstallSnapshot, LogId, Membership, Message, NodeId, Payload,
    SnapshotMeta,
};

use crate::wire::WireMessage;

/// How a transport frames an [`WireMessage`], for the bytes it adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Postcard bytes as they are ([`WireMessage::to_frame`]; [`LocalNetwork`](crate::LocalNetwork)).
    Plain,
    /// A serial frame: postcard, CRC-32, COBS, a `0` delimiter ([`WireMessage::to_serial_frame`];
    /// [`FrameReader`](crate::FrameReader) needs the whole frame with its delimiter in its
    /// buffer).
    Serial,
    /// A UDP datagram of the UDP transport: a header byte and postcard, plus a 16-byte tag when
    /// authenticated.
    Udp {
        /// Whether frames carry an authentication tag.
        authenticated: bool,
    },
}

impl Framing {
    /// The framed size of `payload` postcard bytes.
    pub const fn framed_len(self, payload: usize) -> usize {
        match self {
            Framing::Plain => payload,
            // CRC-32, then COBS (one byte per 254, plus one), then the delimiter.
            Framing::Serial => {
                let checked = payload + 4;
                checked + checked / 254 + 1 + 1
            }
            Framing::Udp { authenticated } => 1 + payload + if authenticated { 16 } else { 0 },
        }
    }
}

/// The largest frames a configuration can produce, as checked by [`check_frames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameBudget {
    /// The largest AppendEntries frame, in bytes.
    pub append_frame: usize,
    /// The largest InstallSnapshot frame, in bytes.
    pub snapshot_frame: usize,
}

/// A configuration whose messages do not fit a transport's frames: lower the named limit or
/// give the transport a larger frame buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameBudgetError {
    /// An AppendEntries of `max_append_bytes` does not fit.
    AppendTooLarge {
        /// The largest frame it can make.
        needed: usize,
        /// The frame buffer.
        available: usize,
        /// The largest `max_append_bytes` that fits (0: none does).
        max_append_bytes: usize,
    },
    /// An InstallSnapshot chunk of `snapshot_chunk_bytes` does not fit.
    SnapshotChunkTooLarge {
        /// The largest frame it can make.
        needed: usize,
        /// The frame buffer.
        available: usize,
        /// The largest `snapshot_chunk_bytes` that fits (0: none does).
        snapshot_chunk_bytes: usize,
    },
}

impl fmt::Display for FrameBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameBudgetError::AppendTooLarge { needed, available, max_append_bytes } => write!(
                f,
                "an AppendEntries frame can take {needed} bytes but the frame buffer holds {available}: \
                 set Config::max_append_bytes to at most {max_append_bytes} or enlarge the buffer"
            ),
            FrameBudgetError::SnapshotChunkTooLarge { needed, available, snapshot_chunk_bytes } => write!(
                f,
                "an InstallSnapshot frame can take {needed} bytes but the frame buffer holds {available}: \
                 set Config::snapshot_chunk_bytes to at most {snapshot_chunk_bytes} or enlarge the buffer"
            ),
        }
    }
}

impl core::error::Error for FrameBudgetError {}

/// Checks that every message `config` allows fits frames of `max_frame_bytes` with `framing`,
/// for a cluster of at most `max_members` nodes (voters and learners, counted once per
/// configuration during a joint change).
///
/// ```
/// use raft_core::Config;
/// use raft_embassy::{check_frames, small_frame_config, FrameBudgetError, Framing};
///
/// let serial = Framing::Serial;
/// // The default configuration sends megabyte messages: no serial buffer of 512 bytes holds them.
/// let error = check_frames(&Config::default(), serial, 512, 5).unwrap_err();
/// assert!(matches!(error, FrameBudgetError::AppendTooLarge { .. }));
/// // The small-frame preset fits.
/// let config = small_frame_config(serial, 512, 5).unwrap();
/// assert!(check_frames(&config, serial, 512, 5).is_ok());
/// ```
pub fn check_frames(
    config: &Config,
    framing: Framing,
    max_frame_bytes: usize,
    max_members: usize,
) -> Result<FrameBudget, FrameBudgetError> {
    let append_frame = append_frame(config.max_append_bytes, framing);
    let snapshot_frame = snapshot_frame(config.snapshot_chunk_bytes, framing, max_members);
    if append_frame > max_frame_bytes {
        let max_append_bytes = largest(max_frame_bytes, |bytes| append_frame_len(bytes, framing));
        return Err(FrameBudgetError::AppendTooLarge {
            needed: append_frame,
            available: max_frame_bytes,
            max_append_bytes,
        });
    }
    if snapshot_frame > max_frame_bytes {
        let snapshot_chunk_bytes =
            largest(max_frame_bytes, |bytes| snapshot_frame_len(bytes, framing, max_members));
        return Err(FrameBudgetError::SnapshotChunkTooLarge {
            needed: snapshot_frame,
            available: max_frame_bytes,
            snapshot_chunk_bytes,
        });
    }
    Ok(FrameBudget { append_frame, snapshot_frame })
}

/// A [`Config`] for small frames (radios, serial links, UDP without fragmentation): the
/// largest `max_append_bytes` and `snapshot_chunk_bytes` that fit `max_frame_bytes`, at most 8
/// entries per AppendEntries and 4 of them in flight per peer, so that a transport's per-peer
/// queue of a few frames is not overrun. Other values are [`Config::default`]'s. Fails if not
/// even a minimal message fits.
///
/// For UDP, 508 bytes of payload cross any IPv4 path unfragmented (the transport's
/// `SMALL_UDP_FRAME` with the `udp` feature); 1232 any IPv6 path.
pub fn small_frame_config(
    framing: Framing,
    max_frame_bytes: usize,
    max_members: usize,
) -> Result<Config, FrameBudgetError> {
    let max_append_bytes = largest(max_frame_bytes, |bytes| append_frame_len(bytes, framing));
    let snapshot_chunk_bytes =
        largest(max_frame_bytes, |bytes| snapshot_frame_len(bytes, framing, max_members));
    // An entry's estimate is at least 24 bytes: below that, not even a no-op entry fits.
    let config = Config {
        max_append_bytes: max_append_bytes.max(1),
        snapshot_chunk_bytes: snapshot_chunk_bytes.max(1),
        max_append_entries: 8,
        max_inflight: 4,
        ..Config::default()
    };
    if max_append_bytes < 24 || snapshot_chunk_bytes == 0 {
        check_frames(&config, framing, max_frame_bytes, max_members)?;
    }
    Ok(config)
}

/// The largest `x` in `0..=limit` with `frame(x) <= limit`, or 0 (frame sizes grow with `x`).
fn largest(limit: usize, frame: impl Fn(usize) -> usize) -> usize {
    let (mut low, mut high) = (0, limit);
    if frame(0) > limit {
        return 0;
    }
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if frame(middle) <= limit {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    low
}

fn append_frame(max_append_bytes: usize, framing: Framing) -> usize {
    append_frame_len(max_append_bytes, framing)
}

/// The widest AppendEntries whose entries' estimates add up to `bytes`: one entry carrying
/// them all encodes at least as large as several smaller ones.
fn append_frame_len(bytes: usize, framing: Framing) -> usize {
    let command = vec![0xff; bytes.saturating_sub(24)];
    let entries = vec![Entry {
        term: u64::MAX,
        index: u64::MAX,
        payload: Payload::Command(Bytes::from(command).into()),
    }];
    let message = Message::AppendEntries(AppendEntries {
        term: u64::MAX,
        prev: LogId::new(u64::MAX, u64::MAX),
        entries,
        commit: u64::MAX,
        round: u64::MAX,
    });
    framing.framed_len(encoded_len(message))
}

fn snapshot_frame(chunk: usize, framing: Framing, max_members: usize) -> usize {
    snapshot_frame_len(chunk, framing, max_members)
}

fn snapshot_frame_len(chunk: usize, framing: Framing, max_members: usize) -> usize {
    let ids: Vec<NodeId> = (0..max_members as u64).map(|i| u64::MAX - i).collect();
    // During a joint change the old and new voter sets are both carried.
    let membership = Membership {
        voters: ids.iter().copied().collect(),
        outgoing: ids.iter().copied().collect(),
        ..Membership::default()
    };
    let message = Message::InstallSnapshot(
        InstallSnapshot {
            term: u64::MAX,
            meta: SnapshotMeta { last: LogId::new(u64::MAX, u64::MAX), membership },
            offset: u64::MAX,
            data: Bytes::from(vec![0xff; chunk]),
            done: false,
        }
        .into(),
    );
    framing.framed_len(encoded_len(message))
}

fn encoded_len(message: Message) -> usize {
    let wire = WireMessage { from: u64::MAX, to: u64::MAX, message };
    postcard::experimental::serialized_size(&wire).unwrap_or(usize::MAX)
}
