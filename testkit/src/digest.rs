//! Stable 64-bit digests (FNV-1a) of entries and state-machine contents, so the invariant
//! checker can compare what different nodes hold without keeping copies of it.

use raft_core::{Entry, Payload};

/// FNV-1a over a sequence of byte slices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digest(u64);

impl Digest {
    pub(crate) fn new() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// A length-prefixed field, so ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn field(self, bytes: &[u8]) -> Self {
        self.u64(bytes.len() as u64).bytes(bytes)
    }

    pub(crate) fn u64(self, value: u64) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// The digest of an entry's term, index and payload.
pub(crate) fn entry_digest(entry: &Entry) -> u64 {
    let digest = Digest::new().u64(entry.term).u64(entry.index);
    match &entry.payload {
        Payload::Noop => digest.u64(0),
        Payload::Command(command) => digest.u64(1).field(command),
        Payload::Membership(m) => {
            let mut digest = digest.u64(2);
            for set in [&m.voters, &m.outgoing, &m.learners] {
                digest = digest.u64(set.len() as u64);
                for &id in set {
                    digest = digest.u64(id);
                }
            }
            digest
        }
    }
    .finish()
}
