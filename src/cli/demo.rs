//! `portcullis demo`: a throwaway CA, a server certificate for
//! localhost/127.0.0.1 and a client certificate, a config requiring mutual
//! TLS in front of the echo upstream, the gateway itself, and the curl
//! commands that prove it works.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::pki::{self, Ca, Profile};
use crate::server;

fn config_text(port: u16) -> String {
    format!(
        "# Written by `portcullis demo`: mutual TLS in front of the built-in echo upstream.
listeners:
  - name: demo
    address: 127.0.0.1:{port}
    protocol: https
    hosts:
      - hostnames: [localhost]
        certificate: server
        clientAuth:
          mode: require
          trustBundle: demo-ca
        routes:
          - pathPrefix: /
            upstream: echo
certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  demo-ca: {{ caFile: ca.crt }}
upstreams:
  echo: {{ builtin: echo }}
"
    )
}

fn write_all(dir: &Path, port: u16) -> Result<PathBuf, pki::PkiError> {
    let ca = Ca::new_root("portcullis demo CA", 30)?;
    let server = ca.issue(
        Profile::Server,
        "localhost",
        &["localhost", "127.0.0.1"],
        30,
    )?;
    let client = ca.issue(Profile::Client, "demo-client", &[], 30)?;
    pki::write_file(&dir.join("ca.crt"), ca.cert_pem.as_bytes(), false)?;
    pki::write_file(&dir.join("ca.key"), ca.key_pem.as_bytes(), true)?;
    pki::write_file(&dir.join("server.crt"), server.cert_pem.as_bytes(), false)?;
    pki::write_file(&dir.join("server.key"), server.key_pem.as_bytes(), true)?;
    pki::write_file(&dir.join("client.crt"), client.cert_pem.as_bytes(), false)?;
    pki::write_file(&dir.join("client.key"), client.key_pem.as_bytes(), true)?;
    let config = dir.join("portcullis.yaml");
    pki::write_file(&config, config_text(port).as_bytes(), false)?;
    Ok(config)
}

/// Runs the demo until interrupted.
pub fn run(dir: Option<PathBuf>, port: u16) -> ExitCode {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("portcullis-demo"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("portcullis: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let config = match write_all(&dir, port) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {}", crate::http::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let snapshot = match server::prepare(&config) {
        Ok((_, s)) => s,
        Err(e) => {
            eprintln!("portcullis: {}", crate::http::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::FAILURE;
        }
    };
    let d = dir.display().to_string();
    let banner = move |bound: &[(String, std::net::SocketAddr)]| {
        let port = bound.first().map_or(port, |(_, a)| a.port());
        eprintln!(
            "\nportcullis demo: mutual TLS on https://localhost:{port}/ (certificates and config in {d})\n\n\
             With the client certificate — answers with the echo JSON, including the client's subject:\n\n  \
             curl --cacert {d}/ca.crt --cert {d}/client.crt --key {d}/client.key https://localhost:{port}/\n\n\
             Without it — refused during the TLS handshake:\n\n  \
             curl --cacert {d}/ca.crt https://localhost:{port}/\n\n\
             Press Ctrl-C to stop.\n"
        );
    };
    match rt.block_on(server::run(snapshot, banner)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {}", crate::http::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
