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
        let mut tls = rustls::ClientConfig::builder_with_provider(crate::server::provider())
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
        Ok(BytesResponse::from(resp))
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
