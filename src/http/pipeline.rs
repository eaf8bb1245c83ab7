//! One request's way through an `https` listener, as named phases. The
//! order is the security argument:
//!
//! 1. **admit** — size and method limits, before anything is looked at;
//! 2. **select** the host entry that serves the request: the newest
//!    configuration's entry for the request's host (`:authority` / `Host`),
//!    which `strictSni` must allow, and whose client-authentication policy
//!    must be the one this connection's identity was established under
//!    (SPEC §2, §3). From here on only that entry's rules apply: its
//!    routes, `allow`, forwarding — never a mix of two entries or of two
//!    reloads;
//! 3. **canonicalize** the path (`crate::path`): what is routed, authorized
//!    and forwarded is one and the same string;
//! 4. **authorize** with the entry's `allow`;
//! 5. **route** on the canonical path, then the route's `allow`;
//! 6. **rewrite** headers: hop-by-hop first (only a WebSocket upgrade
//!    survives), then identity (strip, then set), then `X-Forwarded-*`;
//! 7. **dispatch** to the upstream (`proxy`).
//!
//! Each phase returns `Result<_, Refusal>`; [`Refusal::response`] is the one
//! place that turns a refusal into a status.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::{echo, headers, host, Body, Conn, Entry, HttpUpstream, HttpsListener, Target};
use crate::closer::{self, CloseReason};
use crate::config::model::StrictSni;
use crate::forward::Prepared;
use crate::identity::authz::{self, Allow, Decision};
use crate::identity::PeerIdentity;
use crate::path::{self, PathError};
use crate::tls::normalize_host;

/// Why a request does not reach an upstream.
#[derive(Debug)]
pub(super) enum Refusal {
    /// `CONNECT`: a reverse proxy is no tunnel to arbitrary hosts.
    Connect,
    /// The header block is over `maxRequestHeaderBytes`.
    HeaderTooLarge,
    /// Neither `:authority` nor `Host`.
    NoHost,
    /// A host that is not a valid header value, or several `Host` headers.
    BadHost(&'static str),
    /// The request's host is not served on this connection (strictSni).
    Misdirected {
        /// The host asked for.
        host: String,
        /// The TLS server name of the connection.
        sni: Option<String>,
    },
    /// A reload changed this connection's policy or removed its entry: the
    /// connection is drained (SPEC §2).
    Retired,
    /// The connection was asked to close because its client certificate
    /// was revoked or expired: nothing more is served on it, even while
    /// HTTP/2's GOAWAY is on its way.
    Closing(CloseReason),
    /// The path has no canonical form.
    BadPath(PathError),
    /// `allow` said no.
    Denied {
        /// What allow decided.
        decision: Decision,
        /// `this host` / `this path`.
        scope: &'static str,
    },
    /// No route matches the path.
    NoRoute,
}

impl Refusal {
    /// The response, always plain text naming the reason.
    pub(super) fn response(&self, id: Option<&PeerIdentity>) -> Response<Body> {
        let (status, text): (StatusCode, Cow<'static, str>) = match self {
            Refusal::Connect => (
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported".into(),
            ),
            Refusal::HeaderTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header too large".into(),
            ),
            Refusal::NoHost => (StatusCode::BAD_REQUEST, "request has no Host".into()),
            Refusal::BadHost(why) => (StatusCode::BAD_REQUEST, (*why).into()),
            Refusal::Misdirected { host, sni } => (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "host \"{host}\" is not served on this connection (TLS server name {:?}); open a new connection for it",
                    sni.as_deref().unwrap_or("")
                )
                .into(),
            ),
            Refusal::Retired => (
                StatusCode::MISDIRECTED_REQUEST,
                "the configuration of this host changed; open a new connection".into(),
            ),
            Refusal::Closing(why) => (
                StatusCode::FORBIDDEN,
                match why {
                    CloseReason::Revoked => "the client certificate has been revoked",
                    CloseReason::Expired => "the client certificate has expired",
                    CloseReason::PolicyChanged => {
                        "the configuration of this host changed; open a new connection"
                    }
                }
                .into(),
            ),
            Refusal::BadPath(e) => (StatusCode::BAD_REQUEST, e.to_string().into()),
            Refusal::Denied { decision, scope } => match decision {
                Decision::Allow | Decision::NotAllowed => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "client certificate \"{}\" is not allowed for {scope}",
                        id.map_or("", |i| i.cert.subject.as_str())
                    )
                    .into(),
                ),
                Decision::NoCertificate => (
                    StatusCode::UNAUTHORIZED,
                    format!("a client certificate is required for {scope}").into(),
                ),
                Decision::Unverified => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "the client certificate was not verified ({}); {scope} needs a verified one",
                        id.and_then(|i| i.failure).unwrap_or("error")
                    )
                    .into(),
                ),
            },
            Refusal::NoRoute => (StatusCode::NOT_FOUND, "no route for this path".into()),
        };
        let mut r = plain(status, text);
        if matches!(self, Refusal::Retired) {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// `Strict-Transport-Security`, replacing the upstream's, when set.
pub(super) fn set_hsts(resp: &mut Response<Body>, hsts: Option<&HeaderValue>) {
    if let Some(v) = hsts {
        resp.headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
}

/// A plain-text response.
pub(super) fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
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

/// The entry that serves a request, in the listener that holds it.
struct Selected<'a> {
    listener: Cow<'a, Arc<HttpsListener>>,
    entry: usize,
}

/// The identity headers a connection adds for one entry.
enum Forwarded<'a> {
    Own(&'a Prepared),
    Other(Arc<Prepared>),
}

impl std::ops::Deref for Forwarded<'_> {
    type Target = Prepared;
    fn deref(&self) -> &Prepared {
        match self {
            Forwarded::Own(p) => p,
            Forwarded::Other(p) => p,
        }
    }
}

fn authorize(
    rule: Option<&Allow>,
    id: Option<&PeerIdentity>,
    scope: &'static str,
) -> Result<(), Refusal> {
    let Some(rule) = rule else { return Ok(()) };
    match authz::decide(rule, id) {
        Decision::Allow => Ok(()),
        decision => Err(Refusal::Denied { decision, scope }),
    }
}

impl Conn {
    /// Runs the phases; a refusal becomes its response.
    pub(super) async fn serve(
        &self,
        req: Request<Incoming>,
    ) -> (Response<Body>, Option<HeaderValue>) {
        match self.prepare(req) {
            Ok((req, target, host, hsts)) => {
                let mut resp = self.dispatch(req, &target, &host).await;
                // The entry that served it (not necessarily the handshake's).
                set_hsts(&mut resp, hsts.as_ref());
                (resp, Some(host))
            }
            Err((refusal, host)) => {
                if matches!(refusal, Refusal::Retired) {
                    // HTTP/2: GOAWAY; HTTP/1.1 closes after this answer.
                    self.closer.close(CloseReason::PolicyChanged);
                }
                let mut resp = refusal.response(self.identity.as_deref());
                // A refusal speaks for the name the client connected to.
                let own = self
                    .listener
                    .hosts
                    .get(self.host)
                    .and_then(|h| h.hsts.as_ref());
                set_hsts(&mut resp, own);
                (resp, host)
            }
        }
    }

    /// Phases 1 to 6.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<
        (
            Request<Incoming>,
            Arc<Target>,
            HeaderValue,
            Option<HeaderValue>,
        ),
        (Refusal, Option<HeaderValue>),
    > {
        self.admit(&req).map_err(|r| (r, None))?;
        let (uri_host, header_host) = request_hosts(&req).map_err(|r| (r, None))?;
        let host = match uri_host.clone().or_else(|| header_host.clone()) {
            Some(h) => h,
            None => return Err((Refusal::NoHost, None)),
        };
        let fail = |r| (r, Some(host.clone()));
        let sel = self
            .select([&uri_host, &header_host].into_iter().flatten())
            .map_err(fail)?;
        let entry = &sel.listener.hosts[sel.entry];
        let canonical = path::canonicalize(req.uri().path(), entry.escaped_slashes)
            .map_err(|e| fail(Refusal::BadPath(e)))?;
        let id = self.identity.as_deref();
        authorize(entry.allow.as_ref(), id, "this host").map_err(fail)?;
        let target = entry
            .routes
            .find(&path::route_key(&canonical))
            .cloned()
            .ok_or_else(|| fail(Refusal::NoRoute))?;
        authorize(target.allow.as_ref(), id, "this path").map_err(fail)?;
        if let Cow::Owned(p) = canonical {
            set_path(&mut req, &p).map_err(fail)?;
        }

        let hs = req.headers_mut();
        if let Some(websocket) = headers::strip_hop_by_hop(hs) {
            hs.insert(http::header::UPGRADE, websocket);
        }
        let verified = id.is_some_and(|i| i.verified);
        let forwarded = self.forwarded_for_entry(&sel);
        entry.forward.apply(&forwarded, verified, hs);
        headers::set_forwarded(hs, &self.forwarded_for, &host, headers::HTTPS);
        Ok((req, target, host, entry.hsts.clone()))
    }

    /// Phase 1.
    fn admit(&self, req: &Request<Incoming>) -> Result<(), Refusal> {
        // One atomic load: a connection asked to close (revoked, expired,
        // policy changed) serves nothing more, whatever its protocol still
        // lets the client send before it closes.
        if let Some(why) = self.closer.reason() {
            return Err(match why {
                CloseReason::PolicyChanged => Refusal::Retired,
                other => Refusal::Closing(other),
            });
        }
        if req.method() == http::Method::CONNECT {
            return Err(Refusal::Connect);
        }
        if headers::header_bytes(req.headers()) > self.listener.limits.max_request_header_bytes {
            return Err(Refusal::HeaderTooLarge);
        }
        Ok(())
    }

    /// Phase 2: the entry that serves a request naming `hosts`.
    fn select<'h>(
        &self,
        hosts: impl Iterator<Item = &'h HeaderValue>,
    ) -> Result<Selected<'_>, Refusal> {
        let listener = match self.listener.succession.is_current() {
            true => Cow::Borrowed(&self.listener),
            false => Cow::Owned(closer::newest(&self.listener).ok_or(Refusal::Retired)?),
        };
        // The entry the handshake chose, as the newest configuration has it.
        let home = if Arc::ptr_eq(&listener, &self.listener) {
            self.host
        } else {
            listener
                .sni
                .lookup(self.tls.sni.as_deref())
                .and_then(Entry::host)
                .ok_or(Refusal::Retired)?
        };
        let home_entry = &listener.hosts[home];
        if home_entry.policy_key() != &self.policy_key {
            return Err(Refusal::Retired);
        }
        // Every host the request names (`:authority` and `Host`) must lead
        // to the same entry.
        let mut asked: Option<(Option<Entry>, &'h HeaderValue)> = None;
        for h in hosts {
            // (Checked by request_hosts.)
            let name = h.to_str().ok().and_then(|h| host::name(h).ok());
            let found = listener
                .sni
                .lookup(Some(name.ok_or(Refusal::BadHost("invalid Host"))?));
            match asked {
                Some((prev, _)) if prev != found => {
                    return Err(self.misdirected(h));
                }
                _ => asked = Some((found, h)),
            }
        }
        let Some((found, named)) = asked else {
            return Err(Refusal::NoHost);
        };
        let same_policy = |i: usize| listener.hosts[i].policy_key() == &self.policy_key;
        // A name of a passthrough entry is never served here: it matches
        // no arm but the last.
        let entry = match (home_entry.strict_sni, found) {
            (StrictSni::On, Some(Entry::Host(i))) if i == home => i,
            (StrictSni::SamePolicy, Some(Entry::Host(i)))
                if listener.hosts[i].policy_id == home_entry.policy_id && same_policy(i) =>
            {
                i
            }
            // strictSni: false turns off the name check, never client
            // authentication: an entry with another policy is still refused.
            (StrictSni::Off, Some(Entry::Host(i))) if same_policy(i) => i,
            (StrictSni::Off, None) => home,
            _ => return Err(self.misdirected(named)),
        };
        // Another entry may have other CRLs (the policy key leaves them
        // out so that a CRL reload is not a policy change): its verifier
        // judges the chain before it serves this connection's identity.
        if entry != home {
            let chain = self
                .identity
                .as_deref()
                .filter(|i| i.verified)
                .map(|i| &i.chain[..]);
            if let Some(chain) = chain {
                if listener.hosts[entry].tls.judge_chain(chain).is_err() {
                    return Err(self.misdirected(named));
                }
            }
        }
        Ok(Selected { listener, entry })
    }

    fn misdirected(&self, host: &HeaderValue) -> Refusal {
        Refusal::Misdirected {
            host: normalize_host(
                host.to_str()
                    .ok()
                    .and_then(|h| host::name(h).ok())
                    .unwrap_or_default(),
            )
            .into_owned(),
            sni: self.tls.sni.clone(),
        }
    }

    /// What this connection's identity adds to requests served by `sel`'s
    /// entry: made at the handshake for its own entry, and once per other
    /// entry that serves requests here.
    fn forwarded_for_entry(&self, sel: &Selected<'_>) -> Forwarded<'_> {
        if sel.entry == self.host && Arc::ptr_eq(&sel.listener, &self.listener) {
            return Forwarded::Own(&self.forwarded);
        }
        let mut cache = self
            .other_forwarded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((l, e, p)) = cache.as_ref() {
            if *e == sel.entry && Arc::ptr_eq(l, &sel.listener) {
                return Forwarded::Other(p.clone());
            }
        }
        let prepared = Arc::new(sel.listener.hosts[sel.entry].forward.prepare(
            self.identity.as_deref(),
            &crate::forward::ConnFacts {
                sni: self.tls.sni.as_deref(),
                version: self.tls.version,
                cipher: self.tls.cipher,
            },
        ));
        *cache = Some((sel.listener.as_ref().clone(), sel.entry, prepared.clone()));
        Forwarded::Other(prepared)
    }

    /// Phase 7.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        target: &Target,
        host: &HeaderValue,
    ) -> Response<Body> {
        match target.upstream.as_ref() {
            HttpUpstream::Echo => {
                let mut hs = req.headers().clone();
                if !hs.contains_key(HOST) {
                    hs.insert(HOST, host.clone());
                }
                echo::respond(
                    Some(&self.tls),
                    self.identity.as_deref(),
                    req.method(),
                    req.uri(),
                    &hs,
                )
                .map(|b| Either::Right(Full::new(b)))
            }
            HttpUpstream::Http {
                name,
                host_header,
                balancer,
            } => super::proxy::proxy(self, req, name, host_header, balancer, host).await,
        }
    }
}

/// The request's hosts: the URI authority (HTTP/2 `:authority`, or an
/// absolute-form target) and the `Host` header, each when present.
pub(super) fn request_hosts(
    req: &Request<Incoming>,
) -> Result<(Option<HeaderValue>, Option<HeaderValue>), Refusal> {
    // (Held as header values: cloning one shares its bytes, no copy.)
    let uri_host = match req.uri().authority() {
        None => None,
        Some(a) => {
            host::name(a.as_str()).map_err(Refusal::BadHost)?;
            Some(
                HeaderValue::from_str(a.as_str())
                    .map_err(|_| Refusal::BadHost("invalid authority"))?,
            )
        }
    };
    let mut all = req.headers().get_all(HOST).iter();
    let header_host = match (all.next(), all.next()) {
        (None, _) => None,
        (Some(h), None) => {
            let text = h
                .to_str()
                .map_err(|_| Refusal::BadHost("invalid Host header"))?;
            host::name(text).map_err(Refusal::BadHost)?;
            Some(h.clone())
        }
        (Some(_), Some(_)) => return Err(Refusal::BadHost("more than one Host header")),
    };
    Ok((uri_host, header_host))
}

/// Replaces the request's path with `path`, keeping the query as sent.
pub(super) fn set_path(req: &mut Request<Incoming>, path: &str) -> Result<(), Refusal> {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        http::uri::PathAndQuery::try_from(pq)
            .map_err(|_| Refusal::BadPath(PathError::BadEscape))?,
    );
    *req.uri_mut() =
        http::Uri::from_parts(parts).map_err(|_| Refusal::BadPath(PathError::BadEscape))?;
    Ok(())
}
