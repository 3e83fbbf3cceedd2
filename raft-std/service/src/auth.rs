//! Who a client is, and what it may do.
//!
//! A client proves who it is with a client certificate signed by the cluster's CA (HTTPS with
//! `--tls-ca`), with a bearer token (`Authorization: Bearer <token>`), or with both. The roles
//! file maps identities to roles, and every request needs one ([`Role::required`]):
//!
//! | request | role |
//! | --- | --- |
//! | `/cluster/…`, `/debug/…` (membership, leadership, compaction, fault injection) | `admin` |
//! | `/worker/…` (a service's worker processes: leasing work, renewing leases, reporting results) | `worker` |
//! | `GET` and `HEAD` (reads, `/status`, `/metrics`) | `read` |
//! | any other method (writes) | `write` |
//!
//! What each role grants ([`Role::grants`]):
//!
//! | role | read | write | worker | admin |
//! | --- | :-: | :-: | :-: | :-: |
//! | `read` | yes | | | |
//! | `write` | yes | yes | | |
//! | `worker` | yes | | yes | |
//! | `admin` | yes | yes | yes | yes |
//!
//! `worker` is apart from `write` on purpose: a worker's credential, copied to every machine
//! that runs work, cannot submit work (which a service like a task runner would turn into
//! commands run on every worker), and a client's credential cannot lease work or report
//! results. A request with no credentials, or with a token the roles file does not list, is
//! refused with `401 unauthenticated`; one whose identity has too small a role, or none, with
//! `403 forbidden`. Neither answer repeats the token or the certificate's name.
//!
//! An authorized request carries its [`Caller`]: the identity whose role allowed it, for
//! handlers that bind what a client holds to who it is.
//!
//! # The roles file
//!
//! One rule per line, `ROLE IDENTITY`; `#` starts a comment.
//!
//! ```text
//! # role  identity
//! admin   cert:admin                 # a client certificate whose subject CN is "admin"
//! write   cert:billing
//! worker  cert:worker-1
//! read    token-sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ```
//!
//! * `cert:NAME`: a client certificate that the server verified against its CA, whose
//!   subject common name (CN) is `NAME`.
//! * `token-sha256:HEX`: a bearer token whose SHA-256 digest is `HEX` (64 hexadecimal digits).
//!   The file holds digests, never tokens, so it is not a secret itself; make one with
//!   `printf %s "$TOKEN" | sha256sum`. Use long random tokens (e.g. `openssl rand -hex 32`).
//!
//! An identity may appear once. The node reads the file again when it changes (it looks every
//! `--tls-reload-ms`, 5 s by default: [`RolesFile`]), and new requests are checked against the
//! new roles; a file with a mistake is not loaded (the node keeps the roles it has and logs a
//! warning that names the file and the line). Write it by renaming a complete file into place.
//!
//! # Checked again at the leader
//!
//! Writes, membership changes and leadership transfers travel to the leader, which checks them
//! once more against its own roles file ([`Roles::authorizer`]: proposals need the role the
//! service says they do, `write` for a key-value write, `worker` for a task runner's report) with the client's identity
//! ([`Caller`]: `cert:NAME` or `token-sha256:HEX`, never the token), carried by raft-std's
//! forwarding. A member that forwards a request cannot lend it more rights than its client
//! has, and every node needs the same roles file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{MatchedPath, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls_pki_types::CertificateDer;

use crate::api_error::ApiError;
use crate::http::Peer;
use crate::reload::Reloading;

/// What a client may do (see [`Role::grants`] and the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read keys, `/status` and `/metrics`.
    Read,
    /// Also write.
    Write,
    /// Also change membership, move leadership, compact, and use the debug endpoints; and
    /// everything `worker` may.
    Admin,
    /// Read, and use a service's worker endpoints (`/worker/…`); not write.
    Worker,
}

impl Role {
    /// The role a request needs, from its method and path (the route's template where the
    /// request matched one): see the module docs.
    pub fn required(method: &Method, path: &str) -> Role {
        if path.starts_with("/cluster/") || path.starts_with("/debug/") {
            Role::Admin
        } else if path.starts_with("/worker/") {
            Role::Worker
        } else if method == Method::GET || method == Method::HEAD {
            Role::Read
        } else {
            Role::Write
        }
    }

    /// Whether a client with this role may make a request that needs `needed`: `admin` may
    /// do everything, `write` and `worker` may read, and each role what it names.
    pub fn grants(self, needed: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Write | Role::Worker => needed == self || needed == Role::Read,
            Role::Read => needed == Role::Read,
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
            Role::Worker => "worker",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::parse(text).ok_or_else(|| "a role is read, write, worker or admin".to_string())
    }
}

/// A client certificate the TLS layer verified against the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `cert:<subject common name>`, the identity the roles file lists it by (`None` without
    /// a common name); made once per connection and shared by its requests.
    identity: Option<Arc<str>>,
}

impl ClientCertificate {
    /// Reads the subject's common name of a certificate that was already verified.
    pub(crate) fn from_verified(der: &CertificateDer<'_>) -> ClientCertificate {
        let common_name = x509_parser::parse_x509_certificate(der).ok().and_then(|(_, certificate)| {
            let name = certificate.subject().iter_common_name().next()?.as_str().ok()?;
            Some(name.to_string())
        });
        ClientCertificate::named(common_name.as_deref())
    }

    /// A certificate whose subject's common name is `common_name`.
    fn named(common_name: Option<&str>) -> ClientCertificate {
        ClientCertificate { identity: common_name.map(|name| Arc::from(format!("cert:{name}"))) }
    }

    /// The subject's common name (CN), if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.identity.as_deref().and_then(|identity| identity.strip_prefix("cert:"))
    }
}

/// The roles file: identities and their roles (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    certificates: HashMap<String, Role>,
    /// SHA-256 digests of tokens, with the role and the identity (`token-sha256:HEX`).
    tokens: HashMap<[u8; 32], (Role, Arc<str>)>,
}

impl Roles {
    /// Reads a roles file.
    pub fn load(path: &Path) -> Result<Roles, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Roles::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a roles file. Errors name the line, never its content.
    pub fn parse(text: &str) -> Result<Roles, String> {
        let mut roles = Roles::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: &str| format!("line {}: {what}", number + 1);
            let mut words = line.split_whitespace();
            let (Some(role), Some(identity), None) = (words.next(), words.next(), words.next()) else {
                return Err(at("expected ROLE IDENTITY, e.g. `admin cert:admin`"));
            };
            let role =
                Role::parse(role).ok_or_else(|| at("the role must be read, write, worker or admin"))?;
            let fresh = if let Some(name) = identity.strip_prefix("cert:") {
                if name.is_empty() {
                    return Err(at("cert: needs the certificate's common name"));
                }
                roles.certificates.insert(name.to_string(), role).is_none()
            } else if let Some(digest) = identity.strip_prefix("token-sha256:") {
                let digest = parse_digest(digest).ok_or_else(|| {
                    at("token-sha256: needs 64 hexadecimal digits (printf %s TOKEN | sha256sum)")
                })?;
                let identity = Arc::from(format!("token-sha256:{}", to_hex(&digest)));
                roles.tokens.insert(digest, (role, identity)).is_none()
            } else {
                return Err(at("the identity must start with cert: or token-sha256:"));
            };
            if !fresh {
                return Err(at("this identity is listed twice"));
            }
        }
        Ok(roles)
    }

    /// Whether the file lists a certificate with this common name.
    pub(crate) fn lists_certificate(&self, common_name: &str) -> bool {
        self.certificates.contains_key(common_name)
    }

    /// The role of a token, if the file lists it, and its identity.
    fn token(&self, token: &str) -> Option<(Role, Caller)> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let digest: [u8; 32] = digest.as_ref().try_into().ok()?;
        let (role, identity) = self.tokens.get(&digest)?;
        Some((*role, Caller(Arc::clone(identity))))
    }

    /// The role of a verified client certificate, if the file lists its name, with its identity.
    fn certificate(&self, certificate: &ClientCertificate) -> Option<(Role, Caller)> {
        let role = *self.certificates.get(certificate.common_name()?)?;
        Some((role, Caller(Arc::clone(certificate.identity.as_ref()?))))
    }

    /// The role of an identity as the roles file writes it (`cert:NAME`, `token-sha256:HEX`).
    pub fn role_of(&self, identity: &str) -> Option<Role> {
        if let Some(name) = identity.strip_prefix("cert:") {
            return self.certificates.get(name).copied();
        }
        let digest = parse_digest(identity.strip_prefix("token-sha256:")?)?;
        self.tokens.get(&digest).map(|(role, _)| *role)
    }

    /// The leader's check of what clients ask, with these roles: a proposal needs the role
    /// `proposal` names for its bytes (the service's commands: a key-value write needs
    /// `write`, a task runner's lease or report `worker`); member addresses, membership
    /// changes and leadership transfers need `admin`. A request that names no client was made
    /// by the service's own code on a member (which the transport authenticated), not on a
    /// client's behalf, and passes.
    pub fn authorizer(self: Arc<Self>, proposal: fn(&[u8]) -> Role) -> raft_std::Authorizer {
        raft_std::Authorizer::new(move |access| self.check(access, proposal))
    }

    /// The decision of [`authorizer`](Roles::authorizer).
    fn check(&self, access: &raft_std::Access<'_>, proposal: fn(&[u8]) -> Role) -> Result<(), String> {
        let Some(identity) = access.caller else { return Ok(()) };
        let needed = match access.action {
            raft_std::Action::Propose(command) => proposal(command),
            _ => Role::Admin,
        };
        match self.role_of(identity) {
            Some(role) if role.grants(needed) => Ok(()),
            _ => Err(format!("the client needs the {needed} role for this")),
        }
    }
}

/// A roles file, read again when it changes (see [`Reloading`]): what a node checks its
/// clients against.
pub type RolesFile = Reloading<Roles>;

impl RolesFile {
    /// Reads the roles file at `path` ([`Roles::load`]); [`watch`](Reloading::watch) it to
    /// follow its changes.
    pub fn open(path: &Path) -> Result<RolesFile, String> {
        let owned = path.to_path_buf();
        Reloading::load("the roles file", [path], move || Roles::load(&owned).map(Arc::new))
    }

    /// [`Roles::authorizer`] with the roles the file holds at each check.
    pub fn authorizer(self: Arc<Self>, proposal: fn(&[u8]) -> Role) -> raft_std::Authorizer {
        raft_std::Authorizer::new(move |access| self.current().check(access, proposal))
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

/// Lower-case hexadecimal, as the roles file writes digests.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How a server checks its clients.
#[derive(Clone, Debug)]
pub enum Access {
    /// Everyone may do everything (`--insecure`).
    Open,
    /// Clients need credentials that the roles file maps to a large enough role (as the file
    /// is when the request arrives).
    Roles(Arc<RolesFile>),
}

/// Who made a request, as the roles file names them (`cert:NAME` for a client certificate,
/// `token-sha256:HEX` for a bearer token): the identity whose role let it through. An axum
/// extractor, `None` on a server that authenticates nobody ([`Access::Open`]); hand it to
/// [`Caller::on`] so the leader checks the client too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller(pub Arc<str>);

impl Caller {
    /// `node`, making its requests on behalf of `caller` (unchanged without one).
    pub fn on(caller: Option<Caller>, node: &raft_std::RaftNode) -> raft_std::RaftNode {
        match caller {
            Some(Caller(identity)) => node.with_caller(identity),
            None => node.clone(),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// axum middleware: refuses a request whose credentials do not grant the role it needs
/// (`axum::middleware::from_fn_with_state(access, authorize)`), and adds the [`Caller`]
/// that allowed it to the request's extensions.
pub async fn authorize(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let Access::Roles(roles) = &access else { return next.run(request).await };
    let roles = roles.current();
    let path = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str(),
        None => request.uri().path(),
    };
    let needed = Role::required(request.method(), path);
    let granted = match credentials(&roles, &request) {
        Ok(granted) => granted,
        Err(refusal) => return refuse(refusal),
    };
    match granted.iter().flatten().find(|(role, _)| role.grants(needed)) {
        Some((_, caller)) => {
            let caller = caller.clone();
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => {
            let mut roles: Vec<String> = granted.iter().flatten().map(|(role, _)| role.to_string()).collect();
            roles.dedup();
            refuse(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this request needs the {needed} role; the credentials presented grant {}",
                    roles.join(" and ")
                ),
            ))
        }
    }
}

fn refuse(error: ApiError) -> Response {
    ::metrics::counter!("http_requests_refused_total", "status" => error.status().as_str().to_string())
        .increment(1);
    error.into_response()
}

/// The roles the request's credentials grant, each with its identity: the token's, then the
/// certificate's. At least one, or an error. (No allocation: this runs for every request.)
fn credentials(roles: &Roles, request: &Request) -> Result<[Option<(Role, Caller)>; 2], ApiError> {
    let certificate = request.extensions().get::<Peer>().and_then(|peer| peer.certificate.as_ref());
    let token = match request.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let token = value.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")).map(str::trim);
            let token = token
                .filter(|token| !token.is_empty())
                .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?;
            Some(roles.token(token).ok_or_else(|| unauthenticated("the bearer token is not valid"))?)
        }
    };
    if token.is_none() && certificate.is_none() {
        return Err(unauthenticated(
            "authentication required: present a client certificate signed by the cluster's CA, \
             or an `Authorization: Bearer <token>` header",
        ));
    }
    let certificate = certificate.and_then(|c| roles.certificate(c));
    if token.is_none() && certificate.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this client certificate has no role in the server's roles file",
        ));
    }
    Ok([token, certificate])
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD_SHA256: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    #[test]
    fn the_roles_file_maps_identities_to_roles() {
        let roles = Roles::parse(&format!(
            "# comment\n\nadmin cert:admin   # trailing comment\nread token-sha256:{PASSWORD_SHA256}\n"
        ))
        .unwrap();
        assert_eq!(
            roles.token("password"),
            Some((Role::Read, Caller(Arc::from(format!("token-sha256:{PASSWORD_SHA256}")))))
        );
        assert_eq!(roles.token("Password"), None);
        assert_eq!(roles.role_of(&format!("token-sha256:{PASSWORD_SHA256}")), Some(Role::Read));
        assert_eq!(roles.role_of("cert:admin"), Some(Role::Admin));
        assert_eq!(roles.role_of("cert:nobody"), None);
        let admin = ClientCertificate::named(Some("admin"));
        assert_eq!(roles.certificate(&admin), Some((Role::Admin, Caller(Arc::from("cert:admin")))));
        assert_eq!(roles.certificate(&ClientCertificate::named(None)), None);
    }

    #[test]
    fn mistakes_in_the_roles_file_name_the_line_not_its_content() {
        for (text, expected) in [
            ("root cert:x", "line 1: the role must be"),
            ("\nadmin", "line 2: expected ROLE IDENTITY"),
            ("admin user:x", "must start with cert: or token-sha256:"),
            ("read token-sha256:secret", "64 hexadecimal digits"),
            ("read cert:a\nadmin cert:a", "line 2: this identity is listed twice"),
            ("read cert:", "needs the certificate's common name"),
        ] {
            let error = Roles::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn roles_needed_by_method_and_path() {
        assert_eq!(Role::required(&Method::GET, "/kv/{key}"), Role::Read);
        assert_eq!(Role::required(&Method::PUT, "/kv/{key}"), Role::Write);
        assert_eq!(Role::required(&Method::GET, "/cluster/members"), Role::Admin);
        assert_eq!(Role::required(&Method::POST, "/debug/heal"), Role::Admin);
        assert_eq!(Role::required(&Method::POST, "/worker/lease"), Role::Worker);
        assert_eq!(Role::required(&Method::GET, "/workers"), Role::Read);
    }

    #[test]
    fn what_each_role_grants() {
        use Role::*;
        let all = [Read, Write, Worker, Admin];
        let granted = |role: Role| all.into_iter().filter(|&needed| role.grants(needed)).collect::<Vec<_>>();
        assert_eq!(granted(Read), [Read]);
        assert_eq!(granted(Write), [Read, Write]);
        assert_eq!(granted(Worker), [Read, Worker], "a worker may not submit, a writer may not report");
        assert_eq!(granted(Admin), all);
        assert_eq!("worker".parse(), Ok(Worker));
    }

    #[test]
    fn the_leader_checks_forwarded_requests_against_the_roles_file() {
        use raft_core::MembershipChange;
        use raft_std::{Access as Request, Action};
        let roles = "admin cert:root\nwrite cert:app\nread cert:viewer\nworker cert:w1\n";
        let roles = Arc::new(Roles::parse(roles).unwrap());
        // A service whose proposals starting with `r` are a worker's reports.
        let authorizer =
            roles.authorizer(|command| if command.starts_with(b"r") { Role::Worker } else { Role::Write });
        let ask = |action: Action<'_>, caller: Option<&str>| {
            authorizer.check(&Request::new(action, caller, Some(2)))
        };
        let change = MembershipChange::Remove(3);
        assert!(ask(Action::Propose(b"x"), Some("cert:app")).is_ok());
        assert!(ask(Action::Propose(b"x"), Some("cert:viewer")).is_err(), "read cannot write");
        assert!(ask(Action::Propose(b"x"), Some("cert:w1")).is_err(), "a worker cannot submit");
        assert!(ask(Action::Propose(b"report"), Some("cert:w1")).is_ok());
        assert!(ask(Action::Propose(b"report"), Some("cert:app")).is_err(), "a writer cannot report");
        assert!(
            ask(Action::ChangeMembership(&change), Some("cert:app")).is_err(),
            "write cannot change members"
        );
        assert!(ask(Action::ChangeMembership(&change), Some("cert:root")).is_ok());
        assert!(ask(Action::RecordAddress { id: 4, address: "evil:1" }, Some("cert:stranger")).is_err());
        assert!(ask(Action::TransferLeadership(2), None).is_ok(), "the service's own requests pass");
    }
}
