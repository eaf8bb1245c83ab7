//! The tools an operator would use: `curl` against `demo`, and
//! `openssl s_client` for the alert names. The tools are installed by
//! `scripts/test`; a missing one fails the test with that advice.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::sni::two_hosts;
use crate::support::gateway::{bin, Log};
use crate::support::{write, write_leaf, Ca, Spec};

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`{name}` is not installed: run ./scripts/test, which installs it"
    );
    Command::new(name)
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_prints_curl_commands_that_prove_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["--log-format", "json", "demo", "--port", "0", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Log::of(child.stdout.take().unwrap());
    let err = Log::of(child.stderr.take().unwrap());
    let _guard = Child(child);
    out.wait_for("ready", |v| v["message"] == "ready");
    err.wait_for_text("Press Ctrl-C");
    let commands: Vec<String> = err
        .lines()
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(commands.len(), 2, "{:?}", err.lines());
    tool("curl");
    let with = Command::new("sh")
        .arg("-c")
        .arg(format!("{} --silent --show-error", commands[0]))
        .output()
        .unwrap();
    assert!(
        with.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&with.stderr),
        out.lines().join("\n")
    );
    let v: serde_json::Value = serde_json::from_slice(&with.stdout).unwrap();
    assert_eq!(v["tls"]["peer"]["subject"], "CN=demo-client");
    assert_eq!(v["tls"]["peer"]["verified"], true);
    let without = Command::new("sh")
        .arg("-c")
        .arg(format!("{} --silent --show-error", commands[1]))
        .output()
        .unwrap();
    assert!(!without.status.success());
    let e = String::from_utf8_lossy(&without.stderr);
    assert!(e.contains("certificate required"), "{e}");
    // Keys are private to their owner.
    #[cfg(unix)]
    for key in ["ca/ca.key", "server.key", "client.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

/// Runs `demo --port 0` without `--dir`, with `TMPDIR` set to `tmp`, until it
/// prints its banner; returns the directory the banner names.
fn demo_dir_in(tmp: &std::path::Path) -> std::path::PathBuf {
    let mut child = Command::new(bin())
        .args(["--log-format", "json", "demo", "--port", "0"])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _out = Log::of(child.stdout.take().unwrap());
    let err = Log::of(child.stderr.take().unwrap());
    let _guard = Child(child);
    let line = err.wait_for_text("certificates and config in ");
    let dir = line
        .split("certificates and config in ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no directory in {line:?}"));
    std::path::PathBuf::from(dir)
}

#[test]
fn demo_without_dir_makes_a_new_private_directory_each_run() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(tmp.path()).unwrap();
    let first = demo_dir_in(tmp.path());
    let second = demo_dir_in(tmp.path());
    assert_ne!(
        first, second,
        "a fixed path could be prepared by another user"
    );
    for dir in [&first, &second] {
        assert_eq!(dir.parent(), Some(base.as_path()), "{}", dir.display());
        let meta = std::fs::symlink_metadata(dir).unwrap();
        assert!(meta.is_dir(), "{}", dir.display());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
        assert!(dir.join("portcullis.yaml").exists());
        assert!(dir.join("ca/ca.key").exists());
    }
}

#[test]
fn demo_on_a_busy_port_suggests_port_0_and_writes_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let given = tmp.path().join("given");
    for with_dir in [true, false] {
        let mut cmd = Command::new(bin());
        cmd.args(["demo", "--port", &port])
            .env("TMPDIR", tmp.path());
        if with_dir {
            cmd.arg("--dir").arg(&given);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("127.0.0.1:{port}")) && err.contains("--port 0"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}

/// Runs `openssl s_client` against `locked.test` (client auth required)
/// with `extra` arguments, sending one request; returns its combined output.
fn s_client(addr: std::net::SocketAddr, dir: &std::path::Path, extra: &[&str]) -> (Output, String) {
    let mut cmd = tool("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-servername",
        "locked.test",
        "-ign_eof",
    ])
    .arg("-CAfile")
    .arg(dir.join("ca.crt"))
    .args(extra)
    .current_dir(dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /echo HTTP/1.1\r\nHost: locked.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn openssl_without_certificate_sees_certificate_required_alert() {
    let t = two_hosts("", &[]);
    let (_, text) = s_client(t.gw.addr("main"), &t.gw.dir, &[]);
    assert!(text.contains("alert certificate required"), "{text}");
    assert!(t.upstream.seen().is_empty());
}

#[test]
fn openssl_with_unknown_ca_sees_unknown_ca_alert() {
    let t = two_hosts("", &[]);
    write_leaf(
        &t.gw.dir,
        "stranger",
        &Ca::root("Stranger").leaf(&Spec::client("stranger")),
    );
    let (_, text) = s_client(
        t.gw.addr("main"),
        &t.gw.dir,
        &["-cert", "stranger.crt", "-key", "stranger.key"],
    );
    assert!(text.contains("alert unknown ca"), "{text}");
}

#[test]
fn openssl_with_expired_certificate_sees_certificate_expired_alert() {
    let t = two_hosts("", &[]);
    write_leaf(
        &t.gw.dir,
        "old",
        &t.ca.leaf(&Spec {
            not_before_days: -9,
            not_after_days: -1,
            ..Spec::client("old")
        }),
    );
    let (_, text) = s_client(
        t.gw.addr("main"),
        &t.gw.dir,
        &["-cert", "old.crt", "-key", "old.key"],
    );
    assert!(text.contains("alert certificate expired"), "{text}");
}

#[test]
fn openssl_sees_the_trust_bundle_ca_names_and_gets_through_with_a_good_certificate() {
    let t = two_hosts("", &[]);
    write_leaf(
        &t.gw.dir,
        "good",
        &t.ca.leaf(&Spec::client("openssl-client")),
    );
    write(&t.gw.dir, "unused", "");
    let (out, text) = s_client(
        t.gw.addr("main"),
        &t.gw.dir,
        &["-cert", "good.crt", "-key", "good.key"],
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Acceptable client certificate CA names")
            && text.contains("CN = Attack Matrix CA"),
        "{text}"
    );
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"subject\": \"CN=openssl-client\""),
        "{text}"
    );
}
