//! `portcullis import ingress-nginx`: the ingress-nginx mTLS tutorial end to
//! end, every annotation, merges, and malformed input.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;

use crate::support::gateway::bin;
use crate::support::{client, write, Ca, Gateway, Outcome, Spec, Upstream};

fn import(dir: &Path, files: &[&str]) -> Output {
    crate::support::words_only(
        Command::new(bin())
            .args(["import", "ingress-nginx"])
            .args(files)
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

fn yaml(o: &Output) -> serde_json::Value {
    serde_saphyr::from_str(&String::from_utf8_lossy(&o.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

const TUTORIAL_INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: meow-ingress
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/auth-tls-verify-client: \"on\"
    nginx.ingress.kubernetes.io/auth-tls-secret: \"default/ca-secret\"
    nginx.ingress.kubernetes.io/auth-tls-verify-depth: \"1\"
    nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream: \"true\"
spec:
  ingressClassName: nginx
  tls:
  - hosts:
    - meow.com
    secretName: tls-secret
  rules:
  - host: meow.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: meow-svc
            port:
              number: 80
";

#[test]
fn the_ingress_nginx_mtls_tutorial_imports_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Cambia Root CA");
    let server = ca.leaf(&Spec::server(&["meow.com"]));
    let client_leaf = ca.leaf(&Spec::client("meow-client"));
    let secrets = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: ca-secret, namespace: default }}\ntype: Opaque\ndata:\n  ca.crt: {}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{ name: tls-secret, namespace: default }}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&ca.cert_pem),
        b64(&server.chain_pem),
        b64(&server.key_pem)
    );
    write(d, "all.yaml", &format!("{TUTORIAL_INGRESS}---\n{secrets}"));
    let out = import(d, &["all.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cfg = yaml(&out);
    let host = &cfg["listeners"][0]["hosts"][0];
    assert_eq!(host["hostnames"][0], "meow.com");
    assert_eq!(host["clientAuth"]["mode"], "require");
    assert_eq!(host["clientAuth"]["verifyDepth"], 1);
    assert_eq!(host["passCertificateToUpstream"], true);
    assert_eq!(
        cfg["upstreams"]["default-meow-svc-80"]["url"],
        "http://meow-svc.default.svc.cluster.local:80"
    );
    // The config passes check as written.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    write(d, "imported.yaml", &text);
    let check = Command::new(bin())
        .args(["check", "-c", "imported.yaml"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    // Run it with a local upstream and a local address.
    let up = Upstream::start();
    let local = text
        .replace(
            "http://meow-svc.default.svc.cluster.local:80",
            &format!("http://{}", up.addr),
        )
        .replace("0.0.0.0:443", "127.0.0.1:0");
    let gw = Gateway::start(d, &local);
    let addr = gw.addr("https");
    let ok = client::get(
        addr,
        "meow.com",
        &client::config(&ca, Some(&client_leaf), &[]),
        "/",
    );
    assert_eq!(ok.status(), 200);
    let seen = up.seen();
    assert_eq!(seen[0].header("ssl-client-verify"), Some("SUCCESS"));
    assert_eq!(
        seen[0].header("ssl-client-subject-dn"),
        Some("CN=meow-client")
    );
    let refused = client::get(addr, "meow.com", &client::config(&ca, None, &[]), "/");
    assert!(
        matches!(
            refused,
            Outcome::Alert(rustls::AlertDescription::CertificateRequired)
        ),
        "{refused:?}"
    );
}

#[test]
fn a_match_cn_that_cannot_be_translated_admits_no_one_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Match CA");
    let server = ca.leaf(&Spec::server(&["meow.com", "purr.com"]));
    let secrets = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: ca-secret, namespace: default }}\ntype: Opaque\ndata:\n  ca.crt: {}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{ name: tls-secret, namespace: default }}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&ca.cert_pem),
        b64(&server.chain_pem),
        b64(&server.key_pem)
    );
    // A regular expression on one host; on the other an exact name, but
    // with verify-client off (ingress-nginx then refuses every request).
    let regex = TUTORIAL_INGRESS.replace(
        "    nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream: \"true\"\n",
        "    nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=meow-.*\"\n",
    );
    let off = TUTORIAL_INGRESS
        .replace("meow.com", "purr.com")
        .replace("name: meow-ingress", "name: purr-ingress")
        .replace("verify-client: \"on\"", "verify-client: \"off\"")
        .replace(
            "    nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream: \"true\"\n",
            "    nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=meow-client\"\n",
        );
    write(d, "all.yaml", &format!("{regex}---\n{off}---\n{secrets}"));
    let out = import(d, &["all.yaml"]);
    // Reported, exit 3.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "default/meow-ingress: nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=meow-.*\""
        ),
        "{err}"
    );
    assert!(
        err.contains("default/purr-ingress: nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=meow-client\""),
        "{err}"
    );
    // A comment beside each rule says why.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for host in [
        "meow.com (Ingress default/meow-ingress)",
        "purr.com (Ingress default/purr-ingress)",
    ] {
        assert!(
            text.lines().any(|l| l
                .trim_start()
                .starts_with(&format!("# host {host}: auth-tls-match-cn"))
                && l.contains("admits no one")),
            "{text}"
        );
    }
    // It passes check.
    write(d, "imported.yaml", &text);
    let check = Command::new(bin())
        .args(["check", "-c", "imported.yaml"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    // And admits no one: not the name the expression was after, not any other.
    let up = Upstream::start();
    let local = text
        .replace(
            "http://meow-svc.default.svc.cluster.local:80",
            &format!("http://{}", up.addr),
        )
        .replace("0.0.0.0:443", "127.0.0.1:0");
    let gw = Gateway::start(d, &local);
    let addr = gw.addr("https");
    for cn in ["meow-client", "meow-", "admin"] {
        let leaf = ca.leaf(&Spec::client(cn));
        for host in ["meow.com", "purr.com"] {
            let got = client::get(addr, host, &client::config(&ca, Some(&leaf), &[]), "/");
            assert_eq!(got.status(), 403, "{cn:?} on {host}: {got:?}");
        }
    }
    let anonymous = client::get(addr, "purr.com", &client::config(&ca, None, &[]), "/");
    assert_eq!(anonymous.status(), 401, "{anonymous:?}");
    assert!(up.seen().is_empty(), "nothing reached the upstream");
}

fn ingress(name: &str, host: &str, annotations: &[(&str, &str)], paths: &str) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    nginx.ingress.kubernetes.io/{k}: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations:\n{ann}spec:\n  tls:\n  - hosts: [{host}]\n    secretName: web-tls\n  rules:\n  - host: {host}\n    http:\n      paths:\n{paths}---\n"
    )
}

fn path(p: &str, kind: &str, svc: &str) -> String {
    format!("      - path: {p}\n        pathType: {kind}\n        backend: {{ service: {{ name: {svc}, port: {{ number: 8080 }} }} }}\n")
}

/// Imports one Ingress (with its TLS Secret present) and returns exit code,
/// config, and the not-carried-over lines.
fn one(annotations: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let tls = "apiVersion: v1\nkind: Secret\nmetadata: { name: web-tls, namespace: shop }\ntype: kubernetes.io/tls\nstringData: { tls.crt: x, tls.key: y }\n---\n\
               apiVersion: v1\nkind: Secret\nmetadata: { name: ca, namespace: shop }\nstringData: { ca.crt: x }\n---\n\
               apiVersion: v1\nkind: Secret\nmetadata: { name: up, namespace: shop }\nstringData: { ca.crt: x, tls.crt: y, tls.key: z }\n";
    write(
        dir.path(),
        "in.yaml",
        &format!(
            "{}{tls}",
            ingress("web", "shop.test", annotations, &path("/", "Prefix", "web"))
        ),
    );
    let out = import(dir.path(), &["in.yaml"]);
    let code = out.status.code().unwrap();
    let cfg = if code == 2 {
        serde_json::Value::Null
    } else {
        yaml(&out)
    };
    (code, cfg, stderr(&out))
}

#[test]
fn every_annotation_maps_or_is_reported() {
    // verify-client values
    for (v, mode) in [
        ("on", "require"),
        ("optional", "optional"),
        ("optional_no_ca", "optionalNoCa"),
    ] {
        let (code, cfg, _) = one(&[
            ("auth-tls-secret", "shop/ca"),
            ("auth-tls-verify-client", v),
        ]);
        assert_eq!(code, 0);
        assert_eq!(
            cfg["listeners"][0]["hosts"][0]["clientAuth"]["mode"], mode,
            "{v}"
        );
        assert_eq!(
            cfg["listeners"][0]["hosts"][0]["clientAuth"]["verifyDepth"], 1,
            "ingress-nginx's default depth"
        );
        assert_eq!(
            cfg["trustBundles"]["shop-ca-ca"]["secretFile"],
            "./shop.ca.secret.yaml"
        );
    }
    let (_, cfg, _) = one(&[("auth-tls-secret", "ca"), ("auth-tls-verify-client", "off")]);
    assert!(cfg["listeners"][0]["hosts"][0].get("clientAuth").is_none());
    let (_, cfg, _) = one(&[
        ("auth-tls-secret", "shop/ca"),
        ("auth-tls-verify-depth", "3"),
    ]);
    assert_eq!(
        cfg["listeners"][0]["hosts"][0]["clientAuth"]["verifyDepth"],
        3
    );
    // match-cn: exact forms translate, regular expressions are reported.
    let (code, cfg, _) = one(&[
        ("auth-tls-secret", "shop/ca"),
        ("auth-tls-match-cn", "CN=(ops|deploy)"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        cfg["listeners"][0]["hosts"][0]["clientAuth"]["allow"]["commonNames"],
        serde_json::json!(["ops", "deploy"])
    );
    let (code, cfg, err) = one(&[
        ("auth-tls-secret", "shop/ca"),
        ("auth-tls-match-cn", "CN=adm.*"),
    ]);
    assert_eq!(code, 3);
    // Never wider than ingress-nginx: a rule that admits no one.
    assert_eq!(
        cfg["listeners"][0]["hosts"][0]["clientAuth"]["allow"],
        serde_json::json!({ "sha256Fingerprints": ["0".repeat(64)] })
    );
    assert!(err.contains("shop/web: nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=adm.*\" is a regular expression"), "{err}");
    // With verify-client off ingress-nginx still checks the (empty) subject
    // and refuses everyone: so does the import, and says so.
    let (code, cfg, err) = one(&[
        ("auth-tls-secret", "shop/ca"),
        ("auth-tls-verify-client", "off"),
        ("auth-tls-match-cn", "CN=ops"),
    ]);
    assert_eq!(code, 3);
    let ca = &cfg["listeners"][0]["hosts"][0]["clientAuth"];
    assert_eq!(ca["mode"], "optional");
    assert_eq!(
        ca["allow"],
        serde_json::json!({ "sha256Fingerprints": ["0".repeat(64)] })
    );
    assert!(
        err.contains("shop/web: nginx.ingress.kubernetes.io/auth-tls-match-cn: \"CN=ops\" with auth-tls-verify-client off"),
        "{err}"
    );
    // Upstream TLS.
    let (code, cfg, err) = one(&[
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-secret", "shop/up"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-name", "web.internal"),
        ("proxy-ssl-server-name", "on"),
    ]);
    assert_eq!(code, 0, "{err}");
    let up = &cfg["upstreams"]["shop-web-8080-tls"];
    assert_eq!(up["url"], "https://web.shop.svc.cluster.local:8080");
    assert_eq!(up["tls"]["trustBundle"], "shop-up-ca");
    assert_eq!(up["tls"]["certificate"], "shop-up-client");
    assert_eq!(up["tls"]["serverName"], "web.internal");
    let (code, _, err) = one(&[("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "off")]);
    assert_eq!(code, 3);
    assert!(
        err.contains("proxy-ssl-verify: off: portcullis always verifies"),
        "{err}"
    );
    let (code, _, err) = one(&[
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-verify-depth", "2"),
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("proxy-ssl-verify-depth"), "{err}");
    // gRPC backends: HTTP/2 to the Service (h2c), or over TLS for GRPCS.
    let (code, cfg, err) = one(&[("backend-protocol", "GRPC")]);
    assert_eq!(code, 0, "{err}");
    let up = &cfg["upstreams"]["shop-web-8080-grpc"];
    assert_eq!(up["url"], "http://web.shop.svc.cluster.local:8080");
    assert_eq!(up["version"], "http2");
    let (code, cfg, err) = one(&[
        ("backend-protocol", "GRPCS"),
        ("proxy-ssl-secret", "shop/up"),
        ("proxy-ssl-verify", "on"),
    ]);
    assert_eq!(code, 0, "{err}");
    let up = &cfg["upstreams"]["shop-web-8080-grpc-tls"];
    assert_eq!(up["url"], "https://web.shop.svc.cluster.local:8080");
    assert_eq!(up["version"], "http2");
    assert_eq!(up["tls"]["trustBundle"], "shop-up-ca");
    let (code, _, err) = one(&[("backend-protocol", "FCGI")]);
    assert_eq!(code, 3);
    assert!(err.contains("(HTTP, HTTPS, GRPC and GRPCS are)"), "{err}");
    let (code, _, err) = one(&[("proxy-ssl-name", "x")]);
    assert_eq!(code, 3);
    assert!(
        err.contains("has no effect without backend-protocol: HTTPS"),
        "{err}"
    );
    // Passthrough.
    let (code, cfg, _) = one(&[("ssl-passthrough", "true")]);
    assert_eq!(code, 0);
    assert_eq!(
        cfg["listeners"][0]["hosts"][0]["passthrough"],
        "shop-web-8080-passthrough"
    );
    assert_eq!(
        cfg["upstreams"]["shop-web-8080-passthrough"]["address"],
        "web.shop.svc.cluster.local:8080"
    );
    // Reported, never dropped silently.
    for (a, v, why) in [
        ("auth-tls-error-page", "https://x/err", "not an error page"),
        ("rewrite-target", "/", "not carried over by the importer"),
        (
            "auth-tls-pass-certificate-to-upstream",
            "true",
            "has no effect without auth-tls-secret",
        ),
    ] {
        let (code, _, err) = one(&[(a, v)]);
        assert_eq!(code, 3, "{a}");
        assert!(
            err.contains(&format!("shop/web: nginx.ingress.kubernetes.io/{a}"))
                && err.contains(why),
            "{a}: {err}"
        );
    }
}

#[test]
fn paths_map_by_type_and_hosts_merge_across_ingresses() {
    let dir = tempfile::tempdir().unwrap();
    let paths_a = format!(
        "{}{}",
        path("/api", "Prefix", "api"),
        path("/health", "Exact", "health")
    );
    let input = format!(
        "{}{}",
        ingress("a", "shop.test", &[], &paths_a),
        ingress(
            "b",
            "shop.test",
            &[],
            &path("/static", "ImplementationSpecific", "static")
        )
    );
    write(dir.path(), "in.yaml", &input);
    let out = import(dir.path(), &["in.yaml"]);
    let cfg = yaml(&out);
    let routes = &cfg["listeners"][0]["hosts"][0]["routes"];
    assert_eq!(routes.as_array().unwrap().len(), 3, "{routes}");
    assert_eq!(routes[0]["pathPrefix"], "/api");
    assert_eq!(routes[1]["path"], "/health");
    assert_eq!(routes[2]["pathPrefix"], "/static");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the TLS Secret is missing: a placeholder is written"
    );
    assert!(
        stderr(&out).contains("Secret shop/web-tls (TLS certificate) was not in the input"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn conflicting_client_auth_on_one_host_names_both_ingresses() {
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "{}{}",
        ingress(
            "a",
            "shop.test",
            &[("auth-tls-secret", "shop/ca")],
            &path("/a", "Prefix", "a")
        ),
        ingress(
            "b",
            "shop.test",
            &[
                ("auth-tls-secret", "shop/ca"),
                ("auth-tls-verify-client", "optional")
            ],
            &path("/b", "Prefix", "b")
        )
    );
    write(dir.path(), "in.yaml", &input);
    let out = import(dir.path(), &["in.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("Ingress shop/a")
            && err.contains("Ingress shop/b")
            && err.contains("shop.test"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1);
}

#[test]
fn malformed_input_gives_one_line_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bad.yaml", "kind: [unclosed\n");
    write(d, "nospec.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: lost, namespace: shop }\n");
    write(
        d,
        "badref.yaml",
        &ingress(
            "r",
            "shop.test",
            &[("auth-tls-secret", "a/b/c")],
            &path("/", "Prefix", "x"),
        ),
    );
    for (file, needle) in [
        ("bad.yaml", "not YAML"),
        ("nospec.yaml", "Ingress shop/lost: no spec"),
        ("badref.yaml", "shop/r: "),
    ] {
        let out = import(d, &[file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(needle), "{file}: {err}");
    }
}

#[test]
fn list_objects_and_stdin_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        serde_json::to_string(
            &serde_saphyr::from_str::<serde_json::Value>(TUTORIAL_INGRESS).unwrap()
        )
        .unwrap()
    );
    let mut child = Command::new(bin())
        .args(["import", "ingress-nginx", "-"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), list.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let cfg = yaml(&out);
    assert_eq!(cfg["listeners"][0]["hosts"][0]["hostnames"][0], "meow.com");
}

#[test]
fn secrets_dir_is_created_and_holds_the_manifests_0600() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Dir CA");
    let server = ca.leaf(&Spec::server(&["meow.com"]));
    let secrets = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: ca-secret, namespace: default }}\ntype: Opaque\ndata:\n  ca.crt: {}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{ name: tls-secret, namespace: default }}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&ca.cert_pem),
        b64(&server.chain_pem),
        b64(&server.key_pem)
    );
    write(d, "all.yaml", &format!("{TUTORIAL_INGRESS}---\n{secrets}"));
    let out = import(d, &["all.yaml", "--secrets-dir", "k8s/secrets"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = d.join("k8s/secrets/default.tls-secret.secret.yaml");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("k8s/secrets/default.tls-secret.secret.yaml")
    );
}

fn secret_cmd(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("secret")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn secret_outputs_concatenate_and_import_takes_listen_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Concat CA");
    let server = ca.leaf(&Spec::server(&["meow.com"]));
    write(d, "ca.crt", &ca.cert_pem);
    write(d, "server.crt", &server.chain_pem);
    write(d, "server.key", &server.key_pem);
    let tls = secret_cmd(
        d,
        &[
            "tls",
            "--name",
            "tls-secret",
            "--cert",
            "server.crt",
            "--key",
            "server.key",
        ],
    );
    let generic = secret_cmd(d, &["generic", "--name", "ca-secret", "--ca", "ca.crt"]);
    assert!(tls.starts_with("---\n") && generic.starts_with("---\n"));
    // As `secret tls … >> s.yaml; secret generic … >> s.yaml` does.
    write(d, "all.yaml", &format!("{TUTORIAL_INGRESS}{tls}{generic}"));
    let out = Command::new(bin())
        .args(["import", "ingress-nginx", "--listen", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0", "all.yaml"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cfg = yaml(&out);
    assert_eq!(cfg["listeners"][0]["address"], "127.0.0.1:0");
    assert_eq!(cfg["admin"]["address"], "127.0.0.1:0");
    write(d, "imported.yaml", &String::from_utf8_lossy(&out.stdout));
    let gw = Gateway::start(d, &String::from_utf8_lossy(&out.stdout));
    let admin = gw.admin.expect("an admin endpoint");
    assert_eq!(client::plain_get(admin, "/readyz").status(), 200);

    // Without the `---` lines the same concatenation is one document with
    // every key twice: the error says so in words, on one line.
    let glued = format!(
        "{}{}",
        tls.trim_start_matches("---\n"),
        generic.trim_start_matches("---\n")
    );
    write(d, "glued.yaml", &glued);
    let out = import(d, &["glued.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("glued.yaml: line ") && err.contains("appears twice") && err.contains("---"),
        "{err}"
    );
}

/// Generated names join namespace, name and port with `-`, which the names
/// themselves may hold: two tenants' objects that meet under one name are
/// refused, never merged (one tenant's host would be routed to the other's
/// Service, or verify clients with the other's CA).
#[test]
fn objects_of_different_namespaces_never_share_a_generated_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ing = |ns: &str, name: &str, host: &str, svc: &str, ca: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    nginx.ingress.kubernetes.io/auth-tls-secret: \"{ca}\"\nspec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {{ service: {{ name: {svc}, port: {{ number: 80 }} }} }}\n---\n"
        )
    };
    // The same service name: prod/team-api and prod-team/api.
    write(
        d,
        "services.yaml",
        &format!(
            "{}{}",
            ing("prod", "a", "a.test", "team-api", "prod/ca"),
            ing("prod-team", "b", "b.test", "api", "prod-team/ca")
        ),
    );
    let out = import(d, &["services.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("service prod/team-api port 80")
            && e.contains("service prod-team/api port 80")
            && e.contains("upstreams.prod-team-api-80"),
        "{e}"
    );
    // The same CA bundle name: prod/team-ca and prod-team/ca.
    write(
        d,
        "cas.yaml",
        &format!(
            "{}{}",
            ing("prod", "a", "a.test", "web", "prod/team-ca"),
            ing("prod-team", "b", "b.test", "web", "prod-team/ca")
        ),
    );
    let out = import(d, &["cas.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("CA Secret prod/team-ca")
            && e.contains("CA Secret prod-team/ca")
            && e.contains("trustBundles.prod-team-ca-ca"),
        "{e}"
    );
    // A namespace is a label: no '.' that could merge file names.
    write(
        d,
        "dotted.yaml",
        &ing("prod.team", "a", "a.test", "web", "x"),
    );
    let out = import(d, &["dotted.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a valid Kubernetes namespace"),
        "{}",
        stderr(&out)
    );
}
