//! The version tag in front of everything raft-std encodes for other nodes or for the log:
//! one byte, then postcard. A future format gets a new tag, so a node can tell it apart and
//! refuse it with a clear error instead of misreading it.

use raft_core::Bytes;
use serde::{Deserialize, Serialize};

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// Nothing to decode.
    #[error("empty {what}")]
    Empty {
        /// What was expected.
        what: &'static str,
    },
    /// Another (probably newer) version of raft-std wrote it.
    #[error(
        "{what} format version {found} is not supported (this node reads version {supported}); \
         run the same raft-std version on every node"
    )]
    UnknownVersion {
        /// What was expected.
        what: &'static str,
        /// The tag found.
        found: u8,
        /// The tag this build writes and reads.
        supported: u8,
    },
    /// The right version, but the body does not decode.
    #[error("undecodable {what}: {reason}")]
    Malformed {
        /// What was expected.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Encodes `value` after the tag `version`. Fails only for types postcard cannot encode
/// (sequences of unknown length), which raft-std does not use.
pub(crate) fn encode<T: Serialize>(version: u8, value: &T) -> Result<Bytes, postcard::Error> {
    let mut bytes = vec![version];
    bytes.extend_from_slice(&postcard::to_allocvec(value)?);
    Ok(Bytes::from(bytes))
}

/// Decodes what [`encode`] wrote with tag `version`; `what` names it in errors. `T` may
/// borrow from `bytes`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    version: u8,
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, FormatError> {
    let (&found, body) = bytes.split_first().ok_or(FormatError::Empty { what })?;
    if found != version {
        return Err(FormatError::UnknownVersion { what, found, supported: version });
    }
    postcard::from_bytes(body).map_err(|e| FormatError::Malformed { what, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_version_is_refused_with_a_clear_error() {
        let bytes = encode(1, &"hello".to_string()).unwrap();
        assert_eq!(decode::<String>(1, "frame", &bytes), Ok("hello".to_string()));
        let mut newer = bytes.to_vec();
        newer[0] = 2;
        let error = decode::<String>(1, "frame", &newer).unwrap_err();
        assert_eq!(error, FormatError::UnknownVersion { what: "frame", found: 2, supported: 1 });
        assert!(error.to_string().contains("frame format version 2 is not supported"), "{error}");
        assert_eq!(decode::<String>(1, "frame", &[]), Err(FormatError::Empty { what: "frame" }));
        assert!(matches!(decode::<String>(1, "frame", &[1, 200]), Err(FormatError::Malformed { .. })));
    }
}
