//! `portcullis probe` (SPEC §6): connect like a client and say, in words,
//! why a mutual-TLS handshake works or not — the server chain and whether
//! it verifies for the name, whether the server asked for a client
//! certificate and which CA names it accepts, whether ours was accepted,
//! and for `https://` URLs the status of a GET.

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

/// The outcome: the report text, and whether everything succeeded.
pub(crate) struct Report {
    /// What an operator reads.
    pub text: String,
    /// Exit 0 when true.
    pub ok: bool,
}

/// Probes: observe, diagnose, render. Never panics, always returns a
/// report.
pub(crate) fn probe(opts: &Options) -> Report {
    let request = crate::tools::parse_target(&opts.target).is_ok_and(|t| t.path.is_some());
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
