//! The HTTPS client the ACME library talks to the directory through: one
//! TLS connection per request (an order is a dozen requests, minutes or
//! months apart), verified against the `trustBundle` of the `acme` block or
//! the system roots, with the same TLS stack as everything else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Request, Uri};
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;

/// Connecting, the TLS handshake and the whole exchange of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read (a certificate chain is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// Why a request to the directory failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Not an `https://HOST[:PORT]/…` URL.
    #[error("the ACME server gave a URL that is not https: {0}")]
    NotHttps(String),
    /// Connecting.
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange took longer than [`REQUEST_TIMEOUT`].
    #[error("no answer from {0} within 30s")]
    Timeout(String),
    /// An answer over [`MAX_BODY`], or one that broke off.
    #[error("the answer from {0} is over 1 MiB or broke off")]
    TooLarge(String),
    /// HTTP on the connection.
    #[error("HTTP exchange with {authority}")]
    Http {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
}

/// An [`instant_acme::HttpClient`] on rustls.
pub(crate) struct Client {
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    /// A client that trusts `roots`.
    pub(crate) fn new(roots: RootCertStore) -> Result<Self, rustls::Error> {
        let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client { tls: Arc::new(tls) })
    }

    async fn send(
        tls: Arc<rustls::ClientConfig>,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Result<BytesResponse, HttpError> {
        let uri = req.uri().clone();
        let (Some("https"), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(HttpError::NotHttps(uri.to_string()));
        };
        let port = uri.port_u16().unwrap_or(443);
        // An IPv6 literal is written in brackets in a URL, not in a name.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let authority = format!("{host}:{port}");
        let connect_err = |source| HttpError::Connect {
            authority: authority.clone(),
            source,
        };
        let name = ServerName::try_from(bare.to_string()).map_err(|_| {
            connect_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a DNS name or IP address",
            ))
        })?;
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(connect_err)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(connect_err)?;
        let http_err = |source| HttpError::Http {
            authority: authority.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (mut parts, body) = req.into_parts();
        if let Some(a) = uri.authority() {
            if let Ok(v) = http::HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }
        parts.uri = uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let resp = sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(http_err)?;
        // Read whole, inside the exchange's timeout and bounded: the
        // library would read it later with neither.
        let (mut parts, body) = resp.into_parts();
        let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_BODY))
            .await
            .map_err(|_| HttpError::TooLarge(authority.clone()))?
            .to_bytes();
        // A Retry-After in seconds beyond a day is read as a day (the
        // library adds it to the clock unchecked).
        if let Some(v) = parts.headers.get(http::header::RETRY_AFTER) {
            if v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|s| s > 86_400)
            {
                parts.headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("86400"),
                );
            }
        }
        Ok(BytesResponse::from(http::Response::from_parts(
            parts,
            http_body_util::Full::new(body),
        )))
    }
}

impl instant_acme::HttpClient for Client {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let target = req.uri().to_string();
            match tokio::time::timeout(REQUEST_TIMEOUT, Self::send(tls, req)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Other(Box::new(HttpError::Timeout(
                    target,
                )))),
            }
        })
    }
}
