//! `http` listeners: redirects only for names an https listener serves
//! (status, port, path and query kept), 404 for any other Host, plain
//! hosts proxied with every identity header stripped, and HSTS on https.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::support::client::{self, config, IO_TIMEOUT};
use crate::support::{write, write_leaf, Ca, Gateway, Spec, Upstream};

struct Plain {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// https serves `app.test` and `*.wild.test` (HSTS on app.test) and a
/// catch-all; `web` redirects with `redirect` and proxies `plain.test`
/// (`/rec` to the recording upstream, everything else to the echo).
fn plain(redirect: &str) -> Plain {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Plain CA");
    write_leaf(
        d,
        "server",
        &ca.leaf(&Spec::server(&[
            "app.test",
            "*.wild.test",
            "other.test",
            "admin.plain.test",
        ])),
    );
    write(d, "ca.crt", &ca.cert_pem);
    let upstream = Upstream::start();
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
        hsts: {{ maxAge: 31536000, includeSubDomains: true }}
        strictSni: samePolicy
        requestHeaders: {{ X-Client-Name: \"%DOWNSTREAM_PEER_SUBJECT%\" }}
        routes: [{{ pathPrefix: /, upstream: echo }}]
      - hostnames: [\"*.wild.test\", admin.plain.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: echo }}]
      - hostnames: [\"*\"]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: echo }}]
  - name: web
    address: 127.0.0.1:0
    protocol: http
{redirect}    hosts:
      - hostnames: [plain.test, \"*.plain.test\"]
        routes:
          - {{ pathPrefix: /rec, upstream: rec }}
          - {{ pathPrefix: /, upstream: echo }}
upstreams:
  echo: {{ builtin: echo }}
  rec: {{ url: \"http://{}\" }}
",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Plain {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

/// Sends `raw` on a plain connection and reads the answer to the end.
fn send(addr: SocketAddr, raw: &str) -> String {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    t.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    t.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and the `Location` of a plain GET with `Host: host`.
fn get(p: &Plain, target: &str, host: &str) -> (u16, Option<String>, String) {
    let out = send(
        p.gw.addr("web"),
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    );
    parse(&out)
}

fn parse(out: &str) -> (u16, Option<String>, String) {
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (status, location, body.to_string())
}

#[test]
fn names_an_https_listener_serves_are_redirected_with_path_and_query() {
    let p = plain("");
    for (target, host, want) in [
        ("/", "app.test", "https://app.test/"),
        (
            "/a/b?x=1&y=%2F",
            "app.test:80",
            "https://app.test/a/b?x=1&y=%2F",
        ),
        ("/..%2f/x", "APP.Test.", "https://app.test/..%2f/x"),
        (
            "//evil.example/x",
            "app.test",
            "https://app.test//evil.example/x",
        ),
        ("/w", "deep.wild.test", "https://deep.wild.test/w"),
        (
            "http://app.test/abs?q",
            "app.test",
            "https://app.test/abs?q",
        ),
    ] {
        let (status, location, _) = get(&p, target, host);
        assert_eq!(status, 308, "{target} {host}");
        assert_eq!(location.as_deref(), Some(want), "{target} {host}");
    }
}

#[test]
fn redirect_port_and_status_are_configurable() {
    let p = plain("    redirect: { port: 8443, status: 301 }\n");
    let (status, location, _) = get(&p, "/p?q=1", "app.test");
    assert_eq!(status, 301);
    assert_eq!(location.as_deref(), Some("https://app.test:8443/p?q=1"));
}

#[test]
fn a_host_nobody_serves_by_name_gets_404_never_a_redirect() {
    let p = plain("");
    // "*" is a catch-all on https, not a name: still no redirect.
    for host in [
        "evil.example",
        "wild.test",
        "a.b.wild.test.evil",
        "127.0.0.1",
        "[::1]:80",
        "app.test.evil.example",
    ] {
        let (status, location, _) = get(&p, "/x", host);
        assert_eq!((status, location), (404, None), "{host}");
    }
    // A request target and Host that disagree are refused, not redirected
    // to either.
    let out = send(
        p.gw.addr("web"),
        "GET http://evil.example/ HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    );
    let (status, location, _) = parse(&out);
    assert_eq!((status, location), (400, None));
    // No Host at all (HTTP/1.0).
    let out = send(p.gw.addr("web"), "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(parse(&out).0, 400);
}

#[test]
fn plain_hosts_are_proxied_with_identity_headers_stripped() {
    let p = plain("");
    let out = send(
        p.gw.addr("web"),
        "GET /rec/../rec/x?q=1 HTTP/1.1\r\nHost: plain.test\r\n\
         X-Forwarded-Client-Cert: Hash=00;Subject=\"CN=admin\"\r\n\
         SSL_CLIENT_VERIFY: SUCCESS\r\nssl-client-subject-dn: CN=admin\r\n\
         Client-Cert: :AAAA:\r\nX-Client-Name: CN=admin\r\nX_Client_Name: CN=admin\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-For: 6.6.6.6\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(parse(&out).0, 200, "{out}");
    p.upstream.wait_for(1);
    let seen = &p.upstream.seen()[0];
    assert_eq!(seen.uri, "/rec/x?q=1");
    for h in [
        "x-forwarded-client-cert",
        "ssl-client-verify",
        "ssl_client_verify",
        "ssl-client-subject-dn",
        "client-cert",
        // Set by an https host's requestHeaders: never from a plain client.
        "x-client-name",
        "x_client_name",
    ] {
        assert_eq!(
            seen.header(h),
            None,
            "{h} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-host"), Some("plain.test"));

    // The echo on plain HTTP has no TLS block, and paths are canonical.
    let (status, _, body) = get(&p, "/%61/./b", "plain.test");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/a/b");
    assert_eq!(v["tls"], serde_json::Value::Null);
    // Paths that cannot be made canonical are refused as on https.
    assert_eq!(get(&p, "/../x", "plain.test").0, 400);
    assert_eq!(get(&p, "/a%2Fb", "plain.test").0, 400);
}

#[test]
fn hsts_is_sent_by_the_hosts_that_ask_for_it() {
    let p = plain("");
    let cfg = config(&p.ca, None, &[]);
    let head_for = |sni: &str, host: &str, path: &str| {
        let mut s = client::connect(p.gw.addr("main"), sni, &cfg).unwrap();
        s.write_all(client::get_request(path, host).as_bytes())
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_ascii_lowercase()
    };
    let head = |sni: &str, path: &str| head_for(sni, sni, path);
    let hsts = "strict-transport-security: max-age=31536000; includesubdomains\r\n";
    assert!(head("app.test", "/").contains(hsts));
    // Refusals of that host carry it too.
    assert!(head("app.test", "/../x").contains(hsts));
    assert!(!head("x.wild.test", "/").contains("strict-transport-security"));
    // A request the handshake's entry hands to a samePolicy sibling is
    // that entry's: no HSTS of the handshake's.
    let coalesced = head_for("app.test", "x.wild.test", "/");
    assert!(coalesced.starts_with("http/1.1 200"), "{coalesced}");
    assert!(
        !coalesced.contains("strict-transport-security"),
        "{coalesced}"
    );
}

#[test]
fn a_plain_wildcard_never_takes_a_name_https_serves_into_plaintext() {
    let p = plain("");
    // admin.plain.test is an https name: redirected, though *.plain.test
    // is a plain host.
    let (status, location, _) = get(&p, "/x", "admin.plain.test");
    assert_eq!(status, 308);
    assert_eq!(location.as_deref(), Some("https://admin.plain.test/x"));
    // Other names of the wildcard, and the plain host's own name, are
    // proxied in plain HTTP.
    for host in ["other.plain.test", "plain.test"] {
        let (status, location, _) = get(&p, "/x", host);
        assert_eq!((status, location), (200, None), "{host}");
    }
}

#[test]
fn http2_and_other_upgrades_are_not_spoken_on_the_plain_listener() {
    let p = plain("");
    // Prior-knowledge HTTP/2 (h2c): not HTTP/1.1, so no redirect and no proxy.
    let out = send(p.gw.addr("web"), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let (status, location, _) = parse(&out);
    assert!(location.is_none(), "{out}");
    assert!(status == 0 || status >= 400, "{out}");
    // An h2c upgrade request to a plain host is served as HTTP/1.1, the
    // upgrade dropped before the upstream.
    let out = send(
        p.gw.addr("web"),
        "GET /rec/u HTTP/1.1\r\nHost: plain.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    assert_eq!(parse(&out).0, 200, "{out}");
    p.upstream.wait_for(1);
    let seen = &p.upstream.seen()[0];
    for h in ["upgrade", "http2-settings"] {
        assert_eq!(seen.header(h), None, "{h}: {:?}", seen.headers);
    }
}
