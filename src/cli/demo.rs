//! `portcullis demo`: a throwaway CA, a server certificate for
//! localhost/127.0.0.1 and a client certificate, a config requiring mutual
//! TLS in front of the echo upstream, the gateway itself, and the curl
//! commands that prove it works.
//!
//! Without `--dir` the files go to a new private directory (SPEC §1): a
//! fixed path under a shared temporary directory could be created first by
//! another user (as a directory they can read, or a symlink elsewhere) and
//! would hand them the CA key.

use std::io;
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

/// A new directory `portcullis-demo-<16 hex digits>` in the system's
/// temporary directory, mode 0700. `create` (not `create_dir_all`) fails on
/// anything already there, a symlink included, so the directory is always
/// the one made here.
fn private_temp_dir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let mut suffix = [0u8; 8];
        aws_lc_rs::rand::fill(&mut suffix)
            .map_err(|_| io::Error::other("no random bytes for a directory name"))?;
        let path = base.join(format!(
            "portcullis-demo-{}",
            crate::identity::cert::hex_lower(&suffix)
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&path) {
            Ok(()) => {
                // Exactly 0700, whatever the umask.
                #[cfg(unix)]
                std::fs::set_permissions(
                    &path,
                    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
                )?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused directory name after 16 tries",
    ))
}

/// Runs the demo until interrupted.
pub(super) fn run(dir: Option<PathBuf>, port: u16) -> ExitCode {
    // Before anything is written: a busy port would otherwise fail only
    // after the certificates were made.
    if port != 0 {
        if let Err(e) = std::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), port)) {
            eprintln!(
                "portcullis: cannot listen on 127.0.0.1:{port} ({e}): choose another port with --port N, or --port 0 for any free one"
            );
            return ExitCode::FAILURE;
        }
    }
    let dir = match dir {
        Some(dir) => match std::fs::create_dir_all(&dir) {
            Ok(()) => dir,
            Err(e) => {
                eprintln!("portcullis: cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        },
        None => match private_temp_dir() {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!(
                    "portcullis: cannot create a directory in {}: {e}; give one with --dir",
                    std::env::temp_dir().display()
                );
                return ExitCode::FAILURE;
            }
        },
    };
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
