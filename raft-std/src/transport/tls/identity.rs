//! Who a certificate says a node is: its URI SAN `raft://<cluster>/node/<id>` — and the two
//! certificate verifiers that hold peers to it.
//!
//! * The **acceptor** verifies the dialer's chain against the CA (and its validity, and the
//!   client-auth purpose if the certificate lists purposes), then requires a node URI of this
//!   cluster; the node it names is the peer, whatever the handshake claims.
//! * The **dialer** verifies the acceptor's chain likewise (server-auth purpose), then
//!   requires the node URI of exactly the node it dialed. It names that node as the TLS server
//!   name `node-<id>` (SNI is off: the name is never sent) and reads it back here.
//!
//! A failed check aborts the TLS handshake with an alert, before either side reads a frame.

use std::fmt;
use std::sync::Arc;

use raft_core::NodeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore, SignatureScheme,
};
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// The URI a node's certificate must carry as a subject alternative name:
/// `raft://<cluster>/node/<id>`. The certificate generator and the transport use this one
/// format.
///
/// The cluster id must consist of letters, digits, `-`, `.`, `_` and `~` (URI-safe without
/// escaping); [`TlsTransport::bind`](crate::TlsTransport::bind) refuses others.
///
/// ```
/// assert_eq!(raft_std::node_uri("prod-eu", 3), "raft://prod-eu/node/3");
/// ```
pub fn node_uri(cluster: &str, id: NodeId) -> String {
    format!("raft://{cluster}/node/{id}")
}

/// Whether `cluster` can stand in a node URI unescaped.
pub(super) fn uri_safe(cluster: &str) -> bool {
    !cluster.is_empty() && cluster.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Why a certificate does not name a node of this cluster. The texts name no cluster or node
/// id: they reach the other side as the reason of a refusal, and its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdentityError {
    /// The certificate does not decode.
    Unparsable,
    /// No `raft://` URI among its subject alternative names.
    NoNode,
    /// More than one `raft://` URI.
    SeveralNodes,
    /// A node URI of another cluster, or not of the form `raft://<cluster>/node/<id>`.
    OtherCluster,
    /// The URI of another node than the one dialed.
    OtherNode,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityError::Unparsable => "the peer's certificate cannot be decoded",
            IdentityError::NoNode => {
                "the peer's certificate names no node: it needs the URI SAN raft://<cluster>/node/<id>"
            }
            IdentityError::SeveralNodes => "the peer's certificate names several nodes",
            IdentityError::OtherCluster => {
                "the peer's certificate is for another cluster (or its node URI is malformed)"
            }
            IdentityError::OtherNode => "the peer's certificate is for another node than the one dialed",
        })
    }
}

impl std::error::Error for IdentityError {}

impl From<IdentityError> for rustls::Error {
    fn from(error: IdentityError) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
    }
}

/// The node that `certificate` names in `cluster`: its one `raft://` URI SAN, which must be
/// exactly [`node_uri`]`(cluster, id)`. DNS and IP SANs (for the host) and other URIs may be
/// there too; they are not looked at.
pub(super) fn certified_node(certificate: &[u8], cluster: &str) -> Result<NodeId, IdentityError> {
    let certificate = Certificate::from_der(certificate).map_err(|_| IdentityError::Unparsable)?;
    let names = match certificate.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, names))) => names.0,
        Ok(None) => return Err(IdentityError::NoNode),
        Err(_) => return Err(IdentityError::Unparsable),
    };
    let mut uris = names.iter().filter_map(|name| match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
        _ => None,
    });
    let mut nodes = uris.by_ref().filter(|uri| uri.starts_with("raft://"));
    let uri = nodes.next().ok_or(IdentityError::NoNode)?;
    if nodes.next().is_some() {
        return Err(IdentityError::SeveralNodes);
    }
    let id = uri
        .strip_prefix(&format!("raft://{cluster}/node/"))
        .and_then(|id| id.parse::<NodeId>().ok())
        .filter(|&id| id != 0 && node_uri(cluster, id) == uri) // no "+3", "03": exactly the format
        .ok_or(IdentityError::OtherCluster)?;
    Ok(id)
}

/// The TLS server name under which the dialer asks for node `id`.
pub(super) fn server_name(id: NodeId) -> Result<ServerName<'static>, String> {
    ServerName::try_from(format!("node-{id}")).map_err(|e| format!("cannot name node {id} for TLS: {e}"))
}

/// The node a [`server_name`] asks for.
fn dialed_node(name: &ServerName<'_>) -> Option<NodeId> {
    match name {
        ServerName::DnsName(name) => name.as_ref().strip_prefix("node-")?.parse().ok(),
        _ => None,
    }
}

/// The acceptor's check of a dialer's certificate: the CA's (through rustls' WebPKI verifier,
/// which also checks validity and purpose), and a node URI of this cluster.
#[derive(Debug)]
pub(super) struct DialerVerifier {
    pub(super) chain: Arc<dyn ClientCertVerifier>,
    pub(super) cluster: String,
}

impl ClientCertVerifier for DialerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.chain.verify_client_cert(end_entity, intermediates, now)?;
        certified_node(end_entity, &self.cluster)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The dialer's check of the acceptor's certificate: the CA's, its validity and purpose, and
/// the node URI of the node dialed.
#[derive(Debug)]
pub(super) struct AcceptorVerifier {
    pub(super) roots: Arc<RootCertStore>,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) cluster: String,
}

impl ServerCertVerifier for AcceptorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(&parsed, &self.roots, intermediates, now, algorithms)?;
        let found = certified_node(end_entity, &self.cluster)?;
        if dialed_node(server_name) != Some(found) {
            return Err(IdentityError::OtherNode.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Says why a TLS handshake failed, in words an operator can act on (and without secrets:
/// rustls' errors carry none).
pub(super) fn explain(error: &std::io::Error) -> String {
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake failed: {error}");
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => inner.to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnhandledCriticalExtension,
        ) => "the peer's certificate is not signed by a CA in this node's CA file".to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the peer's certificate has expired".to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "the peer's certificate is not valid yet (check the clocks)".to_string(),
        rustls::Error::InvalidMessage(_) => {
            "the peer does not speak TLS (a plaintext transport?)".to_string()
        }
        rustls::Error::NoCertificatesPresented => "the peer presented no certificate".to_string(),
        rustls::Error::AlertReceived(alert) => format!(
            "the peer refused this node's certificate or TLS settings (alert: {alert:?}); see its log"
        ),
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_uris_and_server_names_round_trip() {
        assert_eq!(node_uri("a.b-c_d~e", 42), "raft://a.b-c_d~e/node/42");
        assert!(uri_safe("prod-1") && !uri_safe("") && !uri_safe("a/b") && !uri_safe("a b"));
        assert_eq!(dialed_node(&server_name(7).unwrap()), Some(7));
        assert_eq!(dialed_node(&ServerName::try_from("example.org").unwrap()), None);
        assert_eq!(certified_node(b"not a certificate", "c"), Err(IdentityError::Unparsable));
    }
}
