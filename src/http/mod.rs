//! The HTTP reverse proxy: host check (strictSni → 421), routes, header
//! processing, the echo upstream, plain-HTTP upstreams through a pooled
//! client, and protocol upgrades (WebSocket).

pub mod echo;
pub mod headers;
pub mod route;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::model::{self, HostHeader, StrictSni};
use crate::forward::{HostForward, Prepared};
use crate::identity::authz::{self, Allow, Decision};
use crate::identity::PeerIdentity;
use crate::telemetry;
use crate::tls::{normalize_host, HostTls, SniTable};

use route::RouteTable;

/// Response bodies: streamed from an upstream, or made here.
pub type Body = Either<Incoming, Full<Bytes>>;

/// One upstream, ready to receive requests.
#[derive(Debug)]
// Built once per snapshot and shared behind an Arc: the size of a variant
// costs nothing per request.
#[allow(clippy::large_enum_variant)]
pub enum Upstream {
    /// The built-in echo.
    Echo,
    /// An HTTP origin.
    Http {
        /// Its name (logs, errors).
        name: String,
        /// `host:port`.
        authority: http::uri::Authority,
        /// Which Host the origin sees.
        host_header: HostHeader,
        /// For `https://` upstreams: this upstream's own pooled client, so a
        /// connection authenticated with one client identity is never
        /// reused for another.
        tls_client: Option<HttpsClient>,
    },
}

/// A pooled client originating (mutual) TLS for one upstream.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>;

/// Builds the pooled HTTPS client of one upstream.
pub fn https_client(
    tls: &crate::tls::upstream::UpstreamTls,
    connect_timeout: std::time::Duration,
) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnector::new(
        http,
        tls.config.clone(),
        true,
        Arc::new(hyper_rustls::FixedServerNameResolver::new(
            tls.server_name.clone(),
        )),
    );
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The shared upstream client (one per identity the gateway presents; plain
/// HTTP has none, so one pool serves all).
pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// Builds the pooled client for plain-HTTP upstreams.
pub fn upstream_client(connect_timeout: std::time::Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Where a route leads, and who may take it.
#[derive(Debug)]
pub struct Target {
    /// The upstream.
    pub upstream: Arc<Upstream>,
    /// Route-level `allow`.
    pub allow: Option<Allow>,
}

/// One host entry at run time.
#[derive(Debug)]
pub struct Host {
    /// TLS side (`None` for a passthrough host).
    pub tls: Option<HostTls>,
    /// Not terminated: raw TLS goes to this upstream.
    pub passthrough: Option<Arc<crate::stream::Upstream>>,
    /// Host-level `allow` (`clientAuth.allow`).
    pub allow: Option<Allow>,
    /// Identity forwarding.
    pub forward: HostForward,
    /// Routes to upstreams.
    pub routes: RouteTable<Target>,
    /// strictSni setting.
    pub strict_sni: StrictSni,
    /// Entries with equal certificate and client auth share this number
    /// (strictSni: samePolicy).
    pub policy_id: usize,
    /// Its first hostname, as a metric label.
    pub label: Arc<str>,
}

/// One `https` listener at run time.
#[derive(Debug)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// Its name as a metric label.
    pub label: Arc<str>,
    /// Host entries.
    pub hosts: Vec<Host>,
    /// Whether ClientHello bytes must be kept for replay (a passthrough
    /// host exists).
    pub records_hello: bool,
    /// SNI → host entry.
    pub sni: SniTable,
    /// Limits.
    pub limits: model::Limits,
    /// Whether to write access lines.
    pub access_log: bool,
    /// Pooled client for HTTP upstreams.
    pub client: UpstreamClient,
    /// HTTP/1.1 + HTTP/2 server settings (limits applied), shared by every
    /// connection of the listener.
    pub server: hyper_util::server::conn::auto::Builder<TokioExecutor>,
}

/// The HTTP server settings for `limits`.
pub fn server_builder(
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
pub struct TlsInfo {
    /// SNI sent by the client.
    pub sni: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: Option<&'static str>,
    /// Cipher suite, IANA name.
    pub cipher: Option<&'static str>,
    /// Negotiated ALPN.
    pub alpn: Option<String>,
}

/// Everything a request needs to know about its connection.
#[derive(Debug)]
pub struct Conn {
    /// The listener.
    pub listener: Arc<Listener>,
    /// Index of the host entry chosen at the handshake.
    pub host: usize,
    /// Client address.
    pub client: SocketAddr,
    /// The client's certificate identity, if it sent one.
    pub identity: Option<Arc<PeerIdentity>>,
    /// TLS facts.
    pub tls: TlsInfo,
    /// Identity headers this connection adds to every request.
    pub forwarded: Prepared,
    /// `X-Forwarded-For`, made once per connection.
    pub forwarded_for: HeaderValue,
    /// The current configuration's `https` listeners: requests on a
    /// connection opened before a reload are authorized with the new rules.
    pub live: Live,
    /// Metric handles looked up on this connection's first request, so the
    /// next ones count without hashing label sets.
    pub stats: ConnStats,
}

/// Per-connection metric handles: the duration histogram and the counter of
/// the first status answered (almost every later request has the same).
#[derive(Debug, Default)]
pub struct ConnStats {
    duration: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
    first_status: std::sync::OnceLock<(u16, prometheus_client::metrics::counter::Counter)>,
}

/// The `https` listeners of the current snapshot, by name.
pub type Live = Arc<arc_swap::ArcSwap<std::collections::BTreeMap<String, Arc<Listener>>>>;

/// The response to a request that `allow` refuses (SPEC §3): 401 when no
/// certificate was presented, 403 otherwise; never the upstream.
fn refusal(decision: Decision, id: Option<&PeerIdentity>, scope: &str) -> Option<Response<Body>> {
    match decision {
        Decision::Allow => None,
        Decision::NoCertificate => Some(plain(
            StatusCode::UNAUTHORIZED,
            format!("a client certificate is required for {scope}"),
        )),
        Decision::Unverified => Some(plain(
            StatusCode::FORBIDDEN,
            format!(
                "the client certificate was not verified ({}); {scope} needs a verified one",
                id.and_then(|i| i.failure).unwrap_or("error")
            ),
        )),
        Decision::NotAllowed => Some(plain(
            StatusCode::FORBIDDEN,
            format!(
                "client certificate \"{}\" is not allowed for {scope}",
                id.map_or("", |i| i.cert.subject.as_str())
            ),
        )),
    }
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut text = text.into();
    text.push('\n');
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `host` without its port (`a.test:443` → `a.test`, `[::1]:443` → `::1`).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl Conn {
    /// SPEC §3 strictSni: the request's host must select the host entry the
    /// handshake chose (or, with samePolicy, one with the same policy).
    fn host_allowed(&self, host: &str) -> bool {
        let entry = &self.listener.hosts[self.host];
        if entry.strict_sni == StrictSni::Off {
            return true;
        }
        let found = self.listener.sni.lookup(Some(strip_port(host)));
        match entry.strict_sni {
            StrictSni::Off => true,
            StrictSni::On => found == Some(self.host),
            StrictSni::SamePolicy => found.is_some_and(|i| {
                self.listener
                    .hosts
                    .get(i)
                    .is_some_and(|h| h.policy_id == entry.policy_id)
            }),
        }
    }

    /// Handles one request; never fails (errors become responses).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let logged = self
            .listener
            .access_log
            .then(|| (req.method().clone(), req.uri().clone()));
        let (resp, host) = self.route(req).await;
        let took = started.elapsed();
        self.count(resp.status().as_u16(), took);
        if let Some((method, uri)) = logged {
            telemetry::access(
                &self,
                &method,
                uri.path(),
                host.as_ref().and_then(|h| h.to_str().ok()),
                &resp,
                took,
            );
        }
        Ok(resp)
    }

    /// Counts one answered request in `portcullis_http_requests_total` and
    /// `portcullis_http_request_duration_seconds`.
    fn count(&self, status: u16, took: std::time::Duration) {
        use crate::telemetry::metrics::{metrics, HttpLabels, ListenerLabels};
        let m = metrics();
        let labels = |status| HttpLabels {
            listener: self.listener.label.clone(),
            host: self
                .listener
                .hosts
                .get(self.host)
                .map_or_else(|| self.listener.label.clone(), |h| h.label.clone()),
            status,
        };
        let (first, counter) = self
            .stats
            .first_status
            .get_or_init(|| (status, m.http_requests.get_or_create_owned(&labels(status))));
        if *first == status {
            counter.inc();
        } else {
            m.http_requests.get_or_create(&labels(status)).inc();
        }
        self.stats
            .duration
            .get_or_init(|| {
                m.http_duration.get_or_create_owned(&ListenerLabels {
                    listener: self.listener.label.clone(),
                })
            })
            .observe(took.as_secs_f64());
    }

    async fn route(&self, mut req: Request<Incoming>) -> (Response<Body>, Option<HeaderValue>) {
        let limits = &self.listener.limits;
        // A reverse proxy, not a forward proxy: no tunnels to arbitrary hosts.
        if req.method() == http::Method::CONNECT {
            return (
                plain(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported"),
                None,
            );
        }
        if headers::header_bytes(req.headers()) > limits.max_request_header_bytes {
            return (
                plain(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request header too large",
                ),
                None,
            );
        }
        // The request's host: the URI authority (HTTP/2 :authority or an
        // absolute-form target) and the Host header. Every one present must
        // pass the strictSni check.
        // (Held as header values: cloning one shares its bytes, no copy.)
        let uri_host = match req.uri().authority() {
            None => None,
            Some(a) => match HeaderValue::from_str(a.as_str()) {
                Ok(v) => Some(v),
                Err(_) => return (plain(StatusCode::BAD_REQUEST, "invalid authority"), None),
            },
        };
        let header_host = match req.headers().get_all(HOST).iter().count() {
            0 => None,
            1 => match req.headers().get(HOST) {
                Some(h) if h.to_str().is_ok() => Some(h.clone()),
                _ => return (plain(StatusCode::BAD_REQUEST, "invalid Host header"), None),
            },
            _ => {
                return (
                    plain(StatusCode::BAD_REQUEST, "more than one Host header"),
                    None,
                )
            }
        };
        let host = uri_host.clone().or_else(|| header_host.clone());
        let Some(host) = host else {
            return (plain(StatusCode::BAD_REQUEST, "request has no Host"), None);
        };
        for h in [&uri_host, &header_host].into_iter().flatten() {
            let h = h.to_str().unwrap_or_default();
            if !self.host_allowed(h) {
                let msg = format!(
                    "host \"{}\" is not served on this connection (TLS server name {:?}); open a new connection for it",
                    normalize_host(strip_port(h)),
                    self.tls.sni.as_deref().unwrap_or("")
                );
                return (plain(StatusCode::MISDIRECTED_REQUEST, msg), Some(host));
            }
        }
        // Authorization runs on every request, resumed session or not, with
        // the rules of the current configuration (a reload that narrows
        // `allow` applies to connections already open).
        let current = self.live.load();
        let fresh = current
            .get(&self.listener.name)
            .cloned()
            .unwrap_or_else(|| self.listener.clone());
        // Unchanged since the handshake (the common case): the host entry
        // chosen then still holds, no lookup needed.
        let index = if Arc::ptr_eq(&fresh, &self.listener) {
            Some(self.host)
        } else {
            fresh.sni.lookup(self.tls.sni.as_deref())
        };
        let Some(entry) = index.and_then(|i| fresh.hosts.get(i)) else {
            return (
                plain(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this host is no longer served; open a new connection",
                ),
                Some(host),
            );
        };
        let id = self.identity.as_deref();
        if let Some(rule) = &entry.allow {
            if let Some(r) = refusal(authz::decide(rule, id), id, "this host") {
                return (r, Some(host));
            }
        }
        let Some(target) = entry.routes.find(req.uri().path()) else {
            return (
                plain(StatusCode::NOT_FOUND, "no route for this path"),
                Some(host),
            );
        };
        if let Some(rule) = &target.allow {
            if let Some(r) = refusal(authz::decide(rule, id), id, "this path") {
                return (r, Some(host));
            }
        }

        let upgrade = headers::strip_hop_by_hop(req.headers_mut());
        let verified = id.is_some_and(|i| i.verified);
        self.listener.hosts[self.host]
            .forward
            .apply(&self.forwarded, verified, req.headers_mut());
        headers::set_forwarded(req.headers_mut(), &self.forwarded_for, &host);

        let resp = match target.upstream.as_ref() {
            Upstream::Echo => {
                let mut hs = req.headers().clone();
                if !hs.contains_key(HOST) {
                    hs.insert(HOST, host.clone());
                }
                echo::respond(self, req.method(), req.uri(), &hs)
                    .map(|b| Either::Right(Full::new(b)))
            }
            Upstream::Http {
                name,
                authority,
                host_header,
                tls_client,
            } => {
                self.proxy(
                    req,
                    name,
                    authority,
                    *host_header,
                    tls_client.as_ref(),
                    &host,
                    upgrade,
                )
                .await
            }
        };
        (resp, Some(host))
    }

    #[allow(clippy::too_many_arguments)]
    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        name: &str,
        authority: &http::uri::Authority,
        host_header: HostHeader,
        tls_client: Option<&HttpsClient>,
        host: &HeaderValue,
        upgrade: Option<HeaderValue>,
    ) -> Response<Body> {
        // The parts are shared, not copied.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if tls_client.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        let uri = match Uri::from_parts(parts) {
            Ok(u) => u,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid request target"),
        };
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        match host_header {
            HostHeader::Preserve => {
                req.headers_mut().insert(HOST, host.clone());
            }
            HostHeader::Upstream => {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    req.headers_mut().insert(HOST, v);
                }
            }
        }
        let downstream_upgrade = if let Some(proto) = &upgrade {
            req.headers_mut().insert(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            req.headers_mut()
                .insert(http::header::UPGRADE, proto.clone());
            // Take the client side of the upgrade before the request is sent.
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };
        let sent = match tls_client {
            Some(c) => c.request(req).await,
            None => self.listener.client.request(req).await,
        };
        match sent {
            Ok(mut resp) => {
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_side) = downstream_upgrade {
                        let upstream_side = hyper::upgrade::on(&mut resp);
                        tokio::spawn(async move {
                            if let (Ok(c), Ok(u)) = (client_side.await, upstream_side.await) {
                                let mut c = TokioIo::new(c);
                                let mut u = TokioIo::new(u);
                                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                            }
                        });
                    }
                } else {
                    headers::strip_hop_by_hop(resp.headers_mut());
                }
                resp.map(Either::Left)
            }
            Err(e) => {
                let kind = upstream_error_kind(&e);
                crate::telemetry::metrics::upstream_error(name, kind);
                tracing::warn!(upstream = name, kind, error = %error_chain(&e), "upstream request failed");
                plain(
                    StatusCode::BAD_GATEWAY,
                    format!("upstream \"{name}\" is unavailable"),
                )
            }
        }
    }
}

/// Classifies an upstream failure for `portcullis_upstream_errors_total`.
fn upstream_error_kind(e: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<rustls::Error>().is_some() {
            return "tls";
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "refused",
                std::io::ErrorKind::TimedOut => "timeout",
                _ if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => "tls",
                _ => "io",
            };
        }
        cur = c.source();
    }
    "io"
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.test:443"), "a.test");
        assert_eq!(strip_port("a.test"), "a.test");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("a.test:"), "a.test");
    }
}
