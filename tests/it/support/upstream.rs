//! A real HTTP upstream (hyper) that records every request it receives, so
//! a test can prove the gateway did — or did not — reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The request's trailers (`/read…` paths only: the body is read).
    pub trailers: Vec<(String, String)>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
}

fn pairs(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A TCP server on 127.0.0.1 that runs `serve` for each connection, on a
/// runtime of its own (returned: the server lives as long as it does).
pub fn tcp_server<F, Fut>(serve: F) -> (SocketAddr, tokio::runtime::Runtime)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tcp_server_on("127.0.0.1:0", serve)
}

/// [`tcp_server`] on a given address.
pub fn tcp_server_on<F, Fut>(bind: &str, serve: F) -> (SocketAddr, tokio::runtime::Runtime)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind(bind)).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock));
        }
    });
    (addr, rt)
}

/// What a recording upstream speaks.
#[derive(Clone)]
enum Speaks {
    Http1,
    H2c,
    Tls(Arc<rustls::ServerConfig>),
}

/// A recording upstream on 127.0.0.1.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<Condvar>,
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_on("127.0.0.1:0")
    }

    /// A recording upstream bound to `bind` (an endpoint that comes back).
    pub fn start_on(bind: &str) -> Upstream {
        Upstream::serve(bind, Speaks::Http1)
    }

    /// A recording upstream over TLS with `leaf`'s certificate, offering
    /// `alpn` and speaking whatever it negotiates (HTTP/1.1 or HTTP/2).
    pub fn start_tls(leaf: &super::Leaf, alpn: &[&str]) -> Upstream {
        Upstream::start_tls_on("127.0.0.1:0", leaf, alpn)
    }

    /// [`Upstream::start_tls`] bound to `bind`.
    pub fn start_tls_on(bind: &str, leaf: &super::Leaf, alpn: &[&str]) -> Upstream {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Upstream::serve(bind, Speaks::Tls(Arc::new(config)))
    }

    /// A recording upstream that speaks HTTP/2 in plaintext (h2c, prior
    /// knowledge), as gRPC services do.
    pub fn start_h2c() -> Upstream {
        Upstream::serve("127.0.0.1:0", Speaks::H2c)
    }

    fn serve(bind: &str, speaks: Speaks) -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let arrived = Arc::new(Condvar::new());
        let s = seen.clone();
        let a = arrived.clone();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let counted = accepted.clone();
        let (addr, rt) = tcp_server_on(bind, move |sock| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let s = s.clone();
            let a = a.clone();
            let speaks = speaks.clone();
            async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let s = s.clone();
                    let a = a.clone();
                    async move {
                        let slow = req.uri().path().starts_with("/slow");
                        // `/read…`: the whole request body is read before
                        // the answer (as a server that needs it does).
                        let read = req.uri().path().starts_with("/read");
                        let mut seen = Seen {
                            method: req.method().to_string(),
                            uri: req.uri().to_string(),
                            headers: pairs(req.headers()),
                            trailers: Vec::new(),
                            version: format!("{:?}", req.version()),
                        };
                        if read {
                            if let Ok(body) =
                                http_body_util::BodyExt::collect(req.into_body()).await
                            {
                                seen.trailers = body.trailers().map(pairs).unwrap_or_default();
                            }
                        }
                        s.lock().unwrap().push(seen);
                        a.notify_all();
                        if slow {
                            // A slow upstream, for the drain test.
                            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"from upstream"),
                        )))
                    }
                });
                match speaks {
                    Speaks::H2c => {
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                    }
                    Speaks::Http1 => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(sock), svc)
                            .await;
                    }
                    Speaks::Tls(config) => {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(sock).await
                        else {
                            return;
                        };
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                    }
                }
            }
        });
        Upstream {
            addr,
            seen,
            arrived,
            accepted,
            _rt: rt,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (up to the test timeout) until `n` requests have arrived.
    pub fn wait_for(&self, n: usize) {
        let g = self.seen.lock().unwrap();
        let (g, t) = self
            .arrived
            .wait_timeout_while(g, crate::support::gateway::WAIT, |v| v.len() < n)
            .unwrap();
        assert!(
            !t.timed_out(),
            "only {} requests reached the upstream",
            g.len()
        );
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
