//! The validated configuration: names resolved, enums chosen, durations and
//! addresses parsed. A value of these types cannot describe an invalid
//! gateway, so nothing after `validate` checks configuration again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use crate::identity::authz::Allow;

mod upstreams;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Admin endpoint address, if any.
    pub admin: Option<SocketAddr>,
    /// Named server/client identities.
    pub certificates: BTreeMap<String, CertificateSource>,
    /// Named sets of CAs (and CRLs) that verify peers.
    pub trust_bundles: BTreeMap<String, TrustBundleSource>,
    /// Where the shared session-ticket keys come from (`sessionTickets`);
    /// none: each process makes its own random keys.
    pub session_tickets: Option<TicketKeySource>,
    /// Listeners in file order.
    pub listeners: Vec<Listener>,
    /// The upstreams, by kind; routes and listeners refer to them by id.
    pub upstreams: Upstreams,
    /// Whether access lines are written.
    pub access_log: bool,
    /// Connection and request limits.
    pub limits: Limits,
    /// The line of each `certificates.NAME` and `trustBundles.NAME` entry
    /// and of each hostname, so problems found in the material point at
    /// the config line.
    pub lines: BTreeMap<String, u64>,
}

impl Config {
    /// `FILE:LINE` of a material entry (`certificates.gateway`), or `FILE`.
    pub fn locate(&self, entry: &str) -> String {
        match self.lines.get(entry) {
            Some(line) => format!("{}:{line}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

/// Where a certificate and its key come from (paths resolved against the
/// config file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `certFile` (PEM chain, leaf first) and `keyFile`.
    Files {
        /// PEM chain.
        cert_file: PathBuf,
        /// PEM key.
        key_file: PathBuf,
    },
    /// `secretFile`: a Kubernetes Secret manifest.
    SecretFile(PathBuf),
    /// `secretDir`: a mounted Secret volume.
    SecretDir(PathBuf),
    /// `pkcs12File` with its password.
    Pkcs12 {
        /// The bundle.
        file: PathBuf,
        /// Where its password comes from.
        password: PasswordSource,
    },
    /// `acme`: obtained and renewed with ACME, kept in its storage
    /// directory (read from there like `certFile`/`keyFile`).
    Acme(Box<AcmeSource>),
}

/// `certificates.NAME.acme`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSource {
    /// The ACME directory (https://).
    pub directory_url: String,
    /// Account contact (`mailto:`).
    pub email: Option<String>,
    /// The names ordered (lower case; never empty after validation).
    pub domains: Vec<String>,
    /// How the names are validated.
    pub challenge: AcmeChallenge,
    /// Account key and issued certificates.
    pub storage_dir: PathBuf,
    /// CAs that verify the directory's TLS (default: the system roots).
    pub trust_bundle: Option<String>,
    /// The certificate's key type.
    pub(crate) key_type: crate::pki::keys::KeyType,
    /// Renew when this much validity is left (default: a third of the
    /// lifetime).
    pub renew_before: Option<Duration>,
    /// `STORAGE/NAME.pem` (0600): the chain as issued, then its key.
    pub file: PathBuf,
}

/// `acme.challenge`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// Answered by `http` listeners (RFC 8555 §8.3).
    Http01,
    /// Answered by `https` listeners (RFC 8737).
    TlsAlpn01,
}

/// `passwordEnv` / `passwordFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable.
    Env(String),
    /// A file (one trailing newline ignored).
    File(PathBuf),
}

/// Where a trust bundle's CAs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `caFile`: PEM CA certificates.
    File(PathBuf),
    /// `secretFile`: `ca.crt` or `cacert` (and `ca.crl`) of a Secret manifest.
    SecretFile(PathBuf),
    /// `secretDir`: `ca.crt` or `cacert` (and `ca.crl`) of a mounted Secret.
    SecretDir(PathBuf),
    /// `configMapFile`: the PEM bundle under `key` of a ConfigMap manifest
    /// (trust-manager, Gateway API frontend validation).
    ConfigMapFile {
        /// The manifest.
        file: PathBuf,
        /// Its data key (default `ca.crt`).
        key: String,
    },
}

/// Where the shared session-ticket keys come from (`sessionTickets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketKeySource {
    /// `keyFile`: one base64 key per line.
    File(PathBuf),
    /// `secretFile`: data key `tickets` of a Secret manifest.
    SecretFile(PathBuf),
    /// `secretDir`: file `tickets` of a mounted Secret.
    SecretDir(PathBuf),
}

impl TicketKeySource {
    /// The file (or directory) read.
    pub fn path(&self) -> &std::path::Path {
        match self {
            TicketKeySource::File(p)
            | TicketKeySource::SecretFile(p)
            | TicketKeySource::SecretDir(p) => p,
        }
    }
}

/// Where a trust bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundleSource {
    /// The CAs.
    pub ca: CaSource,
    /// PEM or DER CRLs.
    pub crl_files: Vec<PathBuf>,
}

impl CertificateSource {
    /// Files whose change means a reload.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            CertificateSource::Files {
                cert_file,
                key_file,
            } => vec![cert_file.clone(), key_file.clone()],
            CertificateSource::SecretFile(p) | CertificateSource::SecretDir(p) => vec![p.clone()],
            CertificateSource::Pkcs12 { file, password } => match password {
                PasswordSource::File(f) => vec![file.clone(), f.clone()],
                PasswordSource::Env(_) => vec![file.clone()],
            },
            CertificateSource::Acme(a) => vec![a.file.clone()],
        }
    }
}

impl TrustBundleSource {
    /// Files whose change means a reload.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v = match &self.ca {
            CaSource::File(p)
            | CaSource::SecretFile(p)
            | CaSource::SecretDir(p)
            | CaSource::ConfigMapFile { file: p, .. } => vec![p.clone()],
        };
        v.extend(self.crl_files.iter().cloned());
        v
    }
}

/// One listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its name (metrics and logs).
    pub name: String,
    /// Where it binds.
    pub address: SocketAddr,
    /// Lowest TLS version accepted.
    pub min_version: TlsVersion,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<Vec<u8>>,
    /// How long a TLS session or ticket may be resumed (`tls.sessionLifetime`).
    pub session_lifetime: Duration,
    /// What it does (its `protocol` and the keys of that protocol).
    pub kind: ListenerKind,
}

impl Listener {
    /// Its host entries (`https` listeners; empty otherwise).
    pub fn hosts(&self) -> &[Host] {
        match &self.kind {
            ListenerKind::Https { hosts } => hosts,
            _ => &[],
        }
    }
}

/// The listener protocols of SPEC §2, each with only its own keys.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// Terminate TLS and proxy HTTP by host entry.
    Https {
        /// Host entries, in file order.
        hosts: Vec<Host>,
    },
    /// Terminate TLS, then splice to a TCP upstream.
    Tls {
        /// Certificate presented.
        certificate: String,
        /// Client authentication.
        client_auth: Box<ClientAuth>,
        /// Upstream.
        upstream: TcpUpstreamId,
        /// Send a PROXY v2 header to the upstream.
        proxy_protocol: bool,
    },
    /// Plain TCP in, (usually mutual TLS) out.
    Tcp {
        /// Upstream.
        upstream: TcpUpstreamId,
    },
    /// Plain HTTP: redirect to https, answer ACME http-01 challenges, or
    /// proxy the hosts it lists.
    Http {
        /// Where and how requests for names an https listener serves are
        /// redirected.
        redirect: Redirect,
        /// Hosts proxied in plain HTTP (names not listed are redirected).
        hosts: Vec<PlainHost>,
    },
    /// Route the raw TLS stream by SNI without terminating it.
    Passthrough {
        /// SNI patterns and their upstreams.
        routes: Vec<(HostPattern, TcpUpstreamId)>,
        /// Where unknown or missing SNI goes (else the connection is closed).
        default_upstream: Option<TcpUpstreamId>,
    },
}

/// `redirect:` of an `http` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The https port in `Location` (left out when 443).
    pub port: u16,
    /// 301, 302, 307 or 308.
    pub status: u16,
}

/// A host entry of an `http` listener: names and routes, nothing of TLS.
#[derive(Debug, Clone)]
pub struct PlainHost {
    /// Names it serves (no `"*"`).
    pub hostnames: Vec<HostPattern>,
    /// `escapedSlashes`
    pub escaped_slashes: EscapedSlashes,
    /// Routes (never with `allow`: there is no client certificate).
    pub routes: Vec<Route>,
}

/// `hsts:` of a host entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    /// `max-age` in seconds.
    pub max_age: u64,
    /// `includeSubDomains`.
    pub include_sub_domains: bool,
}

/// Lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    V12,
    /// TLS 1.3 only.
    V13,
}

/// A hostname pattern of a host entry, normalized to lower case without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `test.localdev.me`
    Exact(String),
    /// `*.mtls.example.com`, stored as the suffix `.mtls.example.com`.
    Wildcard(String),
    /// `"*"`: catch-all for no SNI or an unknown one.
    CatchAll,
}

/// One host entry of an `https` listener.
#[derive(Debug, Clone)]
pub struct Host {
    /// Names this entry serves.
    pub hostnames: Vec<HostPattern>,
    /// Whether it terminates TLS or passes the raw stream on.
    pub kind: HostKind,
}

/// What a host entry does with a connection whose SNI selects it.
#[derive(Debug, Clone)]
pub enum HostKind {
    /// Terminate TLS and serve HTTP.
    Terminate(Box<Terminate>),
    /// Not terminated: the raw TLS stream goes to this upstream.
    Passthrough {
        /// The upstream.
        upstream: TcpUpstreamId,
    },
}

/// A host entry that terminates TLS.
#[derive(Debug, Clone)]
pub struct Terminate {
    /// Name of the certificate it presents.
    pub certificate: String,
    /// How clients are authenticated.
    pub client_auth: ClientAuth,
    /// How the request's host is compared with the handshake's.
    pub strict_sni: StrictSni,
    /// `escapedSlashes`
    pub escaped_slashes: EscapedSlashes,
    /// Routes, in file order (matching picks exact, then longest prefix).
    pub routes: Vec<Route>,
    /// What is forwarded about the client.
    pub forward: crate::forward::Settings,
    /// `Strict-Transport-Security` on its responses.
    pub hsts: Option<Hsts>,
}

pub(crate) use crate::path::EscapedSlashes;

/// `strictSni`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictSni {
    /// The request's host must select this very host entry.
    On,
    /// Another entry with identical certificate and client auth is accepted.
    SamePolicy,
    /// No check.
    Off,
}

/// Client authentication of a host entry (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is requested.
    None,
    /// A certificate is requested and checked against a trust bundle.
    Verify(VerifyPolicy),
    /// A certificate is requested; any is accepted (proof of possession is
    /// still checked) and marked verified or not.
    OptionalNoCa(VerifyPolicy),
}

/// How a client certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Whether a certificate is required (`require`) or optional.
    pub required: bool,
    /// Name of the trust bundle.
    pub trust_bundle: String,
    /// Maximum number of intermediates between leaf and anchor.
    pub verify_depth: Option<u32>,
    /// Which certificates the CRLs must cover.
    pub crl_check: CrlCheck,
    /// Host-level `allow` (absent: any verified certificate, or anonymous
    /// where the mode allows it).
    pub allow: Option<Allow>,
}

/// `crlCheck`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlCheck {
    /// Only the client's own certificate.
    Leaf,
    /// Every certificate of the chain.
    Chain,
}

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path:` exact.
    Exact(String),
    /// `pathPrefix:` whole segments.
    Prefix(String),
}

/// One route of a host entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// How it matches.
    pub matcher: PathMatch,
    /// Its upstream.
    pub upstream: HttpUpstreamId,
    /// Route-level identity requirement.
    pub allow: Option<Allow>,
}

pub(crate) use upstreams::{
    Balance, Endpoint, HealthCheck, HostHeader, HttpUpstream, HttpUpstreamId, HttpVersion,
    TcpUpstream, TcpUpstreamId, UpstreamTls, Upstreams,
};

/// `limits:`
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed from accept to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's header.
    pub request_header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Time allowed to connect to an upstream (extension; default 5s).
    pub connect_timeout: Duration,
    /// How long SIGTERM waits for open connections before exiting.
    pub drain_timeout: Duration,
    /// After SIGTERM: readiness fails at once, listeners keep accepting
    /// this long (so load balancers notice), then the drain starts.
    pub shutdown_delay: Duration,
    /// Connections open at once, per process.
    pub max_connections: usize,
    /// Largest request header block accepted (431 above it).
    pub max_request_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            max_connections: 10_000,
            max_request_header_bytes: 65_536,
        }
    }
}
