//! The admin endpoint (SPEC §5): `/healthz` while the process runs,
//! `/readyz` once every listener is bound and 503 while draining,
//! `/metrics` (Prometheus text) and `/certificates` (JSON).
//!
//! It is guarded like the data listeners, so a slow or hoarding client
//! cannot take it away from the probes that need it: a request's header
//! must arrive within `limits.requestHeaderTimeout` (hyper's header read
//! timer, which also runs while a keep-alive connection waits for its next
//! request), a connection on which no byte moves for `limits.idleTimeout`
//! is closed, at most [`MAX_CONNECTIONS`] are open at once (more are closed
//! at accept), and accept errors back off instead of spinning.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::idle::{Activity, Tracked};
use super::State;

/// Admin connections open at once; a connection beyond this is closed as
/// soon as it is accepted. Probes and a scraper need a handful.
pub const MAX_CONNECTIONS: usize = 64;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.is_ready() && !state.current.load().pending.is_empty() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for ACME certificates\n",
        ),
        "/readyz" if state.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if state.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(
                crate::telemetry::metrics::metrics().encode(),
            )));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/certificates" => {
            let snapshot = state.current.load();
            let body = serde_json::to_vec_pretty(&snapshot.facts.entries).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Serves the admin endpoint until the process exits.
pub async fn serve(tcp: TcpListener, state: Arc<State>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (sock, client) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning
                // (as the data listeners do).
                tracing::warn!(listener = "admin", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                listener = "admin",
                client = %client,
                "connection refused: {MAX_CONNECTIONS} admin connections are open"
            );
            drop(sock);
            continue;
        };
        // The limits of the configuration in force when it was accepted.
        let (header_timeout, idle_timeout) = {
            let current = state.current.load();
            (
                current.limits.request_header_timeout,
                current.limits.idle_timeout,
            )
        };
        let state = state.clone();
        tokio::spawn(serve_connection(
            Admitted::new(sock, permit),
            state,
            header_timeout,
            idle_timeout,
        ));
    }
}

async fn serve_connection(
    sock: Admitted,
    state: Arc<State>,
    header_timeout: Duration,
    idle_timeout: Duration,
) {
    let activity = Activity::new();
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let in_flight = activity.request();
            let state = state.clone();
            async move {
                let r = handle(state, req).await;
                drop(in_flight);
                r
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(Tracked::new(sock, activity.clone())), svc);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            // Nothing to drain on the admin endpoint: an idle connection
            // (or one whose client stopped reading) is simply dropped.
            _ = tokio::time::sleep(idle_timeout.saturating_sub(activity.idle_for())) => {
                if activity.idle_for() >= idle_timeout {
                    return;
                }
            }
        }
    }
}

/// An accepted admin socket holding its connection slot. The slot is given
/// back before the socket is shut down or closed, so a client that has seen
/// its connection end can count on the slot being free again.
struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    sock: TcpStream,
}

impl Admitted {
    fn new(sock: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        Admitted {
            permit: Some(permit),
            sock,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // Fields drop after this body: the permit goes before the socket.
        self.permit.take();
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.sock).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.sock).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.sock).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.permit.take();
        Pin::new(&mut self.sock).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.sock).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.sock.is_write_vectored()
    }
}
