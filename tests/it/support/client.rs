//! Real TLS clients (rustls) for the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::pki::{Ca, Leaf};

/// Read timeout: a bound on a broken test, not a synchronisation.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client config trusting `ca`, presenting `cert` if given.
pub fn config(ca: &Ca, cert: Option<&Leaf>, alpn: &[&str]) -> Arc<ClientConfig> {
    config_with(&ca.der, cert, alpn, None)
}

/// Like [`config`], limited to one TLS version.
pub fn config_with(
    root: &CertificateDer<'static>,
    cert: Option<&Leaf>,
    alpn: &[&str],
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match cert {
        Some(l) => b.with_client_auth_cert(l.chain.clone(), l.key()).unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(c)
}

/// What came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response: status and body.
    Http(u16, String),
    /// The server sent this alert.
    Alert(AlertDescription),
    /// The connection closed without an HTTP response.
    Closed,
    /// Something else went wrong.
    Other(String),
}

impl Outcome {
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Http(s, _) => *s,
            other => panic!("expected an HTTP response, got {other:?}"),
        }
    }

    pub fn body(&self) -> &str {
        match self {
            Outcome::Http(_, b) => b,
            other => panic!("expected an HTTP response, got {other:?}"),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body()))
    }
}

fn classify(e: &std::io::Error) -> Outcome {
    if let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        if let rustls::Error::AlertReceived(a) = re {
            return Outcome::Alert(*a);
        }
        return Outcome::Other(re.to_string());
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => Outcome::Closed,
        _ => Outcome::Other(e.to_string()),
    }
}

/// A connected TLS stream.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Opens a connection and completes the client side of the handshake.
pub fn connect(addr: SocketAddr, sni: &str, cfg: &Arc<ClientConfig>) -> Result<Tls, Outcome> {
    connect_on(TcpStream::connect(addr).unwrap(), sni, cfg)
}

/// Completes the client side of a handshake on an open TCP connection.
pub fn connect_on(tcp: TcpStream, sni: &str, cfg: &Arc<ClientConfig>) -> Result<Tls, Outcome> {
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            return Err(classify(&e));
        }
    }
    Ok(s)
}

/// Sends `raw` (a complete HTTP/1.1 request, which should ask for
/// `Connection: close`) and reads the whole answer.
pub fn exchange(s: &mut Tls, raw: &str) -> Outcome {
    if let Err(e) = s.write_all(raw.as_bytes()).and_then(|_| s.flush()) {
        return classify(&e);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                if out.is_empty() {
                    return classify(&e);
                }
                break;
            }
        }
    }
    parse_response(&out)
}

/// Splits an HTTP/1.1 response into status and body (test-side only; the
/// responses come from hyper with a Content-Length or connection close).
pub fn parse_response(out: &[u8]) -> Outcome {
    if out.is_empty() {
        return Outcome::Closed;
    }
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Other(format!("not an HTTP response: {text}"));
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Outcome::Http(status, body.to_string())
}

/// A plain-HTTP GET (the admin endpoint), read to the end.
pub fn plain_get(addr: SocketAddr, path: &str) -> Outcome {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    t.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    t.read_to_end(&mut out).unwrap();
    parse_response(&out)
}

/// A GET with `Host: host` and `Connection: close`.
pub fn get_request(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Connects with SNI `sni` and sends one GET for `path` with the same Host.
pub fn get(addr: SocketAddr, sni: &str, cfg: &Arc<ClientConfig>, path: &str) -> Outcome {
    match connect(addr, sni, cfg) {
        Ok(mut s) => exchange(&mut s, &get_request(path, sni)),
        Err(o) => o,
    }
}
