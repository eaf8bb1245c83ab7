//! ACME against a real pebble: http-01 and tls-alpn-01 certificates
//! obtained and served (curl verifies them against pebble's root),
//! `/readyz` 503 until then and handshakes refused, the order metric, a
//! restart that reuses the stored certificate, renewal under a keep-alive
//! connection, and a refused order that leaves the old certificate serving.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::client::{self, config_with, plain_get, IO_TIMEOUT};
use crate::support::pebble::{free_port, Pebble};
use crate::support::{write, Ca, Gateway, Outcome, Spec};

/// The gateway's config: `web.acme.test` by http-01, `alpn.acme.test` by
/// tls-alpn-01 (or only `web` when `alpn` is false), both from
/// `directory`, stored in `acme/`.
fn config(directory: &str, extra_acme: &str, alpn: bool) -> String {
    let alpn_cert = if alpn {
        format!("  alpn: {{ acme: {{ directoryUrl: \"{directory}\", challenge: tls-alpn-01, storageDir: acme, trustBundle: pebble{extra_acme} }} }}\n")
    } else {
        String::new()
    };
    let alpn_host = if alpn {
        "      - hostnames: [alpn.acme.test]
        certificate: alpn
        routes: [{ pathPrefix: /, upstream: echo }]
"
    } else {
        ""
    };
    format!(
        "admin: {{ address: 127.0.0.1:0 }}
certificates:
  web: {{ acme: {{ directoryUrl: \"{directory}\", email: ops@acme.test, storageDir: acme, trustBundle: pebble{extra_acme} }} }}
{alpn_cert}trustBundles:
  pebble: {{ caFile: pebble-directory-ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [web.acme.test]
        certificate: web
        routes: [{{ pathPrefix: /, upstream: echo }}]
{alpn_host}  - name: plain
    address: 127.0.0.1:0
    protocol: http
upstreams:
  echo: {{ builtin: echo }}
"
    )
}

fn readyz(gw: &Gateway) -> u16 {
    plain_get(gw.admin.unwrap(), "/readyz").status()
}

/// Waits until `/readyz` answers 200: looked at again whenever the
/// gateway logs something (the order, the reload that brings the
/// certificate), up to `within`.
fn wait_ready(gw: &Gateway, within: Duration) {
    let deadline = Instant::now() + within;
    let mut seen = gw.log.lines().len();
    while readyz(gw) != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz never turned 200:\n{}",
            gw.log.lines().join("\n")
        );
        seen = gw.log.wait_past(seen, Duration::from_secs(1));
    }
}

fn metric(gw: &Gateway, labels: &str) -> f64 {
    let out = plain_get(gw.admin.unwrap(), "/metrics");
    let prefix = format!("portcullis_acme_orders_total{{{labels}}} ");
    out.body()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// `curl` verifying the served chain against `root` (a file in `dir`).
fn curl(dir: &Path, gw: &Gateway, name: &str, root: &str) -> std::process::Output {
    let port = gw.addr("main").port();
    Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--max-time", "10", "--cacert", root, "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}/hello"))
        .output()
        .expect("curl (scripts/test installs it)")
}

/// The serial of the certificate `name` is served with, and the open
/// connection (which the caller may keep using).
fn served(gw: &Gateway, name: &str, root_pem: &str) -> (Vec<u8>, client::Tls) {
    let root = rustls_pki_types::CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap();
    let cfg = config_with(&root, None, &[], None);
    let s = client::connect(gw.addr("main"), name, &cfg).unwrap();
    let leaf = s.conn.peer_certificates().unwrap()[0].clone();
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).unwrap();
    (cert.tbs_certificate.serial_number.as_bytes().to_vec(), s)
}

use rustls_pki_types::pem::PemObject;

#[test]
fn certificates_are_obtained_with_http01_and_tls_alpn01_served_and_reused_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pebble_dir = tempfile::tempdir().unwrap();
    let (http_port, tls_port) = (free_port(), free_port());
    let mut pebble = Pebble::prepare(
        pebble_dir.path(),
        free_port(),
        http_port,
        tls_port,
        3600,
        &[],
    );
    write(d, "pebble-directory-ca.crt", &pebble.directory_ca_pem);
    let cfg_text = on_ports(&config(&pebble.directory, "", true), tls_port, http_port);
    // The gateway first: until pebble runs, no certificate can exist.
    let gw = Gateway::start(d, &cfg_text);
    assert_eq!(readyz(&gw), 503, "ready without its ACME certificates");
    // Handshakes for the names are refused with internal_error meanwhile.
    let unrelated = Ca::root("Unrelated");
    let cfg = config_with(&unrelated.der, None, &[], None);
    for name in ["web.acme.test", "alpn.acme.test"] {
        match client::connect(gw.addr("main"), name, &cfg) {
            Err(Outcome::Alert(a)) => assert_eq!(a, rustls::AlertDescription::InternalError),
            other => panic!("handshake for a pending ACME name: {:?}", other.map(|_| ())),
        }
    }
    // The first orders fail (nothing listens yet) and are retried.
    gw.log.wait_for("a failed first order", |v| {
        v["message"] == "ACME order failed; the current certificate (if any) keeps serving"
    });
    pebble.run();
    wait_ready(&gw, Duration::from_secs(90));
    write(d, "pebble-root.crt", &pebble.root_pem());
    for name in ["web.acme.test", "alpn.acme.test"] {
        let out = curl(d, &gw, name, "pebble-root.crt");
        assert!(
            out.status.success(),
            "curl {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["path"], "/hello");
    }
    assert_eq!(metric(&gw, "certificate=\"web\",result=\"ok\""), 1.0);
    assert_eq!(metric(&gw, "certificate=\"alpn\",result=\"ok\""), 1.0);
    assert!(metric(&gw, "certificate=\"web\",result=\"error\"") >= 1.0);
    // Keys are private; so is the account, stored once.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for key in ["acme/web.pem", "acme/alpn.pem"] {
        assert_eq!(mode(&d.join(key)), 0o600, "{key}");
    }
    let accounts: Vec<_> = std::fs::read_dir(d.join("acme"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("account-"))
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(mode(&accounts[0].path()), 0o600);
    let root = pebble.root_pem();
    let (serial, _) = served(&gw, "web.acme.test", &root);
    drop(gw);

    // A restart serves what is stored: ready at once, no order.
    let gw = Gateway::start(d, &cfg_text);
    assert_eq!(readyz(&gw), 200);
    assert_eq!(served(&gw, "web.acme.test", &root).0, serial);
    assert_eq!(metric(&gw, "certificate=\"web\",result=\"ok\""), 0.0);
    assert!(!gw
        .log
        .lines()
        .iter()
        .any(|l| l.contains("ordering a certificate")));
}

/// `cfg` with the https listener on `tls` and the http one on `http`.
fn on_ports(cfg: &str, tls: u16, http: u16) -> String {
    cfg.replace(
        "  - name: main\n    address: 127.0.0.1:0",
        &format!("  - name: main\n    address: 127.0.0.1:{tls}"),
    )
    .replace(
        "  - name: plain\n    address: 127.0.0.1:0",
        &format!("  - name: plain\n    address: 127.0.0.1:{http}"),
    )
}

#[test]
fn a_due_certificate_is_renewed_while_a_keep_alive_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pebble_dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    // Certificates for 30 s, renewed when 15 s are left (15 s of margin
    // before the first one expires, for a loaded machine).
    let pebble = Pebble::start(pebble_dir.path(), http_port, 1, 30, &[]);
    write(d, "pebble-directory-ca.crt", &pebble.directory_ca_pem);
    // The kept connection waits longer than the default 10 s
    // requestHeaderTimeout (which also bounds a keep-alive wait).
    let cfg_text = on_ports(
        &config(&pebble.directory, ", renewBefore: 15s", false),
        0,
        http_port,
    ) + "limits: { requestHeaderTimeout: 60s }\n";
    let gw = Gateway::start(d, &cfg_text);
    wait_ready(&gw, Duration::from_secs(60));
    let root = pebble.root_pem();
    let (first, mut kept) = served(&gw, "web.acme.test", &root);
    let ask = "GET /k HTTP/1.1\r\nHost: web.acme.test\r\n\r\n";
    kept.write_all(ask.as_bytes()).unwrap();
    read_response(&mut kept);
    // The renewal is stored and swapped in by a reload.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = gw.log.lines().len();
    let renewed = loop {
        let (serial, _) = served(&gw, "web.acme.test", &root);
        if serial != first {
            break serial;
        }
        assert!(Instant::now() < deadline, "no renewal within 60s");
        seen = gw.log.wait_past(seen, Duration::from_secs(1));
    };
    assert_ne!(renewed, first);
    assert!(metric(&gw, "certificate=\"web\",result=\"ok\"") >= 2.0);
    // The connection made before the renewal still works.
    kept.write_all(ask.as_bytes()).unwrap();
    read_response(&mut kept);
}

/// Reads one response with a Content-Length body from a keep-alive
/// connection and asserts it is a 200.
fn read_response(s: &mut client::Tls) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    s.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_refused_order_is_logged_with_the_problem_and_the_old_certificate_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pebble_dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let pebble = Pebble::start(pebble_dir.path(), http_port, 1, 3600, &["web.acme.test"]);
    write(d, "pebble-directory-ca.crt", &pebble.directory_ca_pem);
    // What an earlier order stored, due for renewal.
    let old_ca = Ca::root("Earlier CA");
    std::fs::create_dir(d.join("acme")).unwrap();
    for (file, name) in [("web", "web.acme.test"), ("alpn", "alpn.acme.test")] {
        // Past half its life: due, whatever renewBefore says (at most
        // half the lifetime counts).
        let mut spec = Spec::server(&[name]);
        spec.not_before_days = -10;
        spec.not_after_days = 2;
        let old = old_ca.leaf(&spec);
        write(
            &d.join("acme"),
            &format!("{file}.pem"),
            &format!("{}{}", old.chain_pem, old.key_pem),
        );
    }
    // `web` is refused outright (a blocked name); `alpn`'s challenge fails
    // (pebble's tls-alpn-01 validation connects to a port nobody serves).
    let cfg_text = on_ports(
        &config(&pebble.directory, ", renewBefore: 90d", true),
        0,
        http_port,
    );
    let gw = Gateway::start(d, &cfg_text);
    assert_eq!(readyz(&gw), 200, "stored, valid certificates count");
    for (cert, problem, said) in [
        (
            "web",
            "urn:ietf:params:acme:error:rejectedIdentifier",
            "web.acme.test",
        ),
        (
            "alpn",
            "urn:ietf:params:acme:error:unauthorized",
            "tls-alpn-01",
        ),
    ] {
        let failed = gw.log.wait_for("a refused ACME order", |v| {
            v["message"] == "ACME order failed; the current certificate (if any) keeps serving"
                && v["certificate"] == cert
        });
        let field = |k: &str| failed[k].as_str().unwrap_or_default().to_string();
        assert_eq!(field("problem_type"), problem, "{failed}");
        assert!(field("detail").contains(said), "{failed}");
        assert!(metric(&gw, &format!("certificate=\"{cert}\",result=\"error\"")) >= 1.0);
        // Still the earlier certificate (it verifies against the earlier CA).
        let (serial, _) = served(&gw, &format!("{cert}.acme.test"), &old_ca.cert_pem);
        assert!(!serial.is_empty());
    }
    assert_eq!(readyz(&gw), 200);
    // A stored file that turns unusable while its certificate serves is a
    // failed reload: the loaded one keeps serving.
    let seen = gw.log.lines().len();
    write(&d.join("acme"), "web.pem", "not a certificate\n");
    let failed = gw.log.wait_for("the refused reload", |v| {
        v["message"] == "reload failed; the previous configuration keeps serving"
    });
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("certificates.web"),
        "{failed}"
    );
    assert!(gw.log.lines().len() > seen);
    let (serial, _) = served(&gw, "web.acme.test", &old_ca.cert_pem);
    assert!(!serial.is_empty());
    assert_eq!(readyz(&gw), 200);
    // acme-tls/1 for a name with no challenge in flight gets no challenge
    // certificate: the entry's own handshake refuses the protocol.
    let acme_only = config_with(&old_ca.der, None, &["acme-tls/1"], None);
    match client::connect(gw.addr("main"), "web.acme.test", &acme_only) {
        Err(Outcome::Alert(a)) => assert_eq!(a, rustls::AlertDescription::NoApplicationProtocol),
        other => panic!("acme-tls/1 without a challenge: {:?}", other.map(|_| ())),
    }
    // With no order in flight, a challenge path is an ordinary request:
    // redirected like any other for a name https serves. (An answer only
    // while its token is in flight, and before any redirect, is what made
    // the http-01 orders of the first test succeed: pebble would have
    // followed a redirect to port 443, where nothing listens.)
    let out = plain_get_host(
        gw.addr("plain"),
        "/.well-known/acme-challenge/abc",
        "web.acme.test",
    );
    assert!(out.starts_with("HTTP/1.1 308"), "{out}");
    drop(pebble);
}

/// A plain GET with `Host: host`, the raw answer.
fn plain_get_host(addr: std::net::SocketAddr, path: &str, host: &str) -> String {
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    t.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    t.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Two replicas share `storageDir` (a volume both mount). The CA's
/// validation request reaches the replica that did not order: it answers
/// from what the ordering replica published there, and then serves the
/// stored certificate too. Made deterministic by giving the second replica
/// a directory URL that never answers (it can never order itself), and its
/// http listener the port pebble validates on.
#[test]
fn a_replica_answers_the_challenge_of_another_and_serves_what_it_stored() {
    let pebble_dir = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let storage = shared.path().join("acme");
    let http_port = free_port();
    let pebble = Pebble::start(pebble_dir.path(), http_port, 1, 3600, &[]);
    let with_storage = |cfg: String| {
        cfg.replace(
            "storageDir: acme",
            &format!("storageDir: \"{}\"", storage.display()),
        )
    };
    // b: validated on, never orders (nothing listens at its directory).
    let (db, da) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(
        db.path(),
        "pebble-directory-ca.crt",
        &pebble.directory_ca_pem,
    );
    write(
        da.path(),
        "pebble-directory-ca.crt",
        &pebble.directory_ca_pem,
    );
    let nowhere = format!("https://127.0.0.1:{}/dir", free_port());
    let b = Gateway::start(
        db.path(),
        &with_storage(on_ports(&config(&nowhere, "", false), 0, http_port)),
    );
    // a: orders from pebble; its own http listener is not the validated one.
    let a = Gateway::start(
        da.path(),
        &with_storage(config(&pebble.directory, "", false)),
    );
    wait_ready(&a, Duration::from_secs(60));
    let root = pebble.root_pem();
    let (serial, _) = served(&a, "web.acme.test", &root);
    // b never ordered successfully: the certificate is a's, found in the
    // shared directory (reload on the file's arrival).
    wait_ready(&b, Duration::from_secs(30));
    let (b_serial, _) = served(&b, "web.acme.test", &root);
    assert_eq!(b_serial, serial);
    assert_eq!(metric(&b, "certificate=\"web\",result=\"ok\""), 0.0);
    assert_eq!(metric(&a, "certificate=\"web\",result=\"ok\""), 1.0);
    // The answer was withdrawn with the order; the lock was released.
    let published = std::fs::read_dir(storage.join("challenges/http-01"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(published, 0, "challenge answers left behind");
    assert!(!storage.join("web.lock").exists());
}
