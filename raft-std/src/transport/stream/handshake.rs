//! The first exchange on every connection, after its [`Secure`](super::Secure) layer: the
//! dialer says who it is and whom it wants, the acceptor welcomes it or refuses with a reason
//! (and closes).
//!
//! Until the acceptor has welcomed the dialer, both read with a small frame limit
//! (`max_handshake_bytes`): the length-delimited codec refuses a longer declared length
//! before it reserves anything, so an unauthenticated peer cannot make this node buffer more
//! than that. [`authenticated`] then raises the limit to `max_frame_bytes`.
//!
//! A refusal tells the dialer what is wrong, never this node's id or cluster id: those would
//! help whoever guesses them.

use std::fmt;

use futures::{SinkExt, StreamExt};
use raft_core::{Bytes, NodeId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::PeerBook;

/// Bumped when the handshake changes incompatibly.
const PROTOCOL: u32 = 1;

/// A framed connection: a u32 big-endian length, then that many bytes.
pub(super) type Connection<S> = Framed<S, LengthDelimitedCodec>;

/// The dialer's introduction.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    protocol: u32,
    cluster: String,
    from: NodeId,
    to: NodeId,
}

/// The acceptor's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Welcome,
    Refused(String),
}

/// Who this node is, for both sides of the handshake.
#[derive(Clone, Debug)]
pub(super) struct Identity {
    pub(super) cluster: String,
    pub(super) id: NodeId,
}

/// The room a [`Hello`] takes besides its cluster id (postcard: varints of at most 10 bytes
/// for the numbers and the string's length), so a configuration can be checked against
/// `max_handshake_bytes`.
pub(crate) const HELLO_OVERHEAD: usize = 40;

/// Why the acceptor refused a dialer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Another handshake version.
    Protocol(u32),
    /// Another cluster id.
    Cluster,
    /// The dialer wants another node than this one.
    Target,
    /// The dialer is not a peer this node knows (or claims to be this node, or node 0).
    Unknown,
    /// The dialer's certificate names another node than its handshake.
    NotItsCertificate,
}

impl fmt::Display for Refusal {
    /// What the dialer is told: what is wrong and what to check, without this node's ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Protocol(theirs) => {
                write!(f, "protocol version {theirs} is not supported (this node speaks {PROTOCOL})")
            }
            Refusal::Cluster => {
                f.write_str("the cluster id does not match; check the cluster id of both nodes")
            }
            Refusal::Target => {
                f.write_str("this is not the node the dialer asked for; check the peer addresses")
            }
            Refusal::Unknown => f.write_str(
                "the dialer is not a known peer of this node; add it to the peers or to the cluster first",
            ),
            Refusal::NotItsCertificate => {
                f.write_str("the handshake names another node than the certificate")
            }
        }
    }
}

/// Wraps a stream in the length-delimited codec, with the handshake's frame limit.
pub(super) fn frame<S: AsyncRead + AsyncWrite>(stream: S, max_handshake_bytes: usize) -> Connection<S> {
    Framed::new(stream, LengthDelimitedCodec::builder().max_frame_length(max_handshake_bytes).new_codec())
}

/// After the handshake: frames up to `max_frame_bytes` may be read and written.
pub(super) fn authenticated<S>(connection: &mut Connection<S>, max_frame_bytes: usize) {
    connection.codec_mut().set_max_frame_length(max_frame_bytes);
}

/// Introduces this node to `to` and waits for its answer.
pub(super) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    me: &Identity,
    to: NodeId,
) -> Result<(), String> {
    let hello = Hello { protocol: PROTOCOL, cluster: me.cluster.clone(), from: me.id, to };
    send(connection, &hello).await?;
    match receive::<_, Answer>(connection).await? {
        Answer::Welcome => Ok(()),
        // The reason comes from the peer: quoted, so it cannot forge log lines.
        Answer::Refused(reason) => Err(format!("refused by the peer: {reason:?}")),
    }
}

/// Reads the dialer's introduction and checks it: the right protocol, the same cluster id, this
/// node as the target, and a sender this node knows — which is, when the [`Secure`] layer
/// authenticated the dialer (`certified`), the node its certificate names. Returns the
/// sender, or why it was refused (after telling the dialer).
///
/// [`Secure`]: super::Secure
pub(super) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    me: &Identity,
    book: &PeerBook,
    certified: Option<NodeId>,
) -> Result<NodeId, String> {
    let hello = receive::<_, Hello>(connection).await?;
    match check(&hello, me, book, certified) {
        Ok(from) => {
            send(connection, &Answer::Welcome).await?;
            Ok(from)
        }
        Err(refusal) => {
            // Best effort: the dialer logs the reason; the connection closes either way.
            let _ = send(connection, &Answer::Refused(refusal.to_string())).await;
            Err(format!(
                "{refusal} (the dialer claimed to be node {} and asked for node {})",
                hello.from, hello.to
            ))
        }
    }
}

fn check(
    hello: &Hello,
    me: &Identity,
    book: &PeerBook,
    certified: Option<NodeId>,
) -> Result<NodeId, Refusal> {
    if hello.protocol != PROTOCOL {
        Err(Refusal::Protocol(hello.protocol))
    } else if hello.cluster != me.cluster {
        Err(Refusal::Cluster)
    } else if hello.to != me.id {
        Err(Refusal::Target)
    } else if certified.is_some_and(|certified| certified != hello.from) {
        Err(Refusal::NotItsCertificate)
    } else if hello.from == 0 || hello.from == me.id || !book.contains(hello.from) {
        Err(Refusal::Unknown)
    } else {
        Ok(hello.from)
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin, T: Serialize>(
    connection: &mut Connection<S>,
    value: &T,
) -> Result<(), String> {
    let bytes = postcard::to_allocvec(value).map_err(|e| format!("cannot encode the handshake: {e}"))?;
    connection.send(Bytes::from(bytes)).await.map_err(|e| format!("cannot send the handshake: {e}"))
}

async fn receive<S: AsyncRead + AsyncWrite + Unpin, T: for<'de> Deserialize<'de>>(
    connection: &mut Connection<S>,
) -> Result<T, String> {
    match connection.next().await {
        Some(Ok(bytes)) => postcard::from_bytes(&bytes).map_err(|e| format!("undecodable handshake: {e}")),
        Some(Err(e)) => {
            Err(format!("cannot read the handshake (larger than max_handshake_bytes, or cut short): {e}"))
        }
        None => Err("connection closed during the handshake".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncWriteExt};

    const SECRET: &str = "s3cret-cluster";
    const ME: NodeId = 4711;

    fn me() -> Identity {
        Identity { cluster: SECRET.to_string(), id: ME }
    }

    /// Runs the acceptor against `hello`; returns what the dialer was told and what the
    /// acceptor concluded.
    async fn exchange(hello: Hello, certified: Option<NodeId>) -> (Answer, Result<NodeId, String>) {
        let book = PeerBook::default();
        book.insert(2, "127.0.0.1:2");
        let (ours, theirs) = duplex(64 << 10);
        let mut acceptor = frame(ours, 4096);
        let mut dialer = frame(theirs, 4096);
        send(&mut dialer, &hello).await.unwrap();
        let accepted = accept(&mut acceptor, &me(), &book, certified).await;
        (receive(&mut dialer).await.unwrap(), accepted)
    }

    fn hello(cluster: &str, from: NodeId, to: NodeId) -> Hello {
        Hello { protocol: PROTOCOL, cluster: cluster.to_string(), from, to }
    }

    #[tokio::test]
    async fn refusals_say_what_is_wrong_without_this_nodes_ids() {
        let cases = [
            (hello("guess", 2, ME), "cluster id does not match"),
            (hello(SECRET, 2, 1), "not the node the dialer asked for"),
            (hello(SECRET, 3, ME), "not a known peer"),
            (hello(SECRET, ME, ME), "not a known peer"),
            (Hello { protocol: 9, ..hello(SECRET, 2, ME) }, "protocol version 9 is not supported"),
        ];
        for (hello, expected) in cases {
            let (answer, accepted) = exchange(hello, None).await;
            let Answer::Refused(told) = answer else { panic!("welcomed") };
            assert!(told.contains(expected), "{told}");
            assert!(!told.contains(SECRET) && !told.contains(&ME.to_string()), "leaks an id: {told}");
            let logged = accepted.unwrap_err();
            assert!(logged.contains(expected) && !logged.contains(SECRET), "{logged}");
        }
        let (answer, accepted) = exchange(hello(SECRET, 2, ME), None).await;
        assert!(matches!(answer, Answer::Welcome) && accepted == Ok(2));
    }

    #[tokio::test]
    async fn a_certified_peer_must_claim_the_node_its_certificate_names() {
        let (answer, accepted) = exchange(hello(SECRET, 2, ME), Some(3)).await;
        assert!(
            matches!(answer, Answer::Refused(ref told) if told.contains("another node than the certificate"))
        );
        assert!(accepted.is_err());
        let (answer, accepted) = exchange(hello(SECRET, 2, ME), Some(2)).await;
        assert!(matches!(answer, Answer::Welcome) && accepted == Ok(2));
    }

    #[tokio::test]
    async fn a_handshake_frame_claiming_16_mib_is_refused_before_anything_is_reserved() {
        let (ours, mut theirs) = duplex(64 << 10);
        let mut acceptor = frame(ours, 4096);
        theirs.write_all(&(16u32 << 20).to_be_bytes()).await.unwrap();
        theirs.write_all(&[0; 1000]).await.unwrap();
        let error = accept(&mut acceptor, &me(), &PeerBook::default(), None).await.unwrap_err();
        assert!(error.contains("larger than max_handshake_bytes"), "{error}");
        let reserved = acceptor.read_buffer().capacity();
        assert!(reserved < 64 << 10, "reserved {reserved} bytes for an unauthenticated frame");

        // After the handshake, the limit is max_frame_bytes.
        let (ours, mut theirs) = duplex(64 << 10);
        let mut connection = frame(ours, 4096);
        authenticated(&mut connection, 1 << 20);
        theirs.write_all(&(8192u32).to_be_bytes()).await.unwrap();
        theirs.write_all(&[7; 8192]).await.unwrap();
        assert_eq!(connection.next().await.unwrap().unwrap().len(), 8192);
    }
}
