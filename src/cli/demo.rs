//! `portcullis demo`: a throwaway CA, a server certificate for
//! localhost/127.0.0.1 and a client certificate, a config requiring mutual
//! TLS in front of the echo upstream, the gateway itself, and the curl
//! commands that prove it works.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::pki::ca::{self, InitSpec};
use crate::pki::{self, IssueSpec, KeyType, Output, Profile};
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
  demo-ca: {{ caFile: ca/ca.crt }}
upstreams:
  echo: {{ builtin: echo }}
"
    )
}

fn write_all(dir: &Path, port: u16) -> Result<PathBuf, pki::PkiError> {
    // A fresh CA each run: the demo is throwaway by design.
    let ca_dir = dir.join("ca");
    for f in ["ca.crt", "ca.key", "ca.crl", "chain.crt"] {
        let _ = std::fs::remove_file(ca_dir.join(f));
    }
    let ca = ca::init(
        &ca_dir,
        &InitSpec {
            cn: "portcullis demo CA".into(),
            key_type: KeyType::EcdsaP256,
            days: 30,
        },
        None,
    )?;
    let server = pki::issue::issue(
        &ca,
        Profile::Server,
        &IssueSpec {
            dns: vec!["localhost".into()],
            ip: vec![IpAddr::from([127, 0, 0, 1])],
            days: 30,
            ..IssueSpec::default()
        },
    )?;
    let client = pki::issue::issue(
        &ca,
        Profile::Client,
        &IssueSpec {
            cn: Some("demo-client".into()),
            days: 30,
            ..IssueSpec::default()
        },
    )?;
    let config = dir.join("portcullis.yaml");
    pki::write_files(&[
        Output::public(dir.join("server.crt"), server.cert_pem),
        Output::secret(dir.join("server.key"), server.key_pem),
        Output::public(dir.join("client.crt"), client.cert_pem),
        Output::secret(dir.join("client.key"), client.key_pem),
        Output::public(&config, config_text(port)),
    ])?;
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
    for f in [
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
        "portcullis.yaml",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let config = match write_all(&dir, port) {
        Ok(c) => c,
        Err(e) => {
            super::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let snapshot = match server::prepare(&config) {
        Ok((_, s)) => s,
        Err(e) => {
            super::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let rt = match super::runtime(None) {
        Ok(rt) => rt,
        Err(e) => {
            super::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let d = dir.display().to_string();
    let banner = move |bound: &[(String, std::net::SocketAddr)]| {
        let port = bound.first().map_or(port, |(_, a)| a.port());
        eprintln!(
            "\nportcullis demo: mutual TLS on https://localhost:{port}/ (certificates and config in {d})\n\n\
             With the client certificate — answers with the echo JSON, including the client's subject:\n\n  \
             curl --cacert {d}/ca/ca.crt --cert {d}/client.crt --key {d}/client.key https://localhost:{port}/\n\n\
             Without it — refused during the TLS handshake:\n\n  \
             curl --cacert {d}/ca/ca.crt https://localhost:{port}/\n\n\
             Press Ctrl-C to stop.\n"
        );
    };
    match rt.block_on(server::run(config.clone(), snapshot, banner)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            super::report(&e);
            ExitCode::FAILURE
        }
    }
}
