//! Shared session-ticket keys (SPEC §2 `sessionTickets`, issue 17): two
//! gateway processes that read the same key file resume each other's
//! sessions; tickets stay scoped to their host entry on every replica, and
//! a policy change on one replica's reload ends its old tickets there.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine;
use rustls::{AlertDescription, HandshakeKind};

use crate::support::client::{config_with, connect, exchange, get_request};
use crate::support::{replace, write, write_leaf, Ca, Gateway, Leaf, Outcome, Spec};

/// A key file of the given keys (distinct bytes per key number).
fn key_file(keys: &[u8]) -> String {
    keys.iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode([*k; 48]) + "\n")
        .collect()
}

/// What locked.test requires.
const REQUIRE: &str = "{ mode: require, trustBundle: clients }";

/// The config of every replica; `locked` is locked.test's `clientAuth`.
fn config_text(locked: &str) -> String {
    format!(
        "sessionTickets: {{ keyFile: tickets }}
certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {{ caFile: ca.crt, crlFiles: [ca.crl] }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [open.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: echo }}]
      - hostnames: [other.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: echo }}]
      - hostnames: [locked.test]
        certificate: server
        clientAuth: {locked}
        routes: [{{ pathPrefix: /, upstream: echo }}]
upstreams:
  echo: {{ builtin: echo }}
"
    )
}

/// The CA, the server certificate and a client certificate every replica
/// shares.
struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
    /// One CRL for all: replicas share their material, and the CRLs are
    /// part of an entry's ticket scope.
    crl: String,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::root("Replica CA");
        Pki {
            server: ca.leaf(&Spec::server(&["open.test", "other.test", "locked.test"])),
            client: ca.leaf(&Spec::client("roamer")),
            crl: ca.crl(&[]),
            ca,
        }
    }

    /// A replica reading key file `keys`.
    fn replica(&self, keys: &[u8]) -> Replica {
        self.replica_with(keys, REQUIRE)
    }

    /// A replica reading key file `keys` whose locked.test has `locked`
    /// as its `clientAuth`.
    fn replica_with(&self, keys: &[u8], locked: &str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "ca.crt", &self.ca.cert_pem);
        write(d, "ca.crl", &self.crl);
        write_leaf(d, "server", &self.server);
        write(d, "tickets", &key_file(keys));
        let gw = Gateway::start(d, &config_text(locked));
        Replica { gw, _dir: dir }
    }

    /// A client with its own session cache, presenting the client
    /// certificate when `cert`.
    fn client(
        &self,
        cert: bool,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        config_with(
            &self.ca.der,
            cert.then_some(&self.client),
            &[],
            Some(version),
        )
    }
}

struct Replica {
    gw: Gateway,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }

    /// Rewrites file `name` of this replica and waits for the reload.
    fn change(&self, name: &str, contents: &str) {
        self.gw
            .reload_after(|| replace(&self.gw.dir, name, contents));
    }
}

/// One request on a new connection: how the handshake went and what the
/// echo upstream saw. Reading the response also collects the ticket.
fn visit(
    addr: SocketAddr,
    sni: &str,
    cfg: &Arc<rustls::ClientConfig>,
) -> (Option<HandshakeKind>, serde_json::Value) {
    let mut s = match connect(addr, sni, cfg) {
        Ok(s) => s,
        Err(o) => panic!("{sni} at {addr}: {o:?}"),
    };
    let kind = s.conn.handshake_kind();
    let out = exchange(&mut s, &get_request("/", sni));
    assert_eq!(out.status(), 200, "{sni} at {addr}: {out:?}");
    (kind, out.json())
}

const FAILED: &str = "reload failed; the previous configuration keeps serving";

const BOTH: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

#[test]
fn a_session_made_on_one_replica_resumes_on_the_other() {
    let pki = Pki::new();
    let (a, b) = (pki.replica(&[1]), pki.replica(&[1]));
    for version in BOTH {
        for (sni, cert) in [("open.test", false), ("locked.test", true)] {
            let cfg = pki.client(cert, version);
            let (first, seen) = visit(a.addr(), sni, &cfg);
            assert_eq!(first, Some(HandshakeKind::Full), "{version:?} {sni}");
            let (second, again) = visit(b.addr(), sni, &cfg);
            assert_eq!(
                second,
                Some(HandshakeKind::Resumed),
                "{version:?} {sni}: a ticket of replica a resumes on replica b"
            );
            // The session carries the identity verified on replica a.
            assert_eq!(
                again["tls"]["peer"], seen["tls"]["peer"],
                "{version:?} {sni}"
            );
            if cert {
                assert_eq!(again["tls"]["peer"]["subject"], "CN=roamer");
                assert_eq!(again["tls"]["peer"]["verified"], true);
            }
            // And back: b's ticket resumes on a.
            assert_eq!(
                visit(a.addr(), sni, &cfg).0,
                Some(HandshakeKind::Resumed),
                "{version:?} {sni}"
            );
        }
    }
}

#[test]
fn replicas_with_different_keys_make_full_handshakes() {
    let pki = Pki::new();
    let (a, b) = (pki.replica(&[1]), pki.replica(&[2]));
    for version in BOTH {
        let cfg = pki.client(true, version);
        assert_eq!(
            visit(a.addr(), "locked.test", &cfg).0,
            Some(HandshakeKind::Full)
        );
        assert_eq!(
            visit(b.addr(), "locked.test", &cfg).0,
            Some(HandshakeKind::Full),
            "{version:?}: another key, no resumption"
        );
    }
}

#[test]
fn a_ticket_never_resumes_on_another_entry_of_the_other_replica() {
    let pki = Pki::new();
    let (a, b) = (pki.replica(&[1]), pki.replica(&[1]));
    for version in BOTH {
        // The attacker's client offers what it holds to any name.
        let mut cfg = (*pki.client(false, version)).clone();
        cfg.resumption = crate::resumption::AnyName::resumption();
        let cfg = Arc::new(cfg);
        assert_eq!(
            visit(a.addr(), "open.test", &cfg).0,
            Some(HandshakeKind::Full)
        );
        // Control: it resumes on the same entry of the other replica.
        assert_eq!(
            visit(b.addr(), "open.test", &cfg).0,
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
        // An entry with the same policy but other names.
        assert_eq!(
            visit(b.addr(), "other.test", &cfg).0,
            Some(HandshakeKind::Full),
            "{version:?}: open.test's ticket on other.test"
        );
        // The entry that requires a certificate.
        visit(a.addr(), "open.test", &cfg);
        let out = match connect(b.addr(), "locked.test", &cfg) {
            Ok(mut s) => {
                assert_ne!(s.conn.handshake_kind(), Some(HandshakeKind::Resumed));
                exchange(&mut s, &get_request("/", "locked.test"))
            }
            Err(o) => o,
        };
        assert!(
            matches!(
                out,
                Outcome::Alert(
                    AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure
                )
            ),
            "{version:?}: {out:?}"
        );
    }
}

#[test]
fn a_ticket_never_resumes_where_the_same_name_has_another_policy() {
    let pki = Pki::new();
    // Replicas that disagree about locked.test (a config rolled out to one
    // of them only): a serves it without client auth, b requires it.
    let (a, b) = (pki.replica_with(&[1], "{ mode: none }"), pki.replica(&[1]));
    for version in BOTH {
        let anonymous = pki.client(false, version);
        assert_eq!(
            visit(a.addr(), "locked.test", &anonymous).0,
            Some(HandshakeKind::Full)
        );
        let out = match connect(b.addr(), "locked.test", &anonymous) {
            Ok(mut s) => {
                assert_ne!(s.conn.handshake_kind(), Some(HandshakeKind::Resumed));
                exchange(&mut s, &get_request("/", "locked.test"))
            }
            Err(o) => o,
        };
        assert!(
            matches!(
                out,
                Outcome::Alert(
                    AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure
                )
            ),
            "{version:?}: {out:?}"
        );
        // A client that has a certificate: its session from a holds none,
        // so b makes a full handshake and asks for it.
        let holder = pki.client(true, version);
        visit(a.addr(), "locked.test", &holder);
        let (kind, seen) = visit(b.addr(), "locked.test", &holder);
        assert_eq!(kind, Some(HandshakeKind::Full), "{version:?}");
        assert_eq!(seen["tls"]["peer"]["subject"], "CN=roamer");
    }
}

#[test]
fn rotation_keeps_old_tickets_until_their_key_is_removed() {
    let pki = Pki::new();
    let r = pki.replica(&[1]);
    let v13 = &rustls::version::TLS13;
    // Two clients hold tickets sealed with key 1.
    let (x, y) = (pki.client(true, v13), pki.client(true, v13));
    visit(r.addr(), "locked.test", &x);
    visit(r.addr(), "locked.test", &y);
    // A new key is prepended: it seals, key 1 still opens.
    r.change("tickets", &key_file(&[2, 1]));
    assert_eq!(
        visit(r.addr(), "locked.test", &x).0,
        Some(HandshakeKind::Resumed),
        "a key-1 ticket after the rotation"
    );
    // x now holds a key-2 ticket; another replica that only knows key 2
    // resumes it: the first key seals.
    let only_new = pki.replica(&[2]);
    assert_eq!(
        visit(only_new.addr(), "locked.test", &x).0,
        Some(HandshakeKind::Resumed),
        "the ticket made after the rotation is sealed with the new key"
    );
    // A key file that cannot be used keeps the keys that were serving.
    let failed = r.gw.log.messages(FAILED).len();
    replace(&r.gw.dir, "tickets", "not a key\n");
    r.gw.wait_messages(FAILED, failed + 1);
    let line = r.gw.log.messages(FAILED).pop().unwrap().to_string();
    assert!(line.contains("line 1 is not base64"), "{line}");
    assert!(
        !line.contains("not a key"),
        "the key text is never logged: {line}"
    );
    assert_eq!(
        visit(r.addr(), "locked.test", &x).0,
        Some(HandshakeKind::Resumed),
        "the keys in use keep serving"
    );
    // Key 1 is removed.
    r.change("tickets", &key_file(&[2]));
    assert_eq!(
        visit(r.addr(), "locked.test", &y).0,
        Some(HandshakeKind::Full),
        "a key-1 ticket after key 1 was removed"
    );
    assert_eq!(
        visit(r.addr(), "locked.test", &x).0,
        Some(HandshakeKind::Resumed),
        "tickets of the remaining key"
    );
}

#[test]
fn a_policy_change_on_one_replica_ends_its_old_tickets_there_tls13() {
    policy_change(&rustls::version::TLS13);
}

#[test]
fn a_policy_change_on_one_replica_ends_its_old_tickets_there_tls12() {
    policy_change(&rustls::version::TLS12);
}

fn policy_change(version: &'static rustls::SupportedProtocolVersion) {
    let pki = Pki::new();
    let (a, b) = (pki.replica(&[1]), pki.replica(&[1]));
    // Tickets made on a, before b's reloads.
    let clients: Vec<_> = (0..5).map(|_| pki.client(true, version)).collect();
    let open = pki.client(false, version);
    for c in &clients {
        visit(a.addr(), "locked.test", c);
    }
    visit(a.addr(), "open.test", &open);
    // b's locked.test gains an allow rule that still admits the client.
    b.change(
        "portcullis.yaml",
        &config_text(
            "{ mode: require, trustBundle: clients, allow: { commonNames: [roamer, other] } }",
        ),
    );
    assert_eq!(
        visit(b.addr(), "locked.test", &clients[0]).0,
        Some(HandshakeKind::Full),
        "allow changed: the old ticket does not resume on b"
    );
    assert_eq!(
        visit(a.addr(), "locked.test", &clients[1]).0,
        Some(HandshakeKind::Resumed),
        "a did not change: it still resumes there"
    );
    assert_eq!(
        visit(b.addr(), "open.test", &open).0,
        Some(HandshakeKind::Resumed),
        "an entry whose policy did not change keeps its tickets through the reload"
    );
    // A ticket made on b after its reload does not resume on a either.
    assert_eq!(
        visit(a.addr(), "locked.test", &clients[0]).0,
        Some(HandshakeKind::Full),
        "b's new policy is not a's"
    );
    // Back to a's config; then a CRL that revokes someone else.
    b.change("portcullis.yaml", &config_text(REQUIRE));
    assert_eq!(
        visit(b.addr(), "locked.test", &clients[2]).0,
        Some(HandshakeKind::Resumed),
        "the same policy again: a's tickets resume on b"
    );
    let other = pki.ca.leaf(&Spec::client("someone else"));
    b.change("ca.crl", &pki.ca.crl(&[&other.serial]));
    assert_eq!(
        visit(b.addr(), "locked.test", &clients[3]).0,
        Some(HandshakeKind::Full),
        "the CRLs changed: the old ticket does not resume on b"
    );
    // A new trust bundle (a second CA added).
    let second = Ca::root("Second CA");
    b.change("ca.crt", &format!("{}{}", pki.ca.cert_pem, second.cert_pem));
    assert_eq!(
        visit(b.addr(), "locked.test", &clients[4]).0,
        Some(HandshakeKind::Full),
        "the trust bundle changed"
    );
}

/// `openssl s_client` to `addr` as locked.test with the client
/// certificate, sending one request; `session` is `-sess_out` or
/// `-sess_in` and its file. Returns what it printed.
fn s_client(addr: SocketAddr, dir: &std::path::Path, session: [&str; 2]) -> String {
    let found = Command::new("sh")
        .args(["-c", "command -v openssl"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "openssl is not installed: run ./scripts/test, which installs it"
    );
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "locked.test", "-ign_eof"])
        .args([
            "-CAfile",
            "ca.crt",
            "-cert",
            "client.crt",
            "-key",
            "client.key",
        ])
        .args(session)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    text
}

#[test]
fn openssl_carries_a_session_from_one_replica_to_the_other() {
    let pki = Pki::new();
    let (a, b, stranger) = (pki.replica(&[1]), pki.replica(&[1]), pki.replica(&[2]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ca.crt", &pki.ca.cert_pem);
    write_leaf(d, "client", &pki.client);
    let first = s_client(a.addr(), d, ["-sess_out", "session.pem"]);
    assert!(first.contains("New, TLSv1.3"), "{first}");
    let second = s_client(b.addr(), d, ["-sess_in", "session.pem"]);
    assert!(second.contains("Reused, TLSv1.3"), "{second}");
    let third = s_client(stranger.addr(), d, ["-sess_in", "session.pem"]);
    assert!(third.contains("New, TLSv1.3"), "another key: {third}");
}

#[test]
fn check_names_the_key_file_line_and_never_prints_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new();
    write(d, "ca.crt", &pki.ca.cert_pem);
    write(d, "ca.crl", &pki.crl);
    write_leaf(d, "server", &pki.server);
    let short = base64::engine::general_purpose::STANDARD.encode([5u8; 16]);
    let cases = [
        (
            format!("{}{short}\n", key_file(&[1])),
            "tickets line 2: a key of 16 bytes",
        ),
        ("\n# nothing\n".to_string(), "tickets holds no key"),
        (
            key_file(&[1, 2, 1]),
            "tickets line 3 repeats the key of line 1",
        ),
    ];
    for (keys, want) in cases {
        write(d, "tickets", &keys);
        let out = crate::check::check(d, &config_text(REQUIRE));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{keys:?}");
        assert!(err.contains("portcullis.yaml:1: sessionTickets: "), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains(&short), "{err}");
    }
    // Keys any user may read: a warning, not an error.
    write(d, "tickets", &key_file(&[1]));
    let path = d.join("tickets");
    for (mode, warned) in [(0o644, true), (0o600, false), (0o440, false)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = crate::check::check(d, &config_text(REQUIRE));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.contains("tickets is readable by every user"),
            warned,
            "{mode:o}: {text}"
        );
    }
    // The key path of a second source.
    let out = crate::check::check(
        d,
        &config_text(REQUIRE).replacen(
            "{ keyFile: tickets }",
            "{ keyFile: tickets, secretDir: keys }",
            1,
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("portcullis.yaml:1: sessionTickets: give exactly one of"),
        "{err}"
    );
}
