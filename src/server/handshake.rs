//! The handshake phase of a TLS connection: reading the whole ClientHello,
//! finishing the handshake with the chosen config, and logging a refusal on
//! one line (SPEC §3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::telemetry;
use crate::telemetry::metrics;
use crate::tls::rejection::{self, Rejection};
use crate::tls::HandshakeResult;

/// The fatal `unrecognized_name` alert (RFC 6066 §3), sent in the clear
/// before any handshake key exists: a TLS record of type alert (21),
/// version 1.2, length 2, level fatal (2), description 112.
pub(super) const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// The largest ClientHello kept for replay (passthrough).
const MAX_HELLO: usize = 64 * 1024;

/// A handshake that did not complete.
pub(super) struct Refused {
    result: HandshakeResult,
    sni: Option<String>,
    detail: String,
    /// The refused client certificate and the reason in words.
    rejection: Option<Rejection>,
}

pub(super) fn refused(
    result: HandshakeResult,
    sni: Option<String>,
    detail: impl Into<String>,
) -> Refused {
    Refused {
        result,
        sni,
        detail: detail.into(),
        rejection: None,
    }
}

/// Reads until a whole ClientHello has arrived, however many records or
/// segments it was split into. With `record`, the bytes are kept for replay.
pub(super) async fn read_hello(
    sock: &mut TcpStream,
    record: bool,
) -> Result<(rustls::server::Accepted, Vec<u8>), Refused> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buf = [0u8; 4096];
    let mut kept = Vec::new();
    loop {
        let n = sock.read(&mut buf).await.map_err(|_| {
            refused(
                HandshakeResult::Error,
                None,
                "the connection failed before the ClientHello arrived",
            )
        })?;
        if n == 0 {
            return Err(refused(
                HandshakeResult::Error,
                None,
                "closed before ClientHello",
            ));
        }
        if record {
            if kept.len() + n > MAX_HELLO {
                return Err(refused(
                    HandshakeResult::Error,
                    None,
                    "ClientHello too large",
                ));
            }
            kept.extend_from_slice(&buf[..n]);
        }
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            acceptor.read_tls(&mut rd).map_err(|_| {
                refused(
                    HandshakeResult::Error,
                    None,
                    "the client's first bytes are not a TLS record",
                )
            })?;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(a)) => return Ok((a, kept)),
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = sock.write_all(&out).await;
                let _ = e;
                return Err(refused(
                    HandshakeResult::Error,
                    None,
                    "the client's first message is not a valid TLS ClientHello",
                ));
            }
        }
    }
}

/// Closes a refused connection so that the client reads the alert.
///
/// In TLS 1.3 the client finishes its side of the handshake before the
/// server judges its certificate, and usually sends its request at once.
/// Closing a socket with that request unread makes the kernel send a reset,
/// and the client may then never see the alert that says why it was
/// refused. So: send FIN after the alert, read and discard what the client
/// still sends (bounded in time and size), then close.
async fn lingering_close(mut sock: TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DISCARD: usize = 64 * 1024;
    let _ = sock.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = [0u8; 4096];
        let mut discarded = 0;
        while discarded < MAX_DISCARD {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

/// Completes a server handshake with `config`.
pub(super) async fn finish(
    accepted: rustls::server::Accepted,
    sock: TcpStream,
    config: Arc<rustls::ServerConfig>,
    sni: Option<String>,
) -> Result<TlsStream<TcpStream>, Refused> {
    // A note left by a handshake that failed elsewhere on this thread is
    // not this one's.
    let _ = rejection::take();
    match tokio_rustls::StartHandshake::from_parts(accepted, sock)
        .into_stream(config)
        .into_fallible()
        .await
    {
        Ok(stream) => Ok(stream),
        Err((e, sock)) => {
            // Taken before the next await: see `tls::rejection`.
            let rejection = rejection::take();
            lingering_close(sock).await;
            let result = HandshakeResult::from_io(&e);
            Err(Refused {
                result,
                sni,
                detail: rejection
                    .as_ref()
                    .map_or_else(|| result.words(&e).to_string(), |r| r.reason.clone()),
                rejection,
            })
        }
    }
}

pub(super) fn log_refused(listener: &Arc<str>, client: SocketAddr, r: &Refused) {
    metrics::handshake(listener, r.result.as_str());
    telemetry::handshake_refused(
        listener,
        client,
        r.result.as_str(),
        r.sni.as_deref(),
        &r.detail,
        r.rejection.as_ref(),
    );
}

pub(super) fn log_timeout(listener: &Arc<str>, client: SocketAddr) {
    let r = refused(
        HandshakeResult::Error,
        None,
        "handshake timeout (limits.handshakeTimeout)",
    );
    log_refused(listener, client, &r);
}
