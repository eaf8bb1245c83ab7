//! Identity forwarding and authorization end to end (SPEC §3, §4). The
//! attacker's tests first: whatever identity headers a client sends — in any
//! case, with `_`, duplicated, named in `Connection`, over HTTP/1.1 or
//! HTTP/2 — the recording upstream sees only what the gateway computed.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::support::client::{self, config, connect, exchange};
use crate::support::upstream::Seen;
use crate::support::{write, write_leaf, Ca, Gateway, Leaf, Outcome, Spec, Upstream};

struct Id {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

const NAMES: [&str; 8] = [
    "xfcc.test",
    "plain.test",
    "opt.test",
    "noca.test",
    "authz.test",
    "optauthz.test",
    "append.test",
    "always.test",
];

fn setup() -> Id {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Identity CA");
    let mut server = Spec::server(&NAMES);
    server.uris.push("spiffe://gateway.test/portcullis".into());
    write_leaf(d, "server", &ca.leaf(&server));
    write(d, "ca.crt", &ca.cert_pem);
    let upstream = Upstream::start();
    let templates = "        requestHeaders:
          X-Client-CN: \"%DOWNSTREAM_PEER_SUBJECT%\"
          X-Client-Fp: \"fp=%DOWNSTREAM_PEER_FINGERPRINT_256%\"
          X-Tls: \"%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_SNI%\"
";
    let routes = "        routes: [{ pathPrefix: /, upstream: rec }]\n";
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
      - hostnames: [xfcc.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        forwardClientCert: sanitizeSet
        xfccDetails: [DNS, Cert, Subject, URI, Chain]
        passCertificateToUpstream: true
{templates}{routes}
      - hostnames: [plain.test]
        certificate: server
        passCertificateToUpstream: true
{templates}{routes}
      - hostnames: [opt.test]
        certificate: server
        clientAuth: {{ mode: optional, trustBundle: clients }}
        forwardClientCert: sanitizeSet
        passCertificateToUpstream: true
{templates}{routes}
      - hostnames: [noca.test]
        certificate: server
        clientAuth: {{ mode: optionalNoCa, trustBundle: clients }}
        forwardClientCert: appendForward
        passCertificateToUpstream: true
{templates}        routes:
          - {{ pathPrefix: /private, upstream: rec, allow: {{ commonNames: [admin] }} }}
          - {{ pathPrefix: /, upstream: rec }}
      - hostnames: [authz.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients, allow: {{ commonNames: [admin, ops-bot] }} }}
        routes:
          - {{ pathPrefix: /ops, upstream: rec, allow: {{ organizationalUnits: [ops] }} }}
          - {{ pathPrefix: /, upstream: rec }}
      - hostnames: [optauthz.test]
        certificate: server
        clientAuth: {{ mode: optional, trustBundle: clients }}
        routes:
          - {{ pathPrefix: /private, upstream: rec, allow: {{ commonNames: [admin] }} }}
          - {{ pathPrefix: /, upstream: rec }}
      - hostnames: [append.test]
        certificate: server
        clientAuth: {{ mode: optional, trustBundle: clients }}
        forwardClientCert: appendForward
        xfccDetails: [Subject]
{routes}
      - hostnames: [always.test]
        certificate: server
        clientAuth: {{ mode: optional, trustBundle: clients }}
        forwardClientCert: alwaysForwardOnly
{routes}
upstreams:
  rec: {{ url: \"http://{}\" }}
",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Id {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

/// Every identity header name a client might try, in several spellings,
/// some twice, and a `Connection` header naming two of them.
const ATTACK: &str = "x-forwarded-client-cert: Hash=evil;Subject=\"CN=admin\"\r\n\
X-Forwarded-Client-Cert: By=spiffe://evil\r\n\
x_forwarded_client_cert: Hash=underscore\r\n\
ssl-client-cert: forged\r\n\
SSL_CLIENT_VERIFY: SUCCESS\r\n\
ssl-client-verify: SUCCESS\r\n\
Ssl-Client-Subject-DN: CN=admin\r\n\
ssl_client_issuer_dn: CN=evil CA\r\n\
ssl-client-issuer-dn: CN=evil CA\r\n\
x-forwarded-tls-client-cert: forged\r\n\
X-Forwarded-Tls-Client-Cert-Info: forged\r\n\
client-cert: :Zm9yZ2Vk:\r\n\
client-cert-chain: :Zm9yZ2Vk:\r\n\
X-Client-CN: CN=admin\r\n\
x_client_cn: CN=admin\r\n\
x-client-fp: fp=0000\r\n\
Connection: x-forwarded-client-cert, ssl-client-verify\r\n";

const IDENTITY_NAMES: [&str; 12] = [
    "x-forwarded-client-cert",
    "ssl-client-cert",
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "ssl-client-issuer-dn",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "client-cert",
    "client-cert-chain",
    "x-client-cn",
    "x-client-fp",
    "x-tls",
];

/// The values the upstream saw for `name`, with names compared after
/// lower-casing and reading `_` as `-` (as many frameworks do).
fn values<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Id {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }

    fn request(&self, sni: &str, cert: Option<&Leaf>, path: &str, extra: &str) -> Outcome {
        let mut s = connect(self.addr(), sni, &config(&self.ca, cert, &[])).unwrap();
        exchange(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\n{extra}Connection: close\r\n\r\n"),
        )
    }

    fn last(&self) -> Seen {
        self.upstream
            .seen()
            .pop()
            .expect("the upstream was reached")
    }
}

fn sha256_hex(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RFC 3986 unreserved characters kept, everything else `%XX` — written
/// here independently of the product's encoder.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn first_pem(chain_pem: &str) -> String {
    let end = "-----END CERTIFICATE-----\n";
    let i = chain_pem.find(end).unwrap() + end.len();
    chain_pem[..i].to_string()
}

#[test]
fn client_without_certificate_cannot_inject_identity_on_host_without_client_auth() {
    let t = setup();
    assert_eq!(t.request("plain.test", None, "/", ATTACK).status(), 200);
    let seen = t.last();
    for name in IDENTITY_NAMES {
        let v = values(&seen, name);
        match name {
            "ssl-client-verify" => assert_eq!(v, vec!["NONE"], "{name}"),
            "x-client-cn" | "x-client-fp" => assert_eq!(
                v,
                vec![if name == "x-client-fp" { "fp=" } else { "" }],
                "{name}"
            ),
            "x-tls" => assert_eq!(v, vec!["TLSv1.3 plain.test"]),
            _ => assert!(v.is_empty(), "{name} reached the upstream: {v:?}"),
        }
    }
}

#[test]
fn verified_client_cannot_inject_identity_and_gets_the_computed_headers() {
    let t = setup();
    let inter = t.ca.intermediate("Identity Intermediate");
    let leaf = inter.leaf(&Spec {
        dns: vec!["client.example.com".into()],
        uris: vec!["spiffe://td/ns/a;b=c".into(), "spiffe://td/ns/plain".into()],
        ..Spec::client("xfcc-client")
    });
    assert_eq!(
        t.request("xfcc.test", Some(&leaf), "/", ATTACK).status(),
        200
    );
    let seen = t.last();
    let hash = sha256_hex(&leaf.chain[0]);
    let leaf_pem = first_pem(&leaf.chain_pem);
    // Envoy's order whatever the config's order; `;` `=` in a URI quoted.
    let expected_xfcc = format!(
        "By=spiffe://gateway.test/portcullis;Hash={hash};Cert=\"{}\";Chain=\"{}\";Subject=\"CN=xfcc-client\";\
         URI=\"spiffe://td/ns/a;b=c\";URI=spiffe://td/ns/plain;DNS=client.example.com",
        url_encode(&leaf_pem),
        url_encode(&leaf.chain_pem),
    );
    assert_eq!(
        values(&seen, "x-forwarded-client-cert"),
        vec![expected_xfcc.as_str()]
    );
    assert_eq!(values(&seen, "ssl-client-verify"), vec!["SUCCESS"]);
    assert_eq!(
        values(&seen, "ssl-client-cert"),
        vec![url_encode(&leaf_pem).as_str()]
    );
    assert_eq!(
        values(&seen, "ssl-client-subject-dn"),
        vec!["CN=xfcc-client"]
    );
    assert_eq!(
        values(&seen, "ssl-client-issuer-dn"),
        vec!["CN=Identity Intermediate"]
    );
    assert_eq!(values(&seen, "x-client-cn"), vec!["CN=xfcc-client"]);
    assert_eq!(
        values(&seen, "x-client-fp"),
        vec![format!("fp={hash}").as_str()]
    );
    for name in [
        "x-forwarded-tls-client-cert",
        "x-forwarded-tls-client-cert-info",
        "client-cert",
        "client-cert-chain",
    ] {
        assert!(values(&seen, name).is_empty(), "{name}");
    }
}

/// Sends the attack headers over HTTP/2 (where `Connection` is not allowed).
fn attack_over_h2(t: &Id, sni: &str, cert: Option<&Leaf>) -> http::StatusCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(t.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config(&t.ca, cert, &["h2"]))
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
        let mut req = http::Request::get(format!("https://{sni}/h2"));
        for line in ATTACK.lines() {
            let (k, v) = line.trim_end_matches('\r').split_once(": ").unwrap();
            if !k.eq_ignore_ascii_case("connection") {
                req = req.header(k.to_ascii_lowercase(), v);
            }
        }
        let body = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        send.send_request(body).await.unwrap().status()
    })
}

#[test]
fn anonymous_client_cannot_inject_identity_over_http2() {
    let t = setup();
    assert_eq!(attack_over_h2(&t, "plain.test", None), 200);
    let seen = t.last();
    for name in IDENTITY_NAMES {
        let v = values(&seen, name);
        match name {
            "ssl-client-verify" => assert_eq!(v, vec!["NONE"]),
            "x-client-cn" => assert_eq!(v, vec![""]),
            "x-client-fp" => assert_eq!(v, vec!["fp="]),
            "x-tls" => assert_eq!(v, vec!["TLSv1.3 plain.test"]),
            _ => assert!(v.is_empty(), "{name} reached the upstream: {v:?}"),
        }
    }
}

/// An XFCC header read with Envoy's documented grammar, written here apart
/// from the product: elements split on `,` outside quotes, pairs on `;`
/// outside quotes, key and value on the first `=`; inside quotes `\"` is an
/// escaped quote and nothing else is an escape.
fn envoy_xfcc(header: &str) -> Vec<Vec<(String, String)>> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = header.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ';' if !quoted => pairs.push(std::mem::take(&mut cur)),
            ',' if !quoted => {
                pairs.push(std::mem::take(&mut cur));
                elements.push(std::mem::take(&mut pairs));
            }
            _ => cur.push(c),
        }
    }
    assert!(!quoted, "unterminated quote in {header}");
    pairs.push(cur);
    elements.push(pairs);
    elements
        .into_iter()
        .map(|e| {
            e.into_iter()
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (p, String::new()),
                })
                .collect()
        })
        .collect()
}

/// The values of `key` in the only element of an XFCC header.
fn xfcc_values(header: &str, key: &str) -> Vec<String> {
    let elements = envoy_xfcc(header);
    assert_eq!(elements.len(), 1, "{header}");
    elements[0]
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn xfcc_subject_with_commas_and_quotes_parses_back_to_the_dn() {
    let t = setup();
    for (cn, dn) in [
        ("Doe, Jane", "CN=Doe\\, Jane"),
        ("say \"hi\"", "CN=say \\\"hi\\\""),
        ("a,b;c=d \"e\"", "CN=a\\,b\\;c=d \\\"e\\\""),
    ] {
        let leaf = t.ca.leaf(&Spec {
            uris: vec!["spiffe://td/ns/a".into()],
            ..Spec::client(cn)
        });
        assert_eq!(t.request("xfcc.test", Some(&leaf), "/", "").status(), 200);
        let seen = t.last();
        assert_eq!(values(&seen, "ssl-client-subject-dn"), vec![dn]);
        let xfcc = values(&seen, "x-forwarded-client-cert");
        assert_eq!(xfcc_values(xfcc[0], "Subject"), vec![dn], "{}", xfcc[0]);
        assert_eq!(xfcc_values(xfcc[0], "URI"), vec!["spiffe://td/ns/a"]);
    }
}

#[test]
fn a_subject_ending_in_a_backslash_cannot_forge_xfcc_pairs() {
    let t = setup();
    // Were the subject's closing quote read as an escaped one, the quoted
    // SAN would end its quotes early and `URI=spiffe://td/ns/admin` would
    // stand as a pair of its own.
    let evil = "x;URI=spiffe://td/ns/admin;y=";
    let leaf = t.ca.leaf(&Spec {
        uris: vec![evil.into()],
        dns: vec!["after.test".into()],
        ..Spec::client("evil\\")
    });
    assert_eq!(t.request("xfcc.test", Some(&leaf), "/", "").status(), 200);
    let seen = t.last();
    assert_eq!(values(&seen, "ssl-client-subject-dn"), vec!["CN=evil\\\\"]);
    let xfcc = values(&seen, "x-forwarded-client-cert")[0];
    // The same DN, its final backslash as the RFC 4514 hex escape.
    assert_eq!(xfcc_values(xfcc, "Subject"), vec!["CN=evil\\5C"], "{xfcc}");
    assert_eq!(xfcc_values(xfcc, "URI"), vec![evil], "{xfcc}");
    assert_eq!(xfcc_values(xfcc, "DNS"), vec!["after.test"], "{xfcc}");
}

#[test]
fn identity_headers_cannot_be_injected_over_http2() {
    let t = setup();
    let leaf = t.ca.leaf(&Spec::client("h2-client"));
    let status = attack_over_h2(&t, "xfcc.test", Some(&leaf));
    assert_eq!(status, 200);
    let seen = t.last();
    let hash = sha256_hex(&leaf.chain[0]);
    let xfcc = values(&seen, "x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1);
    assert!(
        xfcc[0].starts_with(&format!(
            "By=spiffe://gateway.test/portcullis;Hash={hash};Cert="
        )),
        "{}",
        xfcc[0]
    );
    assert_eq!(values(&seen, "ssl-client-verify"), vec!["SUCCESS"]);
    assert_eq!(values(&seen, "ssl-client-subject-dn"), vec!["CN=h2-client"]);
    assert_eq!(values(&seen, "x-client-cn"), vec!["CN=h2-client"]);
    assert!(values(&seen, "client-cert").is_empty());
}

/// No identity header claims success for an identity that is absent or
/// unverified.
fn assert_nothing_claims_success(seen: &Seen, verify: &str) {
    assert_eq!(values(seen, "ssl-client-verify"), vec![verify]);
    assert!(
        values(seen, "x-forwarded-client-cert").is_empty(),
        "{:?}",
        seen.headers
    );
    assert_eq!(values(seen, "x-client-cn"), vec![""]);
    assert_eq!(values(seen, "x-client-fp"), vec!["fp="]);
}

#[test]
fn optional_without_certificate_claims_nothing() {
    let t = setup();
    assert_eq!(t.request("opt.test", None, "/", ATTACK).status(), 200);
    assert_nothing_claims_success(&t.last(), "NONE");
}

#[test]
fn optional_no_ca_unverified_certificates_claim_nothing() {
    let t = setup();
    assert_eq!(t.request("noca.test", None, "/", ATTACK).status(), 200);
    assert_nothing_claims_success(&t.last(), "NONE");
    let expired = t.ca.leaf(&Spec {
        not_before_days: -9,
        not_after_days: -1,
        ..Spec::client("admin")
    });
    let self_signed_leaf = crate::support::pki::self_signed_client("admin");
    let wrong_ca = Ca::root("Other CA").leaf(&Spec::client("admin"));
    for (leaf, reason) in [
        (&expired, "expired"),
        (&self_signed_leaf, "unknown_ca"),
        (&wrong_ca, "unknown_ca"),
    ] {
        assert_eq!(
            t.request("noca.test", Some(leaf), "/", ATTACK).status(),
            200
        );
        let seen = t.last();
        assert_nothing_claims_success(&seen, &format!("FAILED:{reason}"));
        assert_eq!(
            values(&seen, "ssl-client-subject-dn"),
            vec!["CN=admin"],
            "the certificate is passed on, marked failed"
        );
        // And `allow` never grants it.
        let before = t.upstream.seen().len();
        let out = t.request("noca.test", Some(leaf), "/private", "");
        assert_eq!(out.status(), 403, "{out:?}");
        assert!(out.body().contains(reason), "{out:?}");
        assert_eq!(
            t.upstream.seen().len(),
            before,
            "the upstream must not be reached"
        );
    }
}

#[test]
fn optional_refuses_expired_and_wrong_ca_certificates_outright() {
    let t = setup();
    let expired = t.ca.leaf(&Spec {
        not_before_days: -9,
        not_after_days: -1,
        ..Spec::client("admin")
    });
    let wrong_ca = Ca::root("Other CA").leaf(&Spec::client("admin"));
    let self_signed = crate::support::pki::self_signed_client("admin");
    for leaf in [&expired, &wrong_ca, &self_signed] {
        assert!(matches!(
            t.request("opt.test", Some(leaf), "/", ATTACK),
            Outcome::Alert(_)
        ));
    }
    assert!(t.upstream.seen().is_empty());
}

#[test]
fn host_allow_grants_exact_common_names_only() {
    let t = setup();
    let admin = t.ca.leaf(&Spec::client("admin"));
    assert_eq!(t.request("authz.test", Some(&admin), "/", "").status(), 200);
    assert_eq!(t.upstream.seen().len(), 1);
    let evil = t.ca.leaf(&Spec::client("admin-evil"));
    let out = t.request("authz.test", Some(&evil), "/", "");
    assert_eq!(out.status(), 403);
    assert!(
        out.body().contains("CN=admin-evil") && out.body().contains("not allowed for this host"),
        "{out:?}"
    );
    assert_eq!(
        t.upstream.seen().len(),
        1,
        "a denied request never reaches the upstream"
    );
}

#[test]
fn organizational_unit_that_looks_like_a_common_name_is_denied() {
    let t = setup();
    // A certificate whose CN is "user" and whose OU is the text "CN=admin".
    let leaf = t.ca.leaf(&Spec {
        dn: vec![("OU", "CN=admin".into())],
        ..Spec::client("user")
    });
    let out = t.request("authz.test", Some(&leaf), "/", "");
    assert_eq!(out.status(), 403, "{out:?}");
    assert!(t.upstream.seen().is_empty());
}

#[test]
fn route_allow_refuses_with_403_and_host_allow_still_applies() {
    let t = setup();
    let bot = t.ca.leaf(&Spec {
        dn: vec![("OU", "ops".into())],
        ..Spec::client("ops-bot")
    });
    let admin = t.ca.leaf(&Spec::client("admin"));
    assert_eq!(
        t.request("authz.test", Some(&bot), "/ops/run", "").status(),
        200
    );
    let out = t.request("authz.test", Some(&admin), "/ops/run", "");
    assert_eq!(out.status(), 403);
    assert!(out.body().contains("not allowed for this path"), "{out:?}");
    assert_eq!(t.upstream.seen().len(), 1);
}

#[test]
fn route_needing_identity_answers_401_to_anonymous_client() {
    let t = setup();
    assert_eq!(
        t.request("optauthz.test", None, "/public", "").status(),
        200
    );
    let out = t.request("optauthz.test", None, "/private/x", "");
    assert_eq!(out.status(), 401);
    assert!(
        out.body().contains("client certificate is required"),
        "{out:?}"
    );
    let other = t.ca.leaf(&Spec::client("someone"));
    assert_eq!(
        t.request("optauthz.test", Some(&other), "/private/x", "")
            .status(),
        403
    );
    let admin = t.ca.leaf(&Spec::client("admin"));
    assert_eq!(
        t.request("optauthz.test", Some(&admin), "/private/x", "")
            .status(),
        200
    );
    let paths: Vec<String> = t.upstream.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(paths, vec!["/public", "/private/x"]);
}

#[test]
fn resumed_connection_is_authorized_like_a_full_handshake() {
    let t = setup();
    let evil = t.ca.leaf(&Spec::client("admin-evil"));
    let cfg: Arc<rustls::ClientConfig> = config(&t.ca, Some(&evil), &[]);
    let mut s = connect(t.addr(), "authz.test", &cfg).unwrap();
    assert_eq!(
        exchange(&mut s, &client::get_request("/", "authz.test")).status(),
        403
    );
    let mut s = connect(t.addr(), "authz.test", &cfg).unwrap();
    assert_eq!(
        s.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(
        exchange(&mut s, &client::get_request("/", "authz.test")).status(),
        403
    );
    assert!(t.upstream.seen().is_empty());
}

#[test]
fn append_forward_appends_to_a_verified_clients_header_only() {
    let t = setup();
    let leaf = t.ca.leaf(&Spec::client("appender"));
    let hash = sha256_hex(&leaf.chain[0]);
    t.request(
        "append.test",
        Some(&leaf),
        "/",
        "X-Forwarded-Client-Cert: Hash=upstream-proxy\r\n",
    );
    assert_eq!(
        values(&t.last(), "x-forwarded-client-cert"),
        vec![format!("Hash=upstream-proxy,By=spiffe://gateway.test/portcullis;Hash={hash};Subject=\"CN=appender\"").as_str()]
    );
    t.request(
        "append.test",
        None,
        "/",
        "X-Forwarded-Client-Cert: Hash=upstream-proxy\r\n",
    );
    assert!(values(&t.last(), "x-forwarded-client-cert").is_empty());
}

#[test]
fn always_forward_only_passes_the_incoming_header_untouched() {
    let t = setup();
    t.request(
        "always.test",
        None,
        "/",
        "X-Forwarded-Client-Cert: Hash=from-front-proxy\r\nx_forwarded_client_cert: smuggled\r\n",
    );
    assert_eq!(
        values(&t.last(), "x-forwarded-client-cert"),
        vec!["Hash=from-front-proxy"]
    ); // Several incoming lines travel as one, joined by commas.
    t.request(
        "always.test",
        None,
        "/",
        "X-Forwarded-Client-Cert: Hash=a\r\nX-Forwarded-Client-Cert: Hash=b\r\nX-Forwarded-Client-Cert: Hash=c\r\n",
    );
    assert_eq!(
        values(&t.last(), "x-forwarded-client-cert"),
        vec!["Hash=a,Hash=b,Hash=c"]
    );
}
