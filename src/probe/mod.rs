//! `portcullis probe` (SPEC §6): connect like a client and say, in words,
//! why a mutual-TLS handshake works or not — the server chain and whether
//! it verifies for the name, whether the server asked for a client
//! certificate and which CA names it accepts, whether ours was accepted,
//! and for `https://` URLs the status of a GET.

use std::net::SocketAddr;
use std::path::PathBuf;

mod alerts;
pub(crate) mod diagnosis;
mod observe;

/// What to probe, and with what.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// `https://host[:port][/path]` or `host:port`.
    pub target: String,
    /// Client certificate (PEM chain).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// CA bundle to verify the server with.
    pub ca: Option<PathBuf>,
    /// SNI to send (default: the host, unless it is an IP address).
    pub sni: Option<String>,
    /// `NAME:PORT:ADDR` entries, as curl's `--resolve`: connect to ADDR
    /// when the target is NAME:PORT, still sending NAME.
    pub resolve: Vec<String>,
    /// Print the diagnosis as one JSON object instead of text.
    pub json: bool,
}

/// The address `--resolve` gives `host:port`, if any entry names it.
fn resolved(entries: &[String], host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
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

/// The outcome: the report text, and whether everything succeeded.
pub(crate) struct Report {
    /// What an operator reads.
    pub text: String,
    /// Exit 0 when true.
    pub ok: bool,
}

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
                "{t}: only https:// URLs or HOST:PORT can be probed"
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

/// Probes: observe, diagnose, render. Never panics, always returns a
/// report.
pub(crate) fn probe(opts: &Options) -> Report {
    let request = parse_target(&opts.target).is_ok_and(|t| t.path.is_some());
    match observe::observe(opts) {
        Ok(o) => {
            let d = diagnosis::diagnose(&o, rustls::pki_types::UnixTime::now().as_secs());
            let text = if opts.json {
                let mut j = serde_json::to_string(&d).unwrap_or_default();
                j.push('\n');
                j
            } else {
                d.text(request)
            };
            Report { text, ok: d.ok }
        }
        Err(u) => {
            let text = if opts.json {
                format!("{}\n", serde_json::json!({ "ok": false, "reason": u.why }))
            } else {
                let mut t = String::new();
                for l in &u.lines {
                    t.push_str(l);
                    t.push('\n');
                }
                t.push_str(&format!("FAILED: {}\n", u.why));
                t
            };
            Report { text, ok: false }
        }
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
}
