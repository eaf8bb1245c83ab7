//! Bind, accept, handshake, serve, drain. `check` and `run` share
//! [`prepare`]; `run` binds only after it succeeded.

pub mod admin;
mod conn;
mod guard;
mod handshake;
pub mod idle;
pub mod inventory;
mod plain;
mod reload;
pub mod snapshot;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::UnixTime;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::{self, Config};
use crate::material::{self, MaterialErrors};
use crate::tls::TlsError;

pub use snapshot::Snapshot;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] config::LoadError),
    /// Certificates or trust bundles are unusable.
    #[error("{}", prefix_lines(.config, .errors))]
    Material {
        /// The configuration that names the material.
        config: Box<Config>,
        /// What is wrong.
        errors: MaterialErrors,
    },
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An address could not be bound.
    #[error("listener {listener}: cannot bind {address}{}", privileged(.address, .source))]
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

/// What to do about a port below 1024 refused to an unprivileged user.
fn privileged(address: &SocketAddr, e: &std::io::Error) -> &'static str {
    match (address.port() < 1024, e.kind()) {
        (true, std::io::ErrorKind::PermissionDenied) => {
            " (a port below 1024 needs root or CAP_NET_BIND_SERVICE; unprivileged, listen on 1024 or above and map the port in front, as deploy/kubernetes does)"
        }
        _ => "",
    }
}

/// `FILE:LINE: KEY.PATH: message`, one line per problem, as config errors.
fn prefix_lines(config: &Config, errors: &MaterialErrors) -> String {
    let mut errors: Vec<_> = errors.0.iter().collect();
    // In file order, as config errors are.
    errors.sort_by_key(|e| config.lines.get(&e.path).copied().unwrap_or(u64::MAX));
    errors
        .iter()
        .map(|e| format!("{}: {}: {}", config.locate(&e.path), e.path, e.message()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub use crate::tls::provider;

/// Loads config and material and prepares everything, binding nothing.
pub fn prepare(path: &Path) -> Result<(Config, Snapshot), StartError> {
    let config = config::load(path)?;
    // Hash the sources before reading them: a change that lands while they
    // are read then shows up as one more reload, never as a missed one.
    let digest = reload::digest(&snapshot::watched(&config));
    let provider = provider();
    let material = match material::load(&config, &provider, UnixTime::now()) {
        Ok(m) => m,
        Err(errors) => {
            return Err(StartError::Material {
                config: Box::new(config),
                errors,
            })
        }
    };
    let mut snapshot = Snapshot::build(&config, &material, &provider)?;
    snapshot.digest = digest;
    Ok((config, snapshot))
}

/// Process-wide state: readiness, the current snapshot, and the open
/// connections a CRL may concern.
pub struct State {
    ready: AtomicBool,
    draining: AtomicBool,
    /// The snapshot new connections use.
    pub current: ArcSwap<Snapshot>,
    /// Open connections by client certificate (SPEC §3 revocation).
    pub authenticated: Arc<crate::closer::Registry>,
    /// The ACME certificates of the published snapshot (the ACME manager
    /// follows it).
    pub(crate) acme: watch::Sender<Vec<crate::acme::manager::Wanted>>,
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

    /// Makes `snapshot` the one new connections use; open connections of
    /// the previous one learn of it (SPEC §2: same policy → new routes,
    /// changed policy → drained), and those whose client certificate a CRL
    /// of the new one lists are closed (SPEC §3).
    fn publish(&self, snapshot: Snapshot) {
        snapshot.facts.record_metrics();
        let snapshot = Arc::new(snapshot);
        let old = self.current.swap(snapshot.clone());
        old.retire_into(&snapshot);
        self.acme.send_if_modified(|w| {
            let changed = *w != snapshot.acme;
            if changed {
                *w = snapshot.acme.clone();
            }
            changed
        });
        let closed = self.authenticated.revoke(&snapshot.facts.revoked);
        if closed > 0 {
            tracing::info!(
                connections = closed,
                "closing connections whose client certificate a CRL now revokes"
            );
        }
    }
}

/// SPEC §2 while running: a CRL that enters its last week or passes its
/// nextUpdate is logged at that moment, as start-up and reload log how
/// things stand when they run — a gateway that runs for a CRL's whole life
/// would otherwise never say so in its log.
async fn crl_clock(state: Arc<State>) {
    // Wake at least this often, to see the CRLs of a reloaded snapshot.
    const AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);
    let mut last = UnixTime::now().as_secs();
    loop {
        let next = material::crl::next_turn(&state.current.load().facts.crls, last);
        let wait = next.map_or(AT_MOST, |t| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            std::time::Duration::from_secs(t)
                .saturating_sub(now)
                .min(AT_MOST)
        });
        tokio::time::sleep(wait).await;
        let now = UnixTime::now().as_secs();
        if now > last {
            state.current.load().log_crl_turns(last, now);
            last = now;
        }
    }
}

/// Binds every listener, calls `on_ready` with each listener's name and
/// bound address, serves (reloading on SIGHUP and on changes to the config
/// or any material) until SIGTERM/SIGINT, then drains.
pub async fn run(
    config_path: PathBuf,
    snapshot: Snapshot,
    on_ready: impl FnOnce(&[(String, SocketAddr)]),
) -> Result<(), StartError> {
    // Installed before anything is bound: a SIGTERM sent as soon as the
    // `ready` line appears must drain, not meet the default disposition
    // (which kills the process).
    let stop = StopSignals::install();
    let (drain_tx, drain_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(snapshot.limits.max_connections));
    let max_connections = snapshot.limits.max_connections;
    let admin_address = snapshot.admin;
    let state = Arc::new(State {
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        current: ArcSwap::from_pointee(Snapshot::empty()),
        authenticated: Arc::default(),
        acme: watch::channel(Vec::new()).0,
    });
    let mut bound = reload::Bound::default();
    let sockets = reload::bind_new(&snapshot, &bound).await?;
    if let Some(address) = admin_address {
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
    snapshot.log_findings();
    state.publish(snapshot);
    let addresses = bound.start(sockets, &state, &permits, &drain_rx);
    state.ready.store(true, Ordering::Release);
    tracing::info!("ready");
    on_ready(&addresses);

    let clock = tokio::spawn(crl_clock(state.clone()));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    let acme = tokio::spawn(crate::acme::manager::run(state.acme.subscribe(), {
        let tx = reload_tx.clone();
        move || {
            let _ = tx.send(reload::Trigger::Files);
        }
    }));
    let reloader = tokio::spawn(reload::watch(
        config_path,
        state.clone(),
        bound,
        permits.clone(),
        drain_rx.clone(),
        reload_tx.clone(),
        reload_rx,
    ));
    stop.wait(&reload_tx).await;
    // SPEC §2 shutdownDelay: /readyz fails at once while the listeners keep
    // accepting, so load balancers take the endpoint out before it closes.
    state.draining.store(true, Ordering::Release);
    let delay = state.current.load().limits.shutdown_delay;
    if !delay.is_zero() {
        tracing::info!(
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "not ready; still accepting for limits.shutdownDelay"
        );
        tokio::time::sleep(delay).await;
    }
    reloader.abort();
    clock.abort();
    acme.abort();
    tracing::info!("draining");
    let _ = drain_tx.send(true);
    let drain_timeout = state.current.load().limits.drain_timeout;
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(drain_timeout, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => {
            tracing::warn!("drain timeout (limits.drainTimeout): closing remaining connections")
        }
    }
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, listened to from start-up on.
#[cfg(unix)]
struct StopSignals(
    Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
);

#[cfg(unix)]
impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => StopSignals(Some((term, int, hup))),
            _ => StopSignals(None),
        }
    }

    /// Returns on SIGTERM or SIGINT; SIGHUP asks for a reload.
    async fn wait(self, reload: &tokio::sync::mpsc::UnboundedSender<reload::Trigger>) {
        let Some((mut term, mut int, mut hup)) = self.0 else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => {
                    let _ = reload.send(reload::Trigger::Signal);
                }
            }
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> StopSignals {
        StopSignals
    }

    async fn wait(self, _: &tokio::sync::mpsc::UnboundedSender<reload::Trigger>) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
