//! The request side of a proxied exchange: the body wrapper that tells the
//! pool when a request was sent to its end (and the balancer when the
//! client's own body failed), and the in-flight counts of endpoints and
//! HTTP/2 connections.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};

/// Wraps a request's body so the pool knows when it was sent to its end,
/// and the balancer when the client's own body failed. `None` for a body
/// empty from the start (no allocation: it is sent, and cannot fail).
pub(crate) fn track(req: Request<Incoming>) -> (Request<Tracked>, Option<Arc<Upload>>) {
    let (parts, body) = req.into_parts();
    let upload = (!body.is_end_stream()).then(Arc::<Upload>::default);
    let tracked = Tracked {
        inner: body,
        upload: upload.clone(),
    };
    (Request::from_parts(parts, tracked), upload)
}

/// What became of a request's body, as its wrapper saw it.
#[derive(Debug, Default)]
pub(crate) struct Upload {
    sent: AtomicBool,
    broken: AtomicBool,
}

impl Upload {
    /// Handed to the connection to its end.
    pub(crate) fn sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }

    /// The client's own body failed (it went away mid-upload).
    pub(crate) fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// Counts a request in flight on an endpoint (`leastRequest`) until its
/// response body is dropped.
pub(crate) struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    /// Counts one more on `n`.
    pub(crate) fn start(n: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request body that tells when it has been read to its end.
pub(crate) struct Tracked {
    inner: Incoming,
    upload: Option<Arc<Upload>>,
}

impl Tracked {
    fn mark_sent(&mut self) {
        if let Some(u) = &self.upload {
            u.sent.store(true, Ordering::Release);
        }
    }

    fn mark_broken(&mut self) {
        if let Some(u) = &self.upload {
            u.broken.store(true, Ordering::Release);
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Request trailers end the body here: none of the protocols proxied
        // needs them, identity headers could ride in them past the
        // stripping of the head, and a gRPC server (grpc-go) answers them
        // by closing the whole connection, every client's streams with it.
        if let Poll::Ready(Some(Ok(f))) = &polled {
            if f.is_trailers() {
                this.mark_sent();
                return Poll::Ready(None);
            }
        }
        match &polled {
            Poll::Ready(Some(Err(_))) => this.mark_broken(),
            Poll::Ready(None) => this.mark_sent(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.mark_sent(),
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
