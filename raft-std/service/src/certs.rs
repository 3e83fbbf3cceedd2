//! Certificates for a cluster, made with rcgen: a CA, a certificate per node, client
//! certificates, and the roles file that goes with them.
//!
//! ```text
//! <dir>/ca.pem                 the CA certificate: servers verify clients (and, with the TLS
//!                              transport, each other) with it; clients verify servers
//! <dir>/ca-key.pem             the CA's private key: only needed to issue more certificates
//!                              (keep it offline in a real deployment)
//! <dir>/node-<id>.pem          node <id>'s certificate: subject CN "node-<id>", SANs
//!                              URI raft://<cluster>/node/<id>, DNS localhost, IP 127.0.0.1
//!                              and the node's host names; for TLS servers and clients
//! <dir>/node-<id>-key.pem
//! <dir>/client.pem             the admin client: CN "admin", for TLS clients
//! <dir>/client-key.pem
//! <dir>/client-<name>.pem      further clients: CN "<name>"
//! <dir>/client-<name>-key.pem
//! <dir>/roles                  the roles file: `admin cert:admin`, and a line per client
//! ```
//!
//! Keys are ECDSA P-256, written readable by their owner only (mode 0600). A directory that
//! already has `ca.pem` and `ca-key.pem` keeps its CA, so more nodes and clients can be added
//! later; certificates asked for again are replaced.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use raft_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::auth::{Role, Roles};
use crate::cli::CertsArgs;

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// Certificates are valid from this long before they are made, for clocks a little behind.
const CLOCK_SKEW: Duration = Duration::hours(1);
/// The admin client's name (its certificate's CN).
pub const ADMIN: &str = "admin";

/// A node to certify: `ID=HOST[,HOST…]`, its id and the names or addresses clients and peers
/// reach it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHosts {
    /// The node's id.
    pub id: NodeId,
    /// DNS names and IP addresses, besides `localhost` and `127.0.0.1`.
    pub hosts: Vec<String>,
}

impl FromStr for NodeHosts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (id, hosts) = text.split_once('=').unwrap_or((text, ""));
        let id: NodeId =
            id.trim().parse().map_err(|_| "expected ID=HOST[,HOST…] with a numeric ID".to_string())?;
        if id == 0 {
            return Err("node id 0 is reserved".into());
        }
        let hosts = hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
        Ok(NodeHosts { id, hosts })
    }
}

/// A further client certificate: `NAME=ROLE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientName {
    /// The certificate's common name.
    pub name: String,
    /// The role the roles file gives it.
    pub role: Role,
}

impl FromStr for ClientName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, role) = text.split_once('=').ok_or("expected NAME=ROLE, e.g. dashboard=read")?;
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err("a client name is letters, digits, '.', '_' and '-'".into());
        }
        if name == ADMIN {
            return Err("the admin client (client.pem) is always made".into());
        }
        Ok(ClientName { name: name.to_string(), role: role.parse()? })
    }
}

/// What to make.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where the files go (created if missing).
    pub dir: PathBuf,
    /// The cluster id, in the nodes' URI SANs.
    pub cluster: String,
    /// The nodes.
    pub nodes: Vec<NodeHosts>,
    /// Clients besides the admin.
    pub clients: Vec<ClientName>,
    /// How long node and client certificates are valid.
    pub days: u32,
}

/// A node's certificate file in `dir`.
pub fn node_cert(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}.pem"))
}

/// A node's key file in `dir`.
pub fn node_key(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}-key.pem"))
}

/// The CA certificate in `dir`.
pub fn ca(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// The admin client's certificate and key in `dir`.
pub fn admin_client(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("client.pem"), dir.join("client-key.pem"))
}

/// The certificate and key of client `name` (not the admin) in `dir`.
pub fn client(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("client-{name}.pem")), dir.join(format!("client-{name}-key.pem")))
}

/// The roles file in `dir`.
pub fn roles(dir: &Path) -> PathBuf {
    dir.join("roles")
}

/// The options that start node `id` with the material in `dir`: its certificate and key,
/// the CA and the roles file (`--tls-cert`, `--tls-key`, `--tls-ca`, `--roles`).
///
/// ```
/// let options = raft_service::certs::node_options(std::path::Path::new("certs"), 2);
/// assert_eq!(options[0], "--tls-cert");
/// assert_eq!(options[1], "certs/node-2.pem");
/// ```
pub fn node_options(dir: &Path, id: NodeId) -> [OsString; 8] {
    [
        "--tls-cert".into(),
        node_cert(dir, id).into(),
        "--tls-key".into(),
        node_key(dir, id).into(),
        "--tls-ca".into(),
        ca(dir).into(),
        "--roles".into(),
        roles(dir).into(),
    ]
}

/// Makes the files of `plan` (see the module docs); returns the paths written.
pub fn generate(plan: &Plan) -> Result<Vec<PathBuf>, String> {
    let valid = !plan.cluster.is_empty()
        && plan.cluster.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        return Err(
            "to appear in certificates, the cluster id must be letters, digits, '.', '_' and '-'".into()
        );
    }
    let dir = &plan.dir;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let issuer = ca_issuer(dir, &plan.cluster, &mut written)?;
    let now = OffsetDateTime::now_utc();
    let until = now + Duration::days(plan.days.into());
    for node in &plan.nodes {
        let mut params = leaf(&format!("node-{}", node.id), now, until);
        let uri = format!("raft://{}/node/{}", plan.cluster, node.id);
        params.subject_alt_names.push(SanType::URI(uri.try_into().map_err(rcgen_error)?));
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        hosts.extend(node.hosts.iter().cloned());
        for host in hosts {
            let san = match IpAddr::from_str(&host) {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.as_str()
                        .try_into()
                        .map_err(|_| format!("{host:?} is not a DNS name or IP address"))?,
                ),
            };
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        issue(&params, &issuer, &node_cert(dir, node.id), &node_key(dir, node.id), &mut written)?;
    }
    let mut clients = vec![(ADMIN.to_string(), Role::Admin, admin_client(dir))];
    for client in &plan.clients {
        clients.push((client.name.clone(), client.role, self::client(dir, &client.name)));
    }
    for (name, _, (cert, key)) in &clients {
        let mut params = leaf(name, now, until);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        issue(&params, &issuer, cert, key, &mut written)?;
    }
    write_roles(dir, clients.iter().map(|(name, role, _)| (name.as_str(), *role)), &mut written)?;
    Ok(written)
}

/// The CA of `dir`, made if it has none.
fn ca_issuer(
    dir: &Path,
    cluster: &str,
    written: &mut Vec<PathBuf>,
) -> Result<Issuer<'static, KeyPair>, String> {
    let (cert_path, key_path) = (ca(dir), dir.join("ca-key.pem"));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let read = |path: &Path| {
                fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            };
            let key = KeyPair::from_pem(&read(&key_path)?)
                .map_err(|e| format!("{} is not a usable private key: {e}", key_path.display()))?;
            Issuer::from_ca_cert_pem(&read(&cert_path)?, key)
                .map_err(|e| format!("{} is not a usable CA certificate: {e}", cert_path.display()))
        }
        (false, false) => {
            let now = OffsetDateTime::now_utc();
            let mut params = CertificateParams::default();
            params.distinguished_name = name(&format!("{cluster} CA"));
            params.not_before = now - CLOCK_SKEW;
            params.not_after = now + Duration::days(CA_DAYS);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().map_err(rcgen_error)?;
            let certificate = params.self_signed(&key).map_err(rcgen_error)?;
            write(&cert_path, certificate.pem().as_bytes(), 0o644)?;
            write(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            written.extend([cert_path, key_path]);
            Ok(Issuer::new(params, key))
        }
        _ => Err(format!(
            "{} has only one of ca.pem and ca-key.pem; restore the other, or remove both to make a new CA \
             (every certificate must then be made again)",
            dir.display()
        )),
    }
}

/// Parameters of a node or client certificate named `common_name`.
fn leaf(common_name: &str, now: OffsetDateTime, until: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.not_before = now - CLOCK_SKEW;
    params.not_after = until;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Makes a key and a certificate for `params`, signed by `issuer`, and writes them.
fn issue(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    cert: &Path,
    key: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let pair = KeyPair::generate().map_err(rcgen_error)?;
    let certificate = params.signed_by(&pair, issuer).map_err(rcgen_error)?;
    write(cert, certificate.pem().as_bytes(), 0o644)?;
    write(key, pair.serialize_pem().as_bytes(), 0o600)?;
    written.extend([cert.to_path_buf(), key.to_path_buf()]);
    Ok(())
}

/// Writes the roles file, or adds the clients it does not list yet.
fn write_roles<'a>(
    dir: &Path,
    clients: impl Iterator<Item = (&'a str, Role)>,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let path = roles(dir);
    let (mut text, listed) = match fs::read_to_string(&path) {
        Ok(text) => {
            let listed = Roles::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            (text, listed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            "# Who may do what: ROLE IDENTITY per line (see raft-service's auth docs).\n\
             # Roles: read < write < admin; worker: read and /worker/ endpoints. Identities: cert:<certificate CN>, token-sha256:<hex digest>.\n"
                .to_string(),
            Roles::default(),
        ),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let before = text.len();
    for (name, role) in clients {
        if !listed.lists_certificate(name) {
            text.push_str(&format!("{role} cert:{name}\n"));
        }
    }
    if text.len() != before || !path.exists() {
        write(&path, text.as_bytes(), 0o644)?;
        written.push(path);
    }
    Ok(())
}

/// Writes `bytes` to `path` with permissions `mode`, replacing it.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(fail)?;
    // An existing file keeps its mode on open: set it.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(fail)?;
    file.write_all(bytes).map_err(fail)
}

fn rcgen_error(error: rcgen::Error) -> String {
    format!("cannot make a certificate: {error}")
}

/// Runs the `certs` subcommand of `program`: makes the files and says how to use them.
pub fn run(args: CertsArgs, program: &str) -> Result<(), String> {
    if args.nodes.is_empty() {
        return Err("name at least one node: --node ID=HOST[,HOST…] (repeat for each node)".into());
    }
    let plan = Plan {
        dir: args.dir,
        cluster: args.cluster_id.unwrap_or_else(|| program.to_string()),
        nodes: args.nodes,
        clients: args.clients,
        days: args.days,
    };
    let written = generate(&plan)?;
    let dir = plan.dir.display();
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| writeln!(out, "{line}").map_err(|e| format!("cannot print: {e}"));
    for path in &written {
        say(format!("wrote {}", path.display()))?;
    }
    say(format!(
        "\nstart node ID with:\n  {program} --tls-cert {dir}/node-ID.pem --tls-key {dir}/node-ID-key.pem \\\n    \
         --tls-ca {dir}/ca.pem --roles {dir}/roles --cluster-id {} …\ncall it with:\n  \
         curl --cacert {dir}/ca.pem --cert {dir}/client.pem --key {dir}/client-key.pem https://HOST:PORT/status\n\
         copy each node only its own certificate and key, ca.pem and roles; keep ca-key.pem offline",
        plan.cluster
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path) -> Plan {
        Plan {
            dir: dir.to_path_buf(),
            cluster: "test".into(),
            nodes: vec!["1=node-a.example,10.0.0.1".parse().unwrap(), "2".parse().unwrap()],
            clients: vec!["dashboard=read".parse().unwrap()],
            days: 30,
        }
    }

    fn sans(path: &Path) -> Vec<String> {
        let pem = fs::read(path).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
        let names = certificate.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        names.iter().map(|name| name.to_string()).collect()
    }

    use rustls_pki_types::pem::PemObject;

    #[test]
    fn a_cluster_gets_a_ca_node_and_client_certificates_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let written = generate(&plan(dir.path())).unwrap();
        assert_eq!(written.len(), 2 + 4 + 4 + 1, "{written:?}");
        let sans = sans(&node_cert(dir.path(), 1));
        for expected in [
            "URI(raft://test/node/1)",
            "DNSName(localhost)",
            "IPAddress(7f:00:00:01)",
            "DNSName(node-a.example)",
            "IPAddress(0a:00:00:01)",
        ] {
            assert!(
                sans.iter().any(|san| san.replace(' ', "").contains(&expected.replace(' ', ""))),
                "{expected} in {sans:?}"
            );
        }
        let mode = fs::metadata(node_key(dir.path(), 1)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(roles(dir.path())).unwrap();
        assert!(text.contains("admin cert:admin") && text.contains("read cert:dashboard"), "{text}");

        // A second run keeps the CA and adds what is new.
        let ca_before = fs::read(ca(dir.path())).unwrap();
        let more = Plan {
            nodes: vec!["3".parse().unwrap()],
            clients: vec!["ops=write".parse().unwrap()],
            ..plan(dir.path())
        };
        let written = generate(&more).unwrap();
        assert!(!written.contains(&ca(dir.path())));
        assert_eq!(fs::read(ca(dir.path())).unwrap(), ca_before);
        let text = fs::read_to_string(roles(dir.path())).unwrap();
        assert_eq!(text.matches("admin cert:admin").count(), 1, "{text}");
        assert!(text.contains("write cert:ops"), "{text}");
    }

    #[test]
    fn names_are_checked() {
        assert!("0=a".parse::<NodeHosts>().is_err());
        assert!("x=a".parse::<NodeHosts>().is_err());
        assert_eq!("4".parse::<NodeHosts>().unwrap(), NodeHosts { id: 4, hosts: vec![] });
        assert!("a b=read".parse::<ClientName>().is_err());
        assert!("admin=read".parse::<ClientName>().is_err());
        assert!("x=root".parse::<ClientName>().is_err());
        let dir = tempfile::tempdir().unwrap();
        let bad = Plan { cluster: "a/b".into(), ..plan(dir.path()) };
        assert!(generate(&bad).unwrap_err().contains("cluster id"));
    }
}
