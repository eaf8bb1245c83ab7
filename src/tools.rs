//! What the client tools (`probe`, `bench`) share: the target they
//! connect to (`https://…` or `HOST:PORT`, curl's `--resolve`), the client
//! certificate of `--cert`/`--key`, and the status of an HTTP/1.1 response
//! read with httparse. Their `ClientConfig`s come from `tls::client`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::material::Problem;

/// Why a tool cannot start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    /// A URL of another scheme.
    #[error("{target}: only https:// URLs or HOST:PORT are understood")]
    Scheme {
        /// The target as given.
        target: String,
    },
    /// `[v6` without `]`.
    #[error("{target}: unclosed [ in the address")]
    Unclosed {
        /// The target as given.
        target: String,
    },
    /// A port that is not a number.
    #[error("{target}: {port:?} is not a port")]
    BadPort {
        /// The target as given.
        target: String,
        /// What stood for the port.
        port: String,
    },
    /// `HOST` alone.
    #[error("{target}: give HOST:PORT or an https:// URL")]
    NoPort {
        /// The target as given.
        target: String,
    },
    /// `:PORT` alone.
    #[error("{target}: no host")]
    NoHost {
        /// The target as given.
        target: String,
    },
    /// A `--resolve` entry that is not `NAME:PORT:ADDRESS`.
    #[error("--resolve {entry:?}: expected NAME:PORT:ADDRESS (for example api.example.com:8443:127.0.0.1)")]
    Resolve {
        /// The entry.
        entry: String,
    },
    /// `--cert` without `--key` or the reverse.
    #[error("give --cert and --key together")]
    Unpaired,
    /// `--cert`, `--key` or `--ca` cannot be used.
    #[error(transparent)]
    Material(#[from] Problem),
}

/// `https://HOST[:PORT][/PATH]` or `HOST:PORT` (IPv6 in brackets).
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Present for https:// URLs.
    pub(crate) path: Option<String>,
}

/// Parses a probe or bench target.
pub(crate) fn parse_target(t: &str) -> Result<Target, ToolError> {
    let target = || t.to_string();
    let (rest, https) = match t.strip_prefix("https://") {
        Some(r) => (r, true),
        None if t.contains("://") => return Err(ToolError::Scheme { target: target() }),
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
            .ok_or_else(|| ToolError::Unclosed { target: target() })?;
        let port = match p {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| ToolError::BadPort {
                target: target(),
                port: p.to_string(),
            })?),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match (port, https) {
        (Some(p), _) => p.parse().map_err(|_| ToolError::BadPort {
            target: target(),
            port: p.to_string(),
        })?,
        (None, true) => 443,
        (None, false) => return Err(ToolError::NoPort { target: target() }),
    };
    if host.is_empty() {
        return Err(ToolError::NoHost { target: target() });
    }
    Ok(Target { host, port, path })
}

/// The address `--resolve` gives `host:port`, if any entry names it.
pub(crate) fn resolved(
    entries: &[String],
    host: &str,
    port: u16,
) -> Result<Option<SocketAddr>, ToolError> {
    for e in entries {
        let bad = || ToolError::Resolve { entry: e.clone() };
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
) -> Result<Option<Arc<CertifiedKey>>, ToolError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some(Arc::new(crate::material::certified_key_from_files(
            c, k, provider,
        )?))),
        (None, None) => Ok(None),
        _ => Err(ToolError::Unpaired),
    }
}

/// The one request the tools send on a connection of their own: `GET` of
/// `path`, `Connection: close`, and a `Host` that is a valid authority (an
/// IPv6 literal in brackets, the port unless it is 443).
pub(crate) fn get_request(path: &str, host: &str, port: u16, agent: &str) -> Vec<u8> {
    let host = match host.contains(':') && !host.starts_with('[') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    let authority = match port {
        443 => host,
        p => format!("{host}:{p}"),
    };
    format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The status code of the response that `head` starts with, once its
/// status line is complete.
/// Only the status line is parsed: what follows (more headers than a
/// buffer holds, one httparse refuses) does not hide the status.
pub(crate) fn status_code(head: &[u8]) -> Option<u16> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let mut line = head[..end + 2].to_vec();
    line.extend_from_slice(b"\r\n");
    let mut resp = httparse::Response::new(&mut []);
    match resp.parse(&line) {
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
        // Nothing but :PORT after an IPv6 literal.
        assert!(parse_target("https://[::1]x/").is_err());
        assert!(parse_target("[::1]9").is_err());
    }

    #[test]
    fn requests_name_a_valid_authority() {
        let req = |host, port| String::from_utf8(get_request("/x", host, port, "t")).unwrap();
        assert!(req("a.test", 443).contains("\r\nHost: a.test\r\n"));
        assert!(req("a.test", 8443).contains("\r\nHost: a.test:8443\r\n"));
        assert!(req("::1", 8443).contains("\r\nHost: [::1]:8443\r\n"));
        assert!(req("::1", 443).starts_with("GET /x HTTP/1.1\r\nHost: [::1]\r\n"));
        assert!(req("[::1]", 8443).contains("\r\nHost: [::1]:8443\r\n"));
        // What the gateway's own request parser makes of it.
        let text = req("::1", 8443);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Request::new(&mut headers);
        assert!(r.parse(text.as_bytes()).unwrap().is_complete());
        assert_eq!(crate::http::host::name("[::1]:8443"), Ok("::1"));
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
        let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        let long = format!("HTTP/1.1 204 No Content\r\n{many}\r\n");
        assert_eq!(
            status_code(long.as_bytes()),
            Some(204),
            "more headers than a buffer"
        );
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nBad Header\r\n"), Some(200));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }
}
