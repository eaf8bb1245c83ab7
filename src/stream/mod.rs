//! Streams (SPEC §2 `tls`, `tcp`, `passthrough`, host `passthrough`):
//! terminate TLS and splice to TCP, originate (mutual) TLS for plain TCP
//! clients, and route raw TLS by SNI by replaying the ClientHello bytes.

pub(crate) mod build;
pub(crate) mod proxy_v2;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::identity::authz::{self, Allow, Decision};
use crate::identity::PeerIdentity;
use crate::tls::upstream::UpstreamTls;
use crate::tls::{HostTls, SniTable};

/// Buffer size of each direction of a splice (backpressure: never more
/// than this is held per direction).
pub(crate) const SPLICE_BUFFER: usize = 64 * 1024;

/// Byte streams the gateway can splice.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why an upstream could not be reached (the `kind` label of
/// `portcullis_upstream_errors_total`).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing listens there.
    #[error("connection refused")]
    Refused,
    /// No answer within `limits.connectTimeout`.
    #[error("connect timeout")]
    Timeout,
    /// The TLS handshake with the upstream failed.
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    /// Anything else.
    #[error("cannot connect")]
    Io(#[source] std::io::Error),
}

impl UpstreamError {
    /// The metric label.
    pub fn kind(&self) -> crate::tls::UpstreamFailure {
        use crate::tls::UpstreamFailure as F;
        match self {
            UpstreamError::Refused => F::Refused,
            UpstreamError::Timeout => F::Timeout,
            UpstreamError::Tls(_) => F::Tls,
            UpstreamError::Io(_) => F::Io,
        }
    }
}

/// A TCP upstream, ready to connect to.
#[derive(Debug)]
pub struct TcpUpstream {
    /// Its name.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// TLS origination, if any.
    pub tls: Option<Arc<UpstreamTls>>,
    /// `limits.connectTimeout`.
    pub connect_timeout: Duration,
}

impl TcpUpstream {
    /// Opens a plain TCP connection.
    pub async fn connect_tcp(&self) -> Result<TcpStream, UpstreamError> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(UpstreamError::Refused)
            }
            Ok(Err(e)) => Err(UpstreamError::Io(e)),
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
        }
    }

    /// Connects, originating TLS when configured.
    pub async fn connect(&self) -> Result<Box<dyn Io>, UpstreamError> {
        self.connect_negotiated().await.map(|(io, _)| io)
    }

    /// Connects like [`TcpUpstream::connect`], and says whether TLS
    /// negotiated ALPN `h2`.
    pub async fn connect_negotiated(&self) -> Result<(Box<dyn Io>, bool), UpstreamError> {
        let tcp = self.connect_tcp().await?;
        match &self.tls {
            None => Ok((Box::new(tcp), false)),
            Some(t) => {
                let connector = tokio_rustls::TlsConnector::from(t.config.clone());
                match tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(t.server_name.clone(), tcp),
                )
                .await
                {
                    Err(_) => Err(UpstreamError::Timeout),
                    Ok(Err(e)) => Err(UpstreamError::Tls(e)),
                    Ok(Ok(s)) => {
                        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                        Ok((Box::new(s), h2))
                    }
                }
            }
        }
    }

    /// Logs and counts a failure to reach it.
    pub fn log_error(&self, listener: &str, client: SocketAddr, e: &UpstreamError) {
        crate::telemetry::metrics::upstream_error(&self.name, &self.address, e.kind().as_str());
        tracing::warn!(
            listener,
            upstream = self.name.as_str(),
            client = %client,
            kind = e.kind().as_str(),
            error = crate::words::error_chain(e),
            "upstream connection failed"
        );
    }
}

/// Copies both ways until both sides are done, with bounded buffers;
/// half-close is passed on (EOF from one side shuts down writing to the
/// other). Returns bytes (client→upstream, upstream→client).
pub(crate) async fn splice<A: Io + ?Sized, B: Io + ?Sized>(a: &mut A, b: &mut B) -> (u64, u64) {
    tokio::io::copy_bidirectional_with_sizes(a, b, SPLICE_BUFFER, SPLICE_BUFFER)
        .await
        .unwrap_or((0, 0))
}

/// A `tls` listener at run time.
#[derive(Debug)]
pub struct TlsListener {
    /// Name.
    pub name: String,
    /// Name as a metric label.
    pub label: Arc<str>,
    /// Its TLS configuration and client verifier.
    pub tls: HostTls,
    /// `clientAuth.allow`.
    pub allow: Option<Allow>,
    /// Where bytes go.
    pub upstream: Arc<TcpUpstream>,
    /// Send a PROXY v2 header first.
    pub proxy_protocol: bool,
    /// What replaced this listener at a reload (SPEC §2).
    pub succession: crate::closer::Succession<TlsListener>,
}

impl crate::closer::Successive for TlsListener {
    fn succession(&self) -> &crate::closer::Succession<Self> {
        &self.succession
    }
}

/// A `tcp` listener at run time.
#[derive(Debug)]
pub struct TcpListener {
    /// Name.
    pub name: String,
    /// Name as a metric label.
    pub label: Arc<str>,
    /// Where bytes go.
    pub upstream: Arc<TcpUpstream>,
}

/// A `passthrough` listener at run time.
#[derive(Debug)]
pub struct Passthrough {
    /// Name.
    pub name: String,
    /// Name as a metric label.
    pub label: Arc<str>,
    /// SNI → index into `upstreams`.
    pub sni: SniTable,
    /// Upstreams by route.
    pub upstreams: Vec<Arc<TcpUpstream>>,
    /// For no SNI or an unknown one.
    pub default_upstream: Option<Arc<TcpUpstream>>,
}

impl TlsListener {
    /// Serves one connection whose handshake completed.
    pub async fn serve<S: Io>(
        &self,
        mut tls: tokio_rustls::server::TlsStream<S>,
        client: SocketAddr,
        local: SocketAddr,
    ) {
        let conn = tls.get_ref().1;
        let identity = self.tls.peer_identity(conn);
        // SPEC §3: an unmet allow closes the connection after the handshake.
        if let Some(rule) = &self.allow {
            let d = authz::decide(rule, identity.as_ref());
            if d != Decision::Allow {
                // SPEC §3: one refusal line, like a refused handshake.
                crate::telemetry::metrics::handshake(
                    &self.label,
                    crate::tls::HandshakeResult::Denied.as_str(),
                );
                let rejection = identity.as_ref().map(|i| crate::telemetry::Rejection {
                    subject: i.cert.subject.clone(),
                    issuer: i.cert.issuer.clone(),
                    fingerprint: i.cert.sha256.clone(),
                    reason: String::new(),
                    crl: None,
                });
                let reason = match &identity {
                    Some(i) => format!(
                        "the client certificate {} is not admitted by this listener's clientAuth.allow",
                        i.cert.subject
                    ),
                    None => "clientAuth.allow admits only clients with a certificate, and none was presented".to_string(),
                };
                crate::telemetry::handshake_refused(
                    &self.name,
                    client,
                    crate::tls::HandshakeResult::Denied.as_str(),
                    conn.server_name(),
                    &reason,
                    rejection.as_ref(),
                );
                let _ = tls.shutdown().await;
                return;
            }
        }
        crate::telemetry::metrics::handshake(&self.label, crate::tls::HandshakeResult::Ok.as_str());
        // The header is encoded whole before the upstream is dialled: an
        // upstream never sees part of one, and one that cannot be made
        // closes the connection rather than forward it without its identity.
        let header = if self.proxy_protocol {
            match proxy_v2::header(client, local, conn, identity.as_ref()) {
                Ok(h) => {
                    if h.client_cert_omitted {
                        tracing::warn!(
                            listener = self.name.as_str(),
                            client = %client,
                            subject = identity.as_ref().map_or("", |i| i.cert.subject.as_str()),
                            "PROXY v2 header sent without the client certificate TLV: it does not fit in 64 KiB"
                        );
                    }
                    Some(h.bytes)
                }
                Err(e) => {
                    tracing::warn!(
                        listener = self.name.as_str(),
                        client = %client,
                        subject = identity.as_ref().map_or("", |i| i.cert.subject.as_str()),
                        error = %crate::words::error_chain(&e),
                        "connection closed: no PROXY v2 header could be made for it"
                    );
                    let _ = tls.shutdown().await;
                    return;
                }
            }
        } else {
            None
        };
        let mut up = match self.upstream.connect().await {
            Ok(u) => u,
            Err(e) => {
                self.upstream.log_error(&self.name, client, &e);
                return;
            }
        };
        if let Some(h) = header {
            if up.write_all(&h).await.is_err() {
                return;
            }
        }
        let (sent, received) = splice(&mut tls, &mut up).await;
        log_stream(
            &self.name,
            client,
            &self.upstream.name,
            identity.as_ref(),
            sent,
            received,
        );
    }
}

/// One line per stream connection (SPEC §7).
pub(crate) fn log_stream(
    listener: &str,
    client: SocketAddr,
    upstream: &str,
    id: Option<&PeerIdentity>,
    sent: u64,
    received: u64,
) {
    tracing::info!(
        target: "access",
        listener,
        client = %client,
        upstream,
        bytes_in = sent,
        bytes_out = received,
        subject = id.map_or("", |i| i.cert.subject.as_str()),
        uri_sans = id.map_or(String::new(), |i| i.cert.uri_sans.join(",")).as_str(),
        fingerprint = id.map_or("", |i| i.cert.sha256.as_str()),
        "stream closed"
    );
}

impl TcpListener {
    /// Serves one plain TCP connection.
    pub async fn serve(&self, mut sock: TcpStream, client: SocketAddr) {
        let mut up = match self.upstream.connect().await {
            Ok(u) => u,
            Err(e) => {
                self.upstream.log_error(&self.name, client, &e);
                return;
            }
        };
        let (sent, received) = splice(&mut sock, &mut up).await;
        log_stream(
            &self.name,
            client,
            &self.upstream.name,
            None,
            sent,
            received,
        );
    }
}

/// Replays `hello` (the bytes read so far) to `upstream`, then splices.
pub(crate) async fn replay(
    listener: &str,
    upstream: &TcpUpstream,
    mut sock: TcpStream,
    hello: &[u8],
    client: SocketAddr,
) {
    let mut up = match upstream.connect_tcp().await {
        Ok(u) => u,
        Err(e) => {
            upstream.log_error(listener, client, &e);
            return;
        }
    };
    if up.write_all(hello).await.is_err() {
        return;
    }
    let (sent, received) = splice(&mut sock, &mut up).await;
    log_stream(
        listener,
        client,
        &upstream.name,
        None,
        sent + hello.len() as u64,
        received,
    );
}

impl Passthrough {
    /// The upstream for an SNI (or none).
    pub fn route(&self, sni: Option<&str>) -> Option<&Arc<TcpUpstream>> {
        // No catch-all lookup without SNI unless a "*" route exists; then the default.
        self.sni
            .lookup(sni)
            .and_then(|i| self.upstreams.get(i))
            .or(self.default_upstream.as_ref())
    }
}
