//! The SNI/Host attack matrix (SPEC §3 strictSni): a client that completes
//! a handshake for a host without client auth must never reach a host that
//! requires it by naming that host in `Host`, an absolute-form target or
//! HTTP/2 `:authority`. Also: ClientHello split across records, no SNI,
//! unknown SNI, wildcards and the catch-all.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::AlertDescription;

use crate::support::client::{self, config, connect, exchange, get};
use crate::support::{write, write_leaf, Ca, Gateway, Outcome, Spec, Upstream};

pub struct Two {
    pub gw: Gateway,
    pub ca: Ca,
    pub upstream: Upstream,
    pub _dir: tempfile::TempDir,
}

/// `open.test` (no client auth) and `locked.test` (require) on one listener,
/// plus `extra` host entries.
pub fn two_hosts(extra: &str, names: &[&str]) -> Two {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Attack Matrix CA");
    let mut all = vec!["open.test", "locked.test", "127.0.0.1"];
    all.extend_from_slice(names);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&all)));
    write(d, "ca.crt", &ca.cert_pem);
    let upstream = Upstream::start();
    let cfg = format!(
        "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [open.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: rec }}]
      - hostnames: [locked.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ path: /echo, upstream: echo }}, {{ pathPrefix: /, upstream: rec }}]
{extra}
upstreams:
  echo: {{ builtin: echo }}
  rec: {{ url: \"http://{}\" }}
",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Two {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

impl Two {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }

    /// Handshakes as `open.test` without a certificate and sends `raw`.
    fn as_open(&self, raw: &str) -> Outcome {
        let mut s = connect(self.addr(), "open.test", &config(&self.ca, None, &[])).unwrap();
        exchange(&mut s, raw)
    }

    fn assert_misdirected(&self, raw: &str) {
        let out = self.as_open(raw);
        assert_eq!(out.status(), 421, "{raw:?} -> {out:?}");
        assert!(
            self.upstream.seen().is_empty(),
            "{raw:?} reached the upstream"
        );
    }
}

#[test]
fn open_host_reaches_upstream_as_control() {
    let t = two_hosts("", &[]);
    assert_eq!(
        t.as_open("GET / HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n")
            .status(),
        200
    );
    assert_eq!(t.upstream.seen().len(), 1);
}

#[test]
fn host_header_of_locked_host_is_misdirected() {
    let t = two_hosts("", &[]);
    t.assert_misdirected("GET / HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n");
}

#[test]
fn host_header_in_upper_case_is_misdirected() {
    let t = two_hosts("", &[]);
    t.assert_misdirected("GET / HTTP/1.1\r\nHost: LOCKED.TEST\r\nConnection: close\r\n\r\n");
}

#[test]
fn host_header_with_trailing_dot_is_misdirected() {
    let t = two_hosts("", &[]);
    t.assert_misdirected("GET / HTTP/1.1\r\nHost: locked.test.\r\nConnection: close\r\n\r\n");
}

#[test]
fn host_header_with_port_is_misdirected() {
    let t = two_hosts("", &[]);
    t.assert_misdirected("GET / HTTP/1.1\r\nHost: locked.test:443\r\nConnection: close\r\n\r\n");
}

#[test]
fn absolute_form_target_of_locked_host_is_misdirected() {
    let t = two_hosts("", &[]);
    t.assert_misdirected(
        "GET https://locked.test/ HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n",
    );
    t.assert_misdirected(
        "GET https://locked.test/ HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n",
    );
}

#[test]
fn http2_authority_of_locked_host_is_misdirected() {
    let t = two_hosts("", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let cfg = config(&t.ca, None, &["h2"]);
        let tcp = tokio::net::TcpStream::connect(t.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("open.test").unwrap(), tcp)
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
        let req = http::Request::get("https://locked.test/secret")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        send.send_request(req).await.unwrap().status()
    });
    assert_eq!(status, 421);
    assert!(t.upstream.seen().is_empty());
}

/// Writes the client's first flight re-framed into records of at most
/// `chunk` bytes of handshake payload each, then finishes the handshake.
pub fn connect_split(
    addr: SocketAddr,
    sni: &str,
    cfg: &Arc<rustls::ClientConfig>,
    chunk: usize,
) -> Result<client::Tls, Outcome> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(client::IO_TIMEOUT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut conn =
        rustls::ClientConnection::new(cfg.clone(), ServerName::try_from(sni.to_string()).unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 22, "a handshake record");
    let payload = &hello[5..];
    let mut records = 0;
    for part in payload.chunks(chunk) {
        let len = u16::try_from(part.len()).unwrap().to_be_bytes();
        let mut rec = vec![22, hello[1], hello[2], len[0], len[1]];
        rec.extend_from_slice(part);
        // One write per record: the records also travel in separate segments.
        tcp.write_all(&rec).unwrap();
        records += 1;
    }
    assert!(
        records >= 3,
        "the ClientHello must really be split ({records} records)"
    );
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            return Err(
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::AlertReceived(a)) => Outcome::Alert(*a),
                    _ => Outcome::Other(e.to_string()),
                },
            );
        }
    }
    Ok(s)
}

#[test]
fn split_client_hello_selects_the_locked_host() {
    let t = two_hosts("", &[]);
    let leaf = t.ca.leaf(&Spec::client("split"));
    let mut s = connect_split(
        t.addr(),
        "locked.test",
        &config(&t.ca, Some(&leaf), &[]),
        40,
    )
    .unwrap();
    let v = exchange(&mut s, &client::get_request("/echo", "locked.test")).json();
    assert_eq!(v["tls"]["sni"], "locked.test");
    assert_eq!(v["tls"]["peer"]["subject"], "CN=split");
}

#[test]
fn split_client_hello_for_locked_host_still_demands_a_certificate() {
    let t = two_hosts("", &[]);
    let out = match connect_split(t.addr(), "locked.test", &config(&t.ca, None, &[]), 40) {
        Ok(mut s) => exchange(&mut s, &client::get_request("/", "locked.test")),
        Err(o) => o,
    };
    assert_eq!(out, Outcome::Alert(AlertDescription::CertificateRequired));
    assert!(t.upstream.seen().is_empty());
}

fn ip_client(ca: &Ca) -> (Arc<rustls::ClientConfig>, ServerName<'static>) {
    // rustls sends no SNI for an IP address.
    (
        config(ca, None, &[]),
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    )
}

#[test]
fn no_sni_is_refused_with_unrecognized_name() {
    let t = two_hosts("", &[]);
    let (cfg, name) = ip_client(&t.ca);
    let tcp = TcpStream::connect(t.addr()).unwrap();
    tcp.set_read_timeout(Some(client::IO_TIMEOUT)).unwrap();
    let mut s = rustls::StreamOwned::new(rustls::ClientConnection::new(cfg, name).unwrap(), tcp);
    let err = s
        .conn
        .complete_io(&mut s.sock)
        .err()
        .or_else(|| s.conn.complete_io(&mut s.sock).err())
        .unwrap();
    let re = err
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .unwrap();
    assert_eq!(
        re,
        &rustls::Error::AlertReceived(AlertDescription::UnrecognisedName)
    );
    let line = t.gw.log.refusal("denied");
    assert_eq!(line["sni"], "");
    assert_eq!(line["subject"], "", "no certificate was seen: {line}");
}

#[test]
fn unknown_sni_is_refused_with_unrecognized_name() {
    let t = two_hosts("", &["other.test"]);
    let out = get(t.addr(), "other.test", &config(&t.ca, None, &[]), "/");
    assert_eq!(out, Outcome::Alert(AlertDescription::UnrecognisedName));
}

const CATCH_ALL: &str = "      - hostnames: [\"*\"]
        certificate: server
        routes: [{ pathPrefix: /, upstream: echo }]
";

#[test]
fn catch_all_accepts_no_sni_but_not_a_locked_host_header() {
    let t = two_hosts(CATCH_ALL, &[]);
    let (cfg, name) = ip_client(&t.ca);
    let open = |raw: &str| {
        let tcp = TcpStream::connect(t.addr()).unwrap();
        tcp.set_read_timeout(Some(client::IO_TIMEOUT)).unwrap();
        let mut s = rustls::StreamOwned::new(
            rustls::ClientConnection::new(cfg.clone(), name.clone()).unwrap(),
            tcp,
        );
        exchange(&mut s, raw)
    };
    assert_eq!(
        open("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").status(),
        200
    );
    assert_eq!(
        open("GET / HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n").status(),
        421
    );
    assert!(t.upstream.seen().is_empty());
}

#[test]
fn wildcard_host_covers_exactly_one_label() {
    let extra = "      - hostnames: [\"*.w.test\"]
        certificate: server
        routes: [{ pathPrefix: /, upstream: echo }]
";
    let t = two_hosts(extra, &["*.w.test", "a.b.w.test"]);
    let cfg = config(&t.ca, None, &[]);
    assert_eq!(
        get(t.addr(), "a.w.test", &cfg, "/").json()["tls"]["sni"],
        "a.w.test"
    );
    assert_eq!(
        get(t.addr(), "a.b.w.test", &cfg, "/"),
        Outcome::Alert(AlertDescription::UnrecognisedName)
    );
}

#[test]
fn strict_sni_same_policy_accepts_only_identical_policy() {
    let extra = "      - hostnames: [twin.test]
        certificate: server
        strictSni: samePolicy
        routes: [{ pathPrefix: /, upstream: echo }]
      - hostnames: [sibling.test]
        certificate: server
        routes: [{ pathPrefix: /, upstream: echo }]
";
    let t = two_hosts(extra, &["twin.test", "sibling.test"]);
    let raw = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut s = connect(t.addr(), "twin.test", &config(&t.ca, None, &[])).unwrap();
    assert_eq!(
        exchange(&mut s, &raw("sibling.test")).status(),
        200,
        "same certificate, same client auth"
    );
    let mut s = connect(t.addr(), "twin.test", &config(&t.ca, None, &[])).unwrap();
    assert_eq!(
        exchange(&mut s, &raw("locked.test")).status(),
        421,
        "different client auth"
    );
    assert!(t.upstream.seen().is_empty());
}
