//! gRPC end to end (SPEC §2 `version: http2`, issue 18): a real grpcio
//! client calls a real grpcio server through an `https` listener with
//! client auth — unary, server-streaming, client-streaming and
//! bidirectional calls, 3 MiB messages, a deadline, an error status with
//! its trailers, the client identity in the server's metadata (XFCC), one
//! slow call beside a quick one on the same connection, and `grpc-status:
//! 14` when the upstream cannot be reached. The Python tools are installed
//! by `scripts/test` into target/test-python.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use crate::support::{write, write_leaf, Ca, Gateway, Spec};

/// The Python that has grpcio (scripts/test makes it).
fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-python/bin/python");
    let ok = Command::new(&p)
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} with grpcio is missing: run ./scripts/test, which installs it",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/grpc")
        .join(name)
}

/// The grpcio server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(python())
            .arg(script("server.py"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the gRPC server printed {line:?}, not its port"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client against `gw` as `grpc.test`; `cert` is the client
/// certificate's file stem in `dir`.
fn client(gw: &Gateway, dir: &Path, cert: Option<&str>) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(script("client.py"))
        .arg(gw.addr("main").to_string())
        .arg("grpc.test")
        .arg(dir.join("ca.crt"));
    if let Some(c) = cert {
        cmd.arg(dir.join(format!("{c}.crt")))
            .arg(dir.join(format!("{c}.key")));
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn rig(server: &Server) -> (Gateway, Ca, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("gRPC CA");
    write_leaf(d, "server", &ca.leaf(&Spec::server(&["grpc.test"])));
    write_leaf(d, "client", &ca.leaf(&Spec::client("grpc-client")));
    write(d, "ca.crt", &ca.cert_pem);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(
        d,
        &format!(
            "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [grpc.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        forwardClientCert: sanitizeSet
        clientCertHeaders: true
        routes:
          - {{ pathPrefix: /portcullis.test.Dead/, upstream: dead }}
          - {{ pathPrefix: /, upstream: svc }}
upstreams:
  svc: {{ url: \"http://127.0.0.1:{}\", version: http2 }}
  dead: {{ url: \"http://{dead}\", version: http2 }}
",
            server.port
        ),
    );
    (gw, ca, dir)
}

#[test]
fn grpc_calls_of_every_shape_pass_through_with_identity_trailers_and_statuses() {
    let server = Server::start();
    let (gw, _ca, dir) = rig(&server);
    let out = client(&gw, dir.path(), Some("client"));

    // Unary: the response, the server's trailer, the identity it saw.
    let unary = &out["unary"]["ok"];
    assert_eq!(unary["code"], "OK", "{out:#}");
    assert_eq!(unary["response"]["len"], 5);
    assert_eq!(unary["trailers"]["x-served-by"], "python");
    // The client sent its own XFCC, client-cert and ssl-client-verify: the
    // service sees exactly one of each that the gateway made (or none).
    let xfcc = unary["response"]["xfcc"].as_array().unwrap();
    assert_eq!(xfcc.len(), 1, "{xfcc:?}");
    let xfcc = xfcc[0].as_str().unwrap();
    assert!(
        xfcc.contains("Hash=")
            && xfcc.contains("Subject=\"CN=grpc-client\"")
            && !xfcc.contains("evil"),
        "{xfcc}"
    );
    let cc = unary["response"]["client-cert"].as_array().unwrap();
    assert_eq!(cc.len(), 1, "{cc:?}");
    use base64::Engine;
    let der = std::fs::read_to_string(dir.path().join("client.crt")).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(der.as_bytes()).unwrap();
    assert_eq!(
        cc[0].as_str().unwrap(),
        format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    );
    assert_eq!(
        unary["response"]["ssl-client-verify"],
        serde_json::json!([])
    );

    // Streams, with messages of 3 MiB each way.
    let size = 3 << 20;
    assert_eq!(
        out["server_stream"]["ok"],
        serde_json::json!([[size, 0], [size, 1], [size, 2]]),
        "{out:#}"
    );
    assert_eq!(
        out["client_stream"]["ok"],
        serde_json::json!({"count": 6, "total": 5000 + size})
    );
    assert_eq!(out["bidi"]["ok"], serde_json::json!([true, true, true]));

    // Statuses and their trailers arrive as the server sent them.
    assert_eq!(out["fail"]["code"], "INVALID_ARGUMENT", "{out:#}");
    assert_eq!(out["fail"]["details"], "bad thing");
    assert_eq!(out["fail"]["trailers"]["x-detail"], "yes");
    assert_eq!(out["deadline"]["code"], "DEADLINE_EXCEEDED");

    // A quick call is not held up by a slow one on the same connection.
    let ind = &out["independent"];
    assert_eq!(ind["quick"]["ok"], "done", "{out:#}");
    assert_eq!(ind["slow_still_running"], true, "{out:#}");
    assert_eq!(ind["slow"]["ok"], "late");

    // Nothing listens for `dead`: a gRPC status, not an HTTP 502.
    assert_eq!(out["unreachable"]["code"], "UNAVAILABLE", "{out:#}");
    assert_eq!(
        out["unreachable"]["details"],
        "upstream \"dead\" is unavailable"
    );
}

#[test]
fn a_grpc_client_without_a_certificate_reaches_nothing() {
    let server = Server::start();
    let (gw, _ca, dir) = rig(&server);
    let out = client(&gw, dir.path(), None);
    assert_eq!(out["unary"]["code"], "UNAVAILABLE", "{out:#}");
    assert!(out.get("server_stream").is_none());
}
