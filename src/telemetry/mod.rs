//! Logs: start-up lines, handshake refusals and access lines (SPEC §7).
//! A leaf module: it takes plain records and labels and imports nothing
//! of the crate, so every module can log and count.
//! Access lines carry the client identity; keys and passwords never appear.

pub(crate) mod metrics;

use std::io::IsTerminal;
use std::time::Duration;

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Installs the global subscriber: logs go to stdout, JSON unless stdout is
/// a terminal. `RUST_LOG` filters (default `warn,portcullis=info,access=info`: our
/// own lines, and only warnings of the libraries, whose informational
/// lines speak in their own types; notify logged
/// `Os { code: 22, kind: InvalidInput, … }` at info).
pub(crate) fn init(format: Option<LogFormat>) {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,portcullis=info,access=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

/// A refused client certificate: who it said it was, and why it was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// Subject (RFC 2253).
    pub subject: String,
    /// Issuer (RFC 2253).
    pub issuer: String,
    /// SHA-256 fingerprint (hex).
    pub fingerprint: String,
    /// The reason and its fix, in words.
    pub reason: String,
    /// For a lapsed CRL: which file, its issuer, and what renews it.
    pub crl: Option<(String, String, String)>,
}

/// Records a handshake that did not complete, on one line (SPEC §3): the
/// client's address, the SNI, the result label, the reason in words and,
/// for a refused certificate, its subject, issuer and fingerprint.
pub(crate) fn handshake_refused(
    listener: &str,
    client: std::net::SocketAddr,
    result: &'static str,
    sni: Option<&str>,
    detail: &str,
    cert: Option<&Rejection>,
) {
    let crl = cert.and_then(|c| c.crl.as_ref());
    tracing::warn!(
        listener,
        client = %client,
        result,
        sni = sni.unwrap_or(""),
        subject = cert.map_or("", |c| c.subject.as_str()),
        issuer = cert.map_or("", |c| c.issuer.as_str()),
        fingerprint = cert.map_or("", |c| c.fingerprint.as_str()),
        reason = detail,
        // crl_expired: which CRL lapsed, and what renews it.
        crl = crl.map(|c| c.0.as_str()),
        crl_issuer = crl.map(|c| c.1.as_str()),
        renew = crl.map(|c| c.2.as_str()),
        "tls handshake refused"
    );
}

/// One answered request, as its access line says it.
#[derive(Debug)]
pub(crate) struct Access<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// The request's host, as sent.
    pub host: Option<&'a str>,
    /// Method.
    pub method: &'a str,
    /// Path, as received.
    pub path: &'a str,
    /// Status answered.
    pub status: u16,
    /// Time to the response head.
    pub took: Duration,
    /// Body bytes, when known up front (0 for streamed bodies).
    pub bytes: u64,
    /// The client's address.
    pub client: std::net::SocketAddr,
    /// The client's identity, if it presented a certificate.
    pub identity: Option<AccessIdentity<'a>>,
}

/// The client identity an access line carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessIdentity<'a> {
    /// Subject (RFC 2253).
    pub subject: &'a str,
    /// URI SANs.
    pub uri_sans: &'a [String],
    /// SHA-256 fingerprint (hex).
    pub fingerprint: &'a str,
    /// Whether the chain verified.
    pub verified: bool,
}

/// Writes one access line.
pub(crate) fn access(a: &Access<'_>) {
    let id = a.identity;
    tracing::info!(
        target: "access",
        listener = a.listener,
        host = a.host.unwrap_or(""),
        method = a.method,
        path = a.path,
        status = a.status,
        duration_ms = a.took.as_secs_f64() * 1000.0,
        bytes = a.bytes,
        client = %a.client,
        subject = id.map_or("", |i| i.subject),
        uri_sans = id.map_or(String::new(), |i| i.uri_sans.join(",")).as_str(),
        fingerprint = id.map_or("", |i| i.fingerprint),
        verified = id.is_some_and(|i| i.verified),
        "access"
    );
}
