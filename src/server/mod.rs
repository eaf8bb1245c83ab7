//! Bind, accept, handshake, serve, drain. `check` and `run` share
//! [`prepare`]; `run` binds only after it succeeded.

pub mod admin;
pub mod idle;
pub mod snapshot;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::UnixTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::server::TlsStream;

use crate::config::{self, Config};
use crate::http::{self, Conn, TlsInfo};
use crate::material::{self, MaterialErrors};
use crate::telemetry;
use crate::tls::{HandshakeResult, TlsError};

pub use snapshot::Snapshot;

/// How long a drain waits for open connections before exiting anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] config::LoadError),
    /// Certificates or trust bundles are unusable.
    #[error("{}", prefix_lines(.file, .errors))]
    Material {
        /// The config file.
        file: String,
        /// What is wrong.
        errors: MaterialErrors,
    },
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An address could not be bound.
    #[error("listener {listener}: cannot bind {address}")]
    Bind {
        /// Listener name.
        listener: String,
        /// Address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn prefix_lines(file: &str, errors: &MaterialErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| format!("{file}: {}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crypto provider used everywhere (aws-lc-rs). It is also installed as
/// the process default at start-up.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads config and material and prepares everything, binding nothing.
pub fn prepare(path: &Path) -> Result<(Config, Snapshot), StartError> {
    let config = config::load(path)?;
    let provider = provider();
    let material = material::load(&config, &provider, UnixTime::now()).map_err(|errors| {
        StartError::Material {
            file: path.display().to_string(),
            errors,
        }
    })?;
    let snapshot = Snapshot::build(&config, &material, &provider)?;
    Ok((config, snapshot))
}

/// Process-wide state shared with the admin endpoint.
#[derive(Debug, Default)]
pub struct State {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl State {
    /// Every listener bound and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_draining()
    }

    /// A drain has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Binds every listener, calls `on_ready` with each listener's name and
/// bound address, serves until SIGTERM/SIGINT, then drains.
pub async fn run(
    snapshot: Snapshot,
    on_ready: impl FnOnce(&[(String, SocketAddr)]),
) -> Result<(), StartError> {
    let state = Arc::new(State::default());
    let (drain_tx, drain_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(snapshot.limits.max_connections));

    let mut bound = Vec::new();
    for (address, listener) in &snapshot.listeners {
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind {
                listener: listener.name.clone(),
                address: *address,
                source,
            })?;
        bound.push((tcp, listener.clone()));
    }
    if let Some(address) = snapshot.admin {
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind {
                listener: "admin".into(),
                address,
                source,
            })?;
        let local = tcp.local_addr().unwrap_or(address);
        tracing::info!(listener = "admin", address = %local, "admin listening");
        tokio::spawn(admin::serve(tcp, state.clone()));
    }
    let mut addresses = Vec::new();
    for (tcp, listener) in bound {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        tracing::info!(listener = listener.name.as_str(), address = %local, "listening");
        addresses.push((listener.name.clone(), local));
        tokio::spawn(accept_loop(
            tcp,
            listener,
            permits.clone(),
            drain_rx.clone(),
        ));
    }
    state.ready.store(true, Ordering::Release);
    tracing::info!("ready");
    on_ready(&addresses);

    wait_for_stop().await;
    state.draining.store(true, Ordering::Release);
    tracing::info!("draining");
    let _ = drain_tx.send(true);
    let all = u32::try_from(snapshot.limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => tracing::warn!("SIGHUP: reload is not supported yet; restart to apply changes"),
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn accept_loop(
    tcp: TcpListener,
    listener: Arc<http::Listener>,
    permits: Arc<Semaphore>,
    mut drain: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = tcp.accept() => r,
            _ = drain.changed() => return,
        };
        let (sock, client) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = listener.name.as_str(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                listener = listener.name.as_str(),
                client = %client,
                "connection refused: limits.maxConnections reached"
            );
            drop(sock);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let listener = listener.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            connection(sock, client, listener, drain).await;
            drop(permit);
        });
    }
}

/// The fatal `unrecognized_name` alert (RFC 6066 §3), sent in the clear
/// before any handshake key exists: a TLS record of type alert (21),
/// version 1.2, length 2, level fatal (2), description 112.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// A handshake that did not complete.
struct Refused {
    result: HandshakeResult,
    sni: Option<String>,
    detail: String,
}

async fn handshake(
    mut sock: TcpStream,
    listener: &http::Listener,
) -> Result<(TlsStream<TcpStream>, usize, Option<String>), Refused> {
    let refused = |result, sni: Option<String>, detail: String| Refused {
        result,
        sni,
        detail,
    };
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buf = [0u8; 4096];
    // Read until a whole ClientHello has arrived, however many records or
    // segments it was split into.
    let accepted = loop {
        let n = sock
            .read(&mut buf)
            .await
            .map_err(|e| refused(HandshakeResult::Error, None, e.to_string()))?;
        if n == 0 {
            return Err(refused(
                HandshakeResult::Error,
                None,
                "closed before ClientHello".into(),
            ));
        }
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            acceptor
                .read_tls(&mut rd)
                .map_err(|e| refused(HandshakeResult::Error, None, e.to_string()))?;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(a)) => break a,
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = sock.write_all(&out).await;
                return Err(refused(HandshakeResult::Error, None, e.to_string()));
            }
        }
    };
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    let Some(index) = listener.sni.lookup(sni.as_deref()) else {
        // SPEC §2: no SNI or an unknown one, and no "*" entry: refuse.
        let _ = sock.write_all(&UNRECOGNIZED_NAME_ALERT).await;
        let detail = match &sni {
            Some(_) => "no host entry serves this server name".to_string(),
            None => "client sent no server name (SNI) and no host entry is \"*\"".to_string(),
        };
        return Err(refused(HandshakeResult::Denied, sni, detail));
    };
    let config = listener.hosts[index].tls.config.clone();
    match tokio_rustls::StartHandshake::from_parts(accepted, sock)
        .into_stream(config)
        .into_fallible()
        .await
    {
        Ok(stream) => Ok((stream, index, sni)),
        Err((e, sock)) => {
            lingering_close(sock).await;
            Err(refused(HandshakeResult::from_io(&e), sni, e.to_string()))
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

async fn connection(
    sock: TcpStream,
    client: SocketAddr,
    listener: Arc<http::Listener>,
    mut drain: watch::Receiver<bool>,
) {
    let limits = &listener.limits;
    let (stream, host, sni) =
        match tokio::time::timeout(limits.handshake_timeout, handshake(sock, &listener)).await {
            Ok(Ok(x)) => x,
            Ok(Err(r)) => {
                telemetry::handshake_refused(
                    &listener.name,
                    client,
                    r.result,
                    r.sni.as_deref(),
                    None,
                    None,
                    &r.detail,
                );
                return;
            }
            Err(_) => {
                telemetry::handshake_refused(
                    &listener.name,
                    client,
                    HandshakeResult::Error,
                    None,
                    None,
                    None,
                    "handshake timeout (limits.handshakeTimeout)",
                );
                return;
            }
        };
    let (_, tls) = stream.get_ref();
    let identity = listener.hosts[host].tls.peer_identity(tls).map(Arc::new);
    if identity.is_none() && tls.peer_certificates().is_some_and(|c| !c.is_empty()) {
        // Fail closed: a chain webpki accepted but whose names we cannot
        // read (an exotic string type) must not pass as anonymous.
        telemetry::handshake_refused(
            &listener.name,
            client,
            HandshakeResult::Error,
            sni.as_deref(),
            None,
            None,
            "the client certificate's names could not be read",
        );
        return;
    }
    let info = TlsInfo {
        sni,
        version: tls.protocol_version().and_then(crate::tls::version_name),
        cipher: tls
            .negotiated_cipher_suite()
            .and_then(|c| crate::tls::cipher_name(c.suite())),
        alpn: tls
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
    };
    let forwarded = listener.hosts[host].forward.prepare(
        identity.as_deref(),
        &crate::forward::ConnFacts {
            sni: info.sni.as_deref(),
            version: info.version,
            cipher: info.cipher,
        },
    );
    let conn = Arc::new(Conn {
        listener: listener.clone(),
        host,
        client,
        identity,
        tls: info,
        forwarded,
    });
    let activity = idle::Activity::new();
    let io = hyper_util::rt::TokioIo::new(idle::Tracked::new(stream, activity.clone()));
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            let in_flight = activity.request();
            async move {
                let r = conn.handle(req).await;
                drop(in_flight);
                r
            }
        })
    };
    let served = listener.server.serve_connection_with_upgrades(io, svc);
    tokio::pin!(served);
    let idle_timeout = limits.idle_timeout;
    let mut closing = *drain.borrow();
    if closing {
        served.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = served.as_mut() => break,
            r = drain.changed(), if !closing => {
                if r.is_ok() {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep(idle_timeout.saturating_sub(activity.idle_for())), if !closing => {
                if activity.idle_for() >= idle_timeout {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
