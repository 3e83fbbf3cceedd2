//! Certificates made at test time with rcgen: CAs, and node certificates that name a node of a
//! cluster (or something else, for the tests of refusals), written to PEM files.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use raft_core::NodeId;
use raft_std::{node_uri, TlsConfig};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// What a leaf certificate says.
pub struct Subject<'a> {
    /// Its URI SANs.
    pub uris: Vec<String>,
    /// Whether it expired long ago.
    pub expired: bool,
    /// Its extended key usages.
    pub purposes: &'a [ExtendedKeyUsagePurpose],
}

impl Subject<'_> {
    /// Node `id` of `cluster`, valid now, for both ends of a connection.
    pub fn node(cluster: &str, id: NodeId) -> Subject<'static> {
        Subject {
            uris: vec![node_uri(cluster, id)],
            expired: false,
            purposes: &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        }
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// The CA's certificate, in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for node `id` of `cluster`, valid now.
    pub fn node(&self, cluster: &str, id: NodeId) -> Leaf {
        self.issue(Subject::node(cluster, id))
    }

    /// A certificate that says what `subject` says (and names localhost and 127.0.0.1, as a
    /// real node's would name its host).
    pub fn issue(&self, subject: Subject<'_>) -> Leaf {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("parameters");
        for uri in subject.uris {
            params.subject_alt_names.push(SanType::URI(uri.try_into().expect("an IA5 URI")));
        }
        params.extended_key_usages = subject.purposes.to_vec();
        if subject.expired {
            params.not_before = date_time_ymd(2001, 1, 1);
            params.not_after = date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// Writes node `id`'s files into `dir` (replacing what was there, by renaming complete files
/// into place) and returns its TLS settings.
pub fn write(
    dir: &Path,
    id: NodeId,
    cluster: &str,
    listen: SocketAddr,
    ca_pem: &str,
    leaf: &Leaf,
) -> TlsConfig {
    let path = |name: &str| -> PathBuf { dir.join(format!("{id}-{name}")) };
    for (name, text) in [("ca.pem", ca_pem), ("cert.pem", leaf.cert.as_str()), ("key.pem", leaf.key.as_str())]
    {
        let staging = path(&format!("{name}.new"));
        std::fs::write(&staging, text).expect("a file");
        std::fs::rename(&staging, path(name)).expect("a rename");
    }
    TlsConfig::new(cluster, listen, path("ca.pem"), path("cert.pem"), path("key.pem"))
}
