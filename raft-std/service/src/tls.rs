//! TLS with rustls (the `ring` provider, named explicitly so that the choice does not depend
//! on which provider features other crates in the build enable): the server configuration
//! for HTTPS, reloaded when its files change ([`ServerTls`]), and an HTTPS client that trusts
//! the cluster's CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::reload::Reloading;

/// Where a server's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This server's certificate (PEM; a chain may follow it).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The CA whose client certificates are accepted (PEM). Without it, no client
    /// certificate is asked for, and clients authenticate with bearer tokens only.
    pub client_ca: Option<PathBuf>,
}

/// The crypto provider every TLS configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS server configuration (TLS 1.2 and 1.3, HTTP/1.1): client certificates signed
/// by `files.client_ca` are verified when presented, and optional, since a client may
/// authenticate with a bearer token instead.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("cannot verify client certificates with {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate and key: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The HTTPS server configuration of a node, read again from its [`TlsFiles`] when they
/// change (see [`Reloading`]): each new connection's handshake uses the configuration last
/// loaded; connections already made keep theirs. Files that do not make a configuration
/// ([`server_config`] fails: one is missing or half-written, the key is not the
/// certificate's, the CA is not a certificate) are not loaded; the node keeps serving with
/// the configuration it has, and logs why.
pub type ServerTls = Reloading<ServerConfig>;

impl ServerTls {
    /// Reads `files` ([`server_config`]); [`watch`](Reloading::watch) them to follow their
    /// changes.
    pub fn open(files: &TlsFiles) -> Result<ServerTls, String> {
        let paths = [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()];
        let owned = files.clone();
        Reloading::load("the HTTPS certificate, key and client CA", paths.into_iter().flatten(), move || {
            server_config(&owned)
        })
    }
}

/// The certificates in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// The certificates of `ca` as trust anchors.
fn roots(ca: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| format!("{} is not a usable CA certificate: {e}", ca.display()))?;
    }
    Ok(roots)
}

/// An HTTPS client that trusts only `ca` and presents the certificate and key in
/// `identity` (PEM files) if given.
pub fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<reqwest::ClientBuilder, String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let ca_pem = read(ca)?;
    let mut builder = reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
    for certificate in reqwest::Certificate::from_pem_bundle(&ca_pem)
        .map_err(|e| format!("{} holds no usable CA certificate: {e}", ca.display()))?
    {
        builder = builder.add_root_certificate(certificate);
    }
    if let Some((cert, key)) = identity {
        let mut pem = read(cert)?;
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            format!("{} and {} are not a usable client identity: {e}", cert.display(), key.display())
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}
