//! The upstream connection pool: connections to an upstream (plain or
//! mutual TLS) are reused across client connections, one the upstream
//! closes is never used again, and concurrent requests each get their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::support::client::{self, config};
use crate::support::upstream::tcp_server;
use crate::support::{write, write_leaf, Ca, Gateway, Spec};

/// Answers GET requests on one connection (the test's own minimal HTTP/1.1
/// reading: no bodies), each with the number of its connection; after
/// `per_conn` answers it says `Connection: close` and closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, conn: usize, per_conn: usize) {
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let big = buf.starts_with(b"GET /big ");
            buf.drain(..end + 4);
            answered += 1;
            let last = answered == per_conn;
            let body = if big {
                // More than any socket buffer holds: the gateway is still
                // relaying it when its client goes away.
                format!("conn-{conn}").repeat(1 << 20)
            } else {
                format!("conn-{conn}")
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
                body.len(),
                if last { "Connection: close\r\n" } else { "" }
            );
            if s.write_all((head + &body).as_bytes()).await.is_err() || last {
                let _ = s.shutdown().await;
                return;
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A plain upstream answering every request at once (the rest of an upload
/// is taken for the start of the next request, as a naive server would);
/// reports the number of each connection that ends on `closed`.
fn reporting_upstream() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<usize>,
    tokio::runtime::Runtime,
) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = std::sync::mpsc::channel();
    let (addr, rt) = tcp_server(move |s| {
        let conn = accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let tx = tx.clone();
        async move {
            answer(s, conn, usize::MAX).await;
            let _ = tx.send(conn);
        }
    });
    (addr, closed, rt)
}

/// The gateway in front of [`reporting_upstream`], and a client connection
/// to it.
#[allow(clippy::type_complexity)]
fn reporting() -> (
    Gateway,
    Ca,
    std::sync::mpsc::Receiver<usize>,
    client::Tls,
    (tokio::runtime::Runtime, tempfile::TempDir),
) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Pool CA");
    let (addr, closed, rt) = reporting_upstream();
    let gw = gateway(dir.path(), &ca, &format!("{{ url: \"http://{addr}\" }}"));
    let s = client::connect(gw.addr("main"), "app.test", &config(&ca, None, &[])).unwrap();
    (gw, ca, closed, s, (rt, dir))
}

/// Reads from `s` until `want` has arrived (or the connection ends).
fn read_until(s: &mut client::Tls, want: &str) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A plain upstream answering `per_conn` requests per connection; returns
/// its address, its count of accepted connections and its runtime.
fn plain_upstream(
    per_conn: usize,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::runtime::Runtime,
) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    let (addr, rt) = tcp_server(move |s| {
        let conn = a.fetch_add(1, Ordering::SeqCst) + 1;
        answer(s, conn, per_conn)
    });
    (addr, accepted, rt)
}

/// The gateway in front of a plain upstream answering `per_conn` requests
/// per connection, with that upstream's count of accepted connections.
fn plain(
    per_conn: usize,
) -> (
    Gateway,
    Ca,
    Arc<AtomicUsize>,
    (tokio::runtime::Runtime, tempfile::TempDir),
) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Pool CA");
    let (addr, accepted, rt) = plain_upstream(per_conn);
    let gw = gateway(dir.path(), &ca, &format!("{{ url: \"http://{addr}\" }}"));
    (gw, ca, accepted, (rt, dir))
}

/// The gateway (host `app.test`, every path to upstream `up`), with a
/// client certificate `to-upstream` for the upstream's TLS.
fn gateway(d: &std::path::Path, ca: &Ca, upstream: &str) -> Gateway {
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "to-upstream", &ca.leaf(&Spec::client("gw")));
    Gateway::start(
        d,
        &format!(
            "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
  to-upstream: {{ certFile: to-upstream.crt, keyFile: to-upstream.key }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: up }}]
upstreams:
  up: {upstream}
"
        ),
    )
}

/// Sends `n` requests, each on its own client connection, and returns the
/// bodies (each asserted 200).
fn bodies(gw: &Gateway, ca: &Ca, n: usize) -> Vec<String> {
    let cfg = config(ca, None, &[]);
    (0..n)
        .map(
            |i| match client::get(gw.addr("main"), "app.test", &cfg, "/") {
                client::Outcome::Http(200, body) => body,
                other => panic!("request {i}: {other:?}"),
            },
        )
        .collect()
}

#[test]
fn one_upstream_connection_serves_requests_of_many_client_connections() {
    let (gw, ca, accepted, _keep) = plain(usize::MAX);
    assert_eq!(bodies(&gw, &ca, 6), vec!["conn-1"; 6]);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_connection_the_upstream_closes_is_not_used_again() {
    // Two answers per connection, the second with `Connection: close`.
    let (gw, ca, accepted, _keep) = plain(2);
    let got = bodies(&gw, &ca, 6);
    assert_eq!(
        got,
        ["conn-1", "conn-1", "conn-2", "conn-2", "conn-3", "conn-3"]
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn concurrent_requests_each_get_a_connection_and_then_share_them() {
    let (gw, ca, accepted, _keep) = plain(usize::MAX);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for body in bodies(&gw, &ca, 5) {
                    assert!(body.starts_with("conn-"), "{body}");
                }
            });
        }
    });
    // Never more connections than requests in flight at once.
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened} upstream connections");
}

#[test]
fn a_mutual_tls_upstream_connection_is_reused_with_its_client_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Pool CA");
    let backend_leaf = ca.leaf(&Spec::server(&["api.internal"]));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(backend_leaf.chain.clone(), backend_leaf.key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let h = handshakes.clone();
    let (addr, _rt) = tcp_server(move |s| {
        let acceptor = acceptor.clone();
        let h = h.clone();
        async move {
            // Only a client with a certificate of the CA gets this far.
            if let Ok(t) = acceptor.accept(s).await {
                let conn = h.fetch_add(1, Ordering::SeqCst) + 1;
                answer(t, conn, usize::MAX).await;
            }
        }
    });
    let gw = gateway(
        dir.path(),
        &ca,
        &format!(
            "{{ url: \"https://{addr}\", tls: {{ certificate: to-upstream, trustBundle: ca, serverName: api.internal }} }}"
        ),
    );
    assert_eq!(bodies(&gw, &ca, 5), vec!["conn-1"; 5]);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_connection_answered_before_its_request_ended_is_closed_not_reused() {
    use std::io::Write;
    let (gw, ca, closed, mut s, _keep) = reporting();
    // An upload of 64 bytes of which 10 are sent; the upstream answers at
    // once, before the rest.
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 64\r\n\r\n0123456789")
        .unwrap();
    s.flush().unwrap();
    let head = read_until(&mut s, "conn-1");
    assert!(head.contains("conn-1"), "{head}");
    // The rest of the upload (the gateway may have closed this connection
    // by now). Were the upstream connection kept, it would be ready for
    // another request once this arrived, and what the upstream took for
    // the start of a request would prefix the next one.
    let _ = s.write_all(&[b'x'; 54]).and_then(|_| s.flush());
    // The gateway closed that upstream connection instead.
    assert_eq!(closed.recv_timeout(client::IO_TIMEOUT), Ok(1));
    assert_eq!(bodies(&gw, &ca, 2), ["conn-2", "conn-2"]);
}

#[test]
fn a_response_the_client_abandons_closes_its_upstream_connection() {
    use std::io::Write;
    let (gw, ca, closed, mut s, _keep) = reporting();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    s.flush().unwrap();
    let head = read_until(&mut s, "conn-1");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(s);
    assert_eq!(closed.recv_timeout(client::IO_TIMEOUT), Ok(1));
    assert_eq!(bodies(&gw, &ca, 2), ["conn-2", "conn-2"]);
}
