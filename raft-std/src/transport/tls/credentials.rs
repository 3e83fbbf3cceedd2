//! [`Credentials`]: a TLS transport's CA, certificate and key files, loaded into rustls
//! configurations, and loaded again when they change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use raft_core::NodeId;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use super::identity::{certified_node, AcceptorVerifier, DialerVerifier};
use super::{node_uri, TlsError};
use crate::FileWatch;

/// Where the PEM files are.
#[derive(Clone, Debug)]
pub(super) struct Files {
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

/// What connections are secured with now.
pub(super) struct Material {
    pub(super) connector: TlsConnector,
    pub(super) acceptor: TlsAcceptor,
    /// Cancelled when this material is replaced: connections made with it close.
    pub(super) retired: CancellationToken,
}

/// The credentials of one node, shared by its transport, its reloader and its watcher.
pub(super) struct Credentials {
    files: Files,
    pub(super) cluster: String,
    id: NodeId,
    current: RwLock<Arc<Material>>,
    /// The files as they were when last loaded, or tried.
    seen: Arc<FileWatch>,
}

impl Credentials {
    /// Loads the files for node `id` of `cluster`.
    pub(super) fn load(files: Files, cluster: String, id: NodeId) -> Result<Credentials, TlsError> {
        let seen = Arc::new(FileWatch::new([&files.ca, &files.cert, &files.key]));
        let material = build(&files, &cluster, id)?;
        Ok(Credentials { files, cluster, id, current: RwLock::new(Arc::new(material)), seen })
    }

    /// The material new connections use.
    pub(super) fn current(&self) -> Arc<Material> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the files now. On success, new connections use them and connections made with
    /// the old ones close; on failure, nothing changes.
    pub(super) fn reload(&self) -> Result<(), TlsError> {
        self.seen.mark();
        let material = build(&self.files, &self.cluster, self.id)?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            Arc::new(material),
        );
        old.retired.cancel();
        tracing::info!("TLS credentials reloaded: new connections use them, older ones reconnect");
        Ok(())
    }

    /// Looks at the files every `every` and reloads them when they change, until dropped.
    pub(super) async fn watch(self: Arc<Self>, every: Duration) {
        let files = Arc::clone(&self.seen);
        files
            .poll(every, move || {
                if let Err(error) = self.reload() {
                    tracing::warn!(%error, "cannot reload the TLS credentials; keeping the current ones");
                }
            })
            .await;
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn invalid(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads and checks the files, and builds both sides' configurations from them.
fn build(files: &Files, cluster: &str, id: NodeId) -> Result<Material, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let ca = ca.map_err(|e| invalid(&files.ca, format!("not PEM: {e}")))?;
        roots.add(ca).map_err(|e| invalid(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid(&files.ca, "no CA certificate (PEM CERTIFICATE) in it"));
    }
    let roots = Arc::new(roots);

    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&files.cert, format!("not PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(&files.cert, "no certificate (PEM CERTIFICATE) in it"));
    };
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| {
        invalid(
            &files.key,
            format!("no private key (PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): {e}"),
        )
    })?;

    // This node's own certificate must pass the checks its peers make, or they refuse it.
    let uri = node_uri(cluster, id);
    if certified_node(leaf, cluster).ok() != Some(id) {
        return Err(invalid(
            &files.cert,
            format!("it is not this node's: it must carry the URI SAN {uri} (and no other raft:// URI)"),
        ));
    }
    check_own(leaf, &chain[1..], &roots, &provider)
        .map_err(|e| invalid(&files.cert, format!("the peers would refuse it: {e}")))?;

    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
        .build()
        .map_err(|e| invalid(&files.ca, format!("cannot verify peers with it: {e}")))?;
    let dialers = Arc::new(DialerVerifier { chain: verifier, cluster: cluster.to_string() });
    let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| invalid(&files.cert, e.to_string()))?
        .with_client_cert_verifier(dialers)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| invalid(&files.key, format!("unusable with the certificate: {e}")))?;
    // No resumption: every connection proves its certificate again (they are long-lived).
    server.session_storage = Arc::new(NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let acceptors =
        Arc::new(AcceptorVerifier { roots, provider: Arc::clone(&provider), cluster: cluster.to_string() });
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| invalid(&files.cert, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(acceptors)
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid(&files.key, format!("unusable with the certificate: {e}")))?;
    client.enable_sni = false; // the server name says which node is dialed: not for the wire
    client.resumption = Resumption::disabled();

    Ok(Material {
        connector: TlsConnector::from(Arc::new(client)),
        acceptor: TlsAcceptor::from(Arc::new(server)),
        retired: CancellationToken::new(),
    })
}

/// Checks this node's certificate as its peers will: signed by a CA of the CA file, valid
/// now, fit for both ends of a connection.
fn check_own(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<(), rustls::Error> {
    let now = UnixTime::now();
    let parsed = ParsedCertificate::try_from(leaf)?;
    let algorithms = provider.signature_verification_algorithms.all;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, algorithms)?;
    let client = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    client.verify_client_cert(leaf, intermediates, now)?;
    Ok(())
}
