//! The wire format: an [`WireMessage`] (sender, recipient, Raft message) encoded with postcard.
//!
//! Two framings:
//!
//! * [`WireMessage::to_frame`] / [`WireMessage::from_frame`]: plain postcard bytes, for transports
//!   that keep message boundaries and integrity themselves (in-memory channels, CAN-FD/radio
//!   stacks with their own checksums).
//! * [`WireMessage::to_serial_frame`] / [`WireMessage::from_serial_frame`]: postcard bytes followed
//!   by a CRC-32 (iSCSI polynomial), COBS-encoded and terminated by a `0` byte, for raw byte
//!   streams such as a UART: a receiver resynchronises at the next `0` after noise, and a
//!   corrupted frame fails its CRC instead of turning into a different, valid message.

use alloc::vec::Vec;
use core::fmt;

use crc::{Crc, CRC_32_ISCSI};
use raft_core::{Incoming, Message, NodeId};
use serde::{Deserialize, Serialize};

/// The CRC that guards serial frames.
const SERIAL_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// A Raft message in transit between two nodes.
///
/// ```
/// use raft_core::Message;
/// use raft_embassy::WireMessage;
///
/// let wire = WireMessage { from: 1, to: 2, message: Message::TimeoutNow { term: 3 } };
/// let frame = wire.to_frame().unwrap();
/// assert_eq!(WireMessage::from_frame(&frame).unwrap(), wire);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// The sending node.
    pub from: NodeId,
    /// The node the message is for (lets receivers on a shared bus drop others' traffic).
    pub to: NodeId,
    /// The message.
    pub message: Message,
}

/// A frame that could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(postcard::Error);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl core::error::Error for FrameError {}

impl WireMessage {
    /// Encodes the wire message as postcard bytes.
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        postcard::to_allocvec(self).map_err(FrameError)
    }

    /// Decodes postcard bytes. Untrusted input: any malformed frame is an error, never a panic.
    pub fn from_frame(frame: &[u8]) -> Result<Self, FrameError> {
        postcard::from_bytes(frame).map_err(FrameError)
    }

    /// Encodes the wire message for a byte stream: COBS(postcard ‖ CRC-32), then a `0` delimiter.
    ///
    /// ```
    /// use raft_core::Message;
    /// use raft_embassy::WireMessage;
    ///
    /// let wire = WireMessage { from: 1, to: 2, message: Message::TimeoutNow { term: 3 } };
    /// let mut frame = wire.to_serial_frame().unwrap();
    /// assert_eq!(frame.pop(), Some(0), "the delimiter ends the frame");
    /// assert!(!frame.contains(&0), "and appears nowhere else");
    /// assert_eq!(WireMessage::from_serial_frame(&mut frame.clone()).unwrap(), wire);
    /// frame[1] ^= 0x40; // a bit flipped on the wire
    /// assert!(WireMessage::from_serial_frame(&mut frame).is_err());
    /// ```
    pub fn to_serial_frame(&self) -> Result<Vec<u8>, FrameError> {
        let checked = postcard::to_allocvec_crc32(self, SERIAL_CRC.digest()).map_err(FrameError)?;
        let mut frame = cobs::encode_vec(&checked);
        frame.push(0);
        Ok(frame)
    }

    /// Decodes one serial frame (without its `0` delimiter), in place: `frame` is overwritten.
    pub fn from_serial_frame(frame: &mut [u8]) -> Result<Self, FrameError> {
        let len =
            cobs::decode_in_place(frame).map_err(|_| FrameError(postcard::Error::DeserializeBadEncoding))?;
        postcard::from_bytes_crc32(&frame[..len], SERIAL_CRC.digest()).map_err(FrameError)
    }
}

impl From<WireMessage> for Incoming {
    fn from(wire: WireMessage) -> Incoming {
        Incoming::Message { from: wire.from, message: wire.message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{AppendEntries, Bytes, Entry, LogId, Payload};

    fn append_entries(len: usize) -> WireMessage {
        let entries = (1..=3)
            .map(|index| Entry {
                term: 2,
                index,
                payload: Payload::Command(Bytes::from(alloc::vec![0u8; len]).into()),
            })
            .collect();
        let message = Message::AppendEntries(AppendEntries {
            term: 2,
            prev: LogId::new(0, 0),
            entries,
            commit: 1,
            round: 7,
        });
        WireMessage { from: 3, to: 1, message }
    }

    #[test]
    fn serial_frames_round_trip_across_cobs_block_boundaries() {
        for len in [0, 1, 253, 254, 255, 600] {
            let wire = append_entries(len);
            let mut frame = wire.to_serial_frame().unwrap();
            assert_eq!(frame.pop(), Some(0));
            assert!(!frame.contains(&0));
            assert_eq!(WireMessage::from_serial_frame(&mut frame), Ok(wire), "payload of {len} bytes");
        }
    }

    #[test]
    fn truncated_and_corrupted_frames_are_errors() {
        let wire = append_entries(10);
        let plain = wire.to_frame().unwrap();
        for cut in 0..plain.len() {
            assert!(WireMessage::from_frame(&plain[..cut]).is_err(), "cut at {cut}");
        }
        let mut serial = wire.to_serial_frame().unwrap();
        serial.pop();
        for cut in 0..serial.len() {
            assert!(WireMessage::from_serial_frame(&mut serial[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        for byte in 0..serial.len() {
            let mut flipped = serial.clone();
            flipped[byte] ^= 0x01;
            assert!(WireMessage::from_serial_frame(&mut flipped).is_err(), "flip in byte {byte}");
        }
    }
}
