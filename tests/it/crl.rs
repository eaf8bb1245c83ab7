//! CRL freshness (issue 13): a CRL past its nextUpdate refuses clients as
//! `crl_expired` (metric, log, the alert they get, probe's words); `check`
//! and the start-up log say so before it happens; a renewed CRL brings the
//! clients back without a restart. `ca crl` itself is tested with the other
//! tooling, in `pki`.

use std::path::Path;

use time::{Duration, OffsetDateTime};

use crate::support::client::{self, config};
use crate::support::gateway::Gateway;
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
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
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
    let rejected = gw.log.wait_for("the verifier's refusal", |v| {
        v["message"] == "client certificate rejected"
    });
    assert_eq!(rejected["result"], "crl_expired", "{rejected}");
    assert_eq!(rejected["subject"], "CN=alice", "{rejected}");
    let refused = gw.log.wait_for("the refusal line", |v| {
        v["message"] == "tls handshake refused"
    });
    assert_eq!(refused["result"], "crl_expired", "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("revocation list expired") && !detail.contains("ExpiredRevocationList"),
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
