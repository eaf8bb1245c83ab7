//! Bind, accept, handshake, serve, drain. `check` and `run` share
//! [`prepare`]; `run` binds only after it succeeded.

pub mod admin;
mod conn;
pub mod idle;
pub mod snapshot;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::UnixTime;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::{self, Config};
use crate::material::{self, MaterialErrors};
use crate::tls::TlsError;

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
    let limits = Arc::new(snapshot.limits.clone());

    let mut bound = Vec::new();
    for (address, listener) in &snapshot.listeners {
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind {
                listener: listener.name().to_string(),
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
        tracing::info!(listener = listener.name(), address = %local, "listening");
        addresses.push((listener.name().to_string(), local));
        tokio::spawn(conn::accept_loop(
            tcp,
            listener,
            limits.clone(),
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
