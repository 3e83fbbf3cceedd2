//! The first exchange on every connection: the dialer says who it is and whom it wants, the
//! acceptor welcomes it or refuses with a reason (and closes).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use raft_core::{Bytes, NodeId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::PeerBook;

/// Bumped when the frame format changes incompatibly.
const PROTOCOL: u32 = 1;

/// A framed connection: a u32 big-endian length, then that many bytes of postcard.
pub(super) type Connection = Framed<TcpStream, LengthDelimitedCodec>;

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

/// Wraps a TCP stream in the length-delimited codec.
pub(super) fn frame(stream: TcpStream, max_frame_bytes: usize) -> Connection {
    Framed::new(stream, LengthDelimitedCodec::builder().max_frame_length(max_frame_bytes).new_codec())
}

/// Introduces this node to `to` and waits for its answer.
pub(super) async fn dial(
    connection: &mut Connection,
    me: &Identity,
    to: NodeId,
    timeout: Duration,
) -> Result<(), String> {
    let hello = Hello { protocol: PROTOCOL, cluster: me.cluster.clone(), from: me.id, to };
    let exchange = async {
        send(connection, &hello).await?;
        match receive::<Answer>(connection).await? {
            Answer::Welcome => Ok(()),
            Answer::Refused(reason) => Err(format!("refused by the peer: {reason}")),
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| "handshake timed out".to_string())?
}

/// Reads the dialer's introduction and checks it: the right protocol, the same cluster id, this
/// node as the target, and a sender this node knows. Returns the sender, or why it was refused
/// (after telling the dialer).
pub(super) async fn accept(
    connection: &mut Connection,
    me: &Identity,
    book: &PeerBook,
    timeout: Duration,
) -> Result<NodeId, String> {
    let hello = tokio::time::timeout(timeout, receive::<Hello>(connection))
        .await
        .map_err(|_| "no handshake within the timeout".to_string())??;
    let refusal = if hello.protocol != PROTOCOL {
        Some(format!("protocol version {} is not supported (this node speaks {PROTOCOL})", hello.protocol))
    } else if hello.cluster != me.cluster {
        Some(format!("cluster id {:?} does not match this node's {:?}", hello.cluster, me.cluster))
    } else if hello.to != me.id {
        Some(format!("this is node {}, not node {}; check the peer addresses", me.id, hello.to))
    } else if hello.from == 0 || hello.from == me.id || !book.contains(hello.from) {
        Some(format!("unknown node id {}; add it to --peers or to the cluster first", hello.from))
    } else {
        None
    };
    match refusal {
        None => {
            send(connection, &Answer::Welcome).await?;
            Ok(hello.from)
        }
        Some(reason) => {
            // Best effort: the dialer logs the reason; the connection closes either way.
            let _ = send(connection, &Answer::Refused(reason.clone())).await;
            Err(reason)
        }
    }
}

async fn send<T: Serialize>(connection: &mut Connection, value: &T) -> Result<(), String> {
    let bytes = postcard::to_allocvec(value).map_err(|e| format!("cannot encode the handshake: {e}"))?;
    connection.send(Bytes::from(bytes)).await.map_err(|e| format!("cannot send the handshake: {e}"))
}

async fn receive<T: for<'de> Deserialize<'de>>(connection: &mut Connection) -> Result<T, String> {
    match connection.next().await {
        Some(Ok(bytes)) => postcard::from_bytes(&bytes).map_err(|e| format!("undecodable handshake: {e}")),
        Some(Err(e)) => Err(format!("cannot read the handshake: {e}")),
        None => Err("connection closed during the handshake".to_string()),
    }
}
