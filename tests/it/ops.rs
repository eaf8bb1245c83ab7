//! Operations (issue: sources, reload, metrics, admin, logs, drain):
//! certificate rotation without dropping anything, broken replacements kept
//! out, Kubernetes volume swaps, CRL updates, listener diffs, reload under
//! load, `/metrics` read with a Prometheus parser, JSON access lines, drain.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::client::{self, config, connect, exchange, get_request};
use crate::support::gateway::{bin, Gateway, WAIT};
use crate::support::volume::Volume;
use crate::support::{replace, write, write_leaf, Ca, Leaf, Spec, Upstream};

/// Replaces a certificate and its key: the key first, then the
/// certificate, each atomically.
fn rotate(dir: &Path, name: &str, leaf: &Leaf) {
    replace(dir, &format!("{name}.key"), &leaf.key_pem);
    replace(dir, &format!("{name}.crt"), &leaf.chain_pem);
}

pub(crate) fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    match client::plain_get(addr, path) {
        crate::support::Outcome::Http(s, b) => (s, b),
        other => panic!("{other:?}"),
    }
}

fn reloads(gw: &Gateway, message: &str) -> usize {
    gw.log.messages(message).len()
}

/// Waits until the gateway logged `message` more than `before` times.
fn wait_count(gw: &Gateway, message: &str, before: usize) {
    let want = before + 1;
    let mut seen = 0;
    gw.log.wait_for(&format!("{message} #{want}"), |v| {
        if v["message"] == message {
            seen += 1;
        }
        seen >= want
    });
}

fn server_serial(addr: SocketAddr, sni: &str, ca: &Ca) -> String {
    let s = connect(addr, sni, &config(ca, None, &[])).unwrap();
    portcullis::identity::CertSummary::from_der(&s.conn.peer_certificates().unwrap()[0])
        .unwrap()
        .serial
}

fn serial_of(leaf: &Leaf) -> String {
    portcullis::identity::CertSummary::from_der(&leaf.chain[0])
        .unwrap()
        .serial
}

struct Rig {
    gw: Gateway,
    ca: Ca,
    dir: tempfile::TempDir,
}

const BASE: &str = "admin: { address: \"127.0.0.1:0\" }
certificates: { server: { certFile: server.crt, keyFile: server.key } }
trustBundles: { clients: { caFile: ca.crt } }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        routes: [{ pathPrefix: /, upstream: echo }]
upstreams: { echo: { builtin: echo } }
";

fn rig(config: &str) -> Rig {
    rig_with(config, &[])
}

fn rig_with(config: &str, args: &[&str]) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Ops CA");
    write(dir.path(), "ca.crt", &ca.cert_pem);
    write_leaf(dir.path(), "server", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start_with(dir.path(), config, args);
    Rig { gw, ca, dir }
}

#[test]
fn rotated_certificate_serves_new_connections_while_open_ones_keep_working() {
    let r = rig(BASE);
    let addr = r.gw.addr("main");
    let mut keep = connect(addr, "app.test", &config(&r.ca, None, &[])).unwrap();
    keep.write_all(
        get_request("/one", "app.test")
            .replace("Connection: close\r\n", "")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = keep.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let new = r.ca.leaf(&Spec::server(&["app.test"]));
    let before = reloads(&r.gw, "reloaded");
    rotate(r.dir.path(), "server", &new);
    wait_count(&r.gw, "reloaded", before);
    // A reload succeeds only with a key and certificate that match, and the
    // key was replaced first: the one that succeeded has the new pair.
    assert_eq!(server_serial(addr, "app.test", &r.ca), serial_of(&new));
    let out = exchange(&mut keep, &get_request("/two", "app.test"));
    assert_eq!(
        out.status(),
        200,
        "the connection opened before the reload keeps working"
    );
}

#[test]
fn broken_replacements_keep_the_old_certificate_and_are_counted() {
    let r = rig(BASE);
    let addr = r.gw.addr("main");
    let original = server_serial(addr, "app.test", &r.ca);
    let other = r.ca.leaf(&Spec::server(&["app.test"]));
    let expired = r.ca.leaf(&Spec {
        not_before_days: -9,
        not_after_days: -1,
        ..Spec::server(&["app.test"])
    });
    let mut failures = 0;
    for (what, cert, key) in [
        (
            "bad PEM",
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_string(),
            None,
        ),
        ("mismatched key", other.chain_pem.clone(), None),
        (
            "expired",
            expired.chain_pem.clone(),
            Some(expired.key_pem.clone()),
        ),
    ] {
        let before = reloads(
            &r.gw,
            "reload failed; the previous configuration keeps serving",
        );
        if let Some(k) = key {
            replace(r.dir.path(), "server.key", &k);
        }
        replace(r.dir.path(), "server.crt", &cert);
        wait_count(
            &r.gw,
            "reload failed; the previous configuration keeps serving",
            before,
        );
        failures += 1;
        assert_eq!(
            server_serial(addr, "app.test", &r.ca),
            original,
            "{what}: the old certificate keeps serving"
        );
        // Put the original key back for the next case.
        let _ = what;
    }
    let metrics = parse_metrics(&admin_get(r.gw.admin.unwrap(), "/metrics").1);
    let counted = value(&metrics, "portcullis_reload_failures_total", &[]);
    assert!(
        counted >= failures as f64,
        "reload failures counted: {counted}"
    );
}

#[test]
fn kubernetes_secret_volume_swap_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Volume CA");
    write(d, "ca.crt", &ca.cert_pem);
    let first = ca.leaf(&Spec::server(&["app.test"]));
    let mut vol = Volume::new(
        &d.join("tls"),
        &[("tls.crt", &first.chain_pem), ("tls.key", &first.key_pem)],
    );
    let gw = Gateway::start(
        d,
        &BASE.replace(
            "{ certFile: server.crt, keyFile: server.key }",
            "{ secretDir: tls }",
        ),
    );
    let addr = gw.addr("main");
    assert_eq!(server_serial(addr, "app.test", &ca), serial_of(&first));
    let second = ca.leaf(&Spec::server(&["app.test"]));
    let before = reloads(&gw, "reloaded");
    vol.swap(&[("tls.crt", &second.chain_pem), ("tls.key", &second.key_pem)]);
    wait_count(&gw, "reloaded", before);
    assert_eq!(server_serial(addr, "app.test", &ca), serial_of(&second));
}

#[test]
fn a_new_crl_revokes_a_client_on_its_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("CRL CA");
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "ca.crl", &ca.crl(&[]));
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start(
        d,
        &BASE.replace("{ caFile: ca.crt }", "{ caFile: ca.crt, crlFiles: [ca.crl] }").replace(
            "        certificate: server\n",
            "        certificate: server\n        clientAuth: { mode: require, trustBundle: clients }\n",
        ),
    );
    let alice = ca.leaf(&Spec::client("alice"));
    let cfg = config(&ca, Some(&alice), &[]);
    assert_eq!(
        client::get(gw.addr("main"), "app.test", &cfg, "/").status(),
        200
    );
    let before = reloads(&gw, "reloaded");
    replace(d, "ca.crl", &ca.crl(&[&alice.serial]));
    wait_count(&gw, "reloaded", before);
    let out = client::get(gw.addr("main"), "app.test", &cfg, "/");
    assert_eq!(
        out,
        crate::support::Outcome::Alert(rustls::AlertDescription::CertificateRevoked)
    );
}

#[test]
fn adding_a_listener_binds_it_without_touching_the_others() {
    let r = rig(BASE);
    let main = r.gw.addr("main");
    let mut keep = connect(main, "app.test", &config(&r.ca, None, &[])).unwrap();
    let before = reloads(&r.gw, "reloaded");
    let bigger = BASE.replace(
        "upstreams:",
        "  - name: second\n    address: 127.0.0.1:0\n    protocol: https\n    hosts: [ { hostnames: [app.test], certificate: server, routes: [ { pathPrefix: /, upstream: echo } ] } ]\nupstreams:",
    );
    replace(r.dir.path(), "portcullis.yaml", &bigger);
    wait_count(&r.gw, "reloaded", before);
    let line = r.gw.log.wait_for("second listener", |v| {
        v["message"] == "listening" && v["listener"] == "second"
    });
    let second: SocketAddr = line["address"].as_str().unwrap().parse().unwrap();
    assert_ne!(second, main);
    assert_eq!(
        client::get(second, "app.test", &config(&r.ca, None, &[]), "/").status(),
        200
    );
    let mains =
        r.gw.log
            .messages("listening")
            .iter()
            .filter(|v| v["listener"] == "main")
            .count();
    assert_eq!(mains, 1, "the main listener was not rebound");
    assert_eq!(
        exchange(&mut keep, &get_request("/", "app.test")).status(),
        200
    );
}

#[test]
fn renaming_key_then_certificate_by_hand_is_one_reload_and_no_failure() {
    let r = rig(BASE);
    let addr = r.gw.addr("main");
    let cfg = config(&r.ca, None, &[]);
    let before = reloads(&r.gw, "reloaded");
    let new = r.ca.leaf(&Spec::server(&["app.test"]));
    replace(r.dir.path(), "server.key", &new.key_pem);
    // An operator's pause between two `mv` commands: long enough for the
    // watcher to see the key alone (and its certificate not matching it).
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(client::get(addr, "app.test", &cfg, "/").status(), 200);
    replace(r.dir.path(), "server.crt", &new.chain_pem);
    wait_count(&r.gw, "reloaded", before);
    assert_eq!(server_serial(addr, "app.test", &r.ca), serial_of(&new));
    assert_eq!(reloads(&r.gw, "reloaded"), before + 1);
    assert_eq!(
        reloads(
            &r.gw,
            "reload failed; the previous configuration keeps serving"
        ),
        0
    );
    let metrics = parse_metrics(&admin_get(r.gw.admin.unwrap(), "/metrics").1);
    assert_eq!(
        value(&metrics, "portcullis_reload_failures_total", &[]),
        0.0
    );
}

#[test]
fn fifty_certificate_reloads_under_load_lose_no_request() {
    // On one worker thread (`--threads 1` runs a single-threaded
    // scheduler): reloads prepare off that thread and still lose nothing.
    let r = rig_with(
        &BASE.replace("        certificate: server\n", "        certificate: server\n        clientAuth: { mode: require, trustBundle: clients }\n"),
        &["--threads", "1"],
    );
    let addr = r.gw.addr("main");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for i in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let cfg = config(
            &r.ca,
            Some(&r.ca.leaf(&Spec::client(&format!("client-{i}")))),
            &[],
        );
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match client::get(addr, "app.test", &cfg, "/") {
                    crate::support::Outcome::Http(200, _) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failed.lock().unwrap().push(format!("{other:?}")),
                }
            }
        }));
    }
    for _ in 0..50 {
        let before = reloads(&r.gw, "reloaded");
        rotate(
            r.dir.path(),
            "server",
            &r.ca.leaf(&Spec::server(&["app.test"])),
        );
        wait_count(&r.gw, "reloaded", before);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "requests ran during the reloads"
    );
    // Each key-then-certificate rename pair is one reload, and the
    // inconsistent moment between the two renames is not a failure.
    assert_eq!(reloads(&r.gw, "reloaded"), 50);
    assert_eq!(
        reloads(
            &r.gw,
            "reload failed; the previous configuration keeps serving"
        ),
        0
    );
    let metrics = parse_metrics(&admin_get(r.gw.admin.unwrap(), "/metrics").1);
    assert_eq!(
        value(&metrics, "portcullis_reload_failures_total", &[]),
        0.0
    );
}

pub(crate) fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

pub(crate) fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn metrics_parse_and_count_handshakes_requests_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Metrics CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let up = Upstream::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(
        d,
        &format!(
            "admin: {{ address: \"127.0.0.1:0\" }}
certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ clients: {{ caFile: ca.crt }} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ path: /down, upstream: down }}, {{ pathPrefix: /, upstream: rec }}]
upstreams:
  rec: {{ url: \"http://{}\" }}
  down: {{ url: \"http://{closed}\" }}
",
            up.addr
        ),
    );
    let addr = gw.addr("main");
    let good = config(&ca, Some(&ca.leaf(&Spec::client("good"))), &[]);
    for _ in 0..3 {
        assert_eq!(client::get(addr, "app.test", &good, "/").status(), 200);
    }
    assert_eq!(client::get(addr, "app.test", &good, "/down").status(), 502);
    // One keep-alive connection answering 200, 502, 200: every request is
    // counted under its own status, not the connection's first one.
    let mut s = client::connect(addr, "app.test", &good).unwrap();
    let pipelined = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\n\r\nGET /down HTTP/1.1\r\nHost: app.test\r\n\r\n{}",
        client::get_request("/", "app.test")
    );
    s.write_all(pipelined.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    let text = std::str::from_utf8(&out).unwrap();
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, m)| &text[i + m.len()..i + m.len() + 3])
        .collect();
    assert_eq!(
        statuses,
        ["200", "502", "200"],
        "{}",
        String::from_utf8_lossy(&out)
    );
    let stranger = config(
        &ca,
        Some(&Ca::root("Stranger").leaf(&Spec::client("x"))),
        &[],
    );
    for _ in 0..2 {
        assert!(matches!(
            client::get(addr, "app.test", &stranger, "/"),
            crate::support::Outcome::Alert(_)
        ));
    }
    assert!(matches!(
        client::get(addr, "app.test", &config(&ca, None, &[]), "/"),
        crate::support::Outcome::Alert(_)
    ));
    gw.log.wait_for("refusals logged", |v| {
        v["message"] == "tls handshake refused" && v["result"] == "no_certificate"
    });
    let (status, text) = admin_get(gw.admin.unwrap(), "/metrics");
    assert_eq!(status, 200);
    let m = parse_metrics(&text);
    let hs = "portcullis_tls_handshakes_total";
    assert_eq!(
        value(&m, hs, &[("listener", "main"), ("result", "ok")]),
        5.0
    );
    assert_eq!(
        value(&m, hs, &[("listener", "main"), ("result", "unknown_ca")]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            hs,
            &[("listener", "main"), ("result", "no_certificate")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "portcullis_http_requests_total",
            &[
                ("listener", "main"),
                ("host", "app.test"),
                ("status", "200")
            ]
        ),
        5.0
    );
    assert_eq!(
        value(&m, "portcullis_http_requests_total", &[("status", "502")]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "portcullis_http_request_duration_seconds_count",
            &[("listener", "main")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &m,
            "portcullis_upstream_errors_total",
            &[("upstream", "down"), ("kind", "refused")]
        ),
        2.0
    );
    // (prometheus-parse 0.2 drops label values that contain '=', such as
    // the subjects, so only the name label is matched here.)
    assert!(
        value(
            &m,
            "portcullis_certificate_expiry_timestamp_seconds",
            &[("name", "server")]
        ) > 1.7e9,
        "{text}"
    );
    assert!(
        value(
            &m,
            "portcullis_certificate_expiry_timestamp_seconds",
            &[("name", "clients")]
        ) > 1.7e9,
        "{text}"
    );
    for name in [
        "portcullis_connections_active",
        "portcullis_http_request_duration_seconds_count",
        "portcullis_reloads_total",
        "portcullis_reload_failures_total",
    ] {
        assert!(
            m.samples.iter().any(|s| s.metric == name),
            "{name} missing from:\n{text}"
        );
    }
    let certs: serde_json::Value =
        serde_json::from_str(&admin_get(gw.admin.unwrap(), "/certificates").1).unwrap();
    let list = certs.as_array().unwrap();
    let server = list.iter().find(|c| c["name"] == "server").unwrap();
    for key in [
        "subject",
        "sans",
        "issuer",
        "serial",
        "notBefore",
        "notAfter",
        "sha256",
    ] {
        assert!(!server[key].is_null(), "{key}");
    }
    assert_eq!(server["sans"][0], "DNS:app.test");
    assert!(list
        .iter()
        .any(|c| c["kind"] == "trustBundle" && c["subject"] == "CN=Metrics CA"));
    // Access lines are JSON with the identity; no line carries a key.
    let access: Vec<serde_json::Value> = gw
        .log
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "access")
        .collect();
    assert!(access.len() >= 4);
    assert_eq!(access[0]["subject"], "CN=good");
    assert_eq!(access[0]["fingerprint"].as_str().unwrap().len(), 64);
    for key in [
        "listener",
        "host",
        "method",
        "path",
        "status",
        "duration_ms",
        "bytes",
        "client",
    ] {
        assert!(!access[0][key].is_null(), "{key}");
    }
    assert!(gw.log.lines().iter().all(|l| !l.contains("PRIVATE KEY")));
}

#[test]
fn sigterm_during_a_slow_request_lets_it_finish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Drain CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let up = Upstream::start();
    let gw = Gateway::start(
        d,
        &format!(
            "admin: {{ address: \"127.0.0.1:0\" }}
certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
listeners:
  - {{ name: main, address: \"127.0.0.1:0\", protocol: https,
      hosts: [ {{ hostnames: [app.test], certificate: server, routes: [ {{ pathPrefix: /, upstream: rec }} ] }} ] }}
upstreams: {{ rec: {{ url: \"http://{}\" }} }}
",
            up.addr
        ),
    );
    let admin = gw.admin.unwrap();
    let cfg = config(&ca, None, &[]);
    let addr = gw.addr("main");
    let slow = std::thread::spawn(move || client::get(addr, "app.test", &cfg, "/slow"));
    // Wait until the upstream has the request, then stop the gateway.
    up.wait_for(1);
    let pid = gw.pid();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    gw.log
        .wait_for("drain started", |v| v["message"] == "draining");
    assert_eq!(admin_get(admin, "/readyz").0, 503);
    assert_eq!(
        slow.join().unwrap().status(),
        200,
        "the request in flight completes"
    );
    let status = gw.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn check_reports_every_material_problem_with_its_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Check CA");
    write(
        d,
        "leaf-as-ca.crt",
        &ca.leaf(&Spec::client("not a CA")).chain_pem,
    );
    write_leaf(
        d,
        "expired",
        &ca.leaf(&Spec {
            not_before_days: -9,
            not_after_days: -1,
            ..Spec::server(&["a.test"])
        }),
    );
    write_leaf(d, "mismatch", &ca.leaf(&Spec::server(&["a.test"])));
    write(
        d,
        "mismatch.key",
        &ca.leaf(&Spec::server(&["a.test"])).key_pem,
    );
    write_leaf(d, "narrow", &ca.leaf(&Spec::server(&["b.test"])));
    write(d, "bundle.p12", "not pkcs12");
    write(d, "pw", "secret\n");
    let cfg = "certificates:
  expired: { certFile: expired.crt, keyFile: expired.key }
  mismatch: { certFile: mismatch.crt, keyFile: mismatch.key }
  narrow: { certFile: narrow.crt, keyFile: narrow.key }
  bundled: { pkcs12File: bundle.p12, passwordFile: pw }
trustBundles:
  bad: { caFile: leaf-as-ca.crt }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - { hostnames: [c.test], certificate: narrow, routes: [ { pathPrefix: /, upstream: echo } ] }
upstreams: { echo: { builtin: echo } }
";
    let path = d.join("portcullis.yaml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "certificates.expired: ",
        "expired on",
        "certificates.mismatch: the private key in ",
        "mismatch.key does not belong to the certificate in ",
        "certificates.bundled: ",
        "wrong password or not a PKCS#12 file",
        "trustBundles.bad: ",
        "is not a CA certificate",
        "listeners[0].hosts[0].hostnames[0]: certificate \"narrow\" does not cover \"c.test\"; it covers [b.test]",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("PRIVATE KEY"));
    // Each line points at the config line that named the material, in
    // file order.
    let lines: Vec<u64> = err
        .lines()
        .map(|l| {
            let rest = l
                .split("portcullis.yaml:")
                .nth(1)
                .unwrap_or_else(|| panic!("no line in {l}"));
            rest.split(':').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{err}");
}

#[test]
fn certificates_load_from_secret_manifests_and_pkcs12() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Sources CA");
    let a = ca.leaf(&Spec::server(&["a.test"]));
    let b = ca.leaf(&Spec::server(&["b.test"]));
    let c = ca.leaf(&Spec::server(&["c.test"]));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    write(d, "a-secret.yaml", &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: a }}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n",
        b64(&a.chain_pem), b64(&a.key_pem), b64(&ca.cert_pem)
    ));
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    write(d, "b-secret.yaml", &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: b }}\ntype: Opaque\nstringData:\n  cert: |\n{}  key: |\n{}",
        indent(&b.chain_pem), indent(&b.key_pem)
    ));
    write_leaf(d, "c", &c);
    write(d, "pw", "p12-pass\n");
    let made = Command::new(bin())
        .args([
            "cert",
            "p12",
            "--cert",
            "c.crt",
            "--key",
            "c.key",
            "--out",
            "c.p12",
            "--password-file",
            "pw",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let host = |n: &str, cert: &str| {
        format!("      - {{ hostnames: [{n}], certificate: {cert}, routes: [ {{ pathPrefix: /, upstream: echo }} ] }}\n")
    };
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  a: {{ secretFile: a-secret.yaml }}
  b: {{ secretFile: b-secret.yaml }}
  c: {{ pkcs12File: c.p12, passwordFile: pw }}
trustBundles:
  from-secret: {{ secretFile: a-secret.yaml }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
{}{}{}upstreams: {{ echo: {{ builtin: echo }} }}
",
            host("a.test", "a"),
            host("b.test", "b"),
            host("c.test", "c")
        ),
    );
    for (name, leaf) in [("a.test", &a), ("b.test", &b), ("c.test", &c)] {
        assert_eq!(
            server_serial(gw.addr("main"), name, &ca),
            serial_of(leaf),
            "{name}"
        );
    }
}

/// Reads until the peer closes the connection (EOF or reset) and returns
/// what arrived; fails if it is still open after [`WAIT`], which is only
/// the safety net: the test waits on the close itself.
fn read_until_closed(s: &mut std::net::TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "the connection was still open after {WAIT:?} ({e}); read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[test]
fn admin_closes_a_client_that_never_finishes_its_headers() {
    // The idle timeout (default 60s) is longer than the test's patience
    // (WAIT): only the header timeout can close this connection in time.
    let r = rig(&format!(
        "{BASE}limits: {{ requestHeaderTimeout: 300ms }}\n"
    ));
    let admin = r.gw.admin.unwrap();
    let mut slow = std::net::TcpStream::connect(admin).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Slow: ")
        .unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "{answer:?}"
    );
    assert_eq!(admin_get(admin, "/healthz").0, 200);
}

#[test]
fn admin_connections_beyond_the_limit_are_closed_and_it_serves_again_once_they_go() {
    use portcullis::server::admin::MAX_CONNECTIONS;
    // Timeouts far longer than the test, so that only the limit acts.
    let r = rig(&format!(
        "{BASE}limits: {{ requestHeaderTimeout: 10m, idleTimeout: 10m }}\n"
    ));
    let admin = r.gw.admin.unwrap();
    // Connections are accepted in the order they were made, each taking a
    // slot at accept: once the extra one is accepted, these hold them all.
    let held: Vec<std::net::TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(admin).unwrap())
        .collect();
    let mut extra = std::net::TcpStream::connect(admin).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
    assert_eq!(
        read_until_closed(&mut extra),
        b"",
        "refused without an answer"
    );
    r.gw.log.wait_for("the refusal", |v| {
        v["listener"] == "admin"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("connection refused"))
    });
    // The held connections go away; each slot is free before its client
    // sees the close, so the endpoint answers right after.
    for mut s in held {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_until_closed(&mut s), b"");
    }
    assert_eq!(admin_get(admin, "/healthz").0, 200);
}

#[test]
fn shutdown_delay_keeps_accepting_while_not_ready() {
    let r = rig(&BASE.replace("upstreams:", "limits: { shutdownDelay: 2s }\nupstreams:"));
    let addr = r.gw.addr("main");
    let admin = r.gw.admin.unwrap();
    assert_eq!(admin_get(admin, "/readyz").0, 200);
    Command::new("kill")
        .args(["-TERM", &r.gw.pid().to_string()])
        .status()
        .unwrap();
    r.gw.log.wait_for("shutdown delay", |v| {
        v["message"] == "not ready; still accepting for limits.shutdownDelay"
    });
    // During the delay: not ready, yet new connections are served.
    assert_eq!(admin_get(admin, "/readyz").0, 503);
    assert_eq!(admin_get(admin, "/healthz").0, 200);
    let cfg = config(&r.ca, None, &[]);
    assert_eq!(client::get(addr, "app.test", &cfg, "/").status(), 200);
    assert!(
        r.gw.log.messages("draining").is_empty(),
        "the drain started before the delay ended"
    );
    r.gw.log
        .wait_for("drain after the delay", |v| v["message"] == "draining");
    let status = r.gw.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_as_soon_as_ready_drains_and_exits_0() {
    // The attacker here is a supervisor in a hurry: it stops the gateway the
    // moment the `ready` line appears. The signal handlers must already be
    // in place, or SIGTERM kills the process instead of draining it. The
    // window was short (a round hit it about one time in twenty), hence
    // the rounds.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Ops CA");
    write(dir.path(), "ca.crt", &ca.cert_pem);
    write_leaf(dir.path(), "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(dir.path(), "portcullis.yaml", BASE);
    for round in 0..20 {
        let mut child = Command::new(bin())
            .args(["run", "--log-format", "json", "-c", "portcullis.yaml"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = std::io::BufRead::lines(out);
        loop {
            let line = lines.next().expect("exited before ready").unwrap();
            if line.contains("\"message\":\"ready\"") {
                break;
            }
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        // Keep reading so the gateway never blocks on a full pipe.
        lines.for_each(drop);
        let status = child.wait().unwrap();
        assert!(status.success(), "round {round}: {status}");
    }
}
