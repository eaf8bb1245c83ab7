//! The configuration file as written: serde types that mirror SPEC §2 key for
//! key (`deny_unknown_fields`, camelCase). Nothing here is checked beyond the
//! shape; `validate` turns these into the `model`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file. Each section is kept as JSON so that every element can be
/// deserialized (and fail) on its own.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Top {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_bundles: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_tickets: Option<serde_json::Value>,
}

/// `sessionTickets:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SessionTickets {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_dir: Option<String>,
}

/// `admin:`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Admin {
    pub address: String,
}

/// `certificates.NAME:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Certificate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Read on its own, so its key paths are exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<serde_json::Value>,
}

/// `certificates.NAME.acme:`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Acme {
    pub directory_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<AcmeChallenge>,
    pub storage_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
}

/// `acme.challenge`
#[derive(Debug, Deserialize, Serialize, Clone, Copy)]
pub(crate) enum AcmeChallenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// `trustBundles.NAME:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TrustBundle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `listeners[i]:`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Listener {
    pub name: String,
    pub address: String,
    pub protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Each host entry is read on its own (see `validate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<serde_json::Value>,
    // Stream listener keys (SPEC §2 `tls`, `tcp`, `passthrough`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Read on its own, like a host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<SniRoute>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_upstream: Option<String>,
    /// `http` listeners: where plain requests are redirected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
}

/// `listeners[i].redirect:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Redirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// `listeners[i].hosts[j].hsts:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Hsts {
    pub max_age: u64,
    #[serde(default)]
    pub include_sub_domains: bool,
}

/// `listeners[i].routes[k]` of a `passthrough` listener.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SniRoute {
    pub sni: String,
    pub upstream: String,
}

/// `listeners[i].protocol`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Protocol {
    Https,
    Tls,
    Passthrough,
    Tcp,
    Http,
}

/// `listeners[i].tls:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListenerTls {
    /// `"1.2"` or `"1.3"`; read as a value so that an unquoted `1.3` (a
    /// YAML number) gets a message that says to quote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_lifetime: Option<String>,
}

/// `listeners[i].hosts[j]:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Host {
    pub hostnames: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Read on its own so its mistakes do not hide the routes'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<serde_json::Value>,
    /// `true`, `false` or `samePolicy`; interpreted by validation so that a
    /// wrong value gets a precise message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_sni: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escaped_slashes: Option<EscapedSlashes>,
    /// Each route is read on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_client_cert: Option<ForwardClientCert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xfcc_details: Option<Vec<XfccDetail>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_certificate_to_upstream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_headers: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,
}

/// `escapedSlashes`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum EscapedSlashes {
    Reject,
    Keep,
}

/// `forwardClientCert`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// `xfccDetails[i]` (`By` and `Hash` are parsed to explain they are implied).
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XfccDetail {
    Cert,
    Chain,
    Subject,
    #[serde(rename = "URI")]
    Uri,
    #[serde(rename = "DNS")]
    Dns,
    By,
    Hash,
}

/// `allow:` on a host's `clientAuth` or on a route.
#[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Allow {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uri_sans: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_sans: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sha256_fingerprints: Vec<String>,
}

/// `clientAuth:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClientAuth {
    #[serde(default)]
    pub mode: ClientAuthMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_depth: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl_check: Option<CrlCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Allow>,
}

/// `clientAuth.mode`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ClientAuthMode {
    Require,
    Optional,
    OptionalNoCa,
    #[default]
    None,
}

/// `clientAuth.crlCheck`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum CrlCheck {
    Leaf,
    Chain,
}

/// `routes[k]:`
#[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    pub upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Allow>,
}

/// `upstreams.NAME:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Upstream {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header: Option<HostHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<HttpVersion>,
}

/// `upstreams.NAME.loadBalancing`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum LoadBalancing {
    RoundRobin,
    LeastRequest,
}

/// `upstreams.NAME.healthCheck`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HealthCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eject_for: Option<String>,
}

/// `upstreams.NAME.version`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum HttpVersion {
    Auto,
    Http1,
    Http2,
}

/// `upstreams.NAME.tls`: mutual TLS to the upstream.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct UpstreamTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Allow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
}

/// `upstreams.NAME.builtin`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Builtin {
    Echo,
}

/// `upstreams.NAME.hostHeader`
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum HostHeader {
    Preserve,
    Upstream,
}

/// `logging:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Logging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<bool>,
}

/// `limits:`
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_header_bytes: Option<u64>,
}

/// A map section such as `certificates:` with its elements still as JSON.
pub(crate) type Section = BTreeMap<String, serde_json::Value>;
