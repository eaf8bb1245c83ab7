//! `http` listeners (SPEC §2): plain HTTP on port 80's job. A request is
//! answered, in this order:
//!
//! 1. **ACME http-01**: `/.well-known/acme-challenge/TOKEN` for a token of
//!    an order in flight gets its key authorization (before any redirect,
//!    as RFC 8555 §8.3 validation needs);
//! 2. **proxied** when a host entry of this listener lists the request's
//!    host by name, or matches it by wildcard and no `https` listener
//!    serves it: the same phases as on `https` (limits, one host, canonical
//!    path, routes, hop-by-hop), with every identity header stripped and
//!    none set — plain HTTP has no client certificate;
//! 3. **redirected** to `https://HOST[:port]/path?query` when an `https`
//!    listener serves the host by name;
//! 4. otherwise `404`: a `Host` nobody serves is never redirected, so the
//!    gateway cannot be made to send clients to a name of an attacker's
//!    choosing.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, HOST, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::pipeline::{plain, request_hosts, set_path, Refusal};
use super::route::RouteTable;
use super::{echo, headers, host, proxy, Body, HttpUpstream, Target};
use crate::config::model::{self, EscapedSlashes};
use crate::forward::{HostForward, Prepared};
use crate::path;
use crate::tls::SniTable;

/// Where ACME http-01 challenges are asked for (RFC 8555 §8.3).
pub(crate) const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// One `http` listener at run time.
#[derive(Debug)]
pub struct HttpListener {
    /// Its name.
    pub name: String,
    /// Its name as a metric label.
    pub label: Arc<str>,
    /// Host entries proxied in plain HTTP.
    pub hosts: Vec<PlainHost>,
    /// Name → host entry.
    pub names: SniTable<usize>,
    /// The names `https` listeners serve (exact and wildcard; a `"*"`
    /// catch-all is not a name): only these are redirected.
    pub secure: SniTable<()>,
    /// `:port` in `Location`, empty for 443.
    pub redirect_port: String,
    /// The redirect status.
    pub redirect_status: StatusCode,
    /// Limits.
    pub limits: model::Limits,
    /// Whether to write access lines.
    pub access_log: bool,
    /// HTTP/1.1 server settings (limits applied).
    pub server: hyper::server::conn::http1::Builder,
}

/// A host entry of an `http` listener.
#[derive(Debug)]
pub struct PlainHost {
    /// Routes to upstreams.
    pub routes: RouteTable<Target>,
    /// `escapedSlashes`
    pub escaped_slashes: EscapedSlashes,
    /// Strips every identity header (and every name any https host sets
    /// with `requestHeaders`), sets none.
    pub strip: HostForward,
    /// Its first hostname, as a metric label.
    pub label: Arc<str>,
}

/// The HTTP/1.1 server settings of an `http` listener.
pub(crate) fn server_builder(limits: &model::Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.request_header_timeout)
        .max_buf_size(limits.max_request_header_bytes.max(8192));
    b
}

/// One plain connection, as its requests see it.
pub(crate) struct PlainConn {
    /// The listener as it was when the connection was accepted.
    pub listener: Arc<HttpListener>,
    /// Client address.
    pub client: SocketAddr,
    /// `X-Forwarded-For`, made once.
    pub forwarded_for: HeaderValue,
    /// The connection slot (`maxConnections`), held by tunnels too.
    pub slot: Arc<dyn std::any::Any + Send + Sync>,
    /// Turns `true` when the gateway drains; tunnels close then.
    pub drain: tokio::sync::watch::Receiver<bool>,
    /// Metric handles kept for the connection's next requests.
    pub stats: super::ConnStats,
}

const X_FORWARDED_PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
const NO_IDENTITY: Prepared = Prepared::none();

impl PlainConn {
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
        let (resp, host, label) = self.serve(req).await;
        let took = started.elapsed();
        let l = &self.listener;
        self.stats.count(
            &l.label,
            label.as_ref().unwrap_or(&l.label),
            resp.status().as_u16(),
            took,
        );
        if let Some((method, uri)) = logged {
            super::log_access(
                &l.name,
                host.as_ref(),
                &method,
                &uri,
                &resp,
                took,
                self.client,
                None,
            );
        }
        Ok(resp)
    }

    /// The answer, the request's host and the label of the entry that
    /// served it.
    async fn serve(
        &self,
        mut req: Request<Incoming>,
    ) -> (Response<Body>, Option<HeaderValue>, Option<Arc<str>>) {
        if let Err(r) = self.admit(&req) {
            return (r.response(None), None, None);
        }
        if let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PREFIX) {
            if let Some(answer) = crate::acme::challenges().http01(token) {
                let mut r = Response::new(Either::Right(Full::new(Bytes::from(answer))));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                return (r, None, None);
            }
        }
        let (name, host) = match one_host(&req) {
            Ok(h) => h,
            Err(r) => return (r.response(None), None, None),
        };
        let l = &self.listener;
        // A name https serves is redirected unless a plain entry lists that
        // very name: a plain wildcard never takes an https name into
        // plaintext.
        let plain_entry = match l.names.lookup_exact(&name) {
            Some(i) => Some(i),
            None if l.secure.lookup(Some(&name)).is_some() => None,
            None => l.names.lookup(Some(&name)),
        };
        if let Some(i) = plain_entry {
            let entry = &l.hosts[i];
            let label = Some(entry.label.clone());
            let target = match self.prepare(&mut req, entry, &host) {
                Ok(t) => t,
                Err(r) => return (r.response(None), Some(host), label),
            };
            let resp = match target.upstream.as_ref() {
                HttpUpstream::Echo => {
                    let mut hs = req.headers().clone();
                    if !hs.contains_key(HOST) {
                        hs.insert(HOST, host.clone());
                    }
                    echo::respond(None, None, req.method(), req.uri(), &hs)
                        .map(|b| Either::Right(Full::new(b)))
                }
                HttpUpstream::Http {
                    name,
                    host_header,
                    balancer,
                } => proxy::proxy(self, req, name, host_header, balancer, &host).await,
            };
            return (resp, Some(host), label);
        }
        if l.secure.lookup(Some(&name)).is_some() {
            return (self.redirect(&req, &name), Some(host), None);
        }
        let r = plain(
            StatusCode::NOT_FOUND,
            format!("host \"{name}\" is not served here"),
        );
        (r, Some(host), None)
    }

    fn admit(&self, req: &Request<Incoming>) -> Result<(), Refusal> {
        if req.method() == http::Method::CONNECT {
            return Err(Refusal::Connect);
        }
        if headers::header_bytes(req.headers()) > self.listener.limits.max_request_header_bytes {
            return Err(Refusal::HeaderTooLarge);
        }
        Ok(())
    }

    /// Path, route and headers of a request a host entry proxies.
    fn prepare(
        &self,
        req: &mut Request<Incoming>,
        entry: &PlainHost,
        host: &HeaderValue,
    ) -> Result<Arc<Target>, Refusal> {
        let canonical = path::canonicalize(req.uri().path(), entry.escaped_slashes)
            .map_err(Refusal::BadPath)?;
        let target = entry
            .routes
            .find(&path::route_key(&canonical))
            .cloned()
            .ok_or(Refusal::NoRoute)?;
        if let Cow::Owned(p) = canonical {
            set_path(req, &p)?;
        }
        let hs = req.headers_mut();
        if let Some(websocket) = headers::strip_hop_by_hop(hs) {
            hs.insert(http::header::UPGRADE, websocket);
        }
        entry.strip.apply(&NO_IDENTITY, false, hs);
        headers::set_forwarded(hs, &self.forwarded_for, host, X_FORWARDED_PROTO_HTTP);
        Ok(target)
    }

    /// `https://NAME[:port]` and the path and query as sent.
    fn redirect(&self, req: &Request<Incoming>, name: &str) -> Response<Body> {
        let l = &self.listener;
        let target = match req.uri().path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.as_str(),
            // `OPTIONS *` and the like name no resource.
            _ => "/",
        };
        let location = format!("https://{name}{}{target}", l.redirect_port);
        let Ok(location) = HeaderValue::from_str(&location) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "request target cannot be redirected",
            );
        };
        let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
        *r.status_mut() = l.redirect_status;
        r.headers_mut().insert(LOCATION, location);
        r
    }
}

/// The one host a request names, lower case without port or trailing dot,
/// and the header value it came in. The request target's authority and
/// `Host` must name the same host.
fn one_host(req: &Request<Incoming>) -> Result<(String, HeaderValue), Refusal> {
    let (uri_host, header_host) = request_hosts(req)?;
    let name_of = |v: &HeaderValue| -> Result<String, Refusal> {
        let text = v.to_str().map_err(|_| Refusal::BadHost("invalid Host"))?;
        let name = host::name(text).map_err(Refusal::BadHost)?;
        Ok(crate::tls::normalize_host(name).into_owned())
    };
    match (uri_host, header_host) {
        (None, None) => Err(Refusal::NoHost),
        (Some(h), None) | (None, Some(h)) => Ok((name_of(&h)?, h)),
        (Some(u), Some(h)) => {
            let name = name_of(&u)?;
            if name != name_of(&h)? {
                return Err(Refusal::BadHost(
                    "the request target and Host name different hosts",
                ));
            }
            Ok((name, u))
        }
    }
}

impl proxy::Tunnel for PlainConn {
    fn tunnel(&self, client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
        let slot = self.slot.clone();
        let mut drain = self.drain.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
                return;
            };
            let mut c = hyper_util::rt::TokioIo::new(c);
            let mut u = hyper_util::rt::TokioIo::new(u);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                _ = drain.wait_for(|d| *d) => {}
            }
        });
    }
}
