//! The configuration file as written: serde types that mirror SPEC §2 key for
//! key (`deny_unknown_fields`, camelCase). Nothing here is checked beyond the
//! shape; `validate` turns these into the `model`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file. Each section is kept as JSON so that every element can be
/// deserialized (and fail) on its own.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Top {
    pub admin: Option<serde_json::Value>,
    pub certificates: Option<serde_json::Value>,
    pub trust_bundles: Option<serde_json::Value>,
    pub listeners: Option<serde_json::Value>,
    pub upstreams: Option<serde_json::Value>,
    pub logging: Option<serde_json::Value>,
    pub limits: Option<serde_json::Value>,
}

/// `admin:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Admin {
    pub address: String,
}

/// `certificates.NAME:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Certificate {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub secret_file: Option<String>,
    pub secret_dir: Option<String>,
    pub pkcs12_file: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// `trustBundles.NAME:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TrustBundle {
    pub ca_file: Option<String>,
    #[serde(default)]
    pub crl_files: Vec<String>,
    pub secret_file: Option<String>,
    pub secret_dir: Option<String>,
}

/// `listeners[i]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Listener {
    pub name: String,
    pub address: String,
    pub protocol: Protocol,
    pub tls: Option<ListenerTls>,
    /// Each host entry is read on its own (see `validate`).
    #[serde(default)]
    pub hosts: Vec<serde_json::Value>,
    // Stream listener keys (SPEC §2 `tls`, `tcp`, `passthrough`).
    pub certificate: Option<String>,
    /// Read on its own, like a host's.
    pub client_auth: Option<serde_json::Value>,
    pub upstream: Option<String>,
    pub proxy_protocol: Option<String>,
    pub routes: Option<Vec<SniRoute>>,
    pub default_upstream: Option<String>,
}

/// `listeners[i].routes[k]` of a `passthrough` listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SniRoute {
    pub sni: String,
    pub upstream: String,
}

/// `listeners[i].protocol`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Protocol {
    Https,
    Tls,
    Passthrough,
    Tcp,
    Http,
}

/// `listeners[i].tls:`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListenerTls {
    /// `"1.2"` or `"1.3"`; read as a value so that an unquoted `1.3` (a
    /// YAML number) gets a message that says to quote it.
    pub min_version: Option<serde_json::Value>,
    pub alpn: Option<Vec<String>>,
    pub session_lifetime: Option<String>,
}

/// `listeners[i].hosts[j]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Host {
    pub hostnames: Vec<String>,
    pub certificate: Option<String>,
    /// Read on its own so its mistakes do not hide the routes'.
    pub client_auth: Option<serde_json::Value>,
    /// `true`, `false` or `samePolicy`; interpreted by validation so that a
    /// wrong value gets a precise message.
    pub strict_sni: Option<serde_json::Value>,
    pub escaped_slashes: Option<EscapedSlashes>,
    /// Each route is read on its own.
    #[serde(default)]
    pub routes: Vec<serde_json::Value>,
    pub passthrough: Option<String>,
    pub forward_client_cert: Option<ForwardClientCert>,
    pub xfcc_details: Option<Vec<XfccDetail>>,
    pub pass_certificate_to_upstream: Option<bool>,
    pub request_headers: Option<BTreeMap<String, String>>,
}

/// `escapedSlashes`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum EscapedSlashes {
    Reject,
    Keep,
}

/// `forwardClientCert`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// `xfccDetails[i]` (`By` and `Hash` are parsed to explain they are implied).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Allow {
    #[serde(default)]
    pub common_names: Vec<String>,
    #[serde(default)]
    pub organizations: Vec<String>,
    #[serde(default)]
    pub organizational_units: Vec<String>,
    #[serde(default)]
    pub uri_sans: Vec<String>,
    #[serde(default)]
    pub dns_sans: Vec<String>,
    #[serde(default)]
    pub sha256_fingerprints: Vec<String>,
}

/// `clientAuth:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClientAuth {
    #[serde(default)]
    pub mode: ClientAuthMode,
    pub trust_bundle: Option<String>,
    pub verify_depth: Option<u32>,
    pub crl_check: Option<CrlCheck>,
    pub allow: Option<Allow>,
}

/// `clientAuth.mode`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ClientAuthMode {
    Require,
    Optional,
    OptionalNoCa,
    #[default]
    None,
}

/// `clientAuth.crlCheck`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum CrlCheck {
    Leaf,
    Chain,
}

/// `routes[k]:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Route {
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub upstream: String,
    pub allow: Option<Allow>,
}

/// `upstreams.NAME:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Upstream {
    pub builtin: Option<Builtin>,
    pub url: Option<String>,
    pub host_header: Option<HostHeader>,
    pub tls: Option<UpstreamTls>,
    pub address: Option<String>,
}

/// `upstreams.NAME.tls`: mutual TLS to the upstream.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct UpstreamTls {
    pub certificate: Option<String>,
    pub trust_bundle: Option<String>,
    pub server_name: Option<String>,
    pub allow: Option<Allow>,
    pub alpn: Option<Vec<String>>,
}

/// `upstreams.NAME.builtin`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Builtin {
    Echo,
}

/// `upstreams.NAME.hostHeader`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) enum HostHeader {
    Preserve,
    Upstream,
}

/// `logging:`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Logging {
    pub access: Option<bool>,
}

/// `limits:`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Limits {
    pub handshake_timeout: Option<String>,
    pub request_header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub shutdown_delay: Option<String>,
    pub max_connections: Option<u64>,
    pub max_request_header_bytes: Option<u64>,
}

/// A map section such as `certificates:` with its elements still as JSON.
pub(crate) type Section = BTreeMap<String, serde_json::Value>;
