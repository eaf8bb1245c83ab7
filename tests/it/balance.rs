//! Upstreams with several endpoints (SPEC §2 `endpoints`, `loadBalancing`,
//! `healthCheck`; issue 18), against real upstream processes' sockets:
//! requests spread per the policy (counted at the upstreams), a connect
//! failure on an idempotent request is retried once elsewhere and never
//! seen by the client, an endpoint that keeps failing is ejected and comes
//! back, and when all are ejected they are tried anyway.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ops::{admin_get, parse_metrics, value};
use crate::support::client::{config, connect, exchange, get, get_request};
use crate::support::{write_leaf, Ca, Gateway, Outcome, Spec, Upstream};

struct Rig {
    gw: Gateway,
    ca: Ca,
    _dir: tempfile::TempDir,
}

/// A gateway whose route `/` goes to upstream `u`, defined by `upstream`
/// (the YAML flow mapping after `u:`).
fn rig(upstream: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Balance CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["app.test"])));
    let gw = Gateway::start(
        d,
        &format!(
            "admin: {{ address: \"127.0.0.1:0\" }}
certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [app.test]
        certificate: server
        routes: [{{ pathPrefix: /, upstream: u }}]
upstreams:
  u: {upstream}
"
        ),
    );
    Rig { gw, ca, _dir: dir }
}

impl Rig {
    fn get(&self, path: &str) -> Outcome {
        get(
            self.gw.addr("main"),
            "app.test",
            &config(&self.ca, None, &[]),
            path,
        )
    }

    fn send(&self, raw: &str) -> Outcome {
        let mut s = connect(
            self.gw.addr("main"),
            "app.test",
            &config(&self.ca, None, &[]),
        )
        .unwrap();
        exchange(&mut s, raw)
    }

    /// `portcullis_upstream_errors_total` of endpoint `addr`.
    fn errors(&self, addr: SocketAddr) -> f64 {
        let text = admin_get(self.gw.admin.unwrap(), "/metrics").1;
        value(
            &parse_metrics(&text),
            "portcullis_upstream_errors_total",
            &[("upstream", "u"), ("endpoint", &addr.to_string())],
        )
    }
}

fn endpoints(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"http://{a}\"")).collect();
    format!("[{}]", list.join(", "))
}

/// A loopback address nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn round_robin_spreads_requests_evenly() {
    let ups = [Upstream::start(), Upstream::start(), Upstream::start()];
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let r = rig(&format!(
        "{{ endpoints: {}, loadBalancing: roundRobin }}",
        endpoints(&addrs)
    ));
    for i in 0..30 {
        assert_eq!(r.get(&format!("/n{i}")).status(), 200);
    }
    let counts: Vec<usize> = ups.iter().map(|u| u.seen().len()).collect();
    assert_eq!(counts, [10, 10, 10]);
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    let ups = [Upstream::start(), Upstream::start()];
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let r = rig(&format!(
        "{{ endpoints: {}, loadBalancing: leastRequest }}",
        endpoints(&addrs)
    ));
    // A request the upstream holds for 1.5 s keeps one endpoint busy: the
    // first (no request in flight anywhere, the turn starts there).
    let (addr, cfg) = (r.gw.addr("main"), config(&r.ca, None, &[]));
    let slow = std::thread::spawn(move || get(addr, "app.test", &cfg, "/slow").status());
    ups[0].wait_for(1);
    let busy = 0;
    for i in 0..4 {
        assert_eq!(r.get(&format!("/quick{i}")).status(), 200);
    }
    assert_eq!(ups[busy].seen().len(), 1, "only the slow request");
    assert_eq!(ups[1 - busy].seen().len(), 4);
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn a_connect_failure_is_retried_on_another_endpoint_for_idempotent_requests_only() {
    let up = Upstream::start();
    let down = closed_port();
    let r = rig(&format!("{{ endpoints: {} }}", endpoints(&[down, up.addr])));
    // Round robin: every other GET is first sent to the closed port.
    for i in 0..6 {
        assert_eq!(
            r.get(&format!("/g{i}")).status(),
            200,
            "the retry is invisible"
        );
    }
    assert_eq!(up.seen().len(), 6);
    assert_eq!(
        r.errors(down),
        3.0,
        "each first attempt counted on its endpoint"
    );
    assert_eq!(r.errors(up.addr), 0.0);
    // A POST is not retried: one of two gets 502.
    let post =
        "POST /p HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    let statuses = [r.send(post).status(), r.send(post).status()];
    assert!(
        statuses.contains(&502) && statuses.contains(&200),
        "{statuses:?}"
    );
    let line =
        r.gw.log
            .wait_for_text("the request went to another endpoint");
    assert!(line.contains(&down.to_string()), "{line}");
}

/// Polls `ok` (each poll one request) until it holds, up to `within`.
fn eventually(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
    }
    false
}

#[test]
fn a_failing_endpoint_is_ejected_and_comes_back() {
    let up = Upstream::start();
    let flaky = closed_port();
    let r = rig(&format!(
        "{{ endpoints: {}, healthCheck: {{ maxFailures: 2, ejectFor: 5s }} }}",
        endpoints(&[flaky, up.addr])
    ));
    for i in 0..10 {
        assert_eq!(r.get(&format!("/e{i}")).status(), 200);
    }
    // Two failures in a row ejected it; no request has tried it since.
    assert_eq!(r.errors(flaky), 2.0);
    let line = r.gw.log.wait_for_text("upstream endpoint ejected");
    assert!(line.contains(&flaky.to_string()), "{line}");
    // It comes up; once ejectFor has passed, it gets requests again.
    let back = Upstream::start_on(&flaky.to_string());
    let came_back = eventually(Duration::from_secs(15), || {
        r.get("/again").status() == 200 && !back.seen().is_empty()
    });
    assert!(
        came_back,
        "the endpoint never got a request after its ejection"
    );
    assert_eq!(r.errors(flaky), 2.0);
}

#[test]
fn when_every_endpoint_is_ejected_they_are_tried_anyway() {
    let (a, b) = (closed_port(), closed_port());
    let r = rig(&format!(
        "{{ endpoints: {}, healthCheck: {{ maxFailures: 1, ejectFor: 10m }} }}",
        endpoints(&[a, b])
    ));
    // Each GET tries one endpoint and retries the other: both ejected.
    assert_eq!(r.get("/x").status(), 502);
    assert_eq!(r.errors(a) + r.errors(b), 2.0);
    // Ejected for ten minutes, yet a request still goes to them.
    assert_eq!(r.get("/y").status(), 502);
    assert_eq!(r.errors(a) + r.errors(b), 4.0);
    let up = Upstream::start_on(&b.to_string());
    assert!(
        eventually(Duration::from_secs(10), || r.get("/z").status() == 200),
        "an ejected endpoint that came up is used when all are ejected"
    );
    assert!(!up.seen().is_empty());
}

#[test]
fn host_header_upstream_names_the_chosen_endpoint() {
    let ups = [Upstream::start(), Upstream::start()];
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let r = rig(&format!(
        "{{ endpoints: {}, hostHeader: upstream }}",
        endpoints(&addrs)
    ));
    for _ in 0..2 {
        assert_eq!(r.send(&get_request("/h", "app.test")).status(), 200);
    }
    for u in &ups {
        let seen = u.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("host"), Some(u.addr.to_string().as_str()));
    }
}

/// An upstream that reads a request and then closes without answering.
fn hangs_up() -> (SocketAddr, tokio::runtime::Runtime) {
    crate::support::upstream::tcp_server(|mut sock| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        let _ = sock.read(&mut buf).await;
    })
}

#[test]
fn a_request_that_was_written_is_never_sent_again() {
    let up = Upstream::start();
    let (rude, _rt) = hangs_up();
    let r = rig(&format!("{{ endpoints: {} }}", endpoints(&[rude, up.addr])));
    // The first GET goes to the endpoint that takes it and hangs up: it was
    // written, so it is not retried elsewhere (it may have had effects).
    assert_eq!(r.get("/once").status(), 502);
    assert!(up.seen().is_empty(), "retried after it was written");
    assert_eq!(r.get("/next").status(), 200);
    assert_eq!(up.seen().len(), 1);
}

/// An upstream whose every answer is `status`.
fn answers(status: u16) -> (SocketAddr, tokio::runtime::Runtime) {
    crate::support::upstream::tcp_server(move |sock| async move {
        let svc = hyper::service::service_fn(move |_req| async move {
            let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok::<_, std::convert::Infallible>(resp)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
            .await;
    })
}

#[test]
fn gateway_failures_eject_other_statuses_do_not() {
    for (status, ejected) in [
        (503, true),
        (502, true),
        (504, true),
        (500, false),
        (404, false),
    ] {
        let up = Upstream::start();
        let (odd, _rt) = answers(status);
        let r = rig(&format!(
            "{{ endpoints: {}, healthCheck: {{ maxFailures: 2, ejectFor: 10m }} }}",
            endpoints(&[odd, up.addr])
        ));
        for i in 0..8 {
            r.get(&format!("/s{i}"));
        }
        // Round robin: 4 each unless the odd one was ejected after 2.
        let good = up.seen().len();
        assert_eq!(good, if ejected { 6 } else { 4 }, "{status}");
        assert_eq!(
            r.gw.log.messages("upstream endpoint ejected").len(),
            usize::from(ejected),
            "{status}"
        );
    }
}
