//! `portcullis bench` against a portcullis listener: the counts add up, a
//! refused client shows the alert name as the error kind. No timing is
//! asserted.

use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::gateway::bin;
use crate::support::upstream::tcp_server;
use crate::support::{write, write_leaf, Ca, Gateway, Spec};

struct B {
    gw: Gateway,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn setup() -> B {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Bench CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["bench.test"])));
    write_leaf(d, "client", &ca.leaf(&Spec::client("bench-client")));
    // A TCP echo upstream for the stream mode.
    let (echo, rt) = tcp_server(|mut s| async move {
        let mut buf = vec![0u8; 65536];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Served as bench/compare.sh runs it: one worker thread.
    let gw = Gateway::start_with(
        d,
        &format!(
            "certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
logging: {{ access: false }}
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [bench.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: ca }}
        routes: [{{ pathPrefix: /, upstream: echo }}]
  - name: raw
    address: 127.0.0.1:0
    protocol: tls
    certificate: server
    clientAuth: {{ mode: require, trustBundle: ca }}
    upstream: echo-tcp
upstreams:
  echo: {{ builtin: echo }}
  echo-tcp: {{ address: \"{echo}\" }}
"
        ),
        &["--threads", "1"],
    );
    B {
        gw,
        _dir: dir,
        _rt: rt,
    }
}

fn bench(b: &B, args: &[&str], with_cert: bool) -> serde_json::Value {
    let mut cmd = Command::new(bin());
    cmd.arg("bench").args(args).args([
        "--sni",
        "bench.test",
        "--ca",
        "ca.crt",
        "--json",
        "--duration",
        "30s",
    ]);
    if !args.contains(&"--concurrency") {
        cmd.args(["--concurrency", "4"]);
    }
    if with_cert {
        cmd.args(["--cert", "client.crt", "--key", "client.key"]);
    }
    let out = cmd.current_dir(&b.gw.dir).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn url(b: &B) -> String {
    format!("https://{}/", b.gw.addr("web"))
}

#[test]
fn handshake_mode_counts_every_full_handshake() {
    let b = setup();
    let r = bench(&b, &["handshake", &url(&b), "--requests", "20"], true);
    assert_eq!(r["ops"], 20);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["full"], 20);
    assert_eq!(r["resumed"], 0);
    assert!(r["latency_us"]["p99"].as_u64().unwrap() >= r["latency_us"]["p50"].as_u64().unwrap());
}

#[test]
fn resume_mode_resumes_after_the_first_handshakes() {
    let b = setup();
    // Every worker keeps its own sessions: one full handshake each, then
    // only resumptions, however many workers share the server.
    let args = [
        "resume",
        &url(&b),
        "--requests",
        "60",
        "--concurrency",
        "12",
    ];
    let r = bench(&b, &args, true);
    assert_eq!(r["ops"], 60);
    assert_eq!(r["full"], 12, "{r}");
    assert_eq!(r["resumed"], 48, "{r}");
}

#[test]
fn keepalive_and_h2_modes_count_requests() {
    let b = setup();
    for mode in ["keepalive", "h2"] {
        let r = bench(&b, &[mode, &url(&b), "--requests", "100"], true);
        assert_eq!(r["ops"], 100, "{mode}: {r}");
        assert_eq!(r["errors"], 0, "{mode}: {r}");
    }
}

#[test]
fn stream_mode_echoes_through_a_tls_listener() {
    let b = setup();
    let r = bench(
        &b,
        &["stream", &b.gw.addr("raw").to_string(), "--requests", "16"],
        true,
    );
    assert_eq!(r["ops"], 16, "{r}");
    assert!(r["mib_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn idle_mode_holds_the_connections() {
    let b = setup();
    let mut cmd = Command::new(bin());
    let out = cmd
        .args([
            "bench",
            "idle",
            &b.gw.addr("web").to_string(),
            "--sni",
            "bench.test",
            "--ca",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "--json",
            "--duration",
            "300ms",
            "--concurrency",
            "25",
        ])
        .current_dir(&b.gw.dir)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["open_connections"], 25);
    assert!(String::from_utf8_lossy(&out.stderr).contains("established 25 connections"));
}

#[test]
fn a_refused_client_shows_the_alert_name() {
    let b = setup();
    let r = bench(&b, &["handshake", &url(&b), "--requests", "5"], false);
    assert_eq!(r["ops"], 0);
    assert_eq!(r["errors_by_kind"]["certificate_required"], 5, "{r}");
}

/// A gateway in front of a recording upstream that is told who the client
/// was (`X-Subject`), for the modes whose effect is seen upstream.
fn recorded() -> (
    Gateway,
    crate::support::upstream::Upstream,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Bench CA");
    write(d, "ca.crt", &ca.cert_pem);
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["bench.test"])));
    write_leaf(d, "client", &ca.leaf(&Spec::client("bench-client")));
    std::fs::create_dir(d.join("fleet")).unwrap();
    for cn in ["fleet-a", "fleet-b", "fleet-c"] {
        write_leaf(&d.join("fleet"), cn, &ca.leaf(&Spec::client(cn)));
    }
    // Not a pair: ignored.
    write(&d.join("fleet"), "lonely.crt", &ca.cert_pem);
    let up = crate::support::upstream::Upstream::start();
    let gw = Gateway::start_with(
        d,
        &format!(
            "certificates: {{ server: {{ certFile: server.crt, keyFile: server.key }} }}
trustBundles: {{ ca: {{ caFile: ca.crt }} }}
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [bench.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: ca }}
        requestHeaders: {{ X-Subject: \"%DOWNSTREAM_PEER_SUBJECT%\" }}
        routes: [{{ pathPrefix: /, upstream: up }}]
upstreams:
  up: {{ url: \"http://{}\" }}
",
            up.addr
        ),
        &["--threads", "1"],
    );
    (gw, up, dir)
}

fn run_bench(gw: &Gateway, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("bench")
        .args(args)
        .args(["--sni", "bench.test", "--ca", "ca.crt", "--json"])
        .current_dir(&gw.dir)
        .output()
        .unwrap()
}

#[test]
fn idle_mode_with_a_url_sends_one_request_on_each_connection_it_holds() {
    let (gw, up, _dir) = recorded();
    let url = format!("https://{}/held", gw.addr("web"));
    let out = run_bench(
        &gw,
        &[
            "idle",
            &url,
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "--concurrency",
            "7",
            "--duration",
            "300ms",
        ],
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["open_connections"], 7, "{r}");
    let seen = up.seen();
    assert_eq!(seen.len(), 7, "one GET per held connection");
    assert!(seen.iter().all(|s| s.uri == "/held"));
}

#[test]
fn client_certs_presents_each_certificate_of_the_directory_in_turn() {
    let (gw, up, _dir) = recorded();
    let url = format!("https://{}/", gw.addr("web"));
    let out = run_bench(
        &gw,
        &[
            "handshake",
            &url,
            "--client-certs",
            "fleet",
            "--requests",
            "9",
            "--concurrency",
            "1",
        ],
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["ops"].as_u64(), r["errors"].as_u64()),
        (Some(9), Some(0)),
        "{r}"
    );
    let mut subjects: Vec<String> = up
        .seen()
        .iter()
        .map(|s| s.header("x-subject").unwrap().to_string())
        .collect();
    subjects.sort();
    let want: Vec<String> = ["a", "b", "c"]
        .iter()
        .flat_map(|c| std::iter::repeat_n(format!("CN=fleet-{c}"), 3))
        .collect();
    assert_eq!(subjects, want);
}

#[test]
fn client_certs_refuses_what_it_cannot_use() {
    let (gw, _up, _dir) = recorded();
    std::fs::create_dir(gw.dir.join("empty")).unwrap();
    let url = format!("https://{}/", gw.addr("web"));
    for (args, says) in [
        (
            vec![
                "handshake",
                &url,
                "--client-certs",
                "fleet",
                "--cert",
                "client.crt",
                "--key",
                "client.key",
            ],
            "give --cert and --key, or --client-certs, not both",
        ),
        (
            vec!["resume", &url, "--client-certs", "fleet"],
            "--client-certs does not go with resume",
        ),
        (
            vec!["handshake", &url, "--client-certs", "empty"],
            "--client-certs empty holds no NAME.crt with its NAME.key",
        ),
        (
            vec!["handshake", &url, "--client-certs", "missing"],
            "cannot read --client-certs missing: ",
        ),
    ] {
        let out = run_bench(&gw, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn rate_paces_keepalive_requests_and_never_sends_more_than_scheduled() {
    let (gw, up, _dir) = recorded();
    let url = format!("https://{}/", gw.addr("web"));
    // 40/s for 1 s over 2 connections: each sends every 50 ms, the second
    // 25 ms after the first, so at most 40 requests are scheduled.
    let out = run_bench(
        &gw,
        &[
            "keepalive",
            &url,
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "--rate",
            "40",
            "--concurrency",
            "2",
            "--duration",
            "1s",
        ],
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{r}");
    assert_eq!(r["rate"], 40, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let ops = r["ops"].as_u64().unwrap();
    // Unpaced, this gateway answers thousands in that second.
    assert!(
        (1..=40).contains(&ops),
        "{ops} requests at --rate 40 for 1s"
    );
    // Every counted request really reached the upstream, and no more did.
    assert_eq!(up.seen().len() as u64, ops);
}

#[test]
fn rate_is_refused_where_it_means_nothing() {
    let (gw, _up, _dir) = recorded();
    let url = format!("https://{}/", gw.addr("web"));
    for (mode, rate) in [("keepalive", "0"), ("handshake", "10"), ("h2", "10")] {
        let out = run_bench(&gw, &[mode, &url, "--rate", rate, "--requests", "1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode} --rate {rate}");
        assert!(
            err.contains(&format!(
                "--rate {rate}: give a rate above 0, with mode keepalive"
            )),
            "{mode}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
