//! SPEC §3, every cell: require / optional / optionalNoCa / none against no
//! certificate, certificates that fail verification, and good ones; verify
//! depth; CRLs (leaf and chain); clientAuth EKU. Each refusal asserts the
//! alert, the logged result label, and that the upstream was not reached.

use std::sync::Arc;

use rustls::AlertDescription;

use crate::support::client::{self, config, get};
use crate::support::{write, write_leaf, Ca, Eku, Gateway, Leaf, Outcome, Spec, Upstream};

/// One host entry routing `/echo` to the echo and the rest to `rec`.
pub fn host(name: &str, client_auth: &str) -> String {
    format!(
        "      - hostnames: [{name}]
        certificate: server
        clientAuth: {client_auth}
        routes:
          - {{ path: /echo, upstream: echo }}
          - {{ pathPrefix: /, upstream: rec }}
"
    )
}

pub fn config_yaml(hosts: &[String], bundles: &str, upstream: &Upstream) -> String {
    format!(
        "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
{bundles}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
{}
upstreams:
  echo: {{ builtin: echo }}
  rec: {{ url: \"http://{}\" }}
",
        hosts.concat(),
        upstream.addr
    )
}

struct Matrix {
    gw: Gateway,
    root: Ca,
    inter: Ca,
    inter2: Ca,
    upstream: Upstream,
    revoked: crate::support::Leaf,
    _dir: tempfile::TempDir,
}

const HOSTS: [&str; 10] = [
    "optional-strict.test",
    "noca-strict.test",
    "require.test",
    "optional.test",
    "noca.test",
    "none.test",
    "depth.test",
    "crl-leaf.test",
    "crl-chain.test",
    "require12.test",
];

fn matrix() -> Matrix {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Ca::root("Matrix Root CA");
    let inter = root.intermediate("Matrix Intermediate 1");
    let inter2 = inter.intermediate("Matrix Intermediate 2");
    write_leaf(d, "server", &root.leaf(&Spec::server(&HOSTS)));
    write(d, "root.crt", &root.cert_pem);
    let upstream = Upstream::start();
    let hosts = vec![
        host("require.test", "{ mode: require, trustBundle: root }"),
        host("optional.test", "{ mode: optional, trustBundle: root }"),
        host("noca.test", "{ mode: optionalNoCa, trustBundle: root }"),
        host("none.test", "{ mode: none }"),
        host(
            "depth.test",
            "{ mode: require, trustBundle: root, verifyDepth: 1 }",
        ),
        host(
            "crl-leaf.test",
            "{ mode: require, trustBundle: withcrl, crlCheck: leaf }",
        ),
        host(
            "crl-chain.test",
            "{ mode: require, trustBundle: withcrl, crlCheck: chain }",
        ),
        host("require12.test", "{ mode: require, trustBundle: root }"),
        host(
            "optional-strict.test",
            "{ mode: optional, trustBundle: withcrl, verifyDepth: 1 }",
        ),
        host(
            "noca-strict.test",
            "{ mode: optionalNoCa, trustBundle: withcrl, verifyDepth: 1 }",
        ),
    ];
    // The CRLs: the root revokes `revoked-direct` and Intermediate 1;
    // Intermediate 1 and 2 revoke nothing.
    let bundles = "  root: { caFile: root.crt }\n  withcrl: { caFile: root.crt, crlFiles: [root.crl, inter.crl, inter2.crl] }\n";
    let revoked = root.leaf(&Spec::client("revoked-direct"));
    write(d, "root.crl", &root.crl(&[&revoked.serial, &inter.serial]));
    write(d, "inter.crl", &inter.crl(&[]));
    write(d, "inter2.crl", &inter2.crl(&[]));
    let gw = Gateway::start(d, &config_yaml(&hosts, bundles, &upstream));
    Matrix {
        gw,
        root,
        inter,
        inter2,
        upstream,
        revoked,
        _dir: dir,
    }
}

impl Matrix {
    fn addr(&self) -> std::net::SocketAddr {
        self.gw.addr("main")
    }

    fn get(&self, sni: &str, cert: Option<&crate::support::Leaf>, path: &str) -> Outcome {
        get(self.addr(), sni, &config(&self.root, cert, &[]), path)
    }

    /// One refusal line of `result` with every field (SPEC §3), and the
    /// upstream untouched.
    fn assert_refused_as(&self, result: &str) {
        self.gw.log.refusal(result);
        assert!(
            self.upstream.seen().is_empty(),
            "the upstream must not be reached: {:?}",
            self.upstream.seen()
        );
    }
}

fn client(ca: &Ca, cn: &str) -> crate::support::Leaf {
    ca.leaf(&Spec::client(cn))
}

// ---- require ----

#[test]
fn require_without_certificate_is_refused_with_certificate_required() {
    let m = matrix();
    assert_eq!(
        m.get("require.test", None, "/"),
        Outcome::Alert(AlertDescription::CertificateRequired)
    );
    m.assert_refused_as("no_certificate");
}

#[test]
fn require_without_certificate_over_tls12_is_refused() {
    let m = matrix();
    let cfg = client::config_with(&m.root.der, None, &[], Some(&rustls::version::TLS12));
    let out = get(m.addr(), "require12.test", &cfg, "/");
    // As docs/configuration.md says: the same alert as TLS 1.3 (SPEC §3
    // allows handshake_failure too; rustls sends certificate_required).
    assert_eq!(out, Outcome::Alert(AlertDescription::CertificateRequired));
    m.assert_refused_as("no_certificate");
}

#[test]
fn require_with_unknown_ca_is_refused_with_unknown_ca() {
    let m = matrix();
    let stranger = Ca::root("Stranger CA");
    let leaf = client(&stranger, "intruder");
    assert_eq!(
        m.get("require.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::UnknownCA)
    );
    let line = m.gw.log.wait_for("rejected certificate", |v| {
        v["message"] == "tls handshake refused" && v["subject"] == "CN=intruder"
    });
    assert_eq!(line["issuer"], "CN=Stranger CA");
    assert_eq!(line["sni"], "require.test");
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(line["fingerprint"].as_str().unwrap().len(), 64);
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .starts_with("issued by CN=Stranger CA, which trust bundle"),
        "{line}"
    );
    m.assert_refused_as("unknown_ca");
}

#[test]
fn require_with_expired_certificate_is_refused_with_certificate_expired() {
    let m = matrix();
    let leaf = m.root.leaf(&Spec {
        not_before_days: -30,
        not_after_days: -1,
        ..Spec::client("old")
    });
    assert_eq!(
        m.get("require.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::CertificateExpired)
    );
    m.assert_refused_as("expired");
}

#[test]
fn require_with_not_yet_valid_certificate_is_refused() {
    let m = matrix();
    let leaf = m.root.leaf(&Spec {
        not_before_days: 2,
        not_after_days: 30,
        ..Spec::client("early")
    });
    assert_eq!(
        m.get("require.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::CertificateExpired)
    );
    m.assert_refused_as("not_yet_valid");
}

#[test]
fn require_with_server_only_certificate_is_refused_as_bad_usage() {
    let m = matrix();
    let leaf = m.root.leaf(&Spec {
        eku: Eku::Server,
        ..Spec::client("server-only")
    });
    assert_eq!(
        m.get("require.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::UnsupportedCertificate)
    );
    m.assert_refused_as("bad_usage");
}

#[test]
fn require_accepts_certificate_without_eku_extension() {
    let m = matrix();
    let leaf = m.root.leaf(&Spec {
        eku: Eku::Absent,
        ..Spec::client("no-eku")
    });
    assert_eq!(
        m.get("require.test", Some(&leaf), "/echo").json()["tls"]["peer"]["subject"],
        "CN=no-eku"
    );
}

#[test]
fn require_with_good_certificate_reaches_upstream() {
    let m = matrix();
    let leaf = client(&m.root, "good");
    let out = m.get("require.test", Some(&leaf), "/hello");
    assert_eq!(out, Outcome::Http(200, "from upstream".into()));
    let seen = m.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/hello");
}

#[test]
fn require_echo_reports_verified_identity() {
    let m = matrix();
    let leaf = client(&m.inter, "via-intermediate");
    let v = m.get("require.test", Some(&leaf), "/echo").json();
    let peer = &v["tls"]["peer"];
    assert_eq!(peer["verified"], true);
    assert_eq!(peer["subject"], "CN=via-intermediate");
    assert_eq!(peer["issuer"], "CN=Matrix Intermediate 1");
    assert_eq!(v["tls"]["sni"], "require.test");
    assert_eq!(v["tls"]["version"], "TLSv1.3");
    assert!(
        v["tls"]["cipher"].as_str().unwrap().starts_with("TLS_"),
        "{v}"
    );
}

// ---- optional ----

#[test]
fn optional_without_certificate_is_accepted_anonymously() {
    let m = matrix();
    let v = m.get("optional.test", None, "/echo").json();
    assert!(v["tls"]["peer"].is_null(), "{v}");
}

#[test]
fn optional_with_unknown_ca_is_refused() {
    let m = matrix();
    let leaf = client(&Ca::root("Stranger CA"), "intruder");
    assert_eq!(
        m.get("optional.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::UnknownCA)
    );
    m.assert_refused_as("unknown_ca");
}

#[test]
fn optional_with_good_certificate_is_verified() {
    let m = matrix();
    let leaf = client(&m.root, "opt");
    assert_eq!(
        m.get("optional.test", Some(&leaf), "/echo").json()["tls"]["peer"]["verified"],
        true
    );
}

// ---- optionalNoCa ----

#[test]
fn optional_no_ca_without_certificate_is_anonymous() {
    let m = matrix();
    assert!(m.get("noca.test", None, "/echo").json()["tls"]["peer"].is_null());
}

#[test]
fn optional_no_ca_accepts_unknown_ca_marked_unverified() {
    let m = matrix();
    let leaf = client(&Ca::root("Stranger CA"), "stranger");
    let v = m.get("noca.test", Some(&leaf), "/echo").json();
    let peer = &v["tls"]["peer"];
    assert_eq!(peer["verified"], false);
    assert_eq!(peer["failure"], "unknown_ca");
    assert_eq!(peer["subject"], "CN=stranger");
}

#[test]
fn optional_no_ca_marks_expired_certificate() {
    let m = matrix();
    let leaf = m.root.leaf(&Spec {
        not_before_days: -30,
        not_after_days: -1,
        ..Spec::client("old")
    });
    let v = m.get("noca.test", Some(&leaf), "/echo").json();
    assert_eq!(v["tls"]["peer"]["verified"], false);
    assert_eq!(v["tls"]["peer"]["failure"], "expired");
}

#[test]
fn optional_no_ca_with_good_certificate_is_verified() {
    let m = matrix();
    let leaf = client(&m.root, "fine");
    let v = m.get("noca.test", Some(&leaf), "/echo").json();
    assert_eq!(v["tls"]["peer"]["verified"], true);
    assert!(v["tls"]["peer"]["failure"].is_null());
}

/// Presents a chain with a key that does not belong to it.
#[derive(Debug)]
struct WrongKey(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for WrongKey {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A client trusting `root` that presents `shown`'s chain signed with the key
/// of `key_of`.
fn wrong_key_config(root: &Ca, shown: &Leaf, key_of: &Leaf) -> Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = provider
        .key_provider
        .load_private_key(key_of.key())
        .unwrap();
    let ck = Arc::new(rustls::sign::CertifiedKey::new(shown.chain.clone(), key));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(WrongKey(ck)));
    Arc::new(cfg)
}

#[test]
fn optional_no_ca_still_requires_proof_of_key_possession() {
    let m = matrix();
    let shown = client(&Ca::root("Stranger CA"), "victim");
    let other = client(&m.root, "attacker");
    let out = get(
        m.addr(),
        "noca.test",
        &wrong_key_config(&m.root, &shown, &other),
        "/echo",
    );
    assert_eq!(out, Outcome::Alert(AlertDescription::DecryptError));
    assert!(m.upstream.seen().is_empty());
}

/// Verified chains are remembered (tls::cache); proof of key possession
/// must still be demanded every time.
#[test]
fn require_refuses_a_known_certificate_presented_without_its_key() {
    let m = matrix();
    let victim = client(&m.inter, "victim");
    let attacker = client(&m.root, "attacker");
    assert_eq!(
        m.get("require.test", Some(&victim), "/victim"),
        Outcome::Http(200, "from upstream".into())
    );
    let out = get(
        m.addr(),
        "require.test",
        &wrong_key_config(&m.root, &victim, &attacker),
        "/attacker",
    );
    assert_eq!(out, Outcome::Alert(AlertDescription::DecryptError));
    let seen: Vec<String> = m.upstream.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(seen, ["/victim"]);
}

/// A chain accepted on one host entry is judged afresh by another's policy
/// (each verifier remembers only its own results).
#[test]
fn a_chain_accepted_on_one_host_is_judged_again_on_another() {
    let m = matrix();
    let deep = client(&m.inter2, "deep");
    assert_eq!(m.get("require.test", Some(&deep), "/echo").status(), 200);
    let out = m.get("depth.test", Some(&deep), "/");
    assert!(matches!(out, Outcome::Alert(_)), "{out:?}");
    m.assert_refused_as("chain_too_long");
    // Intermediate 1 is revoked in `withcrl`.
    let via = client(&m.inter, "via-revoked");
    assert_eq!(m.get("require.test", Some(&via), "/echo").status(), 200);
    assert_eq!(
        m.get("crl-chain.test", Some(&via), "/"),
        Outcome::Alert(AlertDescription::CertificateRevoked)
    );
}

/// Identities read once per chain are never handed to another client.
#[test]
fn reconnecting_clients_each_keep_their_own_identity() {
    let m = matrix();
    let alice = client(&m.root, "alice");
    let bob = client(&m.inter, "bob");
    for (leaf, cn) in [
        (&alice, "CN=alice"),
        (&bob, "CN=bob"),
        (&alice, "CN=alice"),
        (&bob, "CN=bob"),
    ] {
        let v = m.get("require.test", Some(leaf), "/echo").json();
        assert_eq!(v["tls"]["peer"]["subject"], cn, "{v}");
        assert_eq!(v["tls"]["peer"]["verified"], true);
    }
}

// ---- none ----

#[test]
fn none_does_not_request_a_certificate() {
    let m = matrix();
    let leaf = client(&m.root, "unasked");
    let mut s = client::connect(m.addr(), "none.test", &config(&m.root, Some(&leaf), &[])).unwrap();
    let v = client::exchange(&mut s, &client::get_request("/echo", "none.test")).json();
    assert!(
        v["tls"]["peer"].is_null(),
        "a certificate the server never asked for must not appear: {v}"
    );
}

#[test]
fn echo_lists_a_repeated_header_in_order_and_a_single_one_as_text() {
    let m = matrix();
    let mut s = client::connect(m.addr(), "none.test", &config(&m.root, None, &[])).unwrap();
    let raw = "GET /echo?q=1 HTTP/1.1\r\nHost: none.test\r\nX-Many: one\r\nX-One: alone\r\nX-Many: two\r\nConnection: close\r\n\r\n";
    let v = client::exchange(&mut s, raw).json();
    assert_eq!(
        v["headers"]["x-many"],
        serde_json::json!(["one", "two"]),
        "{v}"
    );
    assert_eq!(v["headers"]["x-one"], "alone", "{v}");
    assert_eq!(
        (
            v["method"].as_str(),
            v["path"].as_str(),
            v["query"].as_str()
        ),
        (Some("GET"), Some("/echo"), Some("q=1"))
    );
    assert_eq!(v["tls"]["sni"], "none.test");
    assert_eq!(v["tls"]["alpn"], serde_json::Value::Null);
}

// ---- verifyDepth (1 = at most one intermediate) ----

#[test]
fn verify_depth_allows_fewer_intermediates() {
    let m = matrix();
    assert_eq!(
        m.get("depth.test", Some(&client(&m.root, "d0")), "/echo")
            .status(),
        200
    );
}

#[test]
fn verify_depth_allows_exactly_the_limit() {
    let m = matrix();
    assert_eq!(
        m.get("depth.test", Some(&client(&m.inter, "d1")), "/echo")
            .status(),
        200
    );
}

#[test]
fn verify_depth_refuses_one_intermediate_too_many() {
    let m = matrix();
    let out = m.get("depth.test", Some(&client(&m.inter2, "d2")), "/");
    assert!(matches!(out, Outcome::Alert(_)), "{out:?}");
    m.assert_refused_as("chain_too_long");
    // The same chain is fine where no depth is set.
    assert_eq!(
        m.get("require.test", Some(&client(&m.inter2, "d2")), "/echo")
            .status(),
        200
    );
}

// ---- CRLs ----

#[test]
fn crl_leaf_refuses_revoked_certificate() {
    let m = matrix();
    let revoked = &m.revoked;
    assert_eq!(
        m.get("crl-leaf.test", Some(revoked), "/"),
        Outcome::Alert(AlertDescription::CertificateRevoked)
    );
    m.assert_refused_as("revoked");
}

#[test]
fn crl_leaf_accepts_unrevoked_certificate() {
    let m = matrix();
    assert_eq!(
        m.get("crl-leaf.test", Some(&client(&m.root, "fine")), "/echo")
            .status(),
        200
    );
}

#[test]
fn crl_leaf_ignores_revoked_intermediate() {
    let m = matrix();
    let leaf = client(&m.inter, "under-revoked-intermediate");
    assert_eq!(m.get("crl-leaf.test", Some(&leaf), "/echo").status(), 200);
}

#[test]
fn crl_chain_refuses_certificate_under_revoked_intermediate() {
    let m = matrix();
    let leaf = client(&m.inter, "under-revoked-intermediate");
    assert_eq!(
        m.get("crl-chain.test", Some(&leaf), "/"),
        Outcome::Alert(AlertDescription::CertificateRevoked)
    );
    m.assert_refused_as("revoked");
}

#[test]
fn crl_chain_accepts_certificate_directly_under_root() {
    let m = matrix();
    assert_eq!(
        m.get("crl-chain.test", Some(&client(&m.root, "fine")), "/echo")
            .status(),
        200
    );
}

// ---- every failing certificate, per mode ----

/// One certificate per way of failing verification, with its result label
/// and the alert `require`/`optional` answer it with.
fn failing(m: &Matrix) -> Vec<(&'static str, crate::support::Leaf, Option<AlertDescription>)> {
    vec![
        (
            "unknown_ca",
            client(&Ca::root("Stranger CA"), "stranger"),
            Some(AlertDescription::UnknownCA),
        ),
        (
            "expired",
            m.root.leaf(&Spec {
                not_before_days: -30,
                not_after_days: -1,
                ..Spec::client("old")
            }),
            Some(AlertDescription::CertificateExpired),
        ),
        (
            "not_yet_valid",
            m.root.leaf(&Spec {
                not_before_days: 2,
                not_after_days: 30,
                ..Spec::client("early")
            }),
            Some(AlertDescription::CertificateExpired),
        ),
        (
            "bad_usage",
            m.root.leaf(&Spec {
                eku: Eku::Server,
                ..Spec::client("server-only")
            }),
            Some(AlertDescription::UnsupportedCertificate),
        ),
        (
            "revoked",
            m.revoked.clone(),
            Some(AlertDescription::CertificateRevoked),
        ),
        ("chain_too_long", client(&m.inter2, "too-deep"), None),
    ]
}

#[test]
fn optional_refuses_every_certificate_that_fails_verification() {
    let m = matrix();
    for (label, leaf, alert) in failing(&m) {
        let out = m.get("optional-strict.test", Some(&leaf), "/");
        match alert {
            Some(a) => assert_eq!(out, Outcome::Alert(a), "{label}"),
            None => assert!(matches!(out, Outcome::Alert(_)), "{label}: {out:?}"),
        }
        m.assert_refused_as(label);
    }
    assert!(m.upstream.seen().is_empty());
}

#[test]
fn optional_no_ca_accepts_every_failing_certificate_marked_with_its_reason() {
    let m = matrix();
    for (label, leaf, _) in failing(&m) {
        let v = m.get("noca-strict.test", Some(&leaf), "/echo").json();
        assert_eq!(v["tls"]["peer"]["verified"], false, "{label}: {v}");
        assert_eq!(v["tls"]["peer"]["failure"], label, "{label}: {v}");
    }
}
