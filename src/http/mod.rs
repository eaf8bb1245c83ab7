//! The HTTP reverse proxy: the runtime types of `https` listeners and host
//! entries, and one request's way through them (`pipeline`), the echo
//! upstream, pooled upstream clients and WebSocket tunnels (`proxy`).

pub(crate) mod balance;
pub(crate) mod build;
pub(crate) mod echo;
pub(crate) mod headers;
pub(crate) mod host;
mod pipeline;
pub(crate) mod plain;
pub(crate) mod pool;
mod pool_h2;
mod proxy;
pub(crate) mod route;
mod tracked;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;

use crate::closer::{Closer, Succession, Successive};
use crate::config::model::{self, EscapedSlashes, HostHeader, StrictSni};
use crate::forward::{HostForward, Prepared};
use crate::identity::authz::Allow;
use crate::identity::PeerIdentity;
use crate::telemetry;
use crate::tls::{HostTls, SniTable};

use route::RouteTable;

/// Response bodies: streamed from an upstream, or made here.
pub(crate) type Body = Either<pool::PooledBody, Full<Bytes>>;

/// One upstream, ready to receive requests.
#[derive(Debug)]
// Built once per snapshot and shared behind an Arc: the size of a variant
// costs nothing per request.
#[allow(clippy::large_enum_variant)]
pub enum HttpUpstream {
    /// The built-in echo.
    Echo,
    /// An HTTP origin.
    Http {
        /// Its name (logs, errors).
        name: String,
        /// Which Host the origin sees.
        host_header: HostHeader,
        /// Its endpoints, each with its own connection pool: a connection
        /// authenticated with one client identity is never reused for
        /// another upstream.
        balancer: Arc<balance::Balancer>,
    },
}

/// Where a route leads, and who may take it.
#[derive(Debug)]
pub struct Target {
    /// The upstream.
    pub upstream: Arc<HttpUpstream>,
    /// Route-level `allow`.
    pub allow: Option<Allow>,
}

/// One host entry that terminates TLS, at run time. (A passthrough entry
/// is only its upstream: see [`Entry`].)
#[derive(Debug)]
pub struct Host {
    /// Its TLS config, verifier and policy key.
    pub tls: HostTls,
    /// Host-level `allow` (`clientAuth.allow`).
    pub allow: Option<Allow>,
    /// Identity forwarding.
    pub forward: HostForward,
    /// Routes to upstreams.
    pub routes: RouteTable<Target>,
    /// strictSni setting.
    pub strict_sni: StrictSni,
    /// `escapedSlashes`
    pub escaped_slashes: EscapedSlashes,
    /// Entries with equal certificate and client auth share this number
    /// (strictSni: samePolicy).
    pub policy_id: usize,
    /// Its first hostname, as a metric label.
    pub label: Arc<str>,
    /// `Strict-Transport-Security`, set on every response of this entry.
    pub hsts: Option<HeaderValue>,
}

impl Host {
    /// The client-authentication policy key of this entry.
    pub fn policy_key(&self) -> &[u8; 32] {
        &self.tls.policy_key
    }
}

/// What a server name selects on an `https` listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `HttpsListener::hosts[i]`: terminate and serve.
    Host(usize),
    /// `HttpsListener::passthrough[i]`: replay the raw stream to it.
    Passthrough(usize),
}

impl Entry {
    /// The terminating host entry, if that is what it is.
    pub fn host(self) -> Option<usize> {
        match self {
            Entry::Host(i) => Some(i),
            Entry::Passthrough(_) => None,
        }
    }
}

/// One `https` listener at run time.
#[derive(Debug)]
pub struct HttpsListener {
    /// Its name.
    pub name: String,
    /// Its name as a metric label.
    pub label: Arc<str>,
    /// Host entries that terminate TLS.
    pub hosts: Vec<Host>,
    /// The upstreams of passthrough host entries (ClientHello bytes are
    /// kept for replay when there is any).
    pub passthrough: Vec<Arc<crate::stream::TcpUpstream>>,
    /// SNI → host entry.
    pub sni: SniTable<Entry>,
    /// Limits.
    pub limits: model::Limits,
    /// Whether to write access lines.
    pub access_log: bool,
    /// HTTP/1.1 + HTTP/2 server settings (limits applied), shared by every
    /// connection of the listener.
    pub server: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    /// What replaced this listener at a reload: requests on connections
    /// opened under it follow the newest version (SPEC §2).
    pub succession: Succession<HttpsListener>,
}

impl Successive for HttpsListener {
    fn succession(&self) -> &Succession<Self> {
        &self.succession
    }
}

/// The HTTP server settings for `limits`.
pub(crate) fn server_builder(
    limits: &model::Limits,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.request_header_timeout)
        // hyper's own floor is 8 KiB; smaller limits are enforced per request.
        .max_buf_size(limits.max_request_header_bytes.max(8192));
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// TLS facts of a connection, for the echo and the logs.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsInfo {
    /// SNI sent by the client.
    pub sni: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: Option<&'static str>,
    /// Cipher suite, IANA name.
    pub cipher: Option<&'static str>,
    /// Negotiated ALPN.
    pub alpn: Option<String>,
}

/// The forwarding prepared for one entry other than the handshake's: the
/// listener holding it, its index, and what it adds.
pub(crate) type OtherForwarded = (Arc<HttpsListener>, usize, Arc<Prepared>);

/// Everything a request needs to know about its connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The listener as it was at the handshake (requests follow its
    /// successors: see [`crate::closer::newest`]).
    pub listener: Arc<HttpsListener>,
    /// Index of the host entry chosen at the handshake.
    pub host: usize,
    /// That entry's client-authentication policy, which this connection's
    /// identity was established under. A request is served only by an entry
    /// with the same policy (SPEC §2, §3).
    pub policy_key: [u8; 32],
    /// Client address.
    pub client: SocketAddr,
    /// The client's certificate identity, if it sent one.
    pub identity: Option<Arc<PeerIdentity>>,
    /// TLS facts.
    pub tls: TlsInfo,
    /// Identity headers this connection adds to every request served by the
    /// handshake's entry.
    pub forwarded: Prepared,
    /// The same for the last other entry that served a request here (a
    /// samePolicy sibling, or the entry after a reload), made once.
    pub other_forwarded: Mutex<Option<OtherForwarded>>,
    /// `X-Forwarded-For`, made once per connection.
    pub forwarded_for: HeaderValue,
    /// Asks this connection to close (revocation, expiry, policy change).
    pub closer: Arc<Closer>,
    /// Held by the connection and by its upgraded tunnels: the connection
    /// slot (`maxConnections`) is released when the last of them ends.
    pub slot: Arc<dyn std::any::Any + Send + Sync>,
    /// Turns `true` when the gateway drains; tunnels close then.
    pub drain: tokio::sync::watch::Receiver<bool>,
    /// The tunnels upgraded from this connection, which its task keeps
    /// judging after the HTTP connection ends.
    pub tunnels: Arc<crate::closer::Tunnels>,
    /// Metric handles looked up on this connection's first request, so the
    /// next ones count without hashing label sets.
    pub stats: ConnStats,
}

/// Per-connection metric handles: the duration histogram and the counter of
/// the first status answered (almost every later request has the same).
#[derive(Debug, Default)]
pub(crate) struct ConnStats {
    duration: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
    first: std::sync::OnceLock<(u16, Arc<str>, prometheus_client::metrics::counter::Counter)>,
}

impl ConnStats {
    /// Counts one answered request in `portcullis_http_requests_total` and
    /// `portcullis_http_request_duration_seconds`: by handle when status
    /// and host label are the first ones this connection answered with.
    pub(crate) fn count(
        &self,
        listener: &Arc<str>,
        host: &Arc<str>,
        status: u16,
        took: std::time::Duration,
    ) {
        use crate::telemetry::metrics::{metrics, HttpLabels, ListenerLabels};
        let m = metrics();
        let labels = || HttpLabels {
            listener: listener.clone(),
            host: host.clone(),
            status,
        };
        let (first, first_host, counter) = self.first.get_or_init(|| {
            (
                status,
                host.clone(),
                m.http_requests.get_or_create_owned(&labels()),
            )
        });
        if *first == status && Arc::ptr_eq(first_host, host) {
            counter.inc();
        } else {
            m.http_requests.get_or_create(&labels()).inc();
        }
        self.duration
            .get_or_init(|| {
                m.http_duration.get_or_create_owned(&ListenerLabels {
                    listener: listener.clone(),
                })
            })
            .observe(took.as_secs_f64());
    }
}

/// Writes the access line of one answered request (SPEC §7).
#[allow(clippy::too_many_arguments)]
pub(crate) fn log_access(
    listener: &str,
    host: Option<&HeaderValue>,
    method: &http::Method,
    uri: &http::Uri,
    resp: &Response<Body>,
    took: std::time::Duration,
    client: SocketAddr,
    identity: Option<&PeerIdentity>,
) {
    telemetry::access(&telemetry::Access {
        listener,
        host: host.and_then(|h| h.to_str().ok()),
        method: method.as_str(),
        path: uri.path(),
        status: resp.status().as_u16(),
        took,
        // Known up front for bodies made here and for upstream answers
        // with a Content-Length; 0 for streamed bodies.
        bytes: hyper::body::Body::size_hint(resp.body())
            .exact()
            .unwrap_or(0),
        client,
        identity: identity.map(|i| telemetry::AccessIdentity {
            subject: &i.cert.subject,
            uri_sans: &i.cert.uri_sans,
            fingerprint: &i.cert.sha256,
            verified: i.verified,
        }),
    });
}

impl Conn {
    /// Handles one request; never fails (errors become responses).
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let logged = self
            .listener
            .access_log
            .then(|| (req.method().clone(), req.uri().clone()));
        let (resp, host) = self.serve(req).await;
        let took = started.elapsed();
        let l = &self.listener;
        let label = l.hosts.get(self.host).map_or(&l.label, |h| &h.label);
        self.stats
            .count(&l.label, label, resp.status().as_u16(), took);
        if let Some((method, uri)) = logged {
            log_access(
                &l.name,
                host.as_ref(),
                &method,
                &uri,
                &resp,
                took,
                self.client,
                self.identity.as_deref(),
            );
        }
        Ok(resp)
    }
}
