//! The connection pool of one HTTP upstream.
//!
//! Each upstream owns its pool, so a connection opened with one client
//! identity (mutual TLS to the upstream) is never reused for another
//! upstream. Idle connections are kept last-in first-out (the warmest one is
//! reused, the coldest ones expire), and a connection goes back to the pool
//! when its response body has been read to the end and it is ready for the
//! next request — no key is hashed and, unless the exchange is still
//! finishing then, no task is spawned per request. A connection whose response was not read to
//! the end (the client went away, an error, an upgrade) is closed, and so is
//! one whose response ended before its request did (an early answer such as
//! `413`): the rest of that request would otherwise reach the upstream as
//! the start of the next one.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::pool_h2::Http2;
pub(crate) use super::tracked::{track, InFlight, Tracked, Upload};
use crate::stream::{TcpUpstream, UpstreamError};

/// An idle connection is closed after this long unused (hyper-util's
/// default; upstreams usually close theirs sooner, which is noticed at the
/// next checkout).
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Idle connections kept per upstream; more are closed when they go idle.
const MAX_IDLE: usize = 256;

/// How long a connection whose request has been sent may take to become
/// ready again after its response ended; one that takes longer is closed.
const SETTLE_FOR: Duration = Duration::from_secs(10);

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] UpstreamError),
    /// The connection failed while the request or its response was on it.
    #[error(transparent)]
    Request(#[from] hyper::Error),
    /// The connection attempt this request waited for (another request's)
    /// failed: counted once, by the request that made it.
    #[error("the connection attempt this request waited for failed ({})", .0.as_str())]
    Waited(crate::tls::UpstreamFailure),
    /// An `https://` upstream that must speak HTTP/2 did not choose `h2`.
    #[error("the upstream did not choose HTTP/2 (ALPN h2)")]
    NotHttp2,
}

impl SendError {
    /// The `kind` label of `portcullis_upstream_errors_total`.
    pub(crate) fn kind(&self) -> crate::tls::UpstreamFailure {
        match self {
            SendError::Connect(e) => e.kind(),
            SendError::Request(e) => crate::tls::UpstreamFailure::of(e),
            SendError::Waited(kind) => *kind,
            SendError::NotHttp2 => crate::tls::UpstreamFailure::Tls,
        }
    }

    /// Whether it says something about the endpoint (else it is not
    /// counted toward ejection).
    pub(crate) fn is_endpoint_failure(&self) -> bool {
        !matches!(self, SendError::Waited(_))
    }
}

/// A request that got no response, and whether it may be sent elsewhere.
pub(crate) enum Failure {
    /// Nothing of it was written (no connection could be opened, or the
    /// connection failed before taking it): it may go to another endpoint.
    Unsent(Box<Request<Tracked>>, SendError),
    /// It was (at least partly) written.
    Sent(SendError),
}

/// One upstream connection: the handle requests are sent on, and its task
/// (aborted to close it while a request is still on it).
struct Connection {
    sender: SendRequest<Tracked>,
    task: tokio::task::AbortHandle,
}

impl Connection {
    fn close(self) {
        self.task.abort();
    }
}

/// What a new connection turned out to be.
enum Opened {
    Http1(Connection),
    /// An HTTP/2 connection, kept by the pool's HTTP/2 side.
    Http2,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

/// The pooled connections of one upstream.
pub(crate) struct Pool {
    /// Where and how to connect (address, TLS origination, timeout).
    upstream: TcpUpstream,
    /// Idle connections, oldest first.
    idle: Mutex<Vec<Idle>>,
    /// Whether the task that closes expired idle connections runs.
    reaping: AtomicBool,
    /// HTTP/2 connections: every request's (`version: http2`: h2c with
    /// prior knowledge over `http://`, ALPN h2 over `https://`), or those
    /// of an `auto` endpoint whose TLS chose `h2`.
    http2: Option<Http2>,
    /// `auto` over TLS: ALPN decides.
    negotiate: Option<Negotiate>,
}

/// How a pool speaks to its endpoint.
pub(crate) enum Mode {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 always.
    Http2,
    /// What ALPN chooses (`auto` over `https://`); upgrades (WebSocket)
    /// connect through this upstream, which offers only `http/1.1`.
    Negotiate(TcpUpstream),
}

/// `auto` over TLS.
struct Negotiate {
    /// Set once a connection negotiated `h2`: later requests go to the
    /// HTTP/2 side directly.
    h2: AtomicBool,
    /// Set once the first negotiation ended (either way).
    decided: AtomicBool,
    /// Held by the first negotiation: a burst of first requests waits for
    /// it instead of each opening a TLS connection of its own.
    first: tokio::sync::Mutex<()>,
    /// The same endpoint with ALPN `http/1.1` only.
    h1_only: TcpUpstream,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("upstream", &self.upstream.name)
            .field("address", &self.upstream.address)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// An empty pool for `upstream`, speaking as `mode` says.
    pub(crate) fn new(upstream: TcpUpstream, mode: Mode) -> Self {
        let scheme = match upstream.tls {
            Some(_) => http::uri::Scheme::HTTPS,
            None => http::uri::Scheme::HTTP,
        };
        let (http2, negotiate) = match mode {
            Mode::Http1 => (None, None),
            Mode::Http2 => (Some(Http2::new(scheme)), None),
            Mode::Negotiate(h1_only) => (
                Some(Http2::new(scheme)),
                Some(Negotiate {
                    h2: AtomicBool::new(false),
                    decided: AtomicBool::new(false),
                    first: tokio::sync::Mutex::new(()),
                    h1_only,
                }),
            ),
        };
        Pool {
            upstream,
            idle: Mutex::new(Vec::new()),
            reaping: AtomicBool::new(false),
            http2,
            negotiate,
        }
    }

    /// Sends `req` (origin-form target, `Host` set; its body wrapped by
    /// [`track`]) on an idle connection, or on a new one when none is
    /// ready. A request that an idle connection could not take (the
    /// upstream had closed it) is sent on another one, since none of it was
    /// written; one that no connection could take comes back unsent.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Tracked>,
        sent: Option<Arc<Upload>>,
    ) -> Result<Response<PooledBody>, Failure> {
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        if let Some(h2) = &self.http2 {
            let chosen = self
                .negotiate
                .as_ref()
                .is_none_or(|n| !upgrade && n.h2.load(Ordering::Relaxed));
            if chosen {
                match h2.send(&self.upstream, req).await {
                    // `auto`: the endpoint stopped choosing h2 (a new
                    // deployment); back to HTTP/1.1 on this request.
                    Err(Failure::Unsent(unsent, SendError::NotHttp2))
                        if self.negotiate.is_some() =>
                    {
                        if let Some(n) = &self.negotiate {
                            n.h2.store(false, Ordering::Relaxed);
                        }
                        req = *unsent;
                    }
                    done => return done,
                }
            }
        }
        // `TE: trailers` is kept for HTTP/2 (gRPC) only.
        let te = req.headers_mut().remove(http::header::TE);
        while let Some(mut conn) = self.checkout() {
            match conn.sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, conn, sent)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(Failure::Sent(SendError::Request(e.into_error()))),
                },
            }
        }
        let mut conn = match self.connect(upgrade).await {
            Ok(Opened::Http1(c)) => c,
            // `auto` over TLS, and the endpoint chose HTTP/2.
            Ok(Opened::Http2) => match &self.http2 {
                Some(h2) => {
                    if let Some(te) = te {
                        req.headers_mut().insert(http::header::TE, te);
                    }
                    return h2.send(&self.upstream, req).await;
                }
                None => {
                    return Err(Failure::Unsent(
                        Box::new(req),
                        SendError::Connect(UpstreamError::Refused),
                    ))
                }
            },
            Err(e) => return Err(Failure::Unsent(Box::new(req), e)),
        };
        match conn.sender.try_send_request(req).await {
            Ok(resp) => Ok(self.wrap(resp, conn, sent)),
            Err(mut e) => match e.take_message() {
                Some(unsent) => Err(Failure::Unsent(
                    Box::new(unsent),
                    SendError::Request(e.into_error()),
                )),
                None => Err(Failure::Sent(SendError::Request(e.into_error()))),
            },
        }
    }

    /// The most recently used idle connection that is still open. Only
    /// ready connections enter the pool; one that stopped being ready (its
    /// upstream closed it) is dropped.
    fn checkout(&self) -> Option<Connection> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Some(mut conn) = self.pop() {
            if let Poll::Ready(Ok(())) = conn.sender.poll_ready(&mut cx) {
                return Some(conn);
            }
        }
        None
    }

    fn pop(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { conn, since } = idle.pop()?;
        if since.elapsed() < IDLE_FOR {
            return Some(conn);
        }
        // This was the newest: every other one expired too.
        idle.clear();
        None
    }

    fn put(&self, conn: Connection) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Self::expire(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Drops the idle connections unused for `IDLE_FOR` (the oldest come
    /// first) and those their upstream closed.
    fn expire(idle: &mut Vec<Idle>, now: Instant) {
        let expired = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_FOR)
            .count();
        idle.drain(..expired);
        idle.retain(|i| !i.conn.sender.is_closed());
    }

    /// Closes idle connections once they expire, even when no request comes
    /// to reuse them; ends with the pool (a reload that replaced its
    /// upstream drops the pool, and its idle connections with it).
    fn reap(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(IDLE_FOR / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                Self::expire(&mut idle, Instant::now());
            }
        });
    }

    /// Opens a connection (TCP, then TLS when the upstream is `https://`)
    /// and starts its task.
    async fn connect(self: &Arc<Self>, upgrade: bool) -> Result<Opened, SendError> {
        self.reap();
        let io = match (&self.negotiate, &self.http2) {
            (Some(n), _) if upgrade => n.h1_only.connect().await?,
            (Some(n), Some(h2)) => {
                let _first = match n.decided.load(Ordering::Acquire) {
                    true => None,
                    false => Some(n.first.lock().await),
                };
                // The negotiation this request waited for chose h2.
                if n.h2.load(Ordering::Relaxed) {
                    return Ok(Opened::Http2);
                }
                let negotiated = self.upstream.connect_negotiated().await;
                n.decided.store(true, Ordering::Release);
                let (io, chose_h2) = negotiated?;
                if chose_h2 {
                    n.h2.store(true, Ordering::Relaxed);
                    h2.keep(&super::pool_h2::handshake(io).await?);
                    return Ok(Opened::Http2);
                }
                io
            }
            _ => self.upstream.connect().await?,
        };
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        let task = tokio::spawn(async move {
            // Its errors reach the request that was on it.
            let _ = conn.with_upgrades().await;
        })
        .abort_handle();
        Ok(Opened::Http1(Connection { sender, task }))
    }

    fn wrap(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        conn: Connection,
        sent: Option<Arc<Upload>>,
    ) -> Response<PooledBody> {
        // An early response: its head came before the request was sent to
        // its end. Judged now, not when the response ends: hyper keeps
        // writing the upload meanwhile, and a lax upstream reads what it
        // did not wait for as the next request.
        let early = sent.as_ref().is_some_and(|s| !s.sent());
        // A switched connection belongs to the tunnel now.
        let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Back {
            pool: self.clone(),
            conn,
            sent,
            early,
        });
        resp.map(|inner| {
            let mut body = PooledBody {
                inner,
                back,
                in_flight: None,
                _stream: None,
            };
            if body.inner.is_end_stream() {
                body.give_back(&mut Context::from_waker(std::task::Waker::noop()));
            }
            body
        })
    }
}

struct Back {
    pool: Arc<Pool>,
    conn: Connection,
    /// Set when the request's body has been handed to the connection to its
    /// end; `None` when the request had no body.
    sent: Option<Arc<Upload>>,
    /// The response head arrived before the request was sent to its end.
    early: bool,
}

/// A response body from a pooled connection: the connection returns to its
/// pool when the body has been read to its end.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<Back>,
    /// The request's count on its endpoint, released with the body.
    in_flight: Option<InFlight>,
    /// Its count on its HTTP/2 connection, likewise.
    _stream: Option<InFlight>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    /// A response body of an HTTP/2 stream (no connection to give back),
    /// keeping `stream` counted on its connection until it is dropped.
    pub(crate) fn streamed(inner: Incoming, stream: InFlight) -> Self {
        PooledBody {
            inner,
            back: None,
            in_flight: None,
            _stream: Some(stream),
        }
    }

    /// Keeps `n` counted until the body is dropped.
    pub(crate) fn hold(&mut self, n: InFlight) {
        self.in_flight = Some(n);
    }

    /// Returns the connection to its pool once it is ready for the next
    /// request: at once when it is (the usual case: the response was the
    /// last thing on it), or when the exchange has finished (the request
    /// body may still be streaming after an early response).
    fn give_back(&mut self, cx: &mut Context<'_>) {
        let Some(Back {
            pool,
            mut conn,
            sent,
            early,
        }) = self.back.take()
        else {
            return;
        };
        if early || sent.is_some_and(|s| !s.sent()) {
            // An early response: the upstream answered before it had the
            // whole request. What is left of the request must not reach it
            // as the start of the next one, so the connection is closed
            // (and the client's upload stops there).
            conn.close();
            return;
        }
        match conn.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => pool.put(conn),
            Poll::Ready(Err(_)) => {}
            Poll::Pending => {
                // The connection's task has not yet seen the exchange end.
                tokio::spawn(async move {
                    match tokio::time::timeout(SETTLE_FOR, conn.sender.ready()).await {
                        Ok(Ok(())) => pool.put(conn),
                        Ok(Err(_)) => {}
                        Err(_) => conn.close(),
                    }
                });
            }
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(cx),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.give_back(cx),
            // The connection is broken: it closes with the sender.
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Not read to its end (the client went away mid-response): nothing
        // more may be sent on this connection.
        if let Some(back) = self.back.take() {
            back.conn.close();
        }
    }
}
