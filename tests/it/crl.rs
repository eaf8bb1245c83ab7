//! CRL freshness (issue 13): a CRL past its nextUpdate refuses clients as
//! `crl_expired` (metric, log, the alert they get, probe's words); `check`
//! and the start-up log say so before it happens; a renewed CRL brings the
//! clients back without a restart. `ca crl` itself is tested with the other
//! tooling, in `pki`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use time::{Duration, OffsetDateTime};

use crate::support::client::{self, config};
use crate::support::gateway::{bin, Gateway, WAIT};
use crate::support::{write, write_leaf, Ca, Leaf, Outcome, Spec};

const CONFIG: &str = "admin: { address: \"127.0.0.1:0\" }
certificates: { server: { certFile: server.crt, keyFile: server.key } }
trustBundles: { clients: { caFile: ca.crt, crlFiles: [ca.crl] } }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: { mode: require, trustBundle: clients }
        routes: [{ pathPrefix: /, upstream: echo }]
upstreams:
  echo: { builtin: echo }
";

/// A CA, its server certificate and `ca.crl` (as given) in `d`; a client.
fn material(d: &Path, crl: impl FnOnce(&Ca) -> String) -> (Ca, Leaf) {
    let ca = Ca::root("Fresh CA");
    write(d, "ca.crt", &ca.cert_pem);
    // Far from its own expiry warning, so the only warnings are the CRL's.
    let server = Spec {
        not_after_days: 90,
        ..Spec::server(&["app.test"])
    };
    write_leaf(d, "server", &ca.leaf(&server));
    write(d, "ca.crl", &crl(&ca));
    let alice = ca.leaf(&Spec::client("alice"));
    (ca, alice)
}

/// The value of the sample `series` (name and labels exactly as the
/// gateway writes them) on `/metrics`. (prometheus-parse drops label values
/// holding `=`, such as an issuer DN, so the text is read as it is.)
fn sample(gw: &Gateway, series: &str) -> Option<f64> {
    let out = client::plain_get(gw.admin.unwrap(), "/metrics");
    let prefix = format!("{series} ");
    out.body()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// One GET with a fresh client (no session to resume: a full handshake).
fn get(gw: &Gateway, ca: &Ca, leaf: &Leaf) -> Outcome {
    client::get(
        gw.addr("main"),
        "app.test",
        &config(ca, Some(leaf), &[]),
        "/",
    )
}

#[test]
fn a_client_checked_against_an_expired_crl_is_refused_as_crl_expired() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lapsed = OffsetDateTime::now_utc() - Duration::hours(1);
    let (ca, alice) = material(d, |ca| ca.crl_until(&[], lapsed));
    let gw = Gateway::start(d, CONFIG);
    // rustls, like OpenSSL, answers an unknown revocation status with
    // unknown_ca: the client cannot tell it from an unknown issuer.
    assert_eq!(
        get(&gw, &ca, &alice),
        Outcome::Alert(rustls::AlertDescription::UnknownCA)
    );
    let rejected = gw.log.refusal("crl_expired");
    assert_eq!(rejected["subject"], "CN=alice", "{rejected}");
    // Which CRL lapsed, and what renews it.
    assert_eq!(
        rejected["crl"].as_str(),
        Some(d.join("ca.crl").display().to_string().as_str()),
        "{rejected}"
    );
    assert_eq!(rejected["crl_issuer"], "CN=Fresh CA", "{rejected}");
    assert!(
        rejected["renew"]
            .as_str()
            .unwrap()
            .contains(&format!("portcullis ca crl --ca {}", d.display())),
        "{rejected}"
    );
    // One line: no second one for the same refusal.
    assert_eq!(gw.log.messages("tls handshake refused").len(), 1);
    let detail = rejected["reason"].as_str().unwrap();
    assert!(
        detail.contains("CRL")
            && detail.contains("expired on")
            && !detail.contains("ExpiredRevocationList"),
        "{detail}"
    );
    let hs = "portcullis_tls_handshakes_total";
    assert_eq!(
        sample(
            &gw,
            &format!("{hs}{{listener=\"main\",result=\"crl_expired\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &gw,
            &format!("{hs}{{listener=\"main\",result=\"revoked\"}}")
        ),
        None
    );
}

#[test]
fn the_crl_gauge_carries_the_next_update_under_the_spec_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let next = OffsetDateTime::now_utc() + Duration::days(20);
    material(d, |ca| ca.crl_until(&[], next));
    let gw = Gateway::start(d, CONFIG);
    assert_eq!(
        sample(
            &gw,
            "portcullis_crl_next_update_timestamp_seconds{trust_bundle=\"clients\",issuer=\"CN=Fresh CA\"}"
        ),
        Some(next.unix_timestamp() as f64)
    );
}

/// `check` on `DIR/portcullis.yaml` as it is.
fn check_as_is(d: &Path) -> Output {
    crate::support::words_only(
        Command::new(bin())
            .args(["check", "-c"])
            .arg(d.join("portcullis.yaml"))
            .output()
            .unwrap(),
    )
}

/// Writes the config, then `check`s it.
fn check(d: &Path) -> Output {
    std::fs::write(d.join("portcullis.yaml"), CONFIG).unwrap();
    check_as_is(d)
}

/// As the messages write times: RFC 3339, whole seconds.
fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn check_fails_on_an_expired_crl_naming_file_issuer_date_and_the_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lapsed = OffsetDateTime::now_utc() - Duration::hours(2);
    material(d, |ca| ca.crl_until(&[], lapsed));
    let out = check(d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok"));
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "portcullis.yaml:3: trustBundles.clients: ",
        &format!("CRL {}", d.join("ca.crl").display()),
        "issuer CN=Fresh CA",
        &format!("expired on {}", rfc3339(lapsed)),
        &format!("`portcullis ca crl --ca {}`", d.display()),
        "re-sign it with your CA",
    ] {
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
}

#[test]
fn check_warns_of_a_crl_that_expires_within_a_week_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let soon = OffsetDateTime::now_utc() + Duration::days(3) + Duration::hours(1);
    material(d, |ca| ca.crl_until(&[], soon));
    let out = check(d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.starts_with("portcullis: warning: ")
            && err.contains("portcullis.yaml:3: trustBundles.clients: CRL")
            && err.contains("expires in 3 days")
            && err.contains(&rfc3339(soon))
            && err.contains("portcullis ca crl --ca"),
        "{err}"
    );
    let later = OffsetDateTime::now_utc() + Duration::days(8);
    material(d, |ca| ca.crl_until(&[], later));
    let out = check(d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("CRL"), "{err}");
}

#[test]
fn run_starts_with_an_expired_crl_and_logs_it_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lapsed = OffsetDateTime::now_utc() - Duration::hours(2);
    material(d, |ca| ca.crl_until(&[], lapsed));
    let gw = Gateway::start(d, CONFIG);
    let line = gw.log.wait_for("the problem line", |v| {
        v["message"] == "certificate problem"
    });
    assert_eq!(line["level"], "ERROR", "{line}");
    let p = line["problem"].as_str().unwrap();
    assert!(
        p.contains(&format!("CRL {}", d.join("ca.crl").display()))
            && p.contains(&format!("expired on {}", rfc3339(lapsed)))
            && p.contains("portcullis ca crl --ca"),
        "{p}"
    );
}

#[test]
fn run_warns_of_a_crl_that_expires_within_a_week() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let soon = OffsetDateTime::now_utc() + Duration::hours(30) + Duration::minutes(30);
    material(d, |ca| ca.crl_until(&[], soon));
    let gw = Gateway::start(d, CONFIG);
    let line = gw.log.wait_for("the CRL warning line", |v| {
        v["message"] == "certificate warning" && v["warning"].as_str().unwrap().contains("CRL")
    });
    assert_eq!(line["level"], "WARN", "{line}");
    let w = line["warning"].as_str().unwrap();
    assert!(
        w.contains("expires in 30 hours") && w.contains("portcullis ca crl --ca"),
        "{w}"
    );
    assert!(gw.log.messages("certificate problem").is_empty());
}

fn probe(d: &Path, gw: &Gateway, client: &str) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["probe", &gw.addr("main").to_string(), "--sni", "app.test"])
        .args(["--ca", "ca.crt", "--cert", &format!("{client}.crt")])
        .args(["--key", &format!("{client}.key")])
        .current_dir(d)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn probe_names_the_servers_stale_crl_as_the_likely_cause_of_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lapsed = OffsetDateTime::now_utc() - Duration::hours(1);
    let (_, alice) = material(d, |ca| ca.crl_until(&[], lapsed));
    write_leaf(d, "alice", &alice);
    write_leaf(
        d,
        "stranger",
        &Ca::root("Other CA").leaf(&Spec::client("x")),
    );
    let gw = Gateway::start(d, CONFIG);
    let (code, out) = probe(d, &gw, "alice");
    assert_eq!(code, Some(1), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("FAILED: ")
            && last.contains("the server's CRL for CN=Fresh CA has expired")
            && last.contains("unknown_ca"),
        "{out}"
    );
    // A certificate of a CA the server does not accept is not blamed on a CRL.
    let (code, out) = probe(d, &gw, "stranger");
    assert_eq!(code, Some(1), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.contains("unknown_ca") && !last.contains("CRL"),
        "{out}"
    );
}

/// The acceptance test of issue 13: a CRL lapses while the gateway runs;
/// clients are refused as crl_expired (metric, log), and the log says when
/// it lapsed; `check` fails and
/// names the command that renews it; that command, run as `check` wrote
/// it, renews the CRL and the file watch brings every client back — the
/// revoked one excepted — without a restart.
#[test]
fn a_crl_that_lapses_while_running_is_named_by_check_and_renewed_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, alice) = material(d, |ca| ca.crl(&[]));
    let bob = ca.leaf(&Spec::client("bob"));
    // Laid out as a CA directory next to its CRL (ca.crt, ca.key, ca.crl),
    // as `portcullis ca init` leaves one.
    write(d, "ca.key", &ca.key_pem());
    // Lapses a few seconds from now: long enough to start and see alice
    // accepted first.
    let lapse = OffsetDateTime::now_utc() + Duration::seconds(6);
    write(d, "ca.crl", &ca.crl_until(&[&bob.serial], lapse));
    let gw = Gateway::start(d, CONFIG);
    assert_eq!(
        get(&gw, &ca, &alice).status(),
        200,
        "the CRL lapsed before the gateway was up: a slow start, not a bug"
    );
    let revoked = Outcome::Alert(rustls::AlertDescription::CertificateRevoked);
    assert_eq!(get(&gw, &ca, &bob), revoked);

    // The wall clock passes nextUpdate (polled in 100 ms steps).
    let deadline = Instant::now() + WAIT + std::time::Duration::from_secs(6);
    let stale = Outcome::Alert(rustls::AlertDescription::UnknownCA);
    loop {
        match get(&gw, &ca, &alice) {
            o if o == stale => break,
            Outcome::Http(200, _) => {}
            other => panic!("neither accepted nor crl_expired: {other:?}"),
        }
        assert!(Instant::now() < deadline, "the CRL never lapsed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let refused = gw.log.wait_for("a crl_expired refusal", |v| {
        v["message"] == "tls handshake refused" && v["result"] == "crl_expired"
    });
    assert!(refused["client"].as_str().is_some(), "{refused}");
    // The log said it was coming at start, and says when it happened.
    let warned: Vec<String> = gw
        .log
        .messages("certificate warning")
        .iter()
        .map(|v| v["warning"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("CRL") && w.contains("expires in less than a minute")),
        "{warned:?}"
    );
    let lapsed = gw.log.wait_for("the lapse logged while running", |v| {
        v["message"] == "certificate problem"
    });
    assert_eq!(lapsed["level"], "ERROR", "{lapsed}");
    assert!(
        lapsed["problem"].as_str().unwrap().contains(&format!(
            "CRL {} (issuer CN=Fresh CA) expired on {}",
            d.join("ca.crl").display(),
            rfc3339(lapse)
        )),
        "{lapsed}"
    );
    assert!(
        sample(
            &gw,
            "portcullis_tls_handshakes_total{listener=\"main\",result=\"crl_expired\"}"
        )
        .unwrap()
            >= 1.0
    );

    // check, on the running config, fails and names the renewal.
    let out = check_as_is(d);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let command = err
        .split('`')
        .find(|part| part.starts_with("portcullis ca crl "))
        .unwrap_or_else(|| panic!("no renewal command in: {err}"));
    assert_eq!(command, format!("portcullis ca crl --ca {}", d.display()));

    // Run it as written; the watch reloads the renewed CRL.
    let reloads = gw.log.messages("reloaded").len();
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let renewed = Command::new(bin()).args(&args).output().unwrap();
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    gw.wait_messages("reloaded", reloads + 1);
    assert_eq!(get(&gw, &ca, &alice).status(), 200);
    assert_eq!(get(&gw, &ca, &bob), revoked, "the renewed CRL keeps bob");
    assert_eq!(gw.log.messages("ready").len(), 1, "no restart");
    assert_eq!(check_as_is(d).status.code(), Some(0));
}
