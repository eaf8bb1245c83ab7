//! Trust bundles from ConfigMaps (trust-manager's layout, Gateway API
//! frontend validation): a manifest with `configMapFile` + `key`, and a
//! mounted ConfigMap volume through `secretDir` (kubelet's `..data` swap
//! included), each deciding which client certificates are accepted.

use std::path::Path;

use crate::support::client::{self, config};
use crate::support::volume::Volume;
use crate::support::{write, write_leaf, Ca, Gateway, Outcome, Spec};

fn gateway(d: &Path, bundle: &str) -> Gateway {
    Gateway::start(
        d,
        &format!(
            "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {bundle}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ pathPrefix: /, upstream: echo }}]
upstreams:
  echo: {{ builtin: echo }}
"
        ),
    )
}

/// The outcome of a GET as a client of `issuer`.
fn as_client_of(gw: &Gateway, server_ca: &Ca, issuer: &Ca) -> Outcome {
    let leaf = issuer.leaf(&Spec::client("someone"));
    let cfg = config(server_ca, Some(&leaf), &[]);
    client::get(gw.addr("main"), "app.test", &cfg, "/")
}

fn config_map(key: &str, pem: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "clients", "namespace": "gw"},
        "data": {key: pem},
    })
    .to_string()
}

#[test]
fn a_configmap_manifest_key_is_the_trust_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = Ca::root("Server CA");
    write_leaf(d, "server", &server_ca.leaf(&Spec::server(&["app.test"])));
    let (trusted, other) = (Ca::root("Bundle CA"), Ca::root("Other CA"));
    write(
        d,
        "bundle.yaml",
        &config_map("trust-bundle.pem", &trusted.cert_pem),
    );
    let gw = gateway(d, "{ configMapFile: bundle.yaml, key: trust-bundle.pem }");
    assert_eq!(as_client_of(&gw, &server_ca, &trusted).status(), 200);
    assert!(matches!(
        as_client_of(&gw, &server_ca, &other),
        Outcome::Alert(_)
    ));
    drop(gw);

    // `check` names what is wrong with the manifest.
    let check = |text: &str, bundle: &str| {
        write(d, "bundle.yaml", text);
        let out = crate::check::check(
            d,
            &format!(
                "certificates:\n  server: {{ certFile: server.crt, keyFile: server.key }}\ntrustBundles:\n  clients: {bundle}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    protocol: https\n    hosts:\n      - {{ hostnames: [app.test], certificate: server, clientAuth: {{ mode: require, trustBundle: clients }}, routes: [{{ pathPrefix: /, upstream: echo }}] }}\nupstreams:\n  echo: {{ builtin: echo }}\n"
            ),
        );
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check(
        &config_map("ca.crt", &trusted.cert_pem),
        "{ configMapFile: bundle.yaml, key: bundle.pem }",
    );
    assert!(
        err.contains("the ConfigMap has no data key \"bundle.pem\""),
        "{err}"
    );
    let err = check(
        "{\"kind\": \"Secret\", \"data\": {}}",
        "{ configMapFile: bundle.yaml }",
    );
    assert!(err.contains("kind is \"Secret\", not ConfigMap"), "{err}");
    let err = check(
        &config_map("ca.crt", &trusted.cert_pem),
        "{ caFile: ca.crt, key: ca.crt }",
    );
    assert!(
        err.contains("trustBundles.clients.key: only applies to configMapFile"),
        "{err}"
    );
}

#[test]
fn a_mounted_configmap_is_read_through_secret_dir_and_follows_its_swap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = Ca::root("Server CA");
    write_leaf(d, "server", &server_ca.leaf(&Spec::server(&["app.test"])));
    let (first, second) = (Ca::root("First CA"), Ca::root("Second CA"));
    // What the kubelet lays out: ..data -> a timestamped directory, and
    // each key a symlink through ..data.
    let mut vol = Volume::new(&d.join("clients"), &[("ca.crt", &first.cert_pem)]);
    let gw = gateway(d, "{ secretDir: clients }");
    assert_eq!(as_client_of(&gw, &server_ca, &first).status(), 200);
    assert!(matches!(
        as_client_of(&gw, &server_ca, &second),
        Outcome::Alert(_)
    ));
    // trust-manager updates the ConfigMap: the kubelet swaps ..data.
    vol.swap(&[("ca.crt", &second.cert_pem)]);
    gw.log
        .wait_for("the reload", |v| v["message"] == "reloaded");
    assert_eq!(as_client_of(&gw, &server_ca, &second).status(), 200);
    assert!(matches!(
        as_client_of(&gw, &server_ca, &first),
        Outcome::Alert(_)
    ));
}
