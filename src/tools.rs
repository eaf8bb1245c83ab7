//! What the client tools (`probe`, `bench`) share: the target they
//! connect to (`https://…` or `HOST:PORT`, curl's `--resolve`), the client
//! certificate of `--cert`/`--key`, and the status of an HTTP/1.1 response
//! read with httparse. Their `ClientConfig`s come from `tls::client`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

/// `https://HOST[:PORT][/PATH]` or `HOST:PORT` (IPv6 in brackets).
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Present for https:// URLs.
    pub(crate) path: Option<String>,
}

/// Parses a probe or bench target.
pub(crate) fn parse_target(t: &str) -> Result<Target, String> {
    let (rest, https) = match t.strip_prefix("https://") {
        Some(r) => (r, true),
        None if t.contains("://") => {
            return Err(format!(
                "{t}: only https:// URLs or HOST:PORT are understood"
            ))
        }
        None => (t, false),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) if https => (&rest[..i], Some(rest[i..].to_string())),
        None if https => (rest, Some("/".to_string())),
        _ => (rest, None),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| format!("{t}: unclosed [ in the address"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match (port, https) {
        (Some(p), _) => p.parse().map_err(|_| format!("{t}: {p:?} is not a port"))?,
        (None, true) => 443,
        (None, false) => return Err(format!("{t}: give HOST:PORT or an https:// URL")),
    };
    if host.is_empty() {
        return Err(format!("{t}: no host"));
    }
    Ok(Target { host, port, path })
}

/// The address `--resolve` gives `host:port`, if any entry names it.
pub(crate) fn resolved(
    entries: &[String],
    host: &str,
    port: u16,
) -> Result<Option<SocketAddr>, String> {
    for e in entries {
        let bad = || {
            format!("--resolve {e:?}: expected NAME:PORT:ADDRESS (for example api.example.com:8443:127.0.0.1)")
        };
        let (name, rest) = e.split_once(':').ok_or_else(bad)?;
        let (p, addr) = rest.split_once(':').ok_or_else(bad)?;
        let p: u16 = p.parse().map_err(|_| bad())?;
        let ip: std::net::IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        if name.eq_ignore_ascii_case(host) && p == port {
            return Ok(Some(SocketAddr::new(ip, port)));
        }
    }
    Ok(None)
}

/// The certificate of `--cert` and `--key`, which come together or not at
/// all.
pub(crate) fn client_certificate(
    cert: Option<&Path>,
    key: Option<&Path>,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, String> {
    match (cert, key) {
        (Some(c), Some(k)) => {
            crate::material::certified_key_from_files(c, k, provider).map(|ck| Some(Arc::new(ck)))
        }
        (None, None) => Ok(None),
        _ => Err("give --cert and --key together".into()),
    }
}

/// The status code of the response that `head` starts with, once its
/// status line is complete.
pub(crate) fn status_code(head: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(_) => resp.code,
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("https://a.test/x?y").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("a.test", 443, Some("/x?y"))
        );
        let t = parse_target("https://[::1]:8443").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("::1", 8443, Some("/"))
        );
        let t = parse_target("127.0.0.1:2379").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path), ("127.0.0.1", 2379, None));
        assert!(parse_target("a.test").is_err());
        assert!(parse_target("http://a.test").is_err());
    }

    #[test]
    fn a_status_is_read_once_its_line_is_complete() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"),
            Some(200)
        );
        assert_eq!(status_code(b"HTTP/1.0 503 \r\n"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 20"), None);
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }
}
