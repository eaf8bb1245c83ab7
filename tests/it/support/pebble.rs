//! pebble, Let's Encrypt's ACME test server (Debian package `pebble`,
//! installed by scripts/test), on loopback: its directory is served with a
//! certificate made here, validation connects to the gateway's own
//! listeners (`httpPort`, `tlsPort`), and names resolve through
//! `pebble-challtestsrv`'s DNS (every name → 127.0.0.1, no AAAA), so the
//! machine's resolver is never asked.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::client::{self, config_with};
use super::gateway::Log;
use super::{write, write_leaf, Ca, Spec};

pub struct Pebble {
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
    dir: std::path::PathBuf,
    dns: u16,
    /// `https://127.0.0.1:PORT/dir`
    pub directory: String,
    /// The CA of the directory's own TLS certificate (what the gateway's
    /// `trustBundle` holds), as PEM.
    pub directory_ca_pem: String,
    directory_ca: Ca,
    management: SocketAddr,
    /// pebble's log (once it runs).
    pub log: Log,
}

/// A port free now on 127.0.0.1 (pebble binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(cmd: &mut Command, what: &str) -> (Child, Log) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what} ({e}); scripts/test installs the Debian package pebble")
        });
    let log = Log::of(child.stdout.take().unwrap());
    log.follow(child.stderr.take().unwrap());
    (child, log)
}

impl Pebble {
    /// Starts pebble validating http-01 on `http_port` and tls-alpn-01 on
    /// `tls_port`, issuing certificates valid for `validity_secs`, refusing
    /// orders for `blocked` names.
    pub fn start(
        dir: &Path,
        http_port: u16,
        tls_port: u16,
        validity_secs: u64,
        blocked: &[&str],
    ) -> Pebble {
        let mut p = Pebble::prepare(
            dir,
            free_port(),
            http_port,
            tls_port,
            validity_secs,
            blocked,
        );
        p.run();
        p
    }

    /// Writes pebble's config and its directory certificate (its directory
    /// URL and CA are known from here on) without starting it.
    pub fn prepare(
        dir: &Path,
        listen: u16,
        http_port: u16,
        tls_port: u16,
        validity_secs: u64,
        blocked: &[&str],
    ) -> Pebble {
        let ca = Ca::root("Pebble directory CA");
        write_leaf(
            dir,
            "pebble-server",
            &ca.leaf(&Spec::server(&["127.0.0.1"])),
        );
        let management = free_port();
        let dns = free_port();
        let cfg = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.join("pebble-server.crt"),
                "privateKey": dir.join("pebble-server.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
                "domainBlocklist": blocked,
            }
        });
        write(dir, "pebble.json", &cfg.to_string());
        Pebble {
            pebble: None,
            challtestsrv: None,
            dir: dir.to_path_buf(),
            dns,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            directory_ca_pem: ca.cert_pem.clone(),
            directory_ca: ca,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            log: Log::default(),
        }
    }

    /// Starts the DNS stand-in and pebble, and waits until the directory
    /// is served.
    pub fn run(&mut self) {
        let dns = self.dns;
        let (challtestsrv, dns_log) = spawn(
            Command::new("pebble-challtestsrv").args([
                "-management",
                &format!("127.0.0.1:{}", free_port()),
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-tlsalpn01",
                "",
                "-https01",
                "",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ]),
            "pebble-challtestsrv",
        );
        self.challtestsrv = Some(challtestsrv);
        dns_log.wait_for_text("Starting management server");
        let (pebble, log) = spawn(
            Command::new("pebble")
                .arg("-config")
                .arg(self.dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // No random sleep before validating, no rejected nonces, a
                // fresh authorization per order (every order validates).
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0"),
            "pebble",
        );
        self.pebble = Some(pebble);
        log.wait_for_text("ACME directory available at");
        self.log = log;
    }

    /// The root that issues pebble's certificates (made at its start), PEM.
    pub fn root_pem(&self) -> String {
        let cfg = config_with(&self.directory_ca.der, None, &[], None);
        let mut s = client::connect(self.management, "127.0.0.1", &cfg).unwrap();
        let out = client::exchange(
            &mut s,
            "GET /roots/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
        // (The body may come chunked: keep the PEM block only.)
        let body = out.body();
        let start = body.find("-----BEGIN CERTIFICATE-----");
        let end = body.find("-----END CERTIFICATE-----");
        match (start, end) {
            (Some(s), Some(e)) => format!("{}-----END CERTIFICATE-----\n", &body[s..e]),
            _ => panic!("no certificate from pebble's /roots/0: {out:?}"),
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [self.pebble.as_mut(), self.challtestsrv.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
