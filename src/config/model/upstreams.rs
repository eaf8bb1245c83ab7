//! The validated `upstreams` section (see the parent module).

use std::time::Duration;

use super::Allow;

/// The `upstreams` section, split by kind. An id is made only by
/// `validate`, for an upstream of its kind in this very list, so a route
/// cannot name a TCP upstream nor a listener an HTTP one.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    /// `builtin` and `url` upstreams, with their names.
    pub http: Vec<(String, HttpUpstream)>,
    /// `address` upstreams, with their names.
    pub tcp: Vec<(String, TcpUpstream)>,
}

/// An HTTP upstream of [`Upstreams::http`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUpstreamId(usize);

/// A TCP upstream of [`Upstreams::tcp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpUpstreamId(usize);

impl HttpUpstreamId {
    pub(in crate::config) fn new(index: usize) -> Self {
        HttpUpstreamId(index)
    }
    /// Its place in [`Upstreams::http`].
    pub fn index(self) -> usize {
        self.0
    }
}

impl TcpUpstreamId {
    pub(in crate::config) fn new(index: usize) -> Self {
        TcpUpstreamId(index)
    }
    /// Its place in [`Upstreams::tcp`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// An upstream that speaks HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
// Read once per load: the size of a variant costs nothing per request.
#[allow(clippy::large_enum_variant)]
pub enum HttpUpstream {
    /// The built-in echo service.
    Echo,
    /// An HTTP origin (`url`, or several `endpoints`; `http://` or, with
    /// `tls`, `https://`).
    Url {
        /// Its endpoints (one for `url`), in the order given.
        endpoints: Vec<Endpoint>,
        /// Which Host header the upstream sees.
        host_header: HostHeader,
        /// TLS to the upstream (`https://` URLs).
        tls: Option<UpstreamTls>,
        /// How a request picks its endpoint.
        balance: Balance,
        /// Passive health checking, if configured.
        health: Option<HealthCheck>,
        /// `version`.
        version: HttpVersion,
    },
}

/// `upstreams.NAME.version`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 over `http://`; over `https://`, what ALPN chooses (`h2`
    /// or `http/1.1`).
    Auto,
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (h2c with prior knowledge over `http://`).
    Http2,
}

/// One endpoint of an HTTP upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` of its URL.
    pub authority: http::uri::Authority,
    /// The server name sent and checked over TLS (`tls.serverName`, else
    /// the endpoint's host); `None` for `http://`.
    pub server_name: Option<rustls_pki_types::ServerName<'static>>,
}

/// `loadBalancing`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// The endpoint with the fewest requests in flight.
    LeastRequest,
}

/// `healthCheck`: passive ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Consecutive failures that eject an endpoint.
    pub max_failures: u32,
    /// How long it stays ejected.
    pub eject_for: Duration,
}

/// A TCP service (`address: host:port`), optionally over (mutual) TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpUpstream {
    /// `host:port`.
    pub address: String,
    /// TLS to the upstream.
    pub tls: Option<UpstreamTls>,
}

/// `upstreams.NAME.tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Client certificate presented (name under `certificates`).
    pub certificate: Option<String>,
    /// CAs that verify the upstream (default: the system roots).
    pub trust_bundle: Option<String>,
    /// SNI and the name checked (`serverName`, else the URL's or
    /// address's host).
    pub server_name: rustls_pki_types::ServerName<'static>,
    /// Optional pin of the upstream's identity.
    pub allow: Option<Allow>,
    /// ALPN offered to the upstream (extension; e.g. `[h2]` for gRPC
    /// services such as etcd behind a `tcp` listener).
    pub alpn: Option<Vec<String>>,
}

/// `hostHeader`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's Host.
    Preserve,
    /// The chosen endpoint's `host:port`.
    Upstream,
}
