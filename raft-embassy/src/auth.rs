//! Frame authentication with a pre-shared key: HMAC-SHA-256 over the frame, truncated to 16
//! bytes (RustCrypto's `hmac` and `sha2`, both `no_std`).
//!
//! What it gives: a frame from anyone without the key, or altered on the way, is rejected. What
//! it does not: secrecy (frames stay readable), telling cluster members apart (every holder of
//! the key can claim any sender id) or replay protection (an old frame stays valid; Raft
//! already tolerates duplicated and delayed messages, which is all a replay can make).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the tag appended to each authenticated frame.
pub const TAG_BYTES: usize = 16;

/// A cluster's pre-shared key. Give every node the same one; keep it out of logs.
#[derive(Clone)]
pub struct FrameKey([u8; 32]);

impl core::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FrameKey(..)")
    }
}

impl FrameKey {
    /// A key from 32 secret bytes (generate them randomly, once per cluster).
    pub const fn new(key: [u8; 32]) -> Self {
        FrameKey(key)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // Cannot fail: HMAC takes keys of any length.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// The tag of `frame`.
    pub fn tag(&self, frame: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.mac();
        mac.update(frame);
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG_BYTES]);
        tag
    }

    /// Whether `tag` is `frame`'s (in constant time).
    pub fn verify(&self, frame: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(frame);
        tag.len() == TAG_BYTES && mac.verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_check_the_key_and_every_bit() {
        let key = FrameKey::new([7; 32]);
        let frame = b"an wire";
        let tag = key.tag(frame);
        assert!(key.verify(frame, &tag));
        assert!(!FrameKey::new([8; 32]).verify(frame, &tag), "another key");
        assert!(!key.verify(b"an envelopf", &tag), "an altered frame");
        assert!(!key.verify(frame, &tag[..15]), "a short tag");
        assert_eq!(format!("{key:?}"), "FrameKey(..)", "the key is not printed");
    }
}
