//! A validated model always builds: every config that `check` accepts,
//! with material that loads, becomes a snapshot. Snapshot building may fail
//! only inside rustls, never on something `validate` should have refused
//! (a dangling or mistyped reference, a host entry of no kind, a server
//! name that is not one).
//!
//! The configs come from a small grammar walked with a seeded generator:
//! every listener protocol, both host kinds, every client-auth mode with
//! and without allow, depth and CRL checks, every certificate and
//! trust-bundle source but PKCS#12, every upstream kind with and without
//! TLS, every forwarding mode. The seed of a failing config is in the
//! message.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::pki::{Ca, Spec};

/// The material every generated config draws on, written once.
fn material(dir: &Path) {
    let ca = Ca::root("model CA");
    let srv = ca.leaf(&Spec::server(&["a.test", "b.test", "c.test", "*.w.test"]));
    let cli = ca.leaf(&Spec::client("gateway"));
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("ca.crt", &ca.cert_pem);
    write("ca.crl", &ca.crl(&[]));
    write("srv.crt", &srv.chain_pem);
    write("srv.key", &srv.key_pem);
    write("cli.crt", &cli.chain_pem);
    write("cli.key", &cli.key_pem);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "srv"},
        "stringData": {"tls.crt": srv.chain_pem, "tls.key": srv.key_pem, "ca.crt": ca.cert_pem},
    });
    write("srv-secret.yaml", &secret.to_string());
    // trust-manager's layout: a ConfigMap whose data key holds the bundle.
    let bundle = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "clients-bundle"},
        "data": {"trust-bundle.pem": ca.cert_pem},
    });
    write("bundle.yaml", &bundle.to_string());
    std::fs::create_dir(dir.join("srv-dir")).unwrap();
    write("srv-dir/tls.crt", &srv.chain_pem);
    write("srv-dir/tls.key", &srv.key_pem);
    write("srv-dir/ca.crt", &ca.cert_pem);
}

/// xorshift64: deterministic, so a failing seed is a reproducible config.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn flip(&mut self) -> bool {
        self.below(2) == 1
    }
    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }
}

fn allow(r: &mut Rng) -> Value {
    match r.below(6) {
        0 => json!({"commonNames": ["alice", "bob"]}),
        1 => json!({"uriSans": ["spiffe://td/ns/*/sa/web", "spiffe://td/admin/**"]}),
        2 => json!({"dnsSans": ["*.svc.test"]}),
        3 => json!({"organizations": ["Acme"], "organizationalUnits": ["ops"]}),
        4 => json!({"sha256Fingerprints": ["ab".repeat(32)]}),
        _ => json!({"commonNames": ["alice"], "uriSans": ["spiffe://td/x"]}),
    }
}

/// A `clientAuth` block, and whether it authenticates clients at all.
fn client_auth(r: &mut Rng, crl: bool) -> (Value, bool) {
    let mode = r.pick(&["none", "require", "optional", "optionalNoCa"]);
    if mode == "none" {
        return match r.flip() {
            true => (json!({"mode": "none"}), false),
            false => (Value::Null, false),
        };
    }
    let mut ca = json!({"mode": mode, "trustBundle": "clients"});
    if r.flip() {
        ca["verifyDepth"] = json!(r.below(3));
    }
    if crl && r.flip() {
        ca["crlCheck"] = json!(r.pick(&["leaf", "chain"]));
    }
    if r.flip() {
        ca["allow"] = allow(r);
    }
    (ca, true)
}

fn https_host(r: &mut Rng, names: Vec<&str>, crl: bool) -> Value {
    if r.below(4) == 0 {
        return json!({"hostnames": names, "passthrough": r.pick(&["db", "db-tls"])});
    }
    let (ca, authenticates) = client_auth(r, crl);
    let mut h = json!({"hostnames": names, "certificate": "srv"});
    if !ca.is_null() {
        h["clientAuth"] = ca;
    }
    let prefixes = ["/", "/api", "/admin/", "/a/b"];
    let mut routes = Vec::new();
    for (k, prefix) in prefixes.iter().take(1 + r.below(3)).enumerate() {
        let mut route = match k % 2 == 1 && r.flip() {
            true => json!({"path": format!("{prefix}/exact")}),
            false => json!({"pathPrefix": prefix}),
        };
        route["upstream"] = json!(r.pick(&["echo", "web", "web-tls", "web-mtls"]));
        if authenticates && r.flip() {
            route["allow"] = allow(r);
        }
        routes.push(route);
    }
    h["routes"] = json!(routes);
    if r.flip() {
        h["strictSni"] = r.pick(&[json!(true), json!(false), json!("samePolicy")]);
    }
    if r.flip() {
        h["escapedSlashes"] = json!(r.pick(&["reject", "keep"]));
    }
    if r.flip() {
        h["forwardClientCert"] = json!(r.pick(&[
            "sanitize",
            "forwardOnly",
            "appendForward",
            "sanitizeSet",
            "alwaysForwardOnly"
        ]));
    }
    if r.flip() {
        h["xfccDetails"] = json!(r.pick(&[vec!["Subject"], vec!["Cert", "Chain", "URI", "DNS"]]));
    }
    if r.flip() {
        h["passCertificateToUpstream"] = json!(true);
    }
    if r.flip() {
        h["clientCertHeaders"] = json!(r.flip());
    }
    if r.flip() {
        h["requestHeaders"] = json!({
            "X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%",
            "X-Client-Id": "spiffe=%DOWNSTREAM_PEER_URI_SAN%",
        });
    }
    h
}

fn listener(r: &mut Rng, i: usize, crl: bool) -> Value {
    let mut l = json!({"name": format!("l{i}"), "address": "127.0.0.1:0"});
    let mut tls = json!({});
    if r.flip() {
        tls["minVersion"] = json!(r.pick(&["1.2", "1.3"]));
    }
    if r.flip() {
        tls["sessionLifetime"] = json!(r.pick(&["1s", "5m", "24h"]));
    }
    match r.below(4) {
        0 | 1 => {
            l["protocol"] = json!("https");
            if r.flip() {
                tls["alpn"] = json!(r.pick(&[vec!["h2"], vec!["http/1.1", "h2"]]));
            }
            // Disjoint names per entry; the certificate covers them all.
            let mut pool = vec!["a.test", "b.test", "c.test", "*.w.test", "*"];
            let mut hosts = Vec::new();
            while !pool.is_empty() && (hosts.is_empty() || r.flip()) {
                let take = 1 + r.below(pool.len().min(2));
                let names: Vec<&str> = (0..take)
                    .map(|_| pool.remove(r.below(pool.len())))
                    .collect();
                hosts.push(https_host(r, names, crl));
            }
            l["hosts"] = json!(hosts);
        }
        2 => {
            l["protocol"] = json!("tls");
            if r.flip() {
                tls["alpn"] = json!(["x-custom"]);
            }
            l["certificate"] = json!("srv");
            let (ca, _) = client_auth(r, crl);
            if !ca.is_null() {
                l["clientAuth"] = ca;
            }
            l["upstream"] = json!(r.pick(&["db", "db-tls"]));
            if r.flip() {
                l["proxyProtocol"] = json!("v2");
            }
        }
        _ if r.flip() => {
            l["protocol"] = json!("tcp");
            l["upstream"] = json!(r.pick(&["db", "db-tls"]));
        }
        _ => {
            l["protocol"] = json!("passthrough");
            l["routes"] = json!([
                {"sni": "a.test", "upstream": "db"},
                {"sni": "*.w.test", "upstream": r.pick(&["db", "db-tls"])},
            ]);
            if r.flip() {
                l["defaultUpstream"] = json!("db-tls");
            }
        }
    }
    if tls != json!({}) && l["protocol"] != "tcp" && l["protocol"] != "passthrough" {
        l["tls"] = tls;
    }
    l
}

fn config(seed: u64) -> Value {
    let r = &mut Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let srv = match r.below(3) {
        0 => json!({"certFile": "srv.crt", "keyFile": "srv.key"}),
        1 => json!({"secretFile": "srv-secret.yaml"}),
        _ => json!({"secretDir": "srv-dir"}),
    };
    let mut clients = match r.below(4) {
        0 => json!({"caFile": "ca.crt"}),
        1 => json!({"secretFile": "srv-secret.yaml"}),
        2 => json!({"configMapFile": "bundle.yaml", "key": "trust-bundle.pem"}),
        _ => json!({"secretDir": "srv-dir"}),
    };
    let crl = r.flip();
    if crl {
        clients["crlFiles"] = json!(["ca.crl"]);
    }
    let mut upstream_tls = json!({"trustBundle": "clients"});
    if r.flip() {
        upstream_tls["serverName"] = json!(r.pick(&["upstream.test", "10.0.0.1"]));
    }
    if r.flip() {
        upstream_tls["allow"] = allow(r);
    }
    let mut mtls = upstream_tls.clone();
    mtls["certificate"] = json!("gateway");
    if r.flip() {
        mtls["alpn"] = json!(["h2"]);
    }
    let listeners: Vec<Value> = (0..1 + r.below(3)).map(|i| listener(r, i, crl)).collect();
    let mut top = json!({
        "certificates": {
            "srv": srv,
            "gateway": {"certFile": "cli.crt", "keyFile": "cli.key"},
        },
        "trustBundles": {"clients": clients},
        "upstreams": {
            "echo": {"builtin": "echo"},
            "web": {"url": "http://127.0.0.1:9", "hostHeader": r.pick(&["preserve", "upstream"])},
            "web-tls": {"url": "https://localhost:9", "tls": upstream_tls},
            "web-mtls": {"url": "https://[::1]:9", "tls": mtls.clone()},
            "db": {"address": "127.0.0.1:9"},
            "db-tls": {"address": r.pick(&["db.test:2379", "[::1]:2379"]), "tls": mtls},
        },
        "listeners": listeners,
    });
    if r.flip() {
        top["admin"] = json!({"address": "127.0.0.1:0"});
    }
    if r.flip() {
        top["limits"] = json!({"maxConnections": 10, "connectTimeout": "1s"});
    }
    top
}

#[test]
fn every_config_of_the_grammar_is_accepted_and_builds() {
    let dir = tempfile::tempdir().unwrap();
    material(dir.path());
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..=200u64 {
        let c = config(seed);
        for l in c["listeners"].as_array().unwrap() {
            kinds.insert(l["protocol"].as_str().unwrap().to_string());
            for h in l["hosts"].as_array().into_iter().flatten() {
                let kind = match h.get("passthrough") {
                    Some(_) => "passthrough host",
                    None => h["clientAuth"]["mode"].as_str().unwrap_or("no clientAuth"),
                };
                kinds.insert(kind.to_string());
            }
        }
        let path = dir.path().join(format!("gw-{seed}.yaml"));
        std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
        match portcullis::server::prepare(&path) {
            Ok((_, snapshot)) => assert_eq!(
                snapshot.listeners.len(),
                c["listeners"].as_array().unwrap().len(),
                "seed {seed}"
            ),
            Err(e) => panic!(
                "seed {seed}: {e}\n{}",
                serde_json::to_string_pretty(&c).unwrap()
            ),
        }
    }
    // The walk reached every kind of listener and host entry.
    for k in [
        "https",
        "tls",
        "tcp",
        "passthrough",
        "passthrough host",
        "none",
        "no clientAuth",
        "require",
        "optional",
        "optionalNoCa",
    ] {
        assert!(kinds.contains(k), "no generated config has {k}: {kinds:?}");
    }
}

#[test]
fn an_upstream_host_that_is_no_server_name_is_refused_by_check_not_at_build() {
    let dir = tempfile::tempdir().unwrap();
    material(dir.path());
    for (address, expect) in [
        (
            json!({"address": "db_under score:2379", "tls": {"certificate": "gateway"}}),
            "upstreams.db.tls: the upstream's host \"db_under score\" is not a DNS name or IP address; give tls.serverName",
        ),
        (
            json!({"address": "db:2379", "tls": {"serverName": "not a name"}}),
            "upstreams.db.tls.serverName: \"not a name\" is not a DNS name or IP address",
        ),
    ] {
        let mut c = config(7);
        c["upstreams"]["db"] = address;
        let path = dir.path().join("gw.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
        let err = portcullis::server::prepare(&path).err().unwrap().to_string();
        assert!(err.contains(expect), "{err}");
    }
}
