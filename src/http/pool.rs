//! The connection pool of one HTTP upstream.
//!
//! Each upstream owns its pool, so a connection opened with one client
//! identity (mutual TLS to the upstream) is never reused for another
//! upstream. Idle connections are kept last-in first-out (the warmest one is
//! reused, the coldest ones expire), and a connection goes back to the pool
//! when its response body has been read to the end and it is ready for the
//! next request — no key is hashed and, unless the exchange is still
//! finishing then, no task is spawned per request. A connection whose response was not read to
//! the end (the client went away, an error, an upgrade) is closed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::stream::{TcpUpstream, UpstreamError};

/// An idle connection is closed after this long unused (hyper-util's
/// default; upstreams usually close theirs sooner, which is noticed at the
/// next checkout).
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Idle connections kept per upstream; more are closed when they go idle.
const MAX_IDLE: usize = 256;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] UpstreamError),
    /// The connection failed while the request or its response was on it.
    #[error(transparent)]
    Request(#[from] hyper::Error),
}

impl SendError {
    /// The `kind` label of `portcullis_upstream_errors_total`.
    pub(crate) fn kind(&self) -> crate::tls::UpstreamFailure {
        match self {
            SendError::Connect(e) => e.kind(),
            SendError::Request(e) => crate::tls::UpstreamFailure::of(e),
        }
    }
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// The pooled connections of one upstream.
pub struct Pool {
    /// Where and how to connect (address, TLS origination, timeout).
    upstream: TcpUpstream,
    /// Idle connections, oldest first.
    idle: Mutex<Vec<Idle>>,
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
    /// An empty pool for `upstream`.
    pub(crate) fn new(upstream: TcpUpstream) -> Self {
        Pool {
            upstream,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` (origin-form target, `Host` set) on an idle connection,
    /// or on a new one when none is ready. A request that an idle
    /// connection could not take (the upstream had closed it) is sent on
    /// another one, since none of it was written.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, SendError> {
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        Ok(self.wrap(resp, sender))
    }

    /// The most recently used idle connection that is still open. Only
    /// ready connections enter the pool; one that stopped being ready (its
    /// upstream closed it) is dropped.
    fn checkout(&self) -> Option<SendRequest<Incoming>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Some(mut sender) = self.pop() {
            if let Poll::Ready(Ok(())) = sender.poll_ready(&mut cx) {
                return Some(sender);
            }
        }
        None
    }

    fn pop(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { sender, since } = idle.pop()?;
        if since.elapsed() < IDLE_FOR {
            return Some(sender);
        }
        // This was the newest: every other one expired too.
        idle.clear();
        None
    }

    fn put(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let expired = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_FOR)
            .count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: now });
        }
    }

    /// Opens a connection (TCP, then TLS when the upstream is `https://`)
    /// and starts its task.
    async fn connect(&self) -> Result<SendRequest<Incoming>, SendError> {
        let io = self.upstream.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        tokio::spawn(async move {
            // Its errors reach the request that was on it.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn wrap(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: SendRequest<Incoming>,
    ) -> Response<PooledBody> {
        // A switched connection belongs to the tunnel now.
        let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Back {
            pool: self.clone(),
            sender,
        });
        resp.map(|inner| {
            let mut body = PooledBody { inner, back };
            if body.inner.is_end_stream() {
                body.give_back(&mut Context::from_waker(std::task::Waker::noop()));
            }
            body
        })
    }
}

struct Back {
    pool: Arc<Pool>,
    sender: SendRequest<Incoming>,
}

/// A response body from a pooled connection: the connection returns to its
/// pool when the body has been read to its end.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<Back>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    /// Returns the connection to its pool once it is ready for the next
    /// request: at once when it is (the usual case: the response was the
    /// last thing on it), or when the exchange has finished (the request
    /// body may still be streaming after an early response).
    fn give_back(&mut self, cx: &mut Context<'_>) {
        let Some(Back { pool, mut sender }) = self.back.take() else {
            return;
        };
        match sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => pool.put(sender),
            Poll::Ready(Err(_)) => {}
            Poll::Pending => {
                tokio::spawn(async move {
                    if sender.ready().await.is_ok() {
                        pool.put(sender);
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
