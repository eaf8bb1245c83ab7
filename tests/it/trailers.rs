//! Request trailers are not a way around identity stripping (SPEC §4): a
//! client that puts `x-forwarded-client-cert`, RFC 9440 `client-cert`,
//! ingress-nginx `ssl-client-*` or a configured `requestHeaders` name in
//! its trailers never gets them to the upstream, over HTTP/2 or HTTP/1.1,
//! in any spelling. The gateway drops request trailers altogether (a gRPC
//! server such as grpc-go answers client trailers by closing the whole,
//! shared, connection); response trailers travel (see `grpc`).

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use rustls::pki_types::ServerName;

use crate::support::client::{config, connect, parse_response};
use crate::support::upstream::Seen;
use crate::support::{write, write_leaf, Ca, Gateway, Leaf, Spec, Upstream};

/// Identity names a client may try in its trailers (normalized:
/// lower case, `-`).
const IDENTITY: [&str; 7] = [
    "x-forwarded-client-cert",
    "client-cert",
    "client-cert-chain",
    "ssl-client-cert",
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "x-client-cn",
];

fn rig(upstream: &Upstream, version: &str) -> (Gateway, Ca, Leaf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Trailers CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(d, "ca.crt", &ca.cert_pem);
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: {{ mode: optional, trustBundle: clients }}
        forwardClientCert: sanitizeSet
        clientCertHeaders: true
        passCertificateToUpstream: true
        requestHeaders:
          X-Client-CN: \"%DOWNSTREAM_PEER_SUBJECT%\"
        routes: [{{ pathPrefix: /, upstream: up }}]
upstreams:
  up: {{ url: \"http://{}\", version: {version} }}
",
            upstream.addr
        ),
    );
    let leaf = ca.leaf(&Spec::client("honest"));
    (gw, ca, leaf, dir)
}

/// An HTTP/2 client connection to `addr` as app.test (its task spawned).
async fn h2<B>(
    addr: std::net::SocketAddr,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(ServerName::try_from("app.test").unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// `n` GETs of `PREFIX/i` at once, as streams of one HTTP/2 connection.
fn concurrent_gets(
    gw: &Gateway,
    ca: &Ca,
    n: usize,
    prefix: &str,
) -> Vec<Result<u16, hyper::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let send = h2(gw.addr("main"), &config(ca, None, &["h2"])).await;
        let calls = (0..n).map(|i| {
            let mut send = send.clone();
            async move {
                let req = http::Request::get(format!("https://app.test{prefix}/{i}"))
                    .body(http_body_util::Empty::<Bytes>::new())
                    .unwrap();
                send.send_request(req).await.map(|r| r.status().as_u16())
            }
        });
        futures_util::future::join_all(calls).await
    })
}

/// A gateway for app.test in front of TLS upstreams verified with `ca` as
/// up.test: (name, address, extra keys); `/NAME/…` goes to NAME, any other
/// path to the first.
fn tls_upstreams(
    ca: &Ca,
    ups: &[(&str, std::net::SocketAddr, &str)],
) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(d, "ca.crt", &ca.cert_pem);
    let mut routes = String::new();
    let mut upstreams = String::new();
    for (name, addr, extra) in ups {
        routes += &format!("          - {{ pathPrefix: /{name}/, upstream: {name} }}\n");
        upstreams += &format!(
            "  {name}: {{ url: \"https://{addr}\"{extra}, tls: {{ trustBundle: ca, serverName: up.test }} }}\n"
        );
    }
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  ca: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        routes:
{routes}          - {{ pathPrefix: /, upstream: {first} }}
upstreams:
{upstreams}",
            first = ups[0].0
        ),
    );
    (gw, dir)
}

fn normalized(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase().replace('_', "-"), v.clone()))
        .collect()
}

/// Asserts that no identity name came as a trailer and that the upstream's
/// headers hold only what the gateway computed.
fn assert_clean(seen: &Seen) {
    let trailers = normalized(&seen.trailers);
    for name in IDENTITY {
        assert!(
            !trailers.iter().any(|(k, _)| k == name),
            "{name} reached the upstream as a trailer: {trailers:?}"
        );
    }
    let headers = normalized(&seen.headers);
    for (k, v) in &headers {
        assert!(!v.contains("evil"), "{k}: {v}");
    }
}

#[test]
fn request_trailers_never_reach_an_http2_upstream() {
    let upstream = Upstream::start_h2c();
    let (gw, ca, leaf, _dir) = rig(&upstream, "http2");
    for cert in [None, Some(&leaf)] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = rt.block_on(async {
            let mut send = h2(gw.addr("main"), &config(&ca, cert, &["h2"])).await;
            let mut trailers = http::HeaderMap::new();
            for name in IDENTITY {
                trailers.append(name, http::HeaderValue::from_static("evil"));
            }
            trailers.append("x-checksum", http::HeaderValue::from_static("abc123"));
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"payload"))),
                Ok(Frame::trailers(trailers)),
            ];
            let req = http::Request::post("https://app.test/read")
                .header("te", "trailers")
                .body(StreamBody::new(futures_util::stream::iter(frames)))
                .unwrap();
            send.send_request(req).await.unwrap().status()
        });
        assert_eq!(status, 200);
        upstream.wait_for(usize::from(cert.is_some()) + 1);
        let seen = upstream.seen().pop().unwrap();
        assert_clean(&seen);
        assert_eq!(seen.trailers, Vec::<(String, String)>::new(), "dropped");
        assert_eq!(seen.method, "POST");
        if cert.is_some() {
            assert!(seen
                .header("x-forwarded-client-cert")
                .is_some_and(|v| v.contains("CN=honest")));
        }
    }
}

#[test]
fn identity_trailers_never_reach_an_http1_upstream() {
    let upstream = Upstream::start();
    let (gw, ca, _leaf, _dir) = rig(&upstream, "http1");
    let mut s = connect(gw.addr("main"), "app.test", &config(&ca, None, &[])).unwrap();
    let mut chunked = String::from(
        "POST /read HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
         Trailer: x-forwarded-client-cert, ssl_client_verify, X-Client-CN\r\n\
         TE: trailers\r\nConnection: close\r\n\r\n7\r\npayload\r\n0\r\n",
    );
    for name in IDENTITY {
        chunked.push_str(&format!("{name}: evil\r\n"));
    }
    chunked.push_str("SSL_CLIENT_VERIFY: evil\r\nx-checksum: abc123\r\n\r\n");
    s.write_all(chunked.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    assert_eq!(parse_response(&out).status(), 200);
    let seen = upstream.seen().pop().unwrap();
    assert_clean(&seen);
    assert_eq!(seen.trailers, Vec::<(String, String)>::new());
}

#[test]
fn a_websocket_upgrade_to_an_http2_upstream_is_refused_not_downgraded() {
    let upstream = Upstream::start_h2c();
    let (gw, ca, _leaf, _dir) = rig(&upstream, "http2");
    let mut s = connect(gw.addr("main"), "app.test", &config(&ca, None, &[])).unwrap();
    let out = crate::support::client::exchange(
        &mut s,
        "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(out.status(), 501, "{out:?}");
    assert!(out.body().contains("WebSocket needs an HTTP/1.1 upstream"));
    assert!(upstream.seen().is_empty());
}

/// `version: auto` toward `https://` follows ALPN: HTTP/2 when the
/// upstream offers it, HTTP/1.1 when it does not; `http1` stays HTTP/1.1;
/// a WebSocket upgrade goes over HTTP/1.1 even to an upstream that chose
/// HTTP/2 for everything else.
#[test]
fn auto_follows_alpn_over_tls_and_upgrades_stay_on_http1() {
    let ca = Ca::root("ALPN CA");
    let leaf = ca.leaf(&Spec::server(&["up.test"]));
    let both = Upstream::start_tls(&leaf, &["h2", "http/1.1"]);
    let h1 = Upstream::start_tls(&leaf, &["http/1.1"]);
    let (gw, _dir) = tls_upstreams(
        &ca,
        &[
            ("auto", both.addr, ""),
            ("pinned", both.addr, ", version: http1"),
            ("old", h1.addr, ""),
        ],
    );
    let get = |path: &str, extra: &str| {
        let mut s = connect(gw.addr("main"), "app.test", &config(&ca, None, &[])).unwrap();
        crate::support::client::exchange(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{extra}Connection: close\r\n\r\n"),
        )
        .status()
    };
    for path in ["/auto/1", "/auto/2", "/pinned/1"] {
        assert_eq!(get(path, ""), 200, "{path}");
    }
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // The upstream answers the upgrade with a plain 200 (no 101): what
    // matters is how it arrived.
    assert_eq!(get("/auto/ws", ws), 200);
    assert_eq!(get("/old/1", ""), 200);
    let seen = |u: &Upstream| -> Vec<(String, String)> {
        u.seen()
            .iter()
            .map(|s| (s.uri.clone(), s.version.clone()))
            .collect()
    };
    let both_seen = seen(&both);
    let version_of = |path: &str| {
        both_seen
            .iter()
            .find(|(u, _)| u.ends_with(path))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{path} not seen: {both_seen:?}"))
    };
    assert_eq!(version_of("/auto/1"), "HTTP/2.0");
    assert_eq!(version_of("/auto/2"), "HTTP/2.0");
    assert_eq!(version_of("/pinned/1"), "HTTP/1.1");
    assert_eq!(version_of("/auto/ws"), "HTTP/1.1");
    let ws_seen = both
        .seen()
        .into_iter()
        .find(|s| s.uri.ends_with("/auto/ws"))
        .unwrap();
    assert_eq!(ws_seen.header("upgrade"), Some("websocket"));
    assert_eq!(
        seen(&h1),
        vec![("/old/1".to_string(), "HTTP/1.1".to_string())]
    );
}

/// One HTTP/2 connection to an endpoint carries at most 100 of the
/// gateway's streams: 150 concurrent slow calls open a second connection
/// instead of queueing behind the first (one client's long streams cannot
/// take every stream of the endpoint).
#[test]
fn streams_beyond_one_connection_s_share_open_another() {
    let upstream = Upstream::start_h2c();
    let (gw, ca, _leaf, _dir) = rig(&upstream, "http2");
    let statuses = concurrent_gets(&gw, &ca, 150, "/slow");
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    assert_eq!(upstream.seen().len(), 150);
    assert_eq!(
        upstream.connections(),
        2,
        "100 streams on the first, 50 on a second"
    );
}

/// An `auto` endpoint that chose HTTP/2 and is then replaced by one that
/// only speaks HTTP/1.1 (a new deployment on the same address) is followed:
/// the request that finds out goes over HTTP/1.1, no failure reaches the
/// client.
#[test]
fn auto_follows_an_endpoint_that_stops_choosing_h2() {
    let ca = Ca::root("ALPN CA");
    let leaf = ca.leaf(&Spec::server(&["up.test"]));
    let first = Upstream::start_tls(&leaf, &["h2", "http/1.1"]);
    let addr = first.addr;
    let (gw, _dir) = tls_upstreams(&ca, &[("auto", addr, "")]);
    let get = |path: &str| {
        let mut s = connect(gw.addr("main"), "app.test", &config(&ca, None, &[])).unwrap();
        crate::support::client::exchange(
            &mut s,
            &crate::support::client::get_request(path, "app.test"),
        )
        .status()
    };
    assert_eq!(get("/before"), 200);
    assert_eq!(first.seen()[0].version, "HTTP/2.0");
    drop(first);
    let second = Upstream::start_tls_on(&addr.to_string(), &leaf, &["http/1.1"]);
    assert_eq!(get("/after"), 200);
    assert_eq!(get("/again"), 200);
    let versions: Vec<String> = second.seen().iter().map(|s| s.version.clone()).collect();
    assert_eq!(versions, ["HTTP/1.1", "HTTP/1.1"]);
}

/// The first requests to an `auto` endpoint wait for one negotiation
/// rather than each opening a TLS connection: a burst of 40 reaches an
/// upstream that chooses h2 over one connection.
#[test]
fn a_burst_of_first_requests_negotiates_once() {
    let ca = Ca::root("ALPN CA");
    let up = Upstream::start_tls(&ca.leaf(&Spec::server(&["up.test"])), &["h2", "http/1.1"]);
    let (gw, _dir) = tls_upstreams(&ca, &[("auto", up.addr, "")]);
    let statuses = concurrent_gets(&gw, &ca, 40, "/burst");
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    assert!(up.seen().iter().all(|s| s.version == "HTTP/2.0"));
    assert_eq!(up.connections(), 1);
}
