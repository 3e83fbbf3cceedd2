//! One log record: a 12-byte header, then a postcard-encoded [`Entry`].
//!
//! Header: payload length (u32 LE), payload CRC32 (u32 LE), and the CRC32 of those first 8
//! bytes (u32 LE). The header checksum lets recovery trust a length before reading the payload,
//! so damage in a length field is reported as corruption instead of being mistaken for the end
//! of the log.

use raft_core::Entry;

/// Bytes before each payload.
pub(super) const HEADER_LEN: usize = 12;

/// Appends `entry` as a record to `out`.
pub(super) fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let payload = postcard::to_allocvec(entry)?;
    let payload_len = u32::try_from(payload.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
    let mut header = [0; HEADER_LEN];
    header[..4].copy_from_slice(&payload_len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[..8]);
    header[8..].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(())
}

/// What the bytes at a record boundary hold.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A valid record of `len` bytes.
    Record {
        /// The entry.
        entry: Entry,
        /// Header plus payload.
        len: usize,
    },
    /// The end of what a crash managed to write: nothing valid can follow.
    Torn(&'static str),
    /// A record that fails its checksum, whose bytes end at `end`. A crash while appending
    /// explains it only if nothing but zeros (unwritten, preallocated space) follows `end`;
    /// the caller decides ([`followed_by_data`]).
    Damaged {
        /// What failed.
        reason: &'static str,
        /// Where the damaged bytes end: past the header when the header is damaged (its length
        /// cannot be trusted), past the payload otherwise.
        end: usize,
    },
    /// Damage that a crash during an append cannot explain.
    Corrupt(String),
}

/// Whether anything but zeros (the unwritten part of a preallocated segment) lies in `bytes`.
pub(super) fn followed_by_data(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b != 0)
}

/// Decodes the record at the start of `bytes`, which run to the end of the file.
///
/// A crash while appending leaves a prefix of the last record, followed by zeros where the
/// segment was preallocated, or zeros or garbage in the last record. A prefix is
/// [`Decoded::Torn`]; a checksum failure is [`Decoded::Damaged`] (torn or corrupt depending on
/// what follows it). A record that passes its checksum but does not decode is
/// [`Decoded::Corrupt`].
pub(super) fn decode(bytes: &[u8]) -> Decoded {
    if !followed_by_data(bytes) {
        return Decoded::Torn("zero-filled tail");
    }
    if bytes.len() < HEADER_LEN {
        return Decoded::Torn("incomplete record header");
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (payload_len, payload_crc, header_crc) = (word(0) as usize, word(4), word(8));
    if crc32fast::hash(&bytes[..8]) != header_crc {
        return Decoded::Damaged { reason: "record header fails its checksum", end: HEADER_LEN };
    }
    let len = HEADER_LEN + payload_len;
    if len > bytes.len() {
        return Decoded::Torn("incomplete record");
    }
    let payload = &bytes[HEADER_LEN..len];
    if crc32fast::hash(payload) != payload_crc {
        return Decoded::Damaged { reason: "record fails its checksum", end: len };
    }
    match postcard::from_bytes::<Entry>(payload) {
        Ok(entry) => Decoded::Record { entry, len },
        Err(e) => Decoded::Corrupt(format!("record passes its checksum but does not decode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Bytes, Payload};

    fn entry(index: u64) -> Entry {
        Entry { term: 2, index, payload: Payload::Command(Bytes::from(format!("command {index}")).into()) }
    }

    fn two_records() -> (Vec<u8>, usize) {
        let mut bytes = Vec::new();
        encode(&entry(1), &mut bytes).unwrap();
        let first = bytes.len();
        encode(&entry(2), &mut bytes).unwrap();
        (bytes, first)
    }

    #[test]
    fn records_round_trip() {
        let (bytes, first) = two_records();
        let Decoded::Record { entry: e, len } = decode(&bytes) else { panic!() };
        assert_eq!((e, len), (entry(1), first));
        assert!(matches!(decode(&bytes[first..]), Decoded::Record { entry: e, .. } if e == entry(2)));
    }

    #[test]
    fn every_prefix_of_the_last_record_is_torn() {
        let (bytes, first) = two_records();
        for end in first..bytes.len() {
            assert!(matches!(decode(&bytes[first..end]), Decoded::Torn(_)), "cut at {end}");
        }
    }

    /// Torn or corrupt, as a segment scan decides.
    fn torn(bytes: &[u8]) -> bool {
        match decode(bytes) {
            Decoded::Torn(_) => true,
            Decoded::Damaged { end, .. } => !followed_by_data(&bytes[end.min(bytes.len())..]),
            _ => false,
        }
    }

    #[test]
    fn damage_before_more_data_is_corruption() {
        let (mut bytes, first) = two_records();
        bytes[HEADER_LEN + 2] ^= 1; // first payload
        assert!(!torn(&bytes));
        let (mut bytes, _) = two_records();
        bytes[1] ^= 1; // first length
        assert!(!torn(&bytes));
        let (mut bytes, _) = two_records();
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // last payload: a torn write
        assert!(torn(&bytes[first..]));
        bytes.extend_from_slice(&[0; 100]); // … followed by preallocated space
        assert!(torn(&bytes[first..]));
        assert!(matches!(decode(&[0; 40]), Decoded::Torn(_)));
    }
}
