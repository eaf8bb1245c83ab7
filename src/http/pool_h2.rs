//! The HTTP/2 side of an endpoint's pool (`version: http2`): up to
//! [`H2_CONNECTIONS`] multiplexed connections, each carrying at most
//! [`H2_STREAMS`] of the gateway's streams, opened on demand (h2c with
//! prior knowledge over `http://`, ALPN h2 over `https://`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;

use super::pool::{Failure, InFlight, PooledBody, SendError, Tracked};
use crate::stream::TcpUpstream;

/// Streams the gateway puts on one HTTP/2 connection to an endpoint before
/// it opens another (upstreams allow 100 to 250): one client's long
/// streams cannot take every stream of the endpoint.
const H2_STREAMS: usize = 100;

/// HTTP/2 connections kept per endpoint; past that, streams go to the
/// least loaded one (and queue there).
const H2_CONNECTIONS: usize = 8;

/// Flow-control windows toward an HTTP/2 upstream. What a stream receives
/// and its client has not read yet stays in the gateway, up to the stream
/// window; the connection window covers every stream of a full connection,
/// so clients that stop reading cannot stall the others' streams.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONNECTION_WINDOW: u32 = H2_STREAM_WINDOW * H2_STREAMS as u32 + 1024 * 1024;

/// The HTTP/2 connections of an endpoint, opened on demand.
///
/// One connection is opened at a time (`opening`): requests that need one
/// while another request opens it wait for that attempt and then use what
/// it opened — rather than each opening its own — and when it failed they
/// fail at once with it instead of each trying again in turn.
pub(crate) struct Http2 {
    conns: Mutex<Vec<H2Conn>>,
    opening: tokio::sync::Mutex<()>,
    /// When the last attempt failed, and how.
    failed: Mutex<Option<(std::time::Instant, crate::tls::UpstreamFailure)>>,
    /// `https` or `http`, for the requests' `:scheme`.
    scheme: http::uri::Scheme,
}

#[derive(Clone)]
pub(super) struct H2Conn {
    sender: http2::SendRequest<Tracked>,
    /// Its streams in flight (until their response bodies are dropped).
    streams: Arc<std::sync::atomic::AtomicUsize>,
}

impl Http2 {
    /// No connection yet; requests use `scheme`.
    pub(super) fn new(scheme: http::uri::Scheme) -> Self {
        Http2 {
            conns: Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
            scheme,
        }
    }

    /// The open connection with the fewest streams, if it has room (or if
    /// no other may be opened), with a stream counted on it (under the
    /// lock, so concurrent requests never put more than [`H2_STREAMS`] on
    /// one).
    fn pick(&self) -> Option<(H2Conn, InFlight)> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.sender.is_closed());
        let best = conns
            .iter()
            .min_by_key(|c| c.streams.load(Ordering::Relaxed))?;
        let room = best.streams.load(Ordering::Relaxed) < H2_STREAMS;
        (room || conns.len() >= H2_CONNECTIONS)
            .then(|| (best.clone(), InFlight::start(&best.streams)))
    }

    /// A connection with room, opened by this request or by the attempt
    /// it waited for.
    async fn open(&self, upstream: &TcpUpstream) -> Result<(H2Conn, InFlight), SendError> {
        let asked = std::time::Instant::now();
        let _turn = self.opening.lock().await;
        if let Some(c) = self.pick() {
            return Ok(c);
        }
        let failed = *self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, kind)) = failed {
            if at >= asked {
                return Err(SendError::Waited(kind));
            }
        }
        match connect(upstream).await {
            Ok(c) => {
                let stream = InFlight::start(&c.streams);
                self.keep(&c);
                Ok((c, stream))
            }
            Err(e) => {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), e.kind()));
                Err(e)
            }
        }
    }

    pub(super) fn keep(&self, conn: &H2Conn) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() < H2_CONNECTIONS {
            conns.push(conn.clone());
        }
    }
}

impl Http2 {
    /// Sends `req` on the endpoint's HTTP/2 connection (opened if there is
    /// none). Streams are independent: a slow one holds nothing else up.
    pub(super) async fn send(
        &self,
        upstream: &TcpUpstream,
        mut req: Request<Tracked>,
    ) -> Result<Response<PooledBody>, Failure> {
        let h2 = self;
        // `:scheme` and `:authority` (the Host chosen for the upstream).
        let authority = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .or_else(|| upstream.address.parse().ok());
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(h2.scheme.clone());
        parts.authority = authority;
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = http::Version::HTTP_2;
        // A connection that closed as the request was handed over (an
        // upstream GOAWAY) gets it back unsent: one more try, on another.
        let mut last_try = false;
        loop {
            let (conn, stream) = match h2.pick() {
                Some(c) => c,
                None => match h2.open(upstream).await {
                    Ok(c) => c,
                    Err(e) => return Err(Failure::Unsent(Box::new(req), e)),
                },
            };
            let mut sender = conn.sender;
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp.map(|inner| PooledBody::streamed(inner, stream))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !last_try => {
                        last_try = true;
                        req = unsent;
                    }
                    Some(unsent) => {
                        return Err(Failure::Unsent(
                            Box::new(unsent),
                            SendError::Request(e.into_error()),
                        ))
                    }
                    None => return Err(Failure::Sent(SendError::Request(e.into_error()))),
                },
            }
        }
    }
}

/// Opens an HTTP/2 connection and starts its task. Over TLS the upstream
/// must have chosen `h2`: HTTP/2 on a session it agreed to as HTTP/1.1
/// would only be refused.
async fn connect(upstream: &TcpUpstream) -> Result<H2Conn, SendError> {
    let (io, h2) = upstream.connect_negotiated().await?;
    if upstream.tls.is_some() && !h2 {
        return Err(SendError::NotHttp2);
    }
    handshake(io).await
}

/// Starts HTTP/2 on a connection opened already (`auto`: ALPN chose h2).
pub(super) async fn handshake(io: Box<dyn crate::stream::Io>) -> Result<H2Conn, SendError> {
    let (sender, conn) = http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        // Its errors reach the streams that were on it.
        let _ = conn.await;
    });
    Ok(H2Conn {
        sender,
        streams: Arc::default(),
    })
}
