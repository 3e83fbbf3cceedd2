//! Nodes connected by a byte stream (UART, radio, USB CDC …): serial frames over any
//! [`embedded_io_async`] reader and writer.
//!
//! Each [`WireMessage`] travels as one serial frame (see [`WireMessage::to_serial_frame`]). The reader
//! resynchronises at the next frame delimiter after line noise, an overlong frame or a failed
//! CRC, so one bad frame costs one message, which Raft retransmits.

use core::fmt;

use embedded_io_async::{Read, Write};
use futures_core::stream::Stream;
use raft_core::{Config, Incoming, NodeId};

use crate::budget::{check_frames, FrameBudget, FrameBudgetError, Framing};
use crate::wire::{FrameError, WireMessage};

/// Why a serial frame could not be sent or received.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerialError<E> {
    /// The underlying reader or writer failed.
    Io(E),
    /// The reader reached the end of its input.
    Closed,
    /// A frame did not fit the reader's buffer and was skipped.
    Oversized,
    /// A frame was corrupt (bad COBS, CRC or postcard) and was skipped.
    Frame(FrameError),
}

impl<E: fmt::Debug> fmt::Display for SerialError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialError::Io(e) => write!(f, "serial I/O failed: {e:?}"),
            SerialError::Closed => f.write_str("the serial input ended"),
            SerialError::Oversized => {
                f.write_str("a frame was larger than the receive buffer and was skipped")
            }
            SerialError::Frame(e) => write!(f, "a corrupt frame was skipped: {e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SerialError<E> {}

/// Writes serial frames to a byte stream.
pub struct FrameWriter<W> {
    writer: W,
}

impl<W: Write> FrameWriter<W> {
    /// Frames messages onto `writer`.
    pub fn new(writer: W) -> Self {
        FrameWriter { writer }
    }

    /// Writes one wire as a serial frame and flushes it.
    pub async fn send(&mut self, wire: &WireMessage) -> Result<(), SerialError<W::Error>> {
        let frame = wire.to_serial_frame().map_err(SerialError::Frame)?;
        self.writer.write_all(&frame).await.map_err(SerialError::Io)?;
        self.writer.flush().await.map_err(SerialError::Io)
    }
}

/// Reads serial frames from a byte stream into a buffer of `N` bytes (the largest frame it
/// accepts).
///
/// ```
/// use embassy_sync::{blocking_mutex::raw::NoopRawMutex, pipe::Pipe};
/// use futures::executor::block_on;
/// use raft_core::Message;
/// use raft_embassy::{WireMessage, FrameReader, FrameWriter};
///
/// let wire: Pipe<NoopRawMutex, 256> = Pipe::new();
/// let (mut writer, mut reader) = (FrameWriter::new(&wire), FrameReader::<_, 128>::new(&wire));
/// let wire = WireMessage { from: 1, to: 2, message: Message::TimeoutNow { term: 3 } };
/// block_on(writer.send(&wire)).unwrap();
/// assert_eq!(block_on(reader.receive()).unwrap(), wire);
/// ```
pub struct FrameReader<R, const N: usize> {
    reader: R,
    buf: [u8; N],
    /// Bytes of `buf` holding input.
    len: usize,
    /// Bytes of `buf` already searched for a delimiter.
    scanned: usize,
    /// The frame being read overflowed `buf`: skip to its delimiter.
    overflowed: bool,
}

impl<R, const N: usize> FrameReader<R, N> {
    /// Checks at startup that every message `config` allows fits this reader's `N`-byte buffer
    /// as a serial frame, for a cluster of up to `max_members` nodes. A frame that does not fit
    /// is skipped as [`SerialError::Oversized`], so without this check a too-small buffer shows
    /// only as a peer whose snapshot catch-up retries forever.
    ///
    /// ```
    /// use raft_core::Config;
    /// use raft_embassy::{small_frame_config, FrameReader, Framing};
    ///
    /// type Reader = FrameReader<&'static [u8], 256>;
    /// assert!(Reader::check_config(&Config::default(), 3).is_err());
    /// let config = small_frame_config(Framing::Serial, 256, 3).unwrap();
    /// assert!(Reader::check_config(&config, 3).is_ok());
    /// ```
    pub fn check_config(config: &Config, max_members: usize) -> Result<FrameBudget, FrameBudgetError> {
        check_frames(config, Framing::Serial, N, max_members)
    }
}

impl<R: Read, const N: usize> FrameReader<R, N> {
    /// Reads frames from `reader`.
    pub fn new(reader: R) -> Self {
        FrameReader { reader, buf: [0; N], len: 0, scanned: 0, overflowed: false }
    }

    /// Reads the next frame. After [`SerialError::Oversized`] or [`SerialError::Frame`] the
    /// reader is in sync again: call it again for the next frame.
    pub async fn receive(&mut self) -> Result<WireMessage, SerialError<R::Error>> {
        loop {
            if let Some(offset) = self.buf[self.scanned..self.len].iter().position(|&b| b == 0) {
                match self.take_frame(self.scanned + offset) {
                    Some(result) => return result,
                    None => continue, // an empty frame: delimiters may pad the line
                }
            }
            self.scanned = self.len;
            if self.len == N {
                self.overflowed = true;
                self.len = 0;
                self.scanned = 0;
            }
            let read = self.reader.read(&mut self.buf[self.len..]).await.map_err(SerialError::Io)?;
            if read == 0 {
                return Err(SerialError::Closed);
            }
            self.len += read;
        }
    }

    /// Decodes the frame that ends at the delimiter at `end` and removes it from the buffer;
    /// `None` for an empty frame.
    fn take_frame(&mut self, end: usize) -> Option<Result<WireMessage, SerialError<R::Error>>> {
        let result = if self.overflowed {
            Some(Err(SerialError::Oversized))
        } else if end == 0 {
            None
        } else {
            Some(WireMessage::from_serial_frame(&mut self.buf[..end]).map_err(SerialError::Frame))
        };
        self.buf.copy_within(end + 1..self.len, 0);
        self.len -= end + 1;
        self.scanned = 0;
        self.overflowed = false;
        result
    }

    /// The messages for node `me` as a stream of [`Incoming`] events, to merge into the node's
    /// inputs. Corrupt and oversized frames and frames for other nodes are skipped; the stream
    /// ends when the reader fails or its input ends.
    pub fn into_incoming(self, me: NodeId) -> impl Stream<Item = Incoming> {
        futures_util::stream::unfold(self, move |mut reader| async move {
            loop {
                match reader.receive().await {
                    Ok(wire) if wire.to == me => return Some((wire.into(), reader)),
                    Ok(_) | Err(SerialError::Oversized | SerialError::Frame(_)) => {}
                    Err(SerialError::Io(_) | SerialError::Closed) => return None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use futures::executor::block_on;
    use futures::StreamExt;
    use raft_core::{AppendEntries, Bytes, Entry, LogId, Message, Payload};

    fn wire(to: NodeId, term: u64) -> WireMessage {
        WireMessage { from: 1, to, message: Message::TimeoutNow { term } }
    }

    fn frame(wire: &WireMessage) -> Vec<u8> {
        wire.to_serial_frame().unwrap()
    }

    /// A line with noise, a frame for another node, an oversized frame and a corrupted one
    /// between three good frames for node 2.
    fn noisy_line() -> Vec<u8> {
        let entry =
            Entry { term: 1, index: 1, payload: Payload::Command(Bytes::from(alloc::vec![7; 300]).into()) };
        let message = Message::AppendEntries(AppendEntries {
            term: 1,
            prev: LogId::default(),
            entries: alloc::vec![entry],
            commit: 0,
            round: 0,
        });
        let oversized = frame(&WireMessage { from: 1, to: 2, message });
        let mut corrupted = frame(&wire(2, 9));
        corrupted[2] ^= 0x10;
        [&[0][..], &[5, 1, 2, 0], &frame(&wire(2, 1)), &frame(&wire(3, 2)), &oversized, &corrupted]
            .into_iter()
            .chain([&frame(&wire(2, 3))[..], &[0, 0], &frame(&wire(2, 4))])
            .flatten()
            .copied()
            .collect()
    }

    #[test]
    fn the_reader_reports_each_bad_frame_and_stays_in_sync() {
        let line = noisy_line();
        let mut reader = FrameReader::<_, 128>::new(&line[..]);
        let mut results = Vec::new();
        loop {
            match block_on(reader.receive()) {
                Err(SerialError::Closed) => break,
                result => results.push(result.map(|e| (e.to, e.message.term()))),
            }
        }
        assert!(matches!(results[0], Err(SerialError::Frame(_))), "{results:?}");
        assert_eq!(results[1..3], [Ok((2, 1)), Ok((3, 2))]);
        assert_eq!(results[3], Err(SerialError::Oversized));
        assert!(matches!(results[4], Err(SerialError::Frame(_))), "{results:?}");
        assert_eq!(results[5..], [Ok((2, 3)), Ok((2, 4))]);
    }

    #[test]
    fn incoming_keeps_the_good_frames_for_this_node_and_ends_with_the_input() {
        let line = noisy_line();
        let incoming: Vec<Incoming> =
            block_on(FrameReader::<_, 128>::new(&line[..]).into_incoming(2).collect());
        assert_eq!(incoming, [1, 3, 4].map(|term| Incoming::from(wire(2, term))));
    }
}
