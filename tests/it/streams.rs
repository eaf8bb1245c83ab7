//! Streams against real peers: etcd behind a `tcp` listener that originates
//! mutual TLS and behind a `tls` listener that terminates it, chained
//! gateways, SNI passthrough to real TLS servers, PROXY v2, and upstream
//! identity pinning.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{self, config, connect};
use crate::support::gateway::Log;
use crate::support::upstream::tcp_server;
use crate::support::{write, write_leaf, Ca, Gateway, Leaf, Outcome, Spec};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Etcd {
    child: Child,
    port: u16,
    _log: Log,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts etcd on loopback; `tls` = (ca, cert, key) files for client-cert auth.
fn etcd(dir: &Path, tls: Option<(&str, &str, &str)>) -> Etcd {
    let port = free_port();
    let peer = free_port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut cmd = Command::new("etcd");
    cmd.current_dir(dir)
        .args([
            "--name",
            "t",
            "--data-dir",
            "etcd-data",
            "--log-level",
            "info",
            "--logger",
            "zap",
        ])
        .arg(format!("--listen-client-urls={scheme}://127.0.0.1:{port}"))
        .arg(format!(
            "--advertise-client-urls={scheme}://127.0.0.1:{port}"
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=t=http://127.0.0.1:{peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((ca, cert, key)) = tls {
        cmd.args([
            "--client-cert-auth",
            "--trusted-ca-file",
            ca,
            "--cert-file",
            cert,
            "--key-file",
            key,
        ]);
    }
    let mut child = cmd
        .spawn()
        .expect("etcd is installed by ./scripts/test (Debian etcd-server)");
    let log = Log::of(child.stderr.take().unwrap());
    log.wait_for_text("serving client traffic");
    Etcd {
        child,
        port,
        _log: log,
    }
}

fn etcdctl(dir: &Path, endpoint: &str, tls: &[&str], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .current_dir(dir)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=3s", "--command-timeout=5s"])
        .args(tls)
        .args(args)
        .output()
        .expect("etcdctl is installed by ./scripts/test (Debian etcd-client)")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn tcp_listener_originates_mutual_tls_to_a_real_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("etcd CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(
        d,
        "etcd",
        &ca.leaf(&Spec {
            eku: crate::support::Eku::Both,
            ..Spec::server(&["127.0.0.1", "etcd.test"])
        }),
    );
    write_leaf(d, "felix", &ca.leaf(&Spec::client("felix")));
    let e = etcd(d, Some(("ca.crt", "etcd.crt", "etcd.key")));
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  felix: {{ certFile: felix.crt, keyFile: felix.key }}
trustBundles:
  etcd-ca: {{ caFile: ca.crt }}
listeners:
  - {{ name: to-etcd, address: \"127.0.0.1:0\", protocol: tcp, upstream: etcd }}
upstreams:
  etcd: {{ address: \"127.0.0.1:{}\", tls: {{ certificate: felix, trustBundle: etcd-ca, alpn: [h2] }} }}
",
            e.port
        ),
    );
    let plain = format!("http://{}", gw.addr("to-etcd"));
    let put = etcdctl(d, &plain, &[], &["put", "greeting", "through portcullis"]);
    assert!(put.status.success(), "{}", out(&put));
    let get = etcdctl(d, &plain, &[], &["get", "greeting"]);
    assert!(get.status.success(), "{}", out(&get));
    assert_eq!(
        String::from_utf8_lossy(&get.stdout),
        "greeting\nthrough portcullis\n"
    );
    // etcd itself refuses a plaintext client.
    let direct = etcdctl(
        d,
        &format!("http://127.0.0.1:{}", e.port),
        &[],
        &["get", "greeting"],
    );
    assert!(
        !direct.status.success(),
        "etcd must not answer plaintext: {}",
        out(&direct)
    );
}

#[test]
fn tls_listener_terminates_for_a_plain_etcd_and_allows_only_felix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Calico CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "gw", &ca.leaf(&Spec::server(&["127.0.0.1"])));
    write_leaf(d, "felix", &ca.leaf(&Spec::client("felix")));
    write_leaf(d, "other", &ca.leaf(&Spec::client("other")));
    let e = etcd(d, None);
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  gw: {{ certFile: gw.crt, keyFile: gw.key }}
trustBundles:
  calico: {{ caFile: ca.crt }}
listeners:
  - name: etcd-in
    address: 127.0.0.1:0
    protocol: tls
    tls: {{ alpn: [h2] }}
    certificate: gw
    clientAuth: {{ mode: require, trustBundle: calico, allow: {{ commonNames: [felix] }} }}
    upstream: etcd-plain
upstreams:
  etcd-plain: {{ address: \"127.0.0.1:{}\" }}
",
            e.port
        ),
    );
    let endpoint = format!("https://{}", gw.addr("etcd-in"));
    let as_felix = ["--cacert=ca.crt", "--cert=felix.crt", "--key=felix.key"];
    let put = etcdctl(d, &endpoint, &as_felix, &["put", "k", "v"]);
    assert!(put.status.success(), "{}", out(&put));
    let get = etcdctl(d, &endpoint, &as_felix, &["get", "k"]);
    assert_eq!(
        String::from_utf8_lossy(&get.stdout),
        "k\nv\n",
        "{}",
        out(&get)
    );
    let as_other = ["--cacert=ca.crt", "--cert=other.crt", "--key=other.key"];
    let denied = etcdctl(d, &endpoint, &as_other, &["get", "k"]);
    assert!(!denied.status.success(), "{}", out(&denied));
    let line = gw.log.wait_for("denial", |v| {
        v["message"] == "tls handshake refused" && v["result"] == "denied"
    });
    assert_eq!(line["subject"], "CN=other");
    assert!(
        line["issuer"].as_str().unwrap().starts_with("CN="),
        "{line}"
    );
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .contains("clientAuth.allow"),
        "{line}"
    );
}

#[test]
fn chained_gateways_forward_the_edges_identity_not_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Chain CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "inner", &ca.leaf(&Spec::server(&["inner.test"])));
    write_leaf(d, "edge", &ca.leaf(&Spec::server(&["edge.test"])));
    write_leaf(d, "edge-client", &ca.leaf(&Spec::client("edge")));
    let inner_dir = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "inner.crt", "inner.key"] {
        std::fs::copy(d.join(f), inner_dir.path().join(f)).unwrap();
    }
    let inner = Gateway::start(
        inner_dir.path(),
        "certificates: { inner: { certFile: inner.crt, keyFile: inner.key } }
trustBundles: { ca: { caFile: ca.crt } }
listeners:
  - name: inner
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [inner.test]
        certificate: inner
        clientAuth: { mode: require, trustBundle: ca, allow: { commonNames: [edge] } }
        strictSni: false
        routes: [{ pathPrefix: /, upstream: echo }]
upstreams: { echo: { builtin: echo } }
",
    );
    let edge = Gateway::start(
        d,
        &format!(
            "certificates:
  edge: {{ certFile: edge.crt, keyFile: edge.key }}
  edge-client: {{ certFile: edge-client.crt, keyFile: edge-client.key }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: edge
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [edge.test]
        certificate: edge
        clientAuth: {{ mode: require, trustBundle: ca }}
        routes: [{{ pathPrefix: /, upstream: inner }}]
upstreams:
  inner:
    url: \"https://{}\"
    hostHeader: upstream
    tls: {{ certificate: edge-client, trustBundle: ca, serverName: inner.test }}
",
            inner.addr("inner")
        ),
    );
    let user = ca.leaf(&Spec::client("end-user"));
    let v = client::get(
        edge.addr("edge"),
        "edge.test",
        &config(&ca, Some(&user), &[]),
        "/hello",
    )
    .json();
    assert_eq!(v["tls"]["peer"]["subject"], "CN=edge", "{v}");
    assert_eq!(v["tls"]["sni"], "inner.test");
    assert_eq!(v["path"], "/hello");
}

/// A TLS server that says who it is and closes.
struct Backend {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn backend(name: &'static str, leaf: &Leaf) -> Backend {
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(leaf.chain.clone(), leaf.key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (addr, rt) = tcp_server(move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut t) = acceptor.accept(s).await {
                let _ = t.write_all(format!("hello from {name}\n").as_bytes()).await;
                let _ = t.shutdown().await;
            }
        }
    });
    Backend { addr, _rt: rt }
}

struct Pass {
    gw: Gateway,
    ca: Ca,
    gw_ca: Ca,
    _a: Backend,
    _b: Backend,
    _dir: tempfile::TempDir,
}

fn passthrough(default: bool) -> Pass {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Backend CA");
    let gw_ca = Ca::root("Gateway CA");
    let a = backend("A", &ca.leaf(&Spec::server(&["a.test"])));
    let b = backend(
        "B",
        &ca.leaf(&Spec::server(&["b.test", "*.b.test", "other.test"])),
    );
    write_leaf(d, "gw", &gw_ca.leaf(&Spec::server(&["locked.test"])));
    write(d, "ca.crt", &ca.cert_pem);
    let default_line = if default {
        "    defaultUpstream: b\n"
    } else {
        ""
    };
    let gw = Gateway::start(
        d,
        &format!(
            "certificates: {{ gw: {{ certFile: gw.crt, keyFile: gw.key }} }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: sni-router
    address: 127.0.0.1:0
    protocol: passthrough
    routes:
      - {{ sni: a.test, upstream: a }}
      - {{ sni: \"*.b.test\", upstream: b }}
      - {{ sni: b.test, upstream: b }}
{default_line}  - name: mixed
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [a.test]
        passthrough: a
      - hostnames: [locked.test]
        certificate: gw
        clientAuth: {{ mode: require, trustBundle: ca }}
        strictSni: false
        routes: [{{ pathPrefix: /, upstream: echo }}]
upstreams:
  a: {{ address: \"{}\" }}
  b: {{ address: \"{}\" }}
  echo: {{ builtin: echo }}
",
            a.addr, b.addr
        ),
    );
    Pass {
        gw,
        ca,
        gw_ca,
        _a: a,
        _b: b,
        _dir: dir,
    }
}

/// Connects with SNI `sni`, returns the server certificate's subject and what it said.
fn hello(addr: SocketAddr, sni: &str, ca: &Ca) -> Result<(String, String), Outcome> {
    let mut s = connect(addr, sni, &config(ca, None, &[]))?;
    let subject =
        portcullis::identity::CertSummary::from_der(&s.conn.peer_certificates().unwrap()[0])
            .unwrap()
            .subject;
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut text);
    Ok((subject, text))
}

#[test]
fn passthrough_routes_by_sni_to_the_right_backend_untouched() {
    let p = passthrough(false);
    let addr = p.gw.addr("sni-router");
    assert_eq!(
        hello(addr, "a.test", &p.ca).unwrap(),
        ("CN=a.test".into(), "hello from A\n".into())
    );
    assert_eq!(hello(addr, "x.b.test", &p.ca).unwrap().1, "hello from B\n");
    // Split across records: still routed by the name inside.
    let mut s = crate::sni::connect_split(addr, "b.test", &config(&p.ca, None, &[]), 40).unwrap();
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut text);
    assert_eq!(text, "hello from B\n");
}

#[test]
fn passthrough_without_route_closes_and_default_upstream_catches() {
    let p = passthrough(false);
    let out = hello(p.gw.addr("sni-router"), "other.test", &p.ca);
    assert!(out.is_err(), "{out:?}");
    let p = passthrough(true);
    assert_eq!(
        hello(p.gw.addr("sni-router"), "other.test", &p.ca)
            .unwrap()
            .1,
        "hello from B\n"
    );
}

#[test]
fn mixed_listener_passes_one_host_through_and_terminates_another() {
    let p = passthrough(false);
    let addr = p.gw.addr("mixed");
    assert_eq!(
        hello(addr, "a.test", &p.ca).unwrap(),
        ("CN=a.test".into(), "hello from A\n".into())
    );
    // The terminated host presents the gateway's certificate and wants a client certificate.
    let s = connect(addr, "locked.test", &config(&p.ca, None, &[]));
    assert!(
        matches!(s, Err(Outcome::Other(ref e)) if e.contains("UnknownIssuer") || e.contains("invalid peer certificate")),
        "{:?}",
        s.err()
    );
}

/// A TCP upstream that parses a PROXY v2 header and records it.
fn proxy_upstream(
    seen: Arc<Mutex<Vec<proxy_header::ProxyHeader<'static>>>>,
) -> (SocketAddr, tokio::runtime::Runtime) {
    tcp_server(move |mut s| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                match proxy_header::ProxyHeader::parse(&buf, proxy_header::ParseConfig::default()) {
                    Ok((h, _)) => {
                        seen.lock().unwrap().push(h.into_owned());
                        let _ = s.write_all(b"got it\n").await;
                        return;
                    }
                    Err(proxy_header::Error::BufferTooShort) => continue,
                    Err(e) => panic!("bad PROXY header: {e:?}"),
                }
            }
        }
    })
}

#[test]
fn proxy_v2_header_carries_addresses_sni_alpn_and_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("PP CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "gw", &ca.leaf(&Spec::server(&["pp.test"])));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (up, _rt) = proxy_upstream(seen.clone());
    let gw = Gateway::start(
        d,
        &format!(
            "certificates: {{ gw: {{ certFile: gw.crt, keyFile: gw.key }} }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: pp
    address: 127.0.0.1:0
    protocol: tls
    tls: {{ alpn: [demo/1] }}
    certificate: gw
    clientAuth: {{ mode: optional, trustBundle: ca }}
    proxyProtocol: v2
    upstream: app
upstreams: {{ app: {{ address: \"{up}\" }} }}
"
        ),
    );
    let leaf = ca.leaf(&Spec::client("pp-client"));
    for cert in [Some(&leaf), None] {
        let mut s = connect(gw.addr("pp"), "pp.test", &config(&ca, cert, &["demo/1"])).unwrap();
        let local = s.sock.local_addr().unwrap();
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut text);
        assert_eq!(text, "got it\n");
        let h = seen.lock().unwrap().pop().unwrap();
        let a = h.proxied_address().unwrap();
        assert_eq!(a.source, local);
        assert_eq!(a.destination, gw.addr("pp"));
        assert_eq!(h.authority(), Some("pp.test"));
        assert_eq!(h.alpn(), Some(&b"demo/1"[..]));
        let ssl = h.ssl().unwrap();
        assert!(ssl.client_ssl());
        assert_eq!(ssl.version(), Some("TLSv1.3"));
        assert!(ssl.cipher().unwrap().starts_with("TLS_"));
        let client_cert = ssl.tlvs().find_map(|t| match t {
            Ok(proxy_header::Tlv::Custom(0x28, der)) => Some(der.into_owned()),
            _ => None,
        });
        match cert {
            Some(l) => {
                assert!(ssl.client_cert_conn() && ssl.client_cert_sess());
                assert_eq!(ssl.verify(), 0);
                assert_eq!(ssl.cn(), Some("pp-client"));
                assert_eq!(client_cert.as_deref(), Some(l.chain[0].as_ref()));
            }
            None => {
                assert!(!ssl.client_cert_conn() && !ssl.client_cert_sess());
                assert_eq!(ssl.cn(), None);
                assert_eq!(client_cert, None);
            }
        }
    }
}

#[test]
fn upstream_without_the_pinned_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Pin CA");
    write(d, "ca.crt", &ca.cert_pem);
    let mut inner_spec = Spec::server(&["api.internal"]);
    inner_spec
        .uris
        .push("spiffe://example.org/ns/other/sa/api".into());
    let inner = backend("api", &ca.leaf(&inner_spec));
    write_leaf(d, "gw", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start(
        d,
        &format!(
            "certificates: {{ gw: {{ certFile: gw.crt, keyFile: gw.key }} }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: gw
        routes: [{{ pathPrefix: /, upstream: api }}]
upstreams:
  api:
    url: \"https://{}\"
    tls: {{ trustBundle: ca, serverName: api.internal, allow: {{ uriSans: [\"spiffe://example.org/ns/api/*\"] }} }}
",
            inner.addr
        ),
    );
    let out = client::get(gw.addr("main"), "app.test", &config(&ca, None, &[]), "/");
    assert_eq!(out.status(), 502, "{out:?}");
    let line = gw.log.wait_for("pin refusal", |v| {
        v["message"] == "upstream identity not allowed by upstreams.tls.allow"
    });
    assert_eq!(line["uri_sans"], "spiffe://example.org/ns/other/sa/api");
}

/// A request on a terminated connection whose host names a passthrough
/// entry is never served, in any spelling, over HTTP/1.1 or HTTP/2, even
/// with strictSni off (the entry has no routes, policy or TLS of its own).
#[test]
fn a_host_of_a_passthrough_entry_is_not_served_on_a_terminated_connection() {
    let p = passthrough(false);
    let addr = p.gw.addr("mixed");
    let leaf = p.ca.leaf(&Spec::client("mixed-client"));
    let cfg = config(&p.gw_ca, Some(&leaf), &[]);
    let ask = |raw: &str| {
        let mut s = connect(addr, "locked.test", &cfg).unwrap();
        client::exchange(&mut s, raw)
    };
    // Control: the terminated host itself is served.
    assert_eq!(
        ask("GET / HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n").status(),
        200
    );
    for host in ["a.test", "A.TEST", "a.test.", "a.test:443", "a.test.:8443"] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(ask(&raw).status(), 421, "Host: {host}");
        let raw = format!(
            "GET https://{host}/ HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(ask(&raw).status(), 421, "absolute form {host}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config(&p.gw_ca, Some(&leaf), &["h2"]))
            .connect(
                rustls::pki_types::ServerName::try_from("locked.test").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("https://A.test/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        send.send_request(req).await.unwrap().status()
    });
    assert_eq!(status, 421, "HTTP/2 :authority");
}
