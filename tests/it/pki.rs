//! The certificate tooling against the real tools that consume its files:
//! `openssl verify/x509/crl/pkcs12`, NSS `pk12util`, `curl`, and a
//! portcullis listener.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

use crate::support::gateway::bin;
use crate::support::{write, Gateway};

fn pc(dir: &Path, args: &[&str]) -> Output {
    crate::support::words_only(
        Command::new(bin())
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = pc(dir, args);
    assert!(
        o.status.success(),
        "portcullis {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails with a one-line message and no panic.
fn fails(dir: &Path, args: &[&str]) -> String {
    let o = pc(dir, args);
    assert!(!o.status.success(), "portcullis {args:?} should fail");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("portcullis: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn tool(dir: &Path, cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{cmd} is not installed ({e}): run ./scripts/test, which installs it")
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let o = tool(dir, "openssl", args);
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    text(&o)
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// root CA, intermediate CA under it.
fn cas(dir: &Path) {
    ok(
        dir,
        &["ca", "init", "--out", "root", "--cn", "My Cert Authority"],
    );
    ok(
        dir,
        &[
            "ca",
            "init",
            "--out",
            "int",
            "--cn",
            "Issuing CA",
            "--intermediate-of",
            "root",
        ],
    );
}

#[test]
fn ca_init_makes_a_ca_for_every_key_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (kt, needle) in [
        ("ecdsa-p256", "prime256v1"),
        ("ecdsa-p384", "secp384r1"),
        ("ed25519", "ED25519"),
        ("rsa2048", "(2048 bit)"),
        ("rsa3072", "(3072 bit)"),
        ("rsa4096", "(4096 bit)"),
    ] {
        ok(
            d,
            &["ca", "init", "--out", kt, "--key-type", kt, "--days", "30"],
        );
        let t = openssl_ok(
            d,
            &["x509", "-in", &format!("{kt}/ca.crt"), "-noout", "-text"],
        );
        assert!(t.contains(needle), "{kt}: {t}");
        assert!(t.contains("CA:TRUE"), "{kt}: {t}");
        assert!(t.contains("Certificate Sign, CRL Sign"), "{kt}: {t}");
        assert!(t.contains("Subject Key Identifier"), "{kt}: {t}");
        assert_eq!(mode(&d.join(kt).join("ca.key")), 0o600, "{kt}");
        // The CA's own (empty) CRL is there from the start.
        openssl_ok(
            d,
            &[
                "crl",
                "-in",
                &format!("{kt}/ca.crl"),
                "-noout",
                "-CAfile",
                &format!("{kt}/ca.crt"),
            ],
        );
    }
    let again = fails(d, &["ca", "init", "--out", "ecdsa-p256"]);
    assert!(again.contains("already exists"), "{again}");
}

/// Whether Python's `cryptography` is importable here (it is not a
/// dependency of the suite: without it that part of a test is skipped).
fn python_cryptography() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography.hazmat.primitives.serialization"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn keys_of_every_type_are_pkcs8_v1_that_openssl_and_python_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let python = python_cryptography();
    if !python {
        eprintln!("python3 cryptography is not importable: only OpenSSL reads the keys");
    }
    for kt in [
        "ecdsa-p256",
        "ecdsa-p384",
        "ed25519",
        "rsa2048",
        "rsa3072",
        "rsa4096",
    ] {
        let ca = format!("ca-{kt}");
        ok(
            d,
            &["ca", "init", "--out", &ca, "--key-type", kt, "--days", "30"],
        );
        // The CA key is read back from its file to sign the leaf.
        let leaf = format!("leaf-{kt}");
        ok(
            d,
            &[
                "cert",
                "issue",
                "--ca",
                &ca,
                "--profile",
                "client",
                "--out",
                &leaf,
                "--cn",
                "k",
                "--key-type",
                kt,
            ],
        );
        openssl_ok(
            d,
            &[
                "verify",
                "-CAfile",
                &format!("{ca}/ca.crt"),
                &format!("{leaf}.crt"),
            ],
        );
        for (key, crt) in [
            (format!("{ca}/ca.key"), format!("{ca}/ca.crt")),
            (format!("{leaf}.key"), format!("{leaf}.crt")),
        ] {
            assert_eq!(mode(&d.join(&key)), 0o600, "{key}");
            let pem = std::fs::read_to_string(d.join(&key)).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
            openssl_ok(d, &["pkey", "-in", &key, "-noout"]);
            // PrivateKeyInfo (v1): the first field, the version, is 0.
            let parsed = openssl_ok(d, &["asn1parse", "-in", &key]);
            let version = parsed.lines().nth(1).unwrap_or_default();
            assert!(
                version.contains("INTEGER") && version.trim_end().ends_with(":00"),
                "{key}: {parsed}"
            );
            // The key is the certificate's.
            assert_eq!(
                openssl_ok(d, &["pkey", "-in", &key, "-pubout"]),
                openssl_ok(d, &["x509", "-in", &crt, "-noout", "-pubkey"]),
                "{key}"
            );
            if python {
                let o = tool(
                    d,
                    "python3",
                    &[
                        "-c",
                        "import sys\n\
                         from cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
                         load_pem_private_key(open(sys.argv[1], 'rb').read(), None)",
                        &key,
                    ],
                );
                assert!(o.status.success(), "{key}: {}", text(&o));
            }
        }
    }
}

#[test]
fn issued_certificates_verify_with_openssl_for_their_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "srv",
            "--dns",
            "api.test",
            "--ip",
            "127.0.0.1",
        ],
    );
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "cli",
            "--cn",
            "alice",
            "--uri",
            "spiffe://td/ns/a",
            "--org",
            "Acme",
            "--ou",
            "ops",
            "--key-type",
            "rsa2048",
        ],
    );
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "peer",
            "--out",
            "peer",
            "--dns",
            "peer.test",
            "--key-type",
            "ed25519",
        ],
    );
    let verify = |purpose: &str, file: &str| {
        tool(
            d,
            "openssl",
            &[
                "verify",
                "-CAfile",
                "root/ca.crt",
                "-untrusted",
                "int/chain.crt",
                "-purpose",
                purpose,
                file,
            ],
        )
    };
    for (purpose, file) in [
        ("sslserver", "srv.crt"),
        ("sslclient", "cli.crt"),
        ("sslserver", "peer.crt"),
        ("sslclient", "peer.crt"),
    ] {
        let o = verify(purpose, file);
        assert!(o.status.success(), "{purpose} {file}: {}", text(&o));
    }
    assert!(
        !verify("sslclient", "srv.crt").status.success(),
        "a server certificate is not a client certificate"
    );
    assert!(!verify("sslserver", "cli.crt").status.success());
    // PREFIX.crt carries the leaf then the intermediate (not the root).
    let crt = std::fs::read_to_string(d.join("srv.crt")).unwrap();
    assert_eq!(crt.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(mode(&d.join("srv.key")), 0o600);
    let t = openssl_ok(d, &["x509", "-in", "srv.crt", "-noout", "-text"]);
    for needle in [
        "TLS Web Server Authentication",
        "DNS:api.test, IP Address:127.0.0.1",
        "CA:FALSE",
        "Authority Key Identifier",
        "Subject: CN = api.test",
    ] {
        assert!(t.contains(needle), "{needle}: {t}");
    }
    let t = openssl_ok(d, &["x509", "-in", "cli.crt", "-noout", "-text"]);
    for needle in [
        "TLS Web Client Authentication",
        "URI:spiffe://td/ns/a",
        "O = Acme, OU = ops, CN = alice",
        "(2048 bit)",
    ] {
        assert!(t.contains(needle), "{needle}: {t}");
    }
    // Serials are random and at least 64 bits.
    let serial = openssl_ok(d, &["x509", "-in", "srv.crt", "-noout", "-serial"]);
    assert!(
        serial.trim().trim_start_matches("serial=").len() >= 16,
        "{serial}"
    );
}

#[test]
fn server_profile_needs_a_name_and_failures_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    let e = fails(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "x",
            "--cn",
            "nameless",
        ],
    );
    assert!(e.contains("needs at least one --dns or --ip"), "{e}");
    let e = fails(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "x",
            "--dns",
            "bad name",
        ],
    );
    assert!(e.contains("is not a DNS name"), "{e}");
    let e = fails(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "nowhere",
            "--profile",
            "client",
            "--out",
            "x",
            "--cn",
            "a",
        ],
    );
    assert!(e.contains("is not a CA directory"), "{e}");
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "only the CA directories: {leftovers:?}");
    // The CN defaults to the first SAN.
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "s",
            "--dns",
            "first.test",
            "--dns",
            "second.test",
        ],
    );
    assert!(
        openssl_ok(d, &["x509", "-in", "s.crt", "-noout", "-subject"]).contains("CN = first.test")
    );
}

#[test]
fn csrs_from_openssl_are_signed_as_leaves_whatever_they_ask() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    openssl_ok(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "r.key",
            "-subj",
            "/O=Acme/CN=rsa-client",
            "-addext",
            "subjectAltName=DNS:rsa.test",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-out",
            "r.csr",
        ],
    );
    openssl_ok(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "e.key",
            "-subj",
            "/CN=ec-server",
            "-addext",
            "subjectAltName=DNS:ec.test",
            "-out",
            "e.csr",
        ],
    );
    ok(
        d,
        &[
            "cert",
            "sign",
            "--ca",
            "int",
            "--csr",
            "r.csr",
            "--profile",
            "client",
            "--out",
            "r.crt",
        ],
    );
    ok(
        d,
        &[
            "cert",
            "sign",
            "--ca",
            "int",
            "--csr",
            "e.csr",
            "--profile",
            "server",
            "--out",
            "e.crt",
        ],
    );
    let t = openssl_ok(d, &["x509", "-in", "r.crt", "-noout", "-text"]);
    assert!(
        t.contains("CA:FALSE") && !t.contains("CA:TRUE"),
        "a CSR asking for CA:TRUE gets a leaf: {t}"
    );
    assert!(
        t.contains("DNS:rsa.test") && t.contains("O = Acme, CN = rsa-client"),
        "{t}"
    );
    for (purpose, file) in [("sslclient", "r.crt"), ("sslserver", "e.crt")] {
        let o = tool(
            d,
            "openssl",
            &[
                "verify",
                "-CAfile",
                "root/ca.crt",
                "-untrusted",
                "int/chain.crt",
                "-purpose",
                purpose,
                file,
            ],
        );
        assert!(o.status.success(), "{file}: {}", text(&o));
    }
    // The certificate carries the CSR's key.
    let pubkey = |args: &[&str]| openssl_ok(d, args);
    assert_eq!(
        pubkey(&["x509", "-in", "e.crt", "-noout", "-pubkey"]),
        pubkey(&["pkey", "-in", "e.key", "-pubout"])
    );
    // A CSR whose signature does not match is refused.
    let pem = std::fs::read_to_string(d.join("e.csr")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let at = der.windows(9).position(|w| w == b"ec-server").unwrap();
    der[at] = b'E';
    write(
        d,
        "forged.csr",
        &format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        ),
    );
    let e = fails(
        d,
        &[
            "cert",
            "sign",
            "--ca",
            "int",
            "--csr",
            "forged.csr",
            "--profile",
            "server",
            "--out",
            "f.crt",
        ],
    );
    assert!(e.contains("signature does not verify"), "{e}");
    assert!(!d.join("f.crt").exists());
}

fn crl_text(d: &Path) -> String {
    openssl_ok(d, &["crl", "-in", "int/ca.crl", "-noout", "-text"])
}

#[test]
fn revoke_lists_the_serial_once_and_bumps_the_crl_number() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "c",
            "--cn",
            "leaver",
        ],
    );
    let serial = openssl_ok(d, &["x509", "-in", "c.crt", "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    let before = crl_text(d);
    assert!(before.contains("No Revoked Certificates"), "{before}");
    ok(
        d,
        &[
            "cert",
            "revoke",
            "--ca",
            "int",
            "--cert",
            "c.crt",
            "--reason",
            "keyCompromise",
        ],
    );
    let after = crl_text(d);
    assert!(
        after.contains(&format!("Serial Number: {serial}")),
        "{after}"
    );
    assert!(after.contains("Key Compromise"), "{after}");
    let number = |t: &str| {
        t.split("X509v3 CRL Number:")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let n1 = number(&after);
    let again = ok(d, &["cert", "revoke", "--ca", "int", "--cert", "c.crt"]);
    assert!(again.contains("already revoked"), "{again}");
    let same = crl_text(d);
    assert_eq!(same.matches(&serial).count(), 1);
    assert_eq!(number(&same), n1);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "c2",
            "--cn",
            "second",
        ],
    );
    ok(d, &["cert", "revoke", "--ca", "int", "--cert", "c2.crt"]);
    let t = crl_text(d);
    assert!(
        t.contains(&format!("Serial Number: {serial}")),
        "the earlier entry stays"
    );
    assert_ne!(number(&t), n1, "the CRL number increases");
    openssl_ok(
        d,
        &[
            "crl",
            "-in",
            "int/ca.crl",
            "-noout",
            "-CAfile",
            "int/ca.crt",
        ],
    );
    let e = fails(d, &["cert", "revoke", "--ca", "root", "--cert", "c2.crt"]);
    assert!(e.contains("not by this CA"), "{e}");
}

/// The lines of `openssl crl -text` that start with `label` (trimmed).
fn crl_lines(t: &str, label: &str) -> Vec<String> {
    t.lines()
        .map(str::trim)
        .filter(|l| l.starts_with(label))
        .map(str::to_string)
        .collect()
}

#[test]
fn ca_crl_re_signs_with_a_new_next_update_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    for (name, reason) in [("c1", "keyCompromise"), ("c2", "superseded")] {
        ok(
            d,
            &[
                "cert",
                "issue",
                "--ca",
                "int",
                "--profile",
                "client",
                "--out",
                name,
                "--cn",
                name,
            ],
        );
        ok(
            d,
            &[
                "cert",
                "revoke",
                "--ca",
                "int",
                "--cert",
                &format!("{name}.crt"),
                "--reason",
                reason,
            ],
        );
    }
    let before = crl_text(d);
    let out = ok(d, &["ca", "crl", "--ca", "int", "--days", "60"]);
    assert!(
        out.starts_with("re-signed int/ca.crl") && out.contains("2 revoked"),
        "{out}"
    );
    let after = crl_text(d);
    // OpenSSL checks the signature against the CA.
    let verified = openssl_ok(
        d,
        &[
            "crl",
            "-in",
            "int/ca.crl",
            "-CAfile",
            "int/ca.crt",
            "-noout",
        ],
    );
    assert!(verified.contains("verify OK"), "{verified}");
    // Every entry as it was: serial, revocation date, reason.
    let revoked = |t: &str| {
        let from = t.find("Revoked Certificates:").unwrap();
        let len = t[from..].find("Signature Algorithm:").unwrap();
        t[from..from + len].to_string()
    };
    assert_eq!(revoked(&after), revoked(&before));
    assert_eq!(crl_lines(&after, "Serial Number:").len(), 2, "{after}");
    assert!(
        after.contains("Key Compromise") && after.contains("Superseded"),
        "{after}"
    );
    // A fresh nextUpdate (60 days instead of the 30 revoke gave it), and
    // the next CRL number.
    let next = |t: &str| crl_lines(t, "Next Update:");
    assert_ne!(next(&after), next(&before));
    let n = |t: &str| {
        let hex = t
            .split("X509v3 CRL Number:")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    assert_eq!(n(&after), n(&before) + 1);
    // The default is 30 days: nextUpdate moves back from 60 to 30.
    ok(d, &["ca", "crl", "--ca", "int"]);
    let again = crl_text(d);
    assert_ne!(next(&again), next(&after));
    assert_eq!(revoked(&again), revoked(&before));
}

#[test]
fn ca_crl_refuses_bad_input_in_one_line_and_leaves_the_crl_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    // A second intermediate with the same name: its CRL has the right issuer
    // name but another key's signature.
    ok(
        d,
        &[
            "ca",
            "init",
            "--out",
            "twin",
            "--cn",
            "Issuing CA",
            "--intermediate-of",
            "root",
        ],
    );
    let e = fails(d, &["ca", "crl", "--ca", "nowhere"]);
    assert!(e.contains("nowhere is not a CA directory"), "{e}");
    let original = std::fs::read(d.join("int/ca.crl")).unwrap();
    let key = std::fs::read(d.join("int/ca.key")).unwrap();
    std::fs::copy(d.join("root/ca.key"), d.join("int/ca.key")).unwrap();
    let e = fails(d, &["ca", "crl", "--ca", "int"]);
    assert!(e.contains("does not belong to"), "{e}");
    std::fs::write(d.join("int/ca.key"), &key).unwrap();
    assert_eq!(std::fs::read(d.join("int/ca.crl")).unwrap(), original);
    for (from, why) in [
        (
            "root/ca.crl",
            "was issued by CN=My Cert Authority, not by this CA",
        ),
        ("twin/ca.crl", "is not signed by the key of int/ca.crt"),
    ] {
        let foreign = std::fs::read(d.join(from)).unwrap();
        std::fs::write(d.join("int/ca.crl"), &foreign).unwrap();
        let e = fails(d, &["ca", "crl", "--ca", "int"]);
        assert!(e.contains(why), "{e}");
        assert_eq!(std::fs::read(d.join("int/ca.crl")).unwrap(), foreign);
    }
    let left: Vec<String> = std::fs::read_dir(d.join("int"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn pkcs12_bundles_open_in_openssl_and_nss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "c",
            "--cn",
            "browser-user",
        ],
    );
    write(d, "pw", "s3cret-pass\n");
    ok(
        d,
        &[
            "cert",
            "p12",
            "--cert",
            "c.crt",
            "--key",
            "c.key",
            "--chain",
            "root/ca.crt",
            "--out",
            "c.p12",
            "--password-file",
            "pw",
        ],
    );
    let o = Command::new(bin())
        .args([
            "cert",
            "p12",
            "--cert",
            "c.crt",
            "--key",
            "c.key",
            "--out",
            "legacy.p12",
            "--password-env",
            "P12_PW",
            "--legacy",
        ])
        .env("P12_PW", "s3cret-pass")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&d.join("c.p12")), 0o600);
    let modern = openssl_ok(
        d,
        &[
            "pkcs12",
            "-in",
            "c.p12",
            "-passin",
            "pass:s3cret-pass",
            "-info",
            "-noout",
        ],
    );
    assert!(
        modern.contains("AES-256-CBC") && modern.contains("PBKDF2"),
        "{modern}"
    );
    assert_eq!(
        modern.matches("Certificate bag").count(),
        3,
        "leaf, intermediate and the root given with --chain: {modern}"
    );
    let legacy = openssl_ok(
        d,
        &[
            "pkcs12",
            "-legacy",
            "-in",
            "legacy.p12",
            "-passin",
            "pass:s3cret-pass",
            "-info",
            "-noout",
        ],
    );
    assert!(legacy.contains("3-KeyTripleDES"), "{legacy}");
    for (i, file) in ["c.p12", "legacy.p12"].iter().enumerate() {
        let db = format!("nss{i}");
        std::fs::create_dir(d.join(&db)).unwrap();
        let o = tool(
            d,
            "certutil",
            &["-N", "-d", &format!("sql:{db}"), "--empty-password"],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = tool(
            d,
            "pk12util",
            &["-i", file, "-d", &format!("sql:{db}"), "-W", "s3cret-pass"],
        );
        assert!(o.status.success(), "pk12util {file}: {}", text(&o));
        let listed = text(&tool(d, "certutil", &["-L", "-d", &format!("sql:{db}")]));
        assert!(
            listed.contains("CN=browser-user") && listed.contains("u,u,u"),
            "the key and its certificate were imported: {listed}"
        );
    }
    // Inspect opens it with the password and shows the key type only.
    let t = ok(d, &["cert", "inspect", "c.p12", "--password-file", "pw"]);
    assert!(
        t.contains("PKCS#12") && t.contains("ECDSA P-256") && t.contains("CN=browser-user"),
        "{t}"
    );
    let e = fails(
        d,
        &["cert", "inspect", "c.p12", "--password-env", "NOPE_NOT_SET"],
    );
    assert!(e.contains("NOPE_NOT_SET is not set"), "{e}");
    write(d, "wrong", "nope");
    let e = fails(d, &["cert", "inspect", "c.p12", "--password-file", "wrong"]);
    assert!(e.contains("wrong password"), "{e}");
    // A key that does not match: refused, nothing written.
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "other",
            "--cn",
            "other",
        ],
    );
    let e = fails(
        d,
        &[
            "cert",
            "p12",
            "--cert",
            "c.crt",
            "--key",
            "other.key",
            "--out",
            "bad.p12",
            "--password-file",
            "pw",
        ],
    );
    assert!(e.contains("does not belong"), "{e}");
    assert!(!d.join("bad.p12").exists());
}

#[test]
fn inspect_describes_each_kind_of_file_without_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "s",
            "--dns",
            "a.test",
            "--days",
            "87",
        ],
    );
    openssl_ok(
        d,
        &[
            "req",
            "-new",
            "-key",
            "s.key",
            "-subj",
            "/CN=req",
            "-addext",
            "subjectAltName=DNS:req.test",
            "-out",
            "s.csr",
        ],
    );
    let t = ok(
        d,
        &["cert", "inspect", "s.crt", "s.key", "s.csr", "int/ca.crl"],
    );
    assert!(
        t.contains("expires in 86 days") || t.contains("expires in 87 days"),
        "{t}"
    );
    assert!(
        t.contains("names:    DNS:a.test") && t.contains("usage:    serverAuth"),
        "{t}"
    );
    assert!(
        t.contains("s.key: private key") && t.contains("ECDSA P-256"),
        "{t}"
    );
    let key = std::fs::read_to_string(d.join("s.key")).unwrap();
    let secret_line = key.lines().nth(1).unwrap();
    assert!(
        !t.contains(secret_line),
        "key material must never be printed"
    );
    assert!(
        t.contains("certificate signing request")
            && t.contains("DNS:req.test")
            && t.contains("signature: valid"),
        "{t}"
    );
    assert!(t.contains("CRL") && t.contains("revoked:  0"), "{t}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(d, &["cert", "inspect", "--json", "s.crt"])).unwrap();
    let first = &j[0]["items"][0];
    assert_eq!(first["type"], "certificate");
    assert_eq!(first["subject"], "CN=a.test");
    assert_eq!(first["sans"][0], "DNS:a.test");
    assert_eq!(first["isCa"], false);
    let e = fails(d, &["cert", "inspect", "missing.pem"]);
    assert!(e.contains("cannot read missing.pem"), "{e}");
}

fn yaml(s: &str) -> serde_json::Value {
    serde_saphyr::from_str(s).unwrap()
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[test]
fn secrets_hold_the_files_byte_for_byte_in_each_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "s",
            "--dns",
            "a.test",
        ],
    );
    let file = |f: &str| std::fs::read(d.join(f)).unwrap();
    let tls = yaml(&ok(
        d,
        &[
            "secret",
            "tls",
            "--name",
            "web-tls",
            "--namespace",
            "prod",
            "--cert",
            "s.crt",
            "--key",
            "s.key",
            "--ca",
            "root/ca.crt",
        ],
    ));
    assert_eq!(tls["apiVersion"], "v1");
    assert_eq!(tls["kind"], "Secret");
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(tls["metadata"]["name"], "web-tls");
    assert_eq!(tls["metadata"]["namespace"], "prod");
    let keys: Vec<&String> = tls["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(b64(&tls["data"]["tls.crt"]), file("s.crt"));
    assert_eq!(b64(&tls["data"]["tls.key"]), file("s.key"));
    assert_eq!(b64(&tls["data"]["ca.crt"]), file("root/ca.crt"));
    let istio = yaml(&ok(
        d,
        &[
            "secret",
            "istio",
            "--name",
            "gw-cred",
            "--cert",
            "s.crt",
            "--key",
            "s.key",
            "--ca",
            "root/ca.crt",
        ],
    ));
    assert_eq!(istio["type"], "Opaque");
    let keys: Vec<&String> = istio["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["cacert", "cert", "key"]);
    assert_eq!(b64(&istio["data"]["cert"]), file("s.crt"));
    assert!(istio["metadata"].get("namespace").is_none());
    let generic = yaml(&ok(
        d,
        &[
            "secret",
            "generic",
            "--name",
            "client-ca",
            "--ca",
            "root/ca.crt",
            "--crl",
            "root/ca.crl",
        ],
    ));
    let keys: Vec<&String> = generic["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["ca.crl", "ca.crt"]);
    assert_eq!(b64(&generic["data"]["ca.crl"]), file("root/ca.crl"));
    // Every data key is a valid Secret key; every name a valid object name.
    for s in [&tls, &istio, &generic] {
        for k in s["data"].as_object().unwrap().keys() {
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
                "{k}"
            );
        }
    }
    ok(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "o",
            "--dns",
            "o.test",
        ],
    );
    let e = fails(
        d,
        &[
            "secret", "tls", "--name", "x", "--cert", "s.crt", "--key", "o.key",
        ],
    );
    assert!(e.contains("does not belong"), "{e}");
    let e = fails(
        d,
        &[
            "secret", "tls", "--name", "Bad_Name", "--cert", "s.crt", "--key", "s.key",
        ],
    );
    assert!(e.contains("not a valid Secret name"), "{e}");
}

fn gateway(d: &Path, trust_crl: bool) -> Gateway {
    let crl = if trust_crl {
        ", crlFiles: [int/ca.crl]"
    } else {
        ""
    };
    let cfg = format!(
        "certificates:
  srv: {{ certFile: srv.crt, keyFile: srv.key }}
trustBundles:
  clients: {{ caFile: both.crt{crl} }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [api.test]
        certificate: srv
        clientAuth: {{ mode: require, trustBundle: clients{} }}
        routes: [{{ pathPrefix: /, upstream: echo }}]
      - hostnames: [\"*\"]
        certificate: srv
        routes: [{{ pathPrefix: /, upstream: echo }}]
upstreams:
  echo: {{ builtin: echo }}
",
        if trust_crl { ", crlCheck: leaf" } else { "" }
    );
    Gateway::start(d, &cfg)
}

fn prepared() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    cas(&d);
    ok(
        &d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "server",
            "--out",
            "srv",
            "--dns",
            "api.test",
            "--ip",
            "127.0.0.1",
        ],
    );
    ok(
        &d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "alice",
            "--cn",
            "alice",
        ],
    );
    let both = format!(
        "{}{}",
        std::fs::read_to_string(d.join("root/ca.crt")).unwrap(),
        std::fs::read_to_string(d.join("int/ca.crt")).unwrap()
    );
    write(&d, "both.crt", &both);
    (dir, d)
}

fn curl(d: &Path, port: u16, cert: bool) -> Output {
    let mut args = vec![
        "--silent".to_string(),
        "--show-error".into(),
        "--cacert".into(),
        "root/ca.crt".into(),
    ];
    if cert {
        args.extend([
            "--cert".into(),
            "alice.crt".into(),
            "--key".into(),
            "alice.key".into(),
        ]);
    }
    args.extend([
        "--resolve".into(),
        format!("api.test:{port}:127.0.0.1"),
        format!("https://api.test:{port}/"),
    ]);
    tool(
        d,
        "curl",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

#[test]
fn curl_with_an_issued_certificate_passes_until_it_is_revoked() {
    let (_dir, d) = prepared();
    let gw = gateway(&d, true);
    let port = gw.addr("main").port();
    let o = curl(&d, port, true);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tls"]["peer"]["subject"], "CN=alice");
    assert!(!curl(&d, port, false).status.success());
    drop(gw);
    ok(
        &d,
        &["cert", "revoke", "--ca", "int", "--cert", "alice.crt"],
    );
    let gw = gateway(&d, true);
    let o = curl(&d, port_of(&gw), true);
    assert!(!o.status.success());
    assert!(text(&o).contains("revoked"), "{}", text(&o));
}

fn port_of(gw: &Gateway) -> u16 {
    gw.addr("main").port()
}

fn probe(d: &Path, args: &[&str]) -> (bool, String) {
    let o = pc(d, &[&["probe"], args].concat());
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn probe_explains_each_situation_in_words() {
    let (_dir, d) = prepared();
    ok(&d, &["ca", "init", "--out", "other", "--cn", "Other CA"]);
    ok(
        &d,
        &[
            "cert",
            "issue",
            "--ca",
            "other",
            "--profile",
            "client",
            "--out",
            "stranger",
            "--cn",
            "stranger",
        ],
    );
    let gw = gateway(&d, false);
    let url = format!("https://127.0.0.1:{}/", port_of(&gw));

    let (good, out) = probe(
        &d,
        &[
            &url,
            "--sni",
            "api.test",
            "--ca",
            "root/ca.crt",
            "--cert",
            "alice.crt",
            "--key",
            "alice.key",
        ],
    );
    assert!(good, "{out}");
    assert!(
        out.contains("server certificate: verified against root/ca.crt for api.test"),
        "{out}"
    );
    assert!(
        out.contains("it accepts certificates issued by CN=My Cert Authority or CN=Issuing CA"),
        "{out}"
    );
    assert!(
        out.contains("CN=alice") && out.contains("accepted") && out.contains("HTTP: GET / -> 200"),
        "{out}"
    );

    let (good, out) = probe(&d, &[&url, "--sni", "api.test", "--ca", "root/ca.crt"]);
    assert!(!good);
    assert!(
        out.contains("FAILED: the server requires a client certificate; it accepts certificates issued by CN=My Cert Authority or CN=Issuing CA"),
        "{out}"
    );

    let (good, out) = probe(
        &d,
        &[
            &url,
            "--sni",
            "api.test",
            "--ca",
            "root/ca.crt",
            "--cert",
            "stranger.crt",
            "--key",
            "stranger.key",
        ],
    );
    assert!(!good);
    assert!(
        out.contains("FAILED: your certificate was refused: unknown_ca"),
        "{out}"
    );

    let (good, out) = probe(&d, &[&url, "--sni", "wrong.test", "--ca", "root/ca.crt"]);
    assert!(!good);
    assert!(out.contains("FAILED: the server's certificate does not cover wrong.test: it covers api.test, 127.0.0.1"), "{out}");
}

#[test]
fn out_of_range_numbers_and_unknown_flags_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // These once panicked in the date arithmetic (exit 101).
    let e = fails(d, &["ca", "init", "--out", "big", "--days", "4000000000"]);
    assert!(e.contains("1..=36500"), "{e}");
    let e = fails(d, &["ca", "init", "--out", "zero", "--days", "0"]);
    assert!(e.contains("--days"), "{e}");
    let e = fails(d, &["ca", "init", "--out", "empty", "--cn", ""]);
    assert!(e.contains("--cn"), "{e}");
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "nothing written");
    cas(d);
    let e = fails(
        d,
        &[
            "cert",
            "revoke",
            "--ca",
            "int",
            "--cert",
            "x.crt",
            "--crl-days",
            "4294967295",
        ],
    );
    assert!(e.contains("--crl-days"), "{e}");
    let e = fails(
        d,
        &[
            "cert",
            "issue",
            "--ca",
            "int",
            "--profile",
            "client",
            "--out",
            "c",
            "--cn",
            "",
        ],
    );
    assert!(e.contains("--cn"), "{e}");
    let e = fails(d, &["cert", "issue", "--bogus"]);
    assert!(e.contains("--bogus"), "{e}");
    let e = fails(
        d,
        &[
            "bench",
            "handshake",
            "https://127.0.0.1:1/",
            "--ca",
            "root/ca.crt",
            "--duration",
            "18446744073709551615s",
        ],
    );
    assert!(e.contains("too long"), "{e}");
}

#[test]
fn probe_tells_a_foreign_key_from_an_unusable_one() {
    let (_dir, d) = prepared();
    ok(&d, &["ca", "init", "--out", "other", "--cn", "Other CA"]);
    let (good, out) = probe(
        &d,
        &[
            "127.0.0.1:1",
            "--ca",
            "root/ca.crt",
            "--cert",
            "alice.crt",
            "--key",
            "other/ca.key",
        ],
    );
    assert!(!good);
    assert!(
        out.contains("does not belong to the certificate in"),
        "{out}"
    );
    // A matching pair whose 1024-bit RSA key rustls will not sign with.
    openssl_ok(
        &d,
        &[
            "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "weak.key", "-out",
            "weak.crt", "-subj", "/CN=weak", "-days", "1",
        ],
    );
    let (good, out) = probe(
        &d,
        &[
            "127.0.0.1:1",
            "--ca",
            "root/ca.crt",
            "--cert",
            "weak.crt",
            "--key",
            "weak.key",
        ],
    );
    assert!(!good);
    assert!(
        out.contains("unusable private key") && !out.contains("does not belong"),
        "{out}"
    ); // A --ca file whose block is no certificate at all.
    write(
        &d,
        "junk.crt",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let (good, out) = probe(&d, &["127.0.0.1:1", "--ca", "junk.crt"]);
    assert!(!good);
    assert!(
        out.contains("junk.crt: certificate 1 is not a usable trust anchor"),
        "{out}"
    );
}

#[test]
fn probe_resolves_like_curl_and_says_what_server_name_it_sent() {
    let (_dir, d) = prepared();
    // Only api.test: no catch-all to answer a missing or unknown name.
    let gw = Gateway::start(
        &d,
        "certificates: { srv: { certFile: srv.crt, keyFile: srv.key } }
trustBundles: { clients: { caFile: both.crt } }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [api.test]
        certificate: srv
        clientAuth: { mode: require, trustBundle: clients }
        routes: [{ pathPrefix: /, upstream: echo }]
upstreams: { echo: { builtin: echo } }
",
    );
    let port = port_of(&gw);
    let creds = [
        "--ca",
        "root/ca.crt",
        "--cert",
        "alice.crt",
        "--key",
        "alice.key",
    ];
    // The URL as users write it, pointed at 127.0.0.1 by --resolve.
    let url = format!("https://api.test:{port}/");
    let resolve = format!("api.test:{port}:127.0.0.1");
    let (good, out) = probe(
        &d,
        &[&[url.as_str(), "--resolve", &resolve], &creds[..]].concat(),
    );
    assert!(good, "{out}");
    assert!(
        out.contains(&format!(
            "connecting to 127.0.0.1:{port} (server name api.test)"
        )) && out.contains("HTTP: GET / -> 200"),
        "{out}"
    );
    // By IP address no server name is sent, and the probe says so.
    let by_ip = format!("https://127.0.0.1:{port}/");
    let (good, out) = probe(&d, &[&[by_ip.as_str()], &creds[..]].concat());
    assert!(!good);
    assert!(
        out.contains("(no server name: the target is an IP address")
            && out.contains("FAILED: the server needs a server name (SNI)")
            && !out.contains("server name 127.0.0.1"),
        "{out}"
    );
    // A name the server does not serve: it never got to ask for a
    // certificate, and the probe does not claim it did not want one.
    let other = format!("https://other.test:{port}/");
    let other_resolve = format!("other.test:{port}:127.0.0.1");
    let (good, out) = probe(
        &d,
        &[&[other.as_str(), "--resolve", &other_resolve], &creds[..]].concat(),
    );
    assert!(!good);
    assert!(
        out.contains("the handshake ended before the server could ask for one")
            && !out.contains("did not ask for one")
            && out.contains("FAILED: the server does not serve the name other.test"),
        "{out}"
    );
    // A malformed --resolve is one line.
    let (good, out) = probe(&d, &[url.as_str(), "--resolve", "api.test:x:127.0.0.1"]);
    assert!(!good);
    assert!(
        out.contains("FAILED: --resolve \"api.test:x:127.0.0.1\": expected NAME:PORT:ADDRESS"),
        "{out}"
    );
}

#[test]
fn probe_json_is_one_object_with_the_diagnosis() {
    let (_dir, d) = prepared();
    let gw = gateway(&d, false);
    let url = format!("https://127.0.0.1:{}/", port_of(&gw));
    let base = [
        url.as_str(),
        "--sni",
        "api.test",
        "--ca",
        "root/ca.crt",
        "--json",
    ];
    let (good, out) = probe(
        &d,
        &[&base[..], &["--cert", "alice.crt", "--key", "alice.key"]].concat(),
    );
    assert!(good, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["server_verified"], true, "{v}");
    assert_eq!(v["client_certificate_requested"], true, "{v}");
    assert_eq!(v["client_certificate_accepted"], true, "{v}");
    assert_eq!(v["client_certificate_sent"], "CN=alice", "{v}");
    assert_eq!(v["server_name"], "api.test", "{v}");
    assert!(
        v["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
        "{v}"
    );

    // Without a certificate: the same object says why, and exit 1.
    let (good, out) = probe(&d, &base);
    assert!(!good, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("the server requires a client certificate"),
        "{v}"
    );
    // Before any connection: still one JSON object.
    let (good, out) = probe(&d, &["http://a.test/", "--json"]);
    assert!(!good);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
}

/// rcgen keeps one value per attribute type, so a CSR asking for
/// CN=alice and CN=admin would be signed as one of them: refused instead.
#[test]
fn a_csr_repeating_an_attribute_is_refused_not_half_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cas(d);
    openssl_ok(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "two.key",
            "-subj",
            "/CN=alice/CN=admin",
            "-out",
            "two.csr",
        ],
    );
    let out = pc(
        d,
        &[
            "cert",
            "sign",
            "--ca",
            "int",
            "--csr",
            "two.csr",
            "--profile",
            "client",
            "--out",
            "two.crt",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repeats an attribute"), "{err}");
    assert!(!d.join("two.crt").exists(), "nothing written");
}
