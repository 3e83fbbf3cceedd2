//! [`Command`]: the bytes of an application command, stored inline when small.

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An application command, opaque to Raft: what [`Incoming::Propose`](crate::Incoming::Propose)
/// carries and [`Payload::Command`](crate::Payload::Command) holds.
///
/// Commands of up to [`Command::INLINE`] bytes are stored inside the value: making one
/// allocates nothing, and copying it to each peer, into the log store and into every message
/// touches no reference count. Longer commands are a [`Bytes`], shared by every copy.
///
/// It reads as a byte slice (`Deref<Target = [u8]>`), converts from `Bytes`, `Vec<u8>`,
/// `&'static [u8]` and `&'static str`, and back to `Bytes` with [`Command::to_bytes`]. On the
/// wire (serde) it is a byte string, encoded exactly as `Bytes` is.
///
/// ```
/// use raft_core::{Bytes, Command};
///
/// let small = Command::copy_from_slice(b"set x 1"); // inline: no allocation
/// assert_eq!(&small[..], b"set x 1");
/// let large = Command::from(Bytes::from(vec![7u8; 1024])); // shared, not copied
/// assert_eq!(large.len(), 1024);
/// assert_eq!(large.to_bytes(), Bytes::from(vec![7u8; 1024]));
/// ```
#[derive(Clone)]
pub struct Command(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; Command::INLINE] },
    Shared(Bytes),
}

impl Command {
    /// The longest command stored inline: every longer one is a shared [`Bytes`]. (Chosen so
    /// that an inline command takes no more room in an [`Entry`](crate::Entry) than a `Bytes`.)
    pub const INLINE: usize = 38;

    /// The empty command.
    pub const fn new() -> Self {
        Command(Repr::Inline { len: 0, bytes: [0; Command::INLINE] })
    }

    /// A command holding a copy of `data`: inline when it fits, else in a new [`Bytes`].
    pub fn copy_from_slice(data: &[u8]) -> Self {
        Command::inline(data).unwrap_or_else(|| Command(Repr::Shared(Bytes::copy_from_slice(data))))
    }

    /// A command over static bytes, which are never copied when longer than
    /// [`Command::INLINE`].
    pub fn from_static(data: &'static [u8]) -> Self {
        Command::inline(data).unwrap_or_else(|| Command(Repr::Shared(Bytes::from_static(data))))
    }

    fn inline(data: &[u8]) -> Option<Self> {
        let len = u8::try_from(data.len()).ok().filter(|&len| usize::from(len) <= Command::INLINE)?;
        let mut bytes = [0; Command::INLINE];
        bytes[..data.len()].copy_from_slice(data);
        Some(Command(Repr::Inline { len, bytes }))
    }

    /// The command as [`Bytes`]: a copy when it is stored inline, otherwise shared.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self),
            Repr::Shared(bytes) => bytes.clone(),
        }
    }

    /// Whether the command is stored inline (it holds at most [`Command::INLINE`] bytes).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for Command {
    fn default() -> Self {
        Command::new()
    }
}

impl Deref for Command {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for Command {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Bytes> for Command {
    /// Small commands are copied inline (and `bytes` dropped); longer ones are kept as they are.
    fn from(bytes: Bytes) -> Self {
        Command::inline(&bytes).unwrap_or(Command(Repr::Shared(bytes)))
    }
}

impl From<Vec<u8>> for Command {
    fn from(data: Vec<u8>) -> Self {
        Command::inline(&data).unwrap_or_else(|| Command(Repr::Shared(Bytes::from(data))))
    }
}

impl From<&'static [u8]> for Command {
    fn from(data: &'static [u8]) -> Self {
        Command::from_static(data)
    }
}

impl From<&'static str> for Command {
    fn from(data: &'static str) -> Self {
        Command::from_static(data.as_bytes())
    }
}

impl From<Command> for Bytes {
    fn from(command: Command) -> Self {
        match command.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(&command),
            Repr::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Command {}

impl PartialEq<[u8]> for Command {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<str> for Command {
    fn eq(&self, other: &str) -> bool {
        **self == *other.as_bytes()
    }
}

impl Hash for Command {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Command {
    /// Like [`Bytes`]: a byte string literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for &byte in self.iter() {
            match byte {
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' | b'"' => write!(f, "\\{}", byte as char)?,
                b'\0' => f.write_str("\\0")?,
                0x20..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

impl Serialize for Command {
    /// A byte string, as [`Bytes`] is encoded.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(CommandVisitor)
    }
}

/// Accepts what [`Bytes`]'s own deserializer accepts: bytes, strings and sequences of bytes.
struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, data: &[u8]) -> Result<Command, E> {
        Ok(Command::copy_from_slice(data))
    }

    fn visit_byte_buf<E: de::Error>(self, data: Vec<u8>) -> Result<Command, E> {
        Ok(Command::from(data))
    }

    fn visit_str<E: de::Error>(self, data: &str) -> Result<Command, E> {
        Ok(Command::copy_from_slice(data.as_bytes()))
    }

    fn visit_string<E: de::Error>(self, data: alloc::string::String) -> Result<Command, E> {
        Ok(Command::from(data.into_bytes()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
        let mut data = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            data.push(byte);
        }
        Ok(Command::from(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, Payload};

    #[test]
    fn an_inline_command_keeps_entries_as_small_as_a_shared_one() {
        assert!(core::mem::size_of::<Entry>() <= 56);
        assert!(core::mem::size_of::<Payload>() <= core::mem::size_of::<Bytes>() + 8);
    }

    #[test]
    fn short_commands_are_inline_and_long_ones_shared() {
        let edge = [1u8; Command::INLINE];
        assert!(Command::copy_from_slice(&edge).is_inline());
        let long = [1u8; Command::INLINE + 1];
        let shared = Command::from(Bytes::copy_from_slice(&long));
        assert!(!shared.is_inline());
        assert_eq!(&shared[..], &long[..]);
        assert_eq!(Bytes::from(shared.clone()), Bytes::copy_from_slice(&long));
        assert_eq!(Command::from(Bytes::from_static(b"abc")), Command::from_static(b"abc"));
        assert_eq!(Command::new().len(), 0);
    }

    #[test]
    fn encodes_as_bytes_do() {
        for len in [0, 5, Command::INLINE, Command::INLINE + 1, 300] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let command = Command::from(data.clone());
            let bytes = Bytes::from(data);
            let encoded = postcard::to_allocvec(&command).unwrap();
            assert_eq!(encoded, postcard::to_allocvec(&bytes).unwrap());
            assert_eq!(postcard::from_bytes::<Command>(&encoded).unwrap(), command);
        }
    }

    #[test]
    fn debug_reads_like_a_byte_string() {
        assert_eq!(alloc::format!("{:?}", Command::from_static(b"a\"b\x01")), "b\"a\\\"b\\x01\"");
    }
}
