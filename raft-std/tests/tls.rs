//! The TLS transport over loopback, with certificates made at test time: authenticated peers
//! exchange frames; a plaintext peer, a certificate from another CA, an expired one, one for
//! another cluster, one for another node, and a client without a certificate are refused
//! before any frame reaches the node, with a log line that says why and names no secret.
#![cfg(feature = "tls")]

mod logs;
mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pki::{Ca, Leaf, Subject};
use raft_core::{Bytes, NodeId};
use raft_std::{TcpConfig, TcpTransport, TlsConfig, TlsError, TlsTransport, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLUSTER: &str = "tls-test";

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Node `id` on TLS, its files in `dir`.
async fn node(dir: &std::path::Path, id: NodeId, ca: &Ca, leaf: &Leaf) -> TlsTransport {
    let config = pki::write(dir, id, CLUSTER, any_port(), ca.pem(), leaf);
    TlsTransport::bind(id, config).await.expect("the transport starts")
}

/// The next frame within `wait`, if any.
async fn next(transport: &mut impl Transport, wait: Duration) -> Option<(NodeId, Bytes)> {
    tokio::time::timeout(wait, transport.recv()).await.ok().flatten()
}

/// Node 1 on TLS, which knows node 2 at `two`.
async fn node_one(dir: &std::path::Path, ca: &Ca, two: SocketAddr) -> TlsTransport {
    let mut one = node(dir, 1, ca, &ca.node(CLUSTER, 1)).await;
    one.set_peer_address(2, &two.to_string());
    one
}

/// Node 2 sends to node 1 for a while; node 1 receives nothing, and its log says `why`.
async fn refused(one: &mut TlsTransport, two: &mut impl Transport, logs: &logs::Logs, why: &str) {
    for _ in 0..5 {
        two.send(1, Bytes::from_static(b"let me in"));
        assert_eq!(next(one, Duration::from_millis(100)).await, None, "a frame got through");
    }
    let text = logs.text();
    assert!(text.contains("refused a connection") && text.contains(why), "{text}");
    assert!(!text.contains(CLUSTER), "a log line names the cluster id: {text}");
}

#[tokio::test]
async fn peers_with_certificates_of_their_node_exchange_frames() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node(dir.path(), 1, &ca, &ca.node(CLUSTER, 1)).await;
    let mut two = node(dir.path(), 2, &ca, &ca.node(CLUSTER, 2)).await;
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &one.local_addr().to_string());
    for i in 0..100 {
        assert!(two.send(1, Bytes::from(format!("to one {i}"))));
        assert!(one.send(2, Bytes::from(format!("to two {i}"))));
    }
    for i in 0..100 {
        assert_eq!(
            next(&mut one, Duration::from_secs(5)).await,
            Some((2, Bytes::from(format!("to one {i}"))))
        );
        assert_eq!(
            next(&mut two, Duration::from_secs(5)).await,
            Some((1, Bytes::from(format!("to two {i}"))))
        );
    }
    assert!(two.links().iter().any(|link| link.id == 1 && link.connected));
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test]
async fn a_plaintext_peer_is_refused() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut two = TcpTransport::bind(2, TcpConfig::new(CLUSTER, any_port())).await.unwrap();
    let mut one = node_one(dir.path(), &ca, two.local_addr()).await;
    two.set_peer_address(1, &one.local_addr().to_string());
    refused(&mut one, &mut two, &logs, "does not speak TLS").await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (Ca::new("cluster CA"), Ca::new("another CA"));
    let mut two = node(dir.path(), 2, &other, &other.node(CLUSTER, 2)).await;
    let mut one = node_one(dir.path(), &ca, two.local_addr()).await;
    two.set_peer_address(1, &one.local_addr().to_string());
    refused(&mut one, &mut two, &logs, "not signed by a CA in this node's CA file").await;
}

#[tokio::test]
async fn a_certificate_for_another_cluster_is_refused() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let config = pki::write(dir.path(), 2, "other", any_port(), ca.pem(), &ca.node("other", 2));
    let mut two = TlsTransport::bind(2, config).await.unwrap();
    let mut one = node_one(dir.path(), &ca, two.local_addr()).await;
    two.set_peer_address(1, &one.local_addr().to_string());
    refused(&mut one, &mut two, &logs, "for another cluster").await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let expired = ca.issue(Subject { expired: true, ..Subject::node(CLUSTER, 2) });
    let mut one = node_one(dir.path(), &ca, any_port()).await;
    // A transport refuses to start with it, so the peer is a raw TLS client.
    let config = pki::write(dir.path(), 2, CLUSTER, any_port(), ca.pem(), &expired);
    let error = TlsTransport::bind(2, config).await.err().expect("refused at start");
    assert!(error.to_string().contains("expired"), "{error}");
    let answer = raw_hello(one.local_addr(), ca.pem(), Some(&expired), 2).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(next(&mut one, Duration::from_millis(300)).await, None);
    let text = logs.text();
    assert!(text.contains("refused a connection") && text.contains("has expired"), "{text}");
}

#[tokio::test]
async fn a_certificate_of_another_node_cannot_claim_a_members_id() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node_one(dir.path(), &ca, any_port()).await;
    one.set_peer_address(3, "127.0.0.1:1");
    // Node 3's genuine certificate, with a handshake claiming node 2 (alive and known).
    let answer = raw_hello(one.local_addr(), ca.pem(), Some(&ca.node(CLUSTER, 3)), 2).await;
    let told = answer.expect("the TLS handshake passes").expect_err("the claim is refused");
    assert!(told.contains("another node than the certificate"), "{told}");
    assert!(
        !told.contains(CLUSTER) && !told.contains('1'),
        "the refusal names node 1 or the cluster: {told}"
    );
    assert_eq!(next(&mut one, Duration::from_millis(300)).await, None);
    // The same certificate, claiming what it is: welcome (node 3 is known to node 1).
    let answer = raw_hello(one.local_addr(), ca.pem(), Some(&ca.node(CLUSTER, 3)), 3).await;
    assert_eq!(answer.expect("the TLS handshake passes"), Ok(()));
    let text = logs.text();
    assert!(text.contains("another node than the certificate"), "{text}");
}

#[tokio::test]
async fn a_node_with_an_unknown_id_is_refused() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node_one(dir.path(), &ca, any_port()).await;
    // Node 4 has a genuine certificate, but node 1 was never told about it.
    let mut four = node(dir.path(), 4, &ca, &ca.node(CLUSTER, 4)).await;
    four.set_peer_address(1, &one.local_addr().to_string());
    refused(&mut one, &mut four, &logs, "not a known peer").await;
}

#[tokio::test]
async fn the_dialer_refuses_an_acceptor_that_is_not_the_node_it_dialed() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node(dir.path(), 1, &ca, &ca.node(CLUSTER, 1)).await;
    let mut three = node(dir.path(), 3, &ca, &ca.node(CLUSTER, 3)).await;
    three.set_peer_address(1, "127.0.0.1:1");
    // Node 1 believes node 2 listens where node 3 does.
    one.set_peer_address(2, &three.local_addr().to_string());
    for _ in 0..5 {
        one.send(2, Bytes::from_static(b"for node 2 only"));
        assert_eq!(next(&mut three, Duration::from_millis(100)).await, None);
    }
    let text = logs.text();
    assert!(text.contains("for another node than the one dialed"), "{text}");
}

#[tokio::test]
async fn a_client_without_a_certificate_never_reaches_the_protocol() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node_one(dir.path(), &ca, any_port()).await;

    // TLS without a client certificate.
    let answer = raw_hello(one.local_addr(), ca.pem(), None, 2).await;
    assert!(answer.is_err(), "{answer:?}");

    // Plain TCP with a well-formed handshake and frames, as the TCP transport would send them.
    let mut tcp = TcpStream::connect(one.local_addr()).await.unwrap();
    let hello = Hello { protocol: 1, cluster: CLUSTER.into(), from: 2, to: 1 };
    let _ = tcp.write_all(&framed(&postcard::to_allocvec(&hello).unwrap())).await;
    for _ in 0..10 {
        let _ = tcp.write_all(&framed(b"\x02\x00forged")).await;
    }
    assert_eq!(next(&mut one, Duration::from_millis(500)).await, None);
    let text = logs.text();
    assert!(text.contains("presented no certificate") || text.contains("NoCertificatesPresented"), "{text}");
    assert!(text.contains("does not speak TLS"), "{text}");
}

#[tokio::test]
async fn bad_credentials_are_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let start =
        |config: TlsConfig| async move { TlsTransport::bind(1, config).await.err().expect("refused") };

    // Another node's certificate.
    let config = pki::write(dir.path(), 1, CLUSTER, any_port(), ca.pem(), &ca.node(CLUSTER, 2));
    let error = start(config.clone()).await;
    assert!(matches!(&error, TlsError::Invalid { path, .. } if *path == config.cert), "{error}");
    assert!(error.to_string().contains("raft://tls-test/node/1"), "says which URI it needs: {error}");

    // A certificate with the key of another.
    let (mine, other) = (ca.node(CLUSTER, 1), ca.node(CLUSTER, 1));
    let config = pki::write(dir.path(), 1, CLUSTER, any_port(), ca.pem(), &Leaf { key: other.key, ..mine });
    let error = start(config.clone()).await;
    assert!(matches!(&error, TlsError::Invalid { path, .. } if *path == config.key), "{error}");

    // A CA file without a CA, a missing file, a cluster id that cannot stand in a URI.
    let config = pki::write(dir.path(), 1, CLUSTER, any_port(), "", &ca.node(CLUSTER, 1));
    assert!(matches!(start(config.clone()).await, TlsError::Invalid { path, .. } if path == config.ca));
    let config = pki::write(dir.path(), 1, CLUSTER, any_port(), ca.pem(), &ca.node(CLUSTER, 1));
    let missing = TlsConfig { cert: dir.path().join("nowhere.pem"), ..config.clone() };
    let error = start(missing).await;
    assert!(matches!(&error, TlsError::Read { .. }) && error.to_string().contains("nowhere.pem"), "{error}");
    let mut spaced = config;
    spaced.tcp.cluster = "my cluster".into();
    assert!(matches!(start(spaced).await, TlsError::Cluster(_)));
}

#[tokio::test]
async fn a_reload_with_bad_files_keeps_the_credentials_and_a_good_one_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let mut one = node(dir.path(), 1, &ca, &ca.node(CLUSTER, 1)).await;
    let mut two = node(dir.path(), 2, &ca, &ca.node(CLUSTER, 2)).await;
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &one.local_addr().to_string());
    let reloader = two.reloader();
    two.send(1, Bytes::from_static(b"before"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, Bytes::from_static(b"before"))));

    // Another node's certificate: refused, and the old one stays in use.
    pki::write(dir.path(), 2, CLUSTER, any_port(), ca.pem(), &ca.node(CLUSTER, 3));
    let error = reloader.reload().expect_err("another node's certificate");
    assert!(error.to_string().contains("raft://tls-test/node/2"), "{error}");
    two.send(1, Bytes::from_static(b"still"));
    assert_eq!(next(&mut one, Duration::from_secs(5)).await, Some((2, Bytes::from_static(b"still"))));

    // A new certificate of its own, from a new CA that both trust: the link comes back with it.
    let new_ca = Ca::new("new CA");
    let bundle = format!("{}{}", ca.pem(), new_ca.pem());
    pki::write(dir.path(), 1, CLUSTER, any_port(), &bundle, &ca.node(CLUSTER, 1));
    one.reloader().reload().unwrap();
    pki::write(dir.path(), 2, CLUSTER, any_port(), &bundle, &new_ca.node(CLUSTER, 2));
    reloader.reload().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        two.send(1, Bytes::from_static(b"after"));
        if next(&mut one, Duration::from_millis(200)).await.is_some_and(|(from, _)| from == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no frame after the reload");
    }
    one.shutdown().await;
    two.shutdown().await;
}

/// The TCP transport's handshake, as an attacker would write it.
#[derive(Serialize)]
struct Hello {
    protocol: u32,
    cluster: String,
    from: NodeId,
    to: NodeId,
}

#[derive(Debug, Deserialize)]
enum Answer {
    Welcome,
    Refused(String),
}

/// A length-delimited frame.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Connects to `address` over TLS with `leaf` (or no certificate), introduces itself as node
/// `from` to node 1, and returns the answer: `Err(io)` if the connection failed, `Ok(Err)` with
/// the reason of a refusal, `Ok(Ok)` for a welcome.
async fn raw_hello(
    address: SocketAddr,
    ca_pem: &str,
    leaf: Option<&Leaf>,
    from: NodeId,
) -> std::io::Result<Result<(), String>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match leaf {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(address).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // Node 1's certificate names localhost too: the stock verifier checks that.
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let hello = Hello { protocol: 1, cluster: CLUSTER.into(), from, to: 1 };
    tls.write_all(&framed(&postcard::to_allocvec(&hello).unwrap())).await?;
    tls.flush().await?;
    let len = tls.read_u32().await?;
    let mut body = vec![0; len.min(4096) as usize];
    tls.read_exact(&mut body).await?;
    match postcard::from_bytes(&body) {
        Ok(Answer::Welcome) => Ok(Ok(())),
        Ok(Answer::Refused(reason)) => Ok(Err(reason)),
        Err(e) => Err(std::io::Error::other(e)),
    }
}
