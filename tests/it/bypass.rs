//! Attacker tests for the bypass classes of SPEC §2/§3: path spellings,
//! requests for a sibling host entry on a shared connection, and protocol
//! upgrades other than WebSocket. Each tries many inputs, over HTTP/1.1 and
//! HTTP/2, and asserts what reached the upstream.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;

use crate::support::client::{config, connect, exchange, Outcome};
use crate::support::upstream::Seen;
use crate::support::{write, write_leaf, Ca, Gateway, Spec, Upstream};

struct Rig {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// One listener; `hosts` is its YAML list of host entries, whose routes may
/// use the upstreams `rec` (recording) and `echo`.
fn rig(hosts: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Bypass CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(
        d,
        "server",
        &ca.leaf(&Spec::server(&["app.test", "a.test", "b.test", "c.test"])),
    );
    let upstream = Upstream::start();
    let cfg = format!(
        "certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ clients: {{ caFile: ca.crt }} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
{hosts}
upstreams:
  rec: {{ url: \"http://{}\" }}
  echo: {{ builtin: echo }}
",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Rig {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

impl Rig {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }

    /// One raw HTTP/1.1 request on a new connection.
    fn h1(&self, sni: &str, client: Option<&crate::support::Leaf>, raw: &str) -> Outcome {
        let cfg = config(&self.ca, client, &[]);
        let mut s = connect(self.addr(), sni, &cfg).unwrap();
        exchange(&mut s, raw)
    }

    /// GETs `paths` over one HTTP/2 connection; returns the statuses.
    fn h2(
        &self,
        sni: &str,
        client: Option<&crate::support::Leaf>,
        requests: &[(String, String)],
    ) -> Vec<u16> {
        let cfg = config(&self.ca, client, &["h2"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
                .await
                .unwrap();
            let (mut send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            let mut out = Vec::new();
            for (authority, path) in requests {
                // "AUTHORITY|HOST" sends a Host header beside :authority.
                let (authority, host) = match authority.split_once('|') {
                    Some((a, h)) => (a, Some(h)),
                    None => (authority.as_str(), None),
                };
                let mut req = http::Request::get(format!("https://{authority}{path}"));
                if let Some(h) = host {
                    req = req.header("host", h);
                }
                let req = req.body(Empty::<Bytes>::new()).unwrap();
                let resp = send.send_request(req).await.unwrap();
                out.push(resp.status().as_u16());
                let _ = resp.into_body().collect().await;
            }
            out
        })
    }
}

/// Whether a request the upstream saw is under `/admin` as a lenient
/// backend would read it (decoded, dots removed, slashes merged, case
/// kept).
fn reached_admin(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| s.uri.clone())
        .filter(|u| {
            let lower = u.to_ascii_lowercase();
            lower.contains("admin")
        })
        .collect()
}

/// Spellings of `/admin/secret` that a backend (Go, Spring, Werkzeug,
/// Tomcat) may serve as that path.
const ADMIN_SPELLINGS: &[&str] = &[
    "/admin/secret",
    "/%61dmin/secret",
    "/%61%64%6d%69%6e/secret",
    "/%61%64%6D%69%6E/secret",
    "/adm%69n/secret",
    "/admin/%73ecret",
    "//admin/secret",
    "///admin//secret",
    "/admin//secret",
    "/./admin/secret",
    "/%2e/admin/secret",
    "/%2E/admin/secret",
    "/public/../admin/secret",
    "/public/%2e%2e/admin/secret",
    "/public/%2E%2E/admin/secret",
    "/public/%2e%2E/admin/secret",
    "/public/.%2e/admin/secret",
    "/public/%2e./admin/secret",
    "/public/./../admin/secret",
    "/x/y/../../admin/secret",
    "/public//..//admin/secret",
    "/admin/./secret",
    "/admin/secret/.",
    "/admin/secret/x/..",
    "/admin/secret/%2e",
    "/admin;x=1/secret",
    "/admin;/secret",
    "/;x/admin/secret",
    "/public/..;/admin/secret",
    "/public/%2e%2e;/admin/secret",
    "/public/.;/../admin/secret",
    "/admin%2fsecret",
    "/admin%2Fsecret",
    "/admin%5csecret",
    "/admin%5Csecret",
    "/public%2f..%2fadmin/secret",
    "/public/..%2fadmin/secret",
    "/public/..%5cadmin/secret",
    "/%2fadmin/secret",
    "/..",
    "/%2e%2e/admin/secret",
    "/../admin/secret",
    "/admin%00/secret",
    "/admin/secret%00",
    "/admin%/secret",
    "/admin%2/secret",
    "/admin%zz/secret",
    // The bare name of a `pathPrefix: /admin/` route.
    "/admin",
    "/admin/",
    "/admin;x",
    "/%61dmin",
    "/public/../admin",
];

/// Raw backslashes, which WHATWG URL parsers (Node) and IIS read as `/`
/// (HTTP/1.1 only: the HTTP/2 client refuses to send them).
const BACKSLASH_SPELLINGS: &[&str] = &[
    "/x/..\\admin/secret",
    "/x\\..\\admin/secret",
    "/public\\..\\admin",
    "\\admin/secret",
    "/admin\\secret",
];

const PATH_HOSTS: &str = "      - hostnames: [app.test]
        certificate: server
        clientAuth: { mode: optional, trustBundle: clients }
        routes:
          - { pathPrefix: /admin/, upstream: rec, allow: { commonNames: [ops] } }
          - { pathPrefix: /files, upstream: rec }
          - { pathPrefix: /, upstream: rec }
      - hostnames: [b.test]
        certificate: server
        escapedSlashes: keep
        routes:
          - { pathPrefix: /, upstream: rec }";

#[test]
fn no_spelling_of_a_protected_path_reaches_its_upstream() {
    let r = rig(PATH_HOSTS);
    let guest = r.ca.leaf(&Spec::client("guest"));
    for (who, leaf) in [("anonymous", None), ("guest", Some(&guest))] {
        for p in ADMIN_SPELLINGS.iter().chain(BACKSLASH_SPELLINGS) {
            let out = r.h1(
                "app.test",
                leaf,
                &format!("GET {p} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
            );
            let status = out.status();
            assert!(
                [400, 401, 403].contains(&status),
                "HTTP/1.1 {who} {p}: {status}"
            );
        }
        let statuses = r.h2(
            "app.test",
            leaf,
            &ADMIN_SPELLINGS
                .iter()
                .map(|p| ("app.test".to_string(), p.to_string()))
                .collect::<Vec<_>>(),
        );
        for (p, status) in ADMIN_SPELLINGS.iter().zip(statuses) {
            assert!(
                [400, 401, 403].contains(&status),
                "HTTP/2 {who} {p}: {status}"
            );
        }
    }
    assert_eq!(
        reached_admin(&r.upstream.seen()),
        Vec::<String>::new(),
        "requests that reached the upstream"
    );
}

#[test]
fn allowed_clients_and_other_paths_get_the_canonical_path() {
    let r = rig(PATH_HOSTS);
    let ops = r.ca.leaf(&Spec::client("ops"));
    let cases = [
        ("/admin/%73ecret?q=%2e%2E", "/admin/secret?q=%2e%2E"),
        ("/public/../admin/./x", "/admin/x"),
        ("//admin//x/", "/admin/x/"),
        ("/admin;v=1/x", "/admin;v=1/x"),
        ("/files/a%3ab", "/files/a%3Ab"),
        ("/files/%7euser", "/files/~user"),
        ("/plain", "/plain"),
    ];
    for (i, (sent, forwarded)) in cases.iter().enumerate() {
        let out = r.h1(
            "app.test",
            Some(&ops),
            &format!("GET {sent} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(out.status(), 200, "{sent}");
        r.upstream.wait_for(i + 1);
        assert_eq!(r.upstream.seen()[i].uri, *forwarded, "{sent}");
    }
    // escapedSlashes: keep passes %2F on as it is, never decoded.
    let out = r.h1(
        "b.test",
        None,
        "GET /api/group%2Fproject/..%2Fx HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), 200);
    r.upstream.wait_for(cases.len() + 1);
    assert_eq!(
        r.upstream.seen()[cases.len()].uri,
        "/api/group%2Fproject/..%2Fx"
    );
}

/// a.test and b.test share certificate and client auth (samePolicy);
/// b.test protects its routes. c.test has no client auth.
const SIBLING_HOSTS: &str = "      - hostnames: [a.test]
        certificate: server
        clientAuth: { mode: optional, trustBundle: clients }
        strictSni: samePolicy
        routes:
          - { pathPrefix: /, upstream: rec }
      - hostnames: [b.test]
        certificate: server
        clientAuth: { mode: optional, trustBundle: clients }
        strictSni: samePolicy
        forwardClientCert: sanitizeSet
        routes:
          - { pathPrefix: /, upstream: rec, allow: { commonNames: [ops] } }
      - hostnames: [c.test]
        certificate: server
        strictSni: false
        routes:
          - { pathPrefix: /, upstream: rec }";

const B_SPELLINGS: &[&str] = &[
    "b.test",
    "B.TEST",
    "b.test.",
    "B.Test.",
    "b.test:443",
    "b.test:8443",
    "B.TEST.:1",
];

#[test]
fn a_sibling_host_is_served_wholly_by_its_own_entry() {
    let r = rig(SIBLING_HOSTS);
    let guest = r.ca.leaf(&Spec::client("guest"));
    for host in B_SPELLINGS {
        for leaf in [None, Some(&guest)] {
            let out = r.h1(
                "a.test",
                leaf,
                &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            );
            assert!(
                [401, 403].contains(&out.status()),
                "Host {host} on a.test: {out:?}"
            );
        }
    }
    let statuses = r.h2(
        "a.test",
        Some(&guest),
        &B_SPELLINGS
            .iter()
            .map(|h| (h.to_string(), "/x".to_string()))
            .collect::<Vec<_>>(),
    );
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    assert!(r.upstream.seen().is_empty(), "{:?}", r.upstream.seen());

    // An allowed client on a.test's connection gets b.test's forwarding.
    let ops = r.ca.leaf(&Spec::client("ops"));
    let out = r.h1(
        "a.test",
        Some(&ops),
        "GET /x HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), 200);
    r.upstream.wait_for(1);
    let xfcc = r.upstream.seen()[0]
        .header("x-forwarded-client-cert")
        .map(str::to_owned);
    assert!(
        xfcc.as_deref().is_some_and(|x| x.contains("CN=ops")),
        "{xfcc:?}"
    );
}

#[test]
fn strict_sni_off_never_crosses_into_another_client_auth_policy() {
    let r = rig(SIBLING_HOSTS);
    // c.test has no client auth and strictSni: false; a.test and b.test
    // ask for certificates.
    for host in ["a.test", "B.TEST.", "b.test:443"] {
        let out = r.h1(
            "c.test",
            None,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(out.status(), 421, "Host {host} on c.test");
    }
    let statuses = r.h2("c.test", None, &[("b.test".to_string(), "/x".to_string())]);
    assert_eq!(statuses, vec![421]);
    assert!(r.upstream.seen().is_empty());
    // A name no entry serves is the entry's own business with strictSni off.
    let out = r.h1(
        "c.test",
        None,
        "GET /x HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), 200);
}

#[test]
fn authority_and_host_must_name_the_same_entry() {
    let r = rig(SIBLING_HOSTS);
    // Absolute-form target for a.test, Host for b.test.
    let out = r.h1(
        "a.test",
        None,
        "GET https://a.test/x HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), 421);
    assert!(r.upstream.seen().is_empty());
}

/// Spellings of b.test's host that a lenient reader (a backend, a log
/// pipeline) may take for b.test but that name no entry exactly.
const AMBIGUOUS_B: &[&str] = &[
    "u@b.test",
    "u:p@b.test",
    "@b.test",
    "c.test@b.test",
    "b.test:443.",
    "b.test.:443.",
    "b.test:",
    "b.test:443:443",
    "b.test:44x",
    "b.test:99999",
    "b.test:0443443",
    "b.test: 443",
    "b.test%2e",
    "b%2etest",
    "b.test..",
    ".b.test",
    "b..test",
    "b.test/",
    "b.test\\x",
    "b.test;x",
    "b.test,c.test",
    "[b.test]",
    "*.test",
    "127.0.0.01",
    "0x7f.0.0.1",
    "2130706433",
];

#[test]
fn an_ambiguous_host_spelling_is_refused_before_any_upstream() {
    let r = rig(SIBLING_HOSTS);
    // c.test has no client auth and strictSni: false, where a name that no
    // entry serves is its own: a spelling of b.test that misses b.test's
    // entry would be served without b.test's client auth and allow.
    for host in AMBIGUOUS_B {
        for sni in ["c.test", "a.test"] {
            let out = r.h1(
                sni,
                None,
                &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            );
            assert_eq!(out.status(), 400, "Host {host:?} on {sni}: {out:?}");
        }
        let out = r.h1(
            "c.test",
            None,
            &format!("GET https://{host}/x HTTP/1.1\r\nHost: c.test\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            [400, 421].contains(&out.status()),
            "absolute-form {host:?}: {out:?}"
        );
    }
    let statuses = r.h2(
        "c.test",
        None,
        &AMBIGUOUS_B
            .iter()
            .map(|h| (format!("c.test|{h}"), "/x".to_string()))
            .collect::<Vec<_>>(),
    );
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    let statuses = r.h2(
        "c.test",
        None,
        &["u@b.test", "u:p@b.test:443"]
            .iter()
            .map(|h| (h.to_string(), "/x".to_string()))
            .collect::<Vec<_>>(),
    );
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    assert!(r.upstream.seen().is_empty(), "{:?}", r.upstream.seen());
    // The plain spellings still work.
    for host in ["c.test", "C.TEST.", "c.test:443", "c.test:1"] {
        let out = r.h1(
            "c.test",
            None,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(out.status(), 200, "Host {host:?}");
    }
}

const UPGRADES: &[(&str, &str)] = &[
    ("Upgrade, HTTP2-Settings", "h2c"),
    ("upgrade", "h2c"),
    ("UPGRADE", "H2C"),
    ("keep-alive, Upgrade", "h2c"),
    ("Upgrade", "TLS/1.2"),
    ("Upgrade", "websocket, h2c"),
    ("Upgrade", "h2c, websocket"),
    ("Upgrade", "HTTP/2.0"),
    ("Upgrade", "IRC/6.9"),
];

#[test]
fn only_websocket_upgrades_reach_the_upstream() {
    let r = rig(PATH_HOSTS);
    for (i, (connection, upgrade)) in UPGRADES.iter().enumerate() {
        let cfg = config(&r.ca, None, &[]);
        let mut s = connect(r.addr(), "app.test", &cfg).unwrap();
        // The upgrade request, then on the same connection a request for a
        // protected path: it must still be judged by the gateway.
        let raw = format!(
            "GET /public HTTP/1.1\r\nHost: app.test\r\nConnection: {connection}\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n\
             GET /admin/secret HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        );
        let out = exchange(&mut s, &raw);
        let Outcome::Http(status, body) = out else {
            panic!("{upgrade}: {out:?}")
        };
        assert_eq!(status, 200, "{upgrade}");
        assert!(
            body.contains("HTTP/1.1 401"),
            "{upgrade}: second request {body}"
        );
        r.upstream.wait_for(i + 1);
    }
    let seen = r.upstream.seen();
    assert_eq!(seen.len(), UPGRADES.len());
    for s in &seen {
        assert_eq!(s.uri, "/public");
        for h in ["upgrade", "http2-settings"] {
            assert_eq!(s.header(h), None, "{h} reached the upstream: {s:?}");
        }
        assert!(
            !s.all("connection")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("upgrade")),
            "{s:?}"
        );
    }
}
