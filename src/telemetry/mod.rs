//! Logs: start-up lines, handshake refusals and access lines (SPEC §7).
//! Access lines carry the client identity; keys and passwords never appear.

pub mod metrics;

use std::io::IsTerminal;
use std::time::Duration;

use http::{Method, Response};

use crate::http::{Body, Conn};
use crate::tls::HandshakeResult;

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Installs the global subscriber: logs go to stdout, JSON unless stdout is
/// a terminal. `RUST_LOG` filters (default `info`).
pub fn init(format: Option<LogFormat>) {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

/// Records a handshake that did not complete, on one line (SPEC §3): the
/// client's address, the SNI, the result label, the reason in words and,
/// for a refused certificate, its subject, issuer and fingerprint.
pub fn handshake_refused(
    listener: &str,
    client: std::net::SocketAddr,
    result: HandshakeResult,
    sni: Option<&str>,
    detail: &str,
    cert: Option<&crate::tls::rejection::Rejection>,
) {
    let crl = cert.and_then(|c| c.crl.as_ref());
    tracing::warn!(
        listener,
        client = %client,
        result = result.as_str(),
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

/// Writes one access line.
pub fn access(
    conn: &Conn,
    method: &Method,
    path: &str,
    host: Option<&str>,
    resp: &Response<Body>,
    took: Duration,
) {
    // Known up front for bodies made here and for upstream answers with a
    // Content-Length; 0 for streamed bodies of unknown length.
    let bytes = hyper::body::Body::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    let id = conn.identity.as_deref();
    tracing::info!(
        target: "access",
        listener = conn.listener.name.as_str(),
        host = host.unwrap_or(""),
        method = method.as_str(),
        path,
        status = resp.status().as_u16(),
        duration_ms = took.as_secs_f64() * 1000.0,
        bytes,
        client = %conn.client,
        subject = id.map_or("", |i| i.cert.subject.as_str()),
        uri_sans = id.map_or(String::new(), |i| i.cert.uri_sans.join(",")).as_str(),
        fingerprint = id.map_or("", |i| i.cert.sha256.as_str()),
        verified = id.is_some_and(|i| i.verified),
        "access"
    );
}
