//! The HTTP proxy: HTTP/2 and WebSocket round trips, 502, 431, header
//! hygiene (hop-by-hop, injected identity, X-Forwarded-*), timeouts and the
//! connection limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;

use crate::support::client::{self, config, connect, exchange};
use crate::support::upstream::tcp_server;
use crate::support::{write, write_leaf, Ca, Gateway, Outcome, Spec, Upstream};

struct Proxy {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// One host `app.test` (no client auth) with routes `/echo`, `/down` (a
/// closed port), `/ws` (`ws_upstream`) and `/` (the recording upstream).
fn proxy(limits: &str, ws_upstream: Option<SocketAddr>) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Proxy CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(d, "ca.crt", &ca.cert_pem);
    let upstream = Upstream::start();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ws = ws_upstream.unwrap_or(closed);
    let cfg = format!(
        "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        routes:
          - {{ path: /echo, upstream: echo }}
          - {{ pathPrefix: /down, upstream: down }}
          - {{ pathPrefix: /ws, upstream: ws }}
          - {{ pathPrefix: /, upstream: rec }}
upstreams:
  echo: {{ builtin: echo }}
  rec: {{ url: \"http://{}\" }}
  down: {{ url: \"http://{closed}\" }}
  ws: {{ url: \"http://{ws}\" }}
{limits}",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Proxy {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

impl Proxy {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }
    fn send(&self, raw: &str) -> Outcome {
        let mut s = connect(self.addr(), "app.test", &config(&self.ca, None, &[])).unwrap();
        exchange(&mut s, raw)
    }
}

#[test]
fn http2_round_trip_to_http1_upstream() {
    let p = proxy("", None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config(&p.ca, None, &["h2"]))
            .connect(ServerName::try_from("app.test").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("https://app.test/h2?q=1")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"payload",
            )))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, body)
    });
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"from upstream");
    let seen = p.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/h2?q=1");
    assert_eq!(seen[0].header("host"), Some("app.test"));
}

#[test]
fn websocket_round_trip_through_the_proxy() {
    // A real WebSocket echo server as the upstream (its runtime also drives
    // the client below).
    let (ws_addr, rt) = tcp_server(|sock| async move {
        let mut ws = tokio_tungstenite::accept_async(sock).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                ws.send(msg).await.unwrap();
            }
        }
    });
    let p = proxy("", Some(ws_addr));
    let echoed = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config(&p.ca, None, &["http/1.1"]))
            .connect(ServerName::try_from("app.test").unwrap(), tcp)
            .await
            .unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async("wss://app.test/ws", tls)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            "hello through the gate",
        ))
        .await
        .unwrap();
        ws.next().await.unwrap().unwrap()
    });
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "hello through the gate"
    );
}

#[test]
fn unreachable_upstream_is_502_with_plain_body() {
    let p = proxy("", None);
    let out = p.send("GET /down HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    assert_eq!(out.status(), 502);
    assert!(
        out.body().contains("upstream \"down\" is unavailable"),
        "{out:?}"
    );
}

#[test]
fn unknown_path_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start(
        d,
        "certificates: { server: { certFile: server.crt, keyFile: server.key } }
listeners:
  - { name: main, address: \"127.0.0.1:0\", protocol: https,
      hosts: [ { hostnames: [app.test], certificate: server, routes: [ { pathPrefix: /api, upstream: echo } ] } ] }
upstreams: { echo: { builtin: echo } }
",
    );
    let cfg = config(&ca, None, &[]);
    assert_eq!(
        client::get(gw.addr("main"), "app.test", &cfg, "/apix").status(),
        404
    );
    assert_eq!(
        client::get(gw.addr("main"), "app.test", &cfg, "/api/x").status(),
        200
    );
}

#[test]
fn connect_method_is_refused_and_never_tunnels() {
    let p = proxy("", None);
    let up = p.upstream.addr;
    let out = p.send(&format!(
        "CONNECT {up} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(out.status(), 405);
    assert!(p.upstream.seen().is_empty());
}

#[test]
fn oversized_request_header_is_431() {
    let p = proxy("", None);
    let big = "a".repeat(70_000);
    let out = p.send(&format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(out.status(), 431);
    assert!(p.upstream.seen().is_empty());
}

#[test]
fn request_header_above_configured_limit_is_431() {
    let p = proxy("limits: { maxRequestHeaderBytes: 1024 }\n", None);
    let out = p.send(&format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(2000)
    ));
    assert_eq!(out.status(), 431);
    let ok = p.send(&format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Small: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100)
    ));
    assert_eq!(ok.status(), 200);
    assert_eq!(p.upstream.seen().len(), 1);
}

#[test]
fn client_cannot_inject_identity_or_smuggle_hop_by_hop_headers() {
    let p = proxy("", None);
    let out = p.send(
        "GET /x HTTP/1.1\r\nHost: app.test\r\n\
         Connection: close, X-Secret, X-Forwarded-For\r\n\
         X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: http\r\n\
         ssl-client-verify: SUCCESS\r\nSSL_CLIENT_VERIFY: SUCCESS\r\nSsl-Client-Subject-Dn: CN=admin\r\n\
         ssl-client-cert: forged\r\nssl-client-issuer-dn: CN=evil\r\n\
         X-Forwarded-Client-Cert: Hash=deadbeef;Subject=\"CN=admin\"\r\n\r\n",
    );
    assert_eq!(out.status(), 200);
    let seen = &p.upstream.seen()[0];
    for h in [
        "x-secret",
        "keep-alive",
        "te",
        "ssl-client-verify",
        "ssl_client_verify",
        "ssl-client-subject-dn",
        "ssl-client-cert",
        "ssl-client-issuer-dn",
        "x-forwarded-client-cert",
    ] {
        assert_eq!(
            seen.header(h),
            None,
            "{h} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test"));
}

#[test]
fn expect_100_continue_is_answered_by_the_gateway_not_forwarded() {
    let p = proxy("", None);
    let mut s = connect(p.addr(), "app.test", &config(&p.ca, None, &[])).unwrap();
    s.write_all(
        b"POST /read HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
          Expect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    s.flush().unwrap();
    // The body goes only after the interim answer, as curl does. (The
    // upstream reads the body before it answers: one that answers at once
    // may get its final answer to the client first, and no 100 is due.)
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    let out = exchange(&mut s, "hello");
    assert_eq!(out, Outcome::Http(200, "from upstream".into()));
    let seen = &p.upstream.seen()[0];
    assert_eq!(seen.header("expect"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("content-length"), Some("5"));
}

#[test]
fn silent_client_is_closed_after_handshake_timeout() {
    let p = proxy("limits: { handshakeTimeout: 300ms }\n", None);
    let mut tcp = TcpStream::connect(p.addr()).unwrap();
    tcp.set_read_timeout(Some(client::IO_TIMEOUT)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the gateway to close the connection, got {other:?}"),
    }
    assert!(
        started.elapsed() < client::IO_TIMEOUT,
        "closed by the gateway, not by the test's guard"
    );
    let line = p.gw.log.refusal("error");
    assert!(
        line["reason"]
            .as_str()
            .unwrap_or("")
            .contains("handshakeTimeout"),
        "{line}"
    );
}

#[test]
fn idle_keepalive_connection_is_closed_after_idle_timeout() {
    let p = proxy("limits: { idleTimeout: 300ms }\n", None);
    let mut s = connect(p.addr(), "app.test", &config(&p.ca, None, &[])).unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    // Read until EOF: the response, then the close caused by idleness.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("connection not closed cleanly: {e}"),
        }
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "the request was served first"
    );
}

#[test]
fn slow_request_header_is_cut_off() {
    let p = proxy("limits: { requestHeaderTimeout: 300ms }\n", None);
    let mut s = connect(p.addr(), "app.test", &config(&p.ca, None, &[])).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        .unwrap();
    s.flush().unwrap();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("expected the gateway to close the connection, got {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(p.upstream.seen().is_empty());
}

#[test]
fn connections_beyond_max_connections_are_closed() {
    let p = proxy("limits: { maxConnections: 1 }\n", None);
    let cfg = config(&p.ca, None, &[]);
    let mut first = connect(p.addr(), "app.test", &cfg).unwrap();
    let second = connect(p.addr(), "app.test", &cfg);
    assert!(second.is_err(), "the second connection must be refused");
    p.gw.log.wait_for("limit log", |v| {
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("maxConnections")
    });
    // The first one still works.
    assert_eq!(
        exchange(&mut first, &client::get_request("/echo", "app.test")).status(),
        200
    );
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let p = proxy("admin: { address: \"127.0.0.1:0\" }\n", None);
    let admin = p.gw.admin.unwrap();
    assert_eq!(client::plain_get(admin, "/healthz").status(), 200);
    assert_eq!(client::plain_get(admin, "/readyz").status(), 200);
    let status = { p }.gw.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn websocket_tunnels_hold_their_connection_slot_and_close_on_drain() {
    let (ws_addr, rt) = tcp_server(|sock| async move {
        let mut ws = tokio_tungstenite::accept_async(sock).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() {
                ws.send(msg).await.unwrap();
            }
        }
    });
    let p = proxy("limits: { maxConnections: 1 }\n", Some(ws_addr));
    let mut ws = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config(&p.ca, None, &["http/1.1"]))
            .connect(ServerName::try_from("app.test").unwrap(), tcp)
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async("wss://app.test/ws", tls)
            .await
            .unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::text("x"))
            .await
            .unwrap();
        assert!(ws.next().await.unwrap().unwrap().is_text());
        ws
    });
    // The tunnel still holds the only connection slot.
    let second = connect(p.addr(), "app.test", &config(&p.ca, None, &[]));
    assert!(
        second.is_err(),
        "a connection beyond maxConnections was served"
    );
    // SIGTERM closes the tunnel.
    let status = { p }.gw.terminate();
    assert!(status.success(), "{status}");
    let next = rt.block_on(ws.next());
    assert!(
        !matches!(next, Some(Ok(ref m)) if m.is_text()),
        "the tunnel outlived the drain: {next:?}"
    );
}
