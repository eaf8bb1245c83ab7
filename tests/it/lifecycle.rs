//! What happens to connections that are already open (SPEC §2, §3): a
//! reload that changes their client-authentication policy drains them, one
//! that keeps it makes them follow the new routes and forwarding; a CRL
//! that revokes their certificate, or its notAfter passing, closes them;
//! a resumed session is judged again and lives `tls.sessionLifetime`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;

use crate::support::client::{config, config_with, connect, Tls};
use crate::support::upstream::tcp_server;
use crate::support::{replace, write, write_leaf, Ca, Gateway, Leaf, Spec, Upstream};

/// Sends one keep-alive GET and reads exactly one response; `None` when the
/// connection was closed instead.
fn keepalive_get(s: &mut Tls, path: &str, extra: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{extra}\r\n");
    if s.write_all(req.as_bytes()).and_then(|_| s.flush()).is_err() {
        return None;
    }
    read_response(s)
}

fn read_response(s: &mut Tls) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let status = head.split(' ').nth(1)?.parse().ok()?;
            return Some((status, head));
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the peer closed the connection (EOF or reset), reading what is left.
fn closed_by_peer(s: &mut Tls) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    }
}

fn metric(gw: &Gateway, name: &str, labels: &str) -> f64 {
    let out = crate::support::client::plain_get(gw.admin.unwrap(), "/metrics");
    let prefix = format!("{name}{{{labels}}} ");
    out.body()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// An HTTP/2 connection driven on its own runtime.
struct H2 {
    rt: tokio::runtime::Runtime,
    send: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    done: tokio::task::JoinHandle<()>,
}

impl H2 {
    fn open(addr: SocketAddr, cfg: std::sync::Arc<rustls::ClientConfig>) -> H2 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (send, done) = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(ServerName::try_from("app.test").unwrap(), tcp)
                .await
                .unwrap();
            let (send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            .unwrap();
            let done = tokio::spawn(async move {
                let _ = conn.await;
            });
            (send, done)
        });
        H2 { rt, send, done }
    }

    /// The status of a GET, or `None` when the request could not be sent.
    fn get(&mut self, path: &str) -> Option<u16> {
        let send = &mut self.send;
        self.rt.block_on(async {
            let req = http::Request::get(format!("https://app.test{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.ok()?;
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            Some(status)
        })
    }

    /// Waits until the server ended the connection (GOAWAY and close).
    fn wait_closed(self) {
        let H2 { rt, done, send } = self;
        drop(send);
        rt.block_on(async {
            tokio::time::timeout(crate::support::gateway::WAIT, done)
                .await
                .expect("HTTP/2 connection still open")
                .unwrap();
        });
    }
}

struct Rig {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    dir: tempfile::TempDir,
}

fn config_text(client_auth: &str, extra_host: &str, routes: &str, up: SocketAddr) -> String {
    format!(
        "admin: {{ address: \"127.0.0.1:0\" }}
certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ clients: {{ caFile: ca.crt, crlFiles: [ca.crl] }} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: {client_auth}
{extra_host}        routes:
{routes}
upstreams:
  rec: {{ url: \"http://{up}\" }}
"
    )
}

const ROUTES: &str = "          - { pathPrefix: /, upstream: rec }";

fn rig(client_auth: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Lifecycle CA");
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let upstream = Upstream::start();
    let gw = Gateway::start(d, &config_text(client_auth, "", ROUTES, upstream.addr));
    Rig {
        gw,
        ca,
        upstream,
        dir,
    }
}

impl Rig {
    /// Rewrites the config and waits for the reload.
    fn reload(&self, text: &str) {
        let before = self.gw.log.messages("reloaded").len();
        replace(self.dir.path(), "portcullis.yaml", text);
        self.gw.wait_messages("reloaded", before + 1);
    }
}

#[test]
fn a_reload_that_requires_certificates_drains_anonymous_connections() {
    let r = rig("{ mode: none }");
    let addr = r.gw.addr("main");
    let mut h1 = connect(addr, "app.test", &config(&r.ca, None, &[])).unwrap();
    assert_eq!(
        keepalive_get(&mut h1, "/before", "").map(|x| x.0),
        Some(200)
    );
    let mut h2 = H2::open(addr, config(&r.ca, None, &["h2"]));
    assert_eq!(h2.get("/before"), Some(200));
    r.upstream.wait_for(2);

    r.reload(&config_text(
        "{ mode: require, trustBundle: clients }",
        "",
        ROUTES,
        r.upstream.addr,
    ));
    // Either already closed by the drain, or answered 421 and closed.
    match keepalive_get(&mut h1, "/after", "") {
        None => {}
        Some((status, head)) => {
            assert_eq!(status, 421, "{head}");
            assert!(
                head.to_ascii_lowercase().contains("connection: close"),
                "{head}"
            );
            assert!(closed_by_peer(&mut h1));
        }
    }
    let after = h2.get("/after");
    assert!(after.is_none() || after == Some(421), "{after:?}");
    h2.wait_closed();
    assert_eq!(r.upstream.seen().len(), 2, "{:?}", r.upstream.seen());
    let mut drained = 0;
    r.gw.log.wait_for("two drained connections", |v| {
        if v["message"] == "closing connection" && v["reason"] == "policy_changed" {
            drained += 1;
        }
        drained >= 2
    });
    assert!(
        metric(
            &r.gw,
            "portcullis_connections_closed_total",
            "listener=\"main\",reason=\"policy_changed\""
        ) >= 2.0
    );
    // New connections get the new policy.
    let out = crate::support::client::get(addr, "app.test", &config(&r.ca, None, &[]), "/new");
    assert!(
        !matches!(out, crate::support::Outcome::Http(200, _)),
        "{out:?}"
    );
}

#[test]
fn a_reload_that_keeps_the_policy_applies_new_routes_and_forwarding_to_open_connections() {
    let auth = "{ mode: optional, trustBundle: clients }";
    let r = rig(auth);
    let addr = r.gw.addr("main");
    let alice = r.ca.leaf(&Spec::client("alice"));
    let mut h1 = connect(addr, "app.test", &config(&r.ca, Some(&alice), &[])).unwrap();
    assert_eq!(keepalive_get(&mut h1, "/x", "").map(|x| x.0), Some(200));
    let mut h2 = H2::open(addr, config(&r.ca, Some(&alice), &["h2"]));
    assert_eq!(h2.get("/x"), Some(200));

    r.reload(&config_text(
        auth,
        "        requestHeaders: { X-Client-Subject: \"%DOWNSTREAM_PEER_SUBJECT%\" }\n",
        "          - { pathPrefix: /admin, upstream: rec, allow: { commonNames: [ops] } }\n          - { pathPrefix: /, upstream: rec }",
        r.upstream.addr,
    ));
    // The new route's allow applies, on HTTP/1.1 and HTTP/2.
    assert_eq!(
        keepalive_get(&mut h1, "/admin/x", "").map(|x| x.0),
        Some(403)
    );
    assert_eq!(h2.get("/%61dmin/x"), Some(403));
    // The new requestHeaders are stripped and set on the old connection.
    assert_eq!(
        keepalive_get(
            &mut h1,
            "/y",
            "X-Client-Subject: CN=ops\r\nx_client_subject: CN=ops\r\n"
        )
        .map(|x| x.0),
        Some(200)
    );
    r.upstream.wait_for(3);
    let seen = &r.upstream.seen()[2];
    assert_eq!(seen.all("x-client-subject"), vec!["CN=alice"], "{seen:?}");
    assert_eq!(
        metric(
            &r.gw,
            "portcullis_connections_closed_total",
            "listener=\"main\",reason=\"policy_changed\""
        ),
        0.0
    );
}

/// A TCP echo server.
fn echo_server() -> (SocketAddr, tokio::runtime::Runtime) {
    tcp_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
}

fn stream_config(echo: SocketAddr) -> String {
    format!(
        "  - name: tcp-in
    address: 127.0.0.1:0
    protocol: tls
    certificate: server
    clientAuth: {{ mode: require, trustBundle: clients }}
    upstream: echo-tcp
  - name: legacy
    address: 127.0.0.1:0
    protocol: https
    tls: {{ minVersion: \"1.2\" }}
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ pathPrefix: /, upstream: rec }}]
upstreams:
  echo-tcp: {{ address: \"{echo}\" }}
"
    )
}

fn rig_with_streams(client_auth: &str, echo: SocketAddr) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Lifecycle CA");
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let upstream = Upstream::start();
    let text = config_text(client_auth, "", ROUTES, upstream.addr)
        .replace("upstreams:\n", &stream_config(echo));
    let gw = Gateway::start(d, &text);
    Rig {
        gw,
        ca,
        upstream,
        dir,
    }
}

fn ping(s: &mut Tls) -> bool {
    s.write_all(b"ping").is_ok() && {
        let mut b = [0u8; 4];
        s.read_exact(&mut b).is_ok() && &b == b"ping"
    }
}

fn open_all(r: &Rig, client: &Leaf) -> (Tls, H2, Tls) {
    let addr = r.gw.addr("main");
    let mut h1 = connect(addr, "app.test", &config(&r.ca, Some(client), &[])).unwrap();
    assert_eq!(keepalive_get(&mut h1, "/x", "").map(|x| x.0), Some(200));
    let mut h2 = H2::open(addr, config(&r.ca, Some(client), &["h2"]));
    assert_eq!(h2.get("/x"), Some(200));
    let mut tcp = connect(
        r.gw.addr("tcp-in"),
        "app.test",
        &config(&r.ca, Some(client), &[]),
    )
    .unwrap();
    assert!(ping(&mut tcp));
    (h1, h2, tcp)
}

#[test]
fn a_crl_that_revokes_a_client_closes_its_open_connections() {
    let (echo, _rt) = echo_server();
    let r = rig_with_streams("{ mode: require, trustBundle: clients }", echo);
    let alice = r.ca.leaf(&Spec::client("alice"));
    let bob = r.ca.leaf(&Spec::client("bob"));
    let (mut h1, h2, mut tcp) = open_all(&r, &alice);
    let mut bob_h1 = connect(
        r.gw.addr("main"),
        "app.test",
        &config(&r.ca, Some(&bob), &[]),
    )
    .unwrap();
    assert_eq!(
        keepalive_get(&mut bob_h1, "/bob", "").map(|x| x.0),
        Some(200)
    );

    replace(r.dir.path(), "ca.crl", &r.ca.crl(&[&alice.serial]));
    let mut closed = 0;
    let line = r.gw.log.wait_for("three revocations", |v| {
        if v["message"] == "closing connection" && v["reason"] == "revoked" {
            closed += 1;
        }
        closed >= 3
    });
    assert_eq!(line["subject"], "CN=alice");
    assert!(closed_by_peer(&mut h1), "HTTP/1.1 connection still open");
    h2.wait_closed();
    assert!(closed_by_peer(&mut tcp), "tls stream still open");
    assert_eq!(
        metric(
            &r.gw,
            "portcullis_connections_closed_total",
            "listener=\"main\",reason=\"revoked\""
        ),
        2.0
    );
    assert_eq!(
        metric(
            &r.gw,
            "portcullis_connections_closed_total",
            "listener=\"tcp-in\",reason=\"revoked\""
        ),
        1.0
    );
    // Bob's connection is untouched.
    assert_eq!(
        keepalive_get(&mut bob_h1, "/bob", "").map(|x| x.0),
        Some(200)
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits for wall-clock time to reach `t` (what expiry is about).
fn wait_until(t: u64) {
    while unix_now() < t {
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_expiring_certificate_closes_its_connections_and_cannot_resume() {
    let (echo, _rt) = echo_server();
    let r = rig_with_streams("{ mode: require, trustBundle: clients }", echo);
    let lifetime = 5;
    let made = unix_now();
    let brief = r.ca.leaf(&Spec {
        not_after_secs: Some(lifetime),
        ..Spec::client("brief")
    });
    // Sessions to resume later: TLS 1.3 on `main`, TLS 1.2 on `legacy`.
    let cfg13 = config(&r.ca, Some(&brief), &[]);
    let cfg12 = config_with(&r.ca.der, Some(&brief), &[], Some(&rustls::version::TLS12));
    let mut s12 = connect(r.gw.addr("legacy"), "app.test", &cfg12).unwrap();
    assert_eq!(keepalive_get(&mut s12, "/x", "").map(|x| x.0), Some(200));
    let (mut h1, h2, mut tcp) = open_all(&r, &brief);
    let mut first = connect(r.gw.addr("main"), "app.test", &cfg13).unwrap();
    assert_eq!(keepalive_get(&mut first, "/x", "").map(|x| x.0), Some(200));
    drop(first);
    // Resumption works while the certificate is valid.
    let mut again = connect(r.gw.addr("main"), "app.test", &cfg13).unwrap();
    assert_eq!(
        again.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(keepalive_get(&mut again, "/x", "").map(|x| x.0), Some(200));
    drop(again);
    assert!(
        unix_now() < made + lifetime as u64,
        "the test machine is too slow"
    );

    let mut closed = 0;
    r.gw.log.wait_for("expiry closes", |v| {
        if v["message"] == "closing connection" && v["reason"] == "expired" {
            closed += 1;
        }
        closed >= 4
    });
    assert!(closed_by_peer(&mut h1));
    h2.wait_closed();
    assert!(closed_by_peer(&mut tcp));
    assert!(closed_by_peer(&mut s12));

    // The sessions made before expiry do not resume now.
    wait_until(made + lifetime as u64 + 1);
    for (listener, cfg) in [("main", &cfg13), ("legacy", &cfg12)] {
        let refused = r.gw.log.messages("tls handshake refused").len();
        match connect(r.gw.addr(listener), "app.test", cfg) {
            Ok(mut s) => {
                assert_eq!(
                    s.conn.handshake_kind(),
                    Some(rustls::HandshakeKind::Resumed)
                );
                assert_eq!(keepalive_get(&mut s, "/late", ""), None, "{listener}");
            }
            Err(o) => panic!("{listener}: a resumption attempt was expected, got {o:?}"),
        }
        r.gw.wait_messages("tls handshake refused", refused + 1);
        let last = r.gw.log.messages("tls handshake refused").pop().unwrap();
        assert_eq!(last["result"], "expired", "{last}");
    }
    assert!(r.upstream.seen().iter().all(|s| s.uri != "/late"));
}

#[test]
fn sessions_live_session_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Lifetime CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start(
        d,
        "certificates: { server: { certFile: server.crt, keyFile: server.key } }
trustBundles: { clients: { caFile: ca.crt } }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    tls: { minVersion: \"1.2\", sessionLifetime: 1s }
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: { mode: require, trustBundle: clients }
        routes: [{ pathPrefix: /, upstream: echo }]
upstreams: { echo: { builtin: echo } }
",
    );
    let alice = ca.leaf(&Spec::client("alice"));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let cfg = config_with(&ca.der, Some(&alice), &[], Some(version));
        let mut first = connect(gw.addr("main"), "app.test", &cfg).unwrap();
        assert_eq!(keepalive_get(&mut first, "/", "").map(|x| x.0), Some(200));
        let mut second = connect(gw.addr("main"), "app.test", &cfg).unwrap();
        assert_eq!(
            second.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        assert_eq!(keepalive_get(&mut second, "/", "").map(|x| x.0), Some(200));
        wait_until(unix_now() + 3);
        let mut third = connect(gw.addr("main"), "app.test", &cfg).unwrap();
        assert_eq!(
            third.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "{version:?}: a session older than sessionLifetime resumed"
        );
        assert_eq!(keepalive_get(&mut third, "/", "").map(|x| x.0), Some(200));
    }
}

#[test]
fn a_reload_closes_tls_streams_it_no_longer_admits() {
    let (echo, _rt) = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Stream CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let text = |allow: &str, mode: &str| {
        format!(
            "certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ clients: {{ caFile: ca.crt }} }}
listeners:
  - name: tcp-in
    address: 127.0.0.1:0
    protocol: tls
    certificate: server
    clientAuth: {{ mode: {mode}, trustBundle: clients, allow: {{ commonNames: [{allow}] }} }}
    upstream: echo-tcp
upstreams:
  echo-tcp: {{ address: \"{echo}\" }}
"
        )
    };
    let gw = Gateway::start(d, &text("alice, bob, carol", "require"));
    let open = |cn: &str| {
        let leaf = ca.leaf(&Spec::client(cn));
        let mut s = connect(
            gw.addr("tcp-in"),
            "app.test",
            &config(&ca, Some(&leaf), &[]),
        )
        .unwrap();
        assert!(ping(&mut s), "{cn}");
        s
    };
    let (mut alice, mut bob, mut carol) = (open("alice"), open("bob"), open("carol"));

    // Same policy, narrower allow: bob's stream is closed, alice's stays.
    let before = gw.log.messages("reloaded").len();
    replace(d, "portcullis.yaml", &text("alice, carol", "require"));
    gw.wait_messages("reloaded", before + 1);
    assert!(closed_by_peer(&mut bob), "bob's stream outlived the reload");
    assert!(ping(&mut alice));
    // Another policy (optional instead of require): every stream is closed.
    replace(d, "portcullis.yaml", &text("alice, carol", "optional"));
    gw.wait_messages("reloaded", before + 2);
    assert!(closed_by_peer(&mut alice));
    assert!(closed_by_peer(&mut carol));
    let mut closes = 0;
    gw.log.wait_for("three streams closed", |v| {
        if v["message"] == "closing connection" && v["reason"] == "policy_changed" {
            closes += 1;
        }
        closes >= 3
    });
}

/// `main` requires certificates from `ca` checked against `ca.crl`, with
/// `/ws` going to a WebSocket echo and `/` to the recording upstream.
fn rig_ws(extra_limits: &str) -> (Rig, tokio::runtime::Runtime) {
    use futures_util::{SinkExt, StreamExt};
    let (ws, rt) = tcp_server(|sock| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Lifecycle CA");
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let upstream = Upstream::start();
    let text = config_text(
        "{ mode: require, trustBundle: clients }",
        "",
        "          - { pathPrefix: /ws, upstream: ws }\n          - { pathPrefix: /, upstream: rec }",
        upstream.addr,
    )
    .replace("upstreams:\n", &format!("{extra_limits}upstreams:\n  ws: {{ url: \"http://{ws}\" }}\n"));
    let gw = Gateway::start(d, &text);
    (
        Rig {
            gw,
            ca,
            upstream,
            dir,
        },
        rt,
    )
}

#[test]
fn a_websocket_tunnel_is_closed_when_its_certificate_is_revoked() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (r, rt) = rig_ws("");
    let alice = r.ca.leaf(&Spec::client("alice"));
    let cfg = config(&r.ca, Some(&alice), &["http/1.1"]);
    let addr = r.gw.addr("main");
    let mut ws = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("app.test").unwrap(), tcp)
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async("wss://app.test/ws", tls)
            .await
            .unwrap();
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));
        ws
    });
    replace(r.dir.path(), "ca.crl", &r.ca.crl(&[&alice.serial]));
    r.gw.log.wait_for("tunnel closed", |v| {
        v["message"] == "closing connection" && v["reason"] == "revoked"
    });
    // The tunnel ends (the client reads its end) without the client
    // closing anything.
    rt.block_on(async {
        tokio::time::timeout(crate::support::gateway::WAIT, async {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await
        .expect("the tunnel is still open")
    });
}

#[test]
fn a_handshake_that_a_crl_reload_overtakes_is_judged_by_the_new_crl() {
    let r = rig("{ mode: require, trustBundle: clients }");
    let carol = r.ca.leaf(&Spec::client("carol"));
    // Accepted under the old configuration, handshake not begun.
    let tcp = std::net::TcpStream::connect(r.gw.addr("main")).unwrap();
    let before = r.gw.log.messages("reloaded").len();
    replace(r.dir.path(), "ca.crl", &r.ca.crl(&[&carol.serial]));
    r.gw.wait_messages("reloaded", before + 1);
    let refused = r.gw.log.messages("tls handshake refused").len();
    match crate::support::client::connect_on(tcp, "app.test", &config(&r.ca, Some(&carol), &[])) {
        Ok(mut s) => assert_eq!(keepalive_get(&mut s, "/late", ""), None),
        Err(o) => assert!(!matches!(o, crate::support::Outcome::Http(..)), "{o:?}"),
    }
    r.gw.wait_messages("tls handshake refused", refused + 1);
    let last = r.gw.log.messages("tls handshake refused").pop().unwrap();
    assert_eq!(last["result"], "revoked", "{last}");
    assert!(r.upstream.seen().iter().all(|s| s.uri != "/late"));
}

#[test]
fn revoking_an_intermediate_closes_the_connections_below_it_with_crl_check_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Ca::root("Root CA");
    let ica = root.intermediate("Issuing CA");
    write(d, "ca.crt", &root.cert_pem);
    write(d, "root.crl", &root.crl(&[]));
    write(d, "ica.crl", &ica.crl(&[]));
    write_leaf(d, "server", &root.leaf(&Spec::server(&["app.test"])));
    let upstream = Upstream::start();
    let text = config_text(
        "{ mode: require, trustBundle: clients, crlCheck: chain }",
        "",
        ROUTES,
        upstream.addr,
    )
    .replace("crlFiles: [ca.crl]", "crlFiles: [root.crl, ica.crl]");
    let gw = Gateway::start(d, &text);
    let gina = ica.leaf(&Spec::client("gina"));
    let mut s = connect(
        gw.addr("main"),
        "app.test",
        &config(&root, Some(&gina), &[]),
    )
    .unwrap();
    assert_eq!(keepalive_get(&mut s, "/x", "").map(|x| x.0), Some(200));
    replace(d, "root.crl", &root.crl(&[&ica.serial]));
    gw.log.wait_for("closed", |v| {
        v["message"] == "closing connection" && v["reason"] == "revoked"
    });
    assert!(
        closed_by_peer(&mut s),
        "the connection below a revoked CA stayed open"
    );
}

#[test]
fn another_entry_with_other_crls_does_not_serve_a_certificate_they_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Two bundles CA");
    let bob = ca.leaf(&Spec::client("bob"));
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[&bob.serial]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["e.test", "f.test"])));
    let upstream = Upstream::start();
    let gw = Gateway::start(
        d,
        &format!(
            "certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles:
  clients: {{ caFile: ca.crt, crlFiles: [ca.crl] }}
  nocrl: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [e.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ pathPrefix: /, upstream: rec }}]
      - hostnames: [f.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: nocrl }}
        strictSni: false
        routes: [{{ pathPrefix: /, upstream: rec }}]
upstreams: {{ rec: {{ url: \"http://{}\" }} }}
",
            upstream.addr
        ),
    );
    let cfg = config(&ca, Some(&bob), &[]);
    let mut s = connect(gw.addr("main"), "f.test", &cfg).unwrap();
    let out = crate::support::client::exchange(
        &mut s,
        "GET /x HTTP/1.1\r\nHost: e.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), 421, "{out:?}");
    assert!(upstream.seen().is_empty());
}

#[test]
fn a_revoked_connection_with_a_request_that_never_ends_is_dropped_after_drain_timeout() {
    // An upstream that reads the request body for ever and never answers;
    // it says when the request has reached it.
    let (reached_tx, reached) = std::sync::mpsc::channel::<()>();
    let reached_tx = std::sync::Mutex::new(reached_tx);
    let (sink, _rt) = tcp_server(move |mut s| {
        let tx = reached_tx.lock().unwrap().clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let _ = tx.send(());
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Lifecycle CA");
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let text = config_text("{ mode: require, trustBundle: clients }", "", ROUTES, sink)
        .replace("upstreams:\n", "limits: { drainTimeout: 1s }\nupstreams:\n");
    let gw = Gateway::start(d, &text);
    let erin = ca.leaf(&Spec::client("erin"));
    let mut s = connect(gw.addr("main"), "app.test", &config(&ca, Some(&erin), &[])).unwrap();
    // A chunked upload that sends one chunk and then nothing.
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .unwrap();
    s.flush().unwrap();
    reached
        .recv_timeout(crate::support::gateway::WAIT)
        .expect("the request reached the upstream");
    replace(d, "ca.crl", &ca.crl(&[&erin.serial]));
    gw.log.wait_for("revoked", |v| {
        v["message"] == "closing connection" && v["reason"] == "revoked"
    });
    assert!(
        closed_by_peer(&mut s),
        "the unfinished request kept the connection open"
    );
}
