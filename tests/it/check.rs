//! `portcullis check` and start-up failures: every config mistake with file,
//! line and key path; exit 0 / 1 / 2; certificate problems named clearly.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::gateway::bin;
use crate::support::{write, write_leaf, Ca, Spec};

pub(crate) fn check(dir: &Path, config: &str) -> Output {
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    crate::support::words_only(
        Command::new(bin())
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap(),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A valid config with its certificates in `dir`.
fn good(dir: &Path) -> String {
    let ca = Ca::root("Check CA");
    write_leaf(dir, "server", &ca.leaf(&Spec::server(&["app.test"])));
    write(dir, "ca.crt", &ca.cert_pem);
    "certificates:
  server:
    certFile: server.crt
    keyFile: server.key
trustBundles:
  clients:
    caFile: ca.crt
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        clientAuth:
          mode: require
          trustBundle: clients
        routes:
          - pathPrefix: /
            upstream: echo
upstreams:
  echo:
    builtin: echo
"
    .to_string()
}

#[test]
fn good_config_checks_ok() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &good(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn three_independent_mistakes_are_all_reported_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good(dir.path())
        .replace("mode: require", "mode: requir")
        .replace(
            "    keyFile: server.key\n",
            "    keyFile: server.key\n    colour: blue\n",
        )
        .replace(
            "    builtin: echo",
            "    builtin: echo\n    url: http://127.0.0.1:1",
        );
    let out = check(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    let file = dir.path().join("portcullis.yaml").display().to_string();
    assert!(lines.iter().all(|l| l.contains(&file)), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:5: certificates.server.colour: unknown field \"colour\""
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:17: listeners[0].hosts[0].clientAuth.mode: unknown variant \"requir\", expected one of"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:23: upstreams.echo: an upstream has exactly one of"
        )),
        "{err}"
    );
}

#[test]
fn unreadable_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot read config") && err.contains("missing.yaml"),
        "{err}"
    );
}

#[test]
fn config_from_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, good(dir.path())).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .env("PORTCULLIS_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn key_that_does_not_match_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good(dir.path());
    let ca = Ca::root("Other");
    write(
        dir.path(),
        "server.key",
        &ca.leaf(&Spec::server(&["app.test"])).key_pem,
    );
    let out = check(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("portcullis.yaml:2: certificates.server: the private key in ")
            && err.contains("server.key does not belong to the certificate in ")
            && err.trim_end().ends_with("server.crt"),
        "{err}"
    );
}

#[test]
fn certificate_that_does_not_cover_a_hostname_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        good(dir.path()).replace("hostnames: [app.test]", "hostnames: [app.test, other.test]");
    let out = check(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("listeners[0].hosts[0].hostnames[1]")
            && err.contains("does not cover \"other.test\""),
        "{err}"
    );
}

#[test]
fn expired_server_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good(dir.path());
    let ca = Ca::root("Old");
    write_leaf(
        dir.path(),
        "server",
        &ca.leaf(&Spec {
            not_before_days: -10,
            not_after_days: -1,
            ..Spec::server(&["app.test"])
        }),
    );
    let out = check(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expired on"), "{}", stderr(&out));
}

#[test]
fn trust_bundle_with_a_leaf_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good(dir.path());
    let ca = Ca::root("X");
    write(
        dir.path(),
        "ca.crt",
        &ca.leaf(&Spec::client("not-a-ca")).chain_pem,
    );
    let out = check(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a CA certificate; a trust bundle holds only CAs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_refuses_a_bad_config_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good(dir.path()).replace("upstream: echo", "upstream: nowhere");
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin())
        .args(["run", "--log-format", "json", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("routes[0].upstream: no upstream named \"nowhere\""),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

#[test]
fn misspelled_keys_and_values_suggest_the_nearest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let base = good(dir.path());
    for (from, to, path, hint) in [
        (
            "clientAuth:",
            "clientAuht:",
            "listeners[0].hosts[0].clientAuht",
            "clientAuth",
        ),
        (
            "pathPrefix:",
            "pathprefix:",
            "listeners[0].hosts[0].routes[0].pathprefix",
            "pathPrefix",
        ),
        (
            "mode: require",
            "mode: requir",
            "listeners[0].hosts[0].clientAuth.mode",
            "require",
        ),
        (
            "trustBundle:",
            "trustbundles:",
            "listeners[0].hosts[0].clientAuth.trustbundles",
            "trustBundle",
        ),
        (
            "builtin: echo",
            "bultin: echo",
            "upstreams.echo.bultin",
            "builtin",
        ),
    ] {
        let out = check(dir.path(), &base.replacen(from, to, 1));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{to}: {err}");
        assert!(
            err.contains(path) && err.contains(&format!("did you mean \"{hint}\"?")),
            "{to}: {err}"
        );
    }
    // Nothing close: no guess.
    let out = check(dir.path(), &base.replacen("clientAuth:", "zzzzzz:", 1));
    assert!(!stderr(&out).contains("did you mean"), "{}", stderr(&out));
}

#[test]
fn an_unquoted_min_version_says_to_quote_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = good(dir.path());
    for v in ["1.3", "1.2"] {
        let cfg = base.replacen(
            "    protocol: https\n",
            &format!("    protocol: https\n    tls: {{ minVersion: {v} }}\n"),
            1,
        );
        let out = check(dir.path(), &cfg);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                ":12: listeners[0].tls.minVersion: {v} is read as a number; quote it: minVersion: \"{v}\""
            )),
            "{err}"
        );
        let quoted = base.replacen(
            "    protocol: https\n",
            &format!("    protocol: https\n    tls: {{ minVersion: \"{v}\" }}\n"),
            1,
        );
        assert_eq!(check(dir.path(), &quoted).status.code(), Some(0));
    }
}
