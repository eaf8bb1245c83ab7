//! Dispatch to an HTTP upstream through a pooled client, and WebSocket
//! tunnels (the one upgrade that is forwarded, SPEC §2).

use http::header::HeaderValue;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::balance::Balancer;
use super::pipeline::plain;
use super::{headers, Body, Conn};
use crate::config::model::HostHeader;

/// What a connection does with a WebSocket upgrade the upstream accepted.
pub(super) trait Tunnel {
    /// Splices the client's upgraded connection to the upstream's.
    fn tunnel(&self, client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade);
}

/// Sends the (already rewritten) request to an HTTP upstream.
pub(super) async fn proxy(
    cx: &impl Tunnel,
    mut req: Request<Incoming>,
    name: &str,
    host_header: &HostHeader,
    balancer: &Balancer,
    host: &HeaderValue,
) -> Response<Body> {
    // The upgrade was vetted by `headers::strip_hop_by_hop`, which left
    // the `Upgrade` header only for WebSocket.
    let upgrade = req.headers().get(http::header::UPGRADE).cloned();
    let grpc = is_grpc(req.headers());
    if upgrade.is_some() && balancer.is_http2() {
        // HTTP/2 has no Upgrade: the request would reach the upstream as a
        // plain one and the client would wait for a 101 that never comes.
        return plain(
            StatusCode::NOT_IMPLEMENTED,
            format!("upstream \"{name}\" speaks HTTP/2; WebSocket needs an HTTP/1.1 upstream"),
        );
    }
    // Origin-form: the connection already leads to the upstream. The
    // path is shared, not copied.
    let target = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(target);
    *req.version_mut() = Version::HTTP_11;
    // `100-continue` was the gateway's to answer (hyper answers it when
    // the body is first read); the upstream gets the body as it comes.
    req.headers_mut().remove(http::header::EXPECT);
    let downstream_upgrade = if upgrade.is_some() {
        req.headers_mut().insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        // Take the client side of the upgrade before the request is sent.
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let sent = balancer.send(req, host_header, host).await;
    match sent {
        Ok(mut resp) => {
            match (resp.status(), downstream_upgrade) {
                (StatusCode::SWITCHING_PROTOCOLS, Some(client_side)) => {
                    cx.tunnel(client_side, hyper::upgrade::on(&mut resp));
                }
                _ => {
                    headers::strip_hop_by_hop(resp.headers_mut());
                }
            }
            resp.map(Either::Left)
        }
        Err(failed) => {
            balancer.report(&failed.endpoint, &failed.error, false);
            if grpc {
                return grpc_unavailable(name);
            }
            plain(
                StatusCode::BAD_GATEWAY,
                format!("upstream \"{name}\" is unavailable"),
            )
        }
    }
}

/// Whether a request is a gRPC call (`application/grpc`, `+proto`, …).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(v.get(16), None | Some(b'+') | Some(b';'))
    })
}

/// A gRPC client's answer when the upstream cannot be reached: status 14
/// (UNAVAILABLE) in a trailers-only response, as Envoy gives, rather than
/// an HTTP 502 that gRPC clients report as an opaque protocol error.
fn grpc_unavailable(name: &str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(
        http_body_util::Full::new(bytes::Bytes::new()),
    ));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static("14"));
    // grpc-message is percent-encoded outside printable ASCII; an upstream
    // name is a config key (printable).
    if let Ok(v) = HeaderValue::from_str(&format!("upstream \"{name}\" is unavailable")) {
        h.insert("grpc-message", v);
    }
    resp
}

impl Tunnel for Conn {
    /// Splices an upgraded (WebSocket) connection to the upstream's. The
    /// tunnel holds the connection's slot, so it counts toward
    /// `maxConnections` until it ends, and it closes when the gateway
    /// drains or the connection is asked to close (SPEC §2, §3: revoked,
    /// expired, policy changed).
    fn tunnel(&self, client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
        let slot = self.slot.clone();
        let mut drain = self.drain.clone();
        let closer = self.closer.clone();
        // Counted now, before the response leaves: the connection's task
        // sees the tunnel as soon as the HTTP connection ends, and keeps
        // judging it (revocation, expiry, reload) until it closes.
        let open = self.tunnels.open();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
                return;
            };
            let mut c = TokioIo::new(c);
            let mut u = TokioIo::new(u);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                _ = drain.wait_for(|d| *d) => {}
                _ = closer.closed() => {}
            }
        });
    }
}
