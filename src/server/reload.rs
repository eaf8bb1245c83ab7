//! Reload, all or nothing (SPEC §2): on SIGHUP, on a change under a watched
//! directory (notify + debouncer on the *parent* directories — a watch on a
//! file itself goes deaf after the first Kubernetes `..data` swap), or when
//! the periodic content hash of the config and every material source
//! changes. A complete new snapshot is built through the start-up path; on
//! any error the old one keeps serving and the failure is counted. Listeners
//! are diffed by name and configured address: unchanged sockets are never
//! rebound, new ones are bound before the swap, removed ones stop accepting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{watch as wch, Semaphore};

use super::{conn, prepare, Snapshot, StartError, State};
use crate::telemetry::metrics::metrics;

/// How often the content hash is re-checked.
const RECHECK: Duration = Duration::from_secs(2);
/// Quiet time before a burst of file events triggers one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Trigger {
    /// SIGHUP.
    Signal,
    /// A file event under a watched directory.
    Files,
}

struct Running {
    stop: wch::Sender<bool>,
    local: SocketAddr,
}

/// The listening sockets, by (name, configured address).
#[derive(Default)]
pub(super) struct Bound {
    running: HashMap<(String, SocketAddr), Running>,
}

/// A socket bound for a listener that is not running yet.
pub(super) struct NewSocket {
    key: (String, SocketAddr),
    tcp: TcpListener,
}

/// Binds the listeners of `snapshot` that are not bound yet.
pub(super) async fn bind_new(
    snapshot: &Snapshot,
    bound: &Bound,
) -> Result<Vec<NewSocket>, StartError> {
    let mut out = Vec::new();
    for (address, l) in &snapshot.listeners {
        let key = (l.name().to_string(), *address);
        if bound.running.contains_key(&key) {
            continue;
        }
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind {
                listener: key.0.clone(),
                address: *address,
                source,
            })?;
        out.push(NewSocket { key, tcp });
    }
    Ok(out)
}

impl Bound {
    /// Starts accept loops for new sockets; returns every listener's name
    /// and bound address.
    pub(super) fn start(
        &mut self,
        sockets: Vec<NewSocket>,
        state: &Arc<State>,
        permits: &Arc<Semaphore>,
        drain: &wch::Receiver<bool>,
    ) -> Vec<(String, SocketAddr)> {
        for s in sockets {
            let local = s.tcp.local_addr().unwrap_or(s.key.1);
            tracing::info!(listener = s.key.0.as_str(), address = %local, "listening");
            let (stop, stop_rx) = wch::channel(false);
            tokio::spawn(conn::accept_loop(
                s.tcp,
                s.key.0.clone(),
                state.clone(),
                permits.clone(),
                drain.clone(),
                stop_rx,
            ));
            self.running.insert(s.key, Running { stop, local });
        }
        self.running
            .iter()
            .map(|((name, _), r)| (name.clone(), r.local))
            .collect()
    }

    /// Stops the listeners `snapshot` no longer has.
    fn stop_removed(&mut self, snapshot: &Snapshot) {
        let keep: Vec<(String, SocketAddr)> = snapshot
            .listeners
            .iter()
            .map(|(a, l)| (l.name().to_string(), *a))
            .collect();
        self.running.retain(|key, r| {
            let stays = keep.contains(key);
            if !stays {
                tracing::info!(listener = key.0.as_str(), address = %r.local, "listener removed");
                let _ = r.stop.send(true);
            }
            stays
        });
    }
}

/// The files a snapshot depends on, and the directories to watch for them.
fn watch_dirs(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in files {
        // A Secret volume directory is watched itself (kubelet swaps its
        // `..data` link); a file through its parent.
        let d = if f.is_dir() {
            f.clone()
        } else {
            f.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        if !d.as_os_str().is_empty() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// A hash of the contents of every file a snapshot depends on (directory
/// sources: their visible files, read through symlinks).
pub(super) fn digest(files: &[PathBuf]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for f in files {
        ctx.update(f.to_string_lossy().as_bytes());
        if f.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(f)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            names.retain(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".."))
            });
            names.sort();
            for n in names {
                ctx.update(n.to_string_lossy().as_bytes());
                ctx.update(&std::fs::read(&n).unwrap_or_default());
            }
        } else {
            ctx.update(&std::fs::read(f).unwrap_or_default());
        }
    }
    ctx.finish().as_ref().to_vec()
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

fn watcher(files: &[PathBuf], tx: &UnboundedSender<Trigger>) -> Option<Debouncer> {
    let tx = tx.clone();
    let mut d = notify_debouncer_full::new_debouncer(
        DEBOUNCE,
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            if res.is_ok() {
                let _ = tx.send(Trigger::Files);
            }
        },
    )
    .ok()?;
    for dir in watch_dirs(files) {
        if let Err(e) = d.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(directory = %dir.display(), error = %e, "cannot watch; changes are found by the periodic check");
        }
    }
    Some(d)
}

/// How long a failed reload that files triggered waits for the files to
/// change again before it is reported: a certificate and its key replaced
/// one after the other (rename, rename) are inconsistent in between, and
/// that is not a failure (SPEC §2).
const SETTLE: Duration = Duration::from_secs(2);

/// What started a reload (the `trigger` of its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// SIGHUP: the operator asked, and a failure is reported at once.
    Signal,
    /// A watched file changed (inotify).
    FileChange,
    /// The periodic check found other content.
    ContentChange,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Signal => "SIGHUP",
            Cause::FileChange => "file change",
            Cause::ContentChange => "content change",
        }
    }
}

/// Why a reload did not take effect (the previous snapshot keeps serving).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    /// The new configuration or material could not be prepared, or a new
    /// listener could not be bound.
    #[error(transparent)]
    Prepare(#[from] StartError),
    /// The preparing task did not finish (it panicked or was cancelled).
    #[error("the reload task did not finish")]
    Task(#[from] tokio::task::JoinError),
    /// An ACME certificate that is serving could not be read again: it keeps
    /// serving rather than its host entries refusing every handshake.
    #[error("certificates.{name}: the stored ACME certificate is no longer usable ({why}); the one loaded before keeps serving")]
    AcmeUnusable {
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
}

/// Builds a new snapshot and swaps it in; on any error the old one keeps
/// serving and the error is returned (the caller reports it).
async fn reload(
    path: &Path,
    state: &Arc<State>,
    bound: &mut Bound,
    permits: &Arc<Semaphore>,
    drain: &wch::Receiver<bool>,
    why: Cause,
) -> Result<(), ReloadError> {
    let p = path.to_path_buf();
    let (_, snapshot) = tokio::task::spawn_blocking(move || prepare(&p)).await??;
    {
        let current = state.current.load();
        let serving = |name: &str| {
            current.acme.iter().any(|w| w.name == name)
                && !current.pending.iter().any(|(n, _)| n == name)
        };
        if let Some((name, why)) = snapshot.pending.iter().find(|(n, _)| serving(n)) {
            return Err(ReloadError::AcmeUnusable {
                name: name.clone(),
                why: why.clone(),
            });
        }
    }
    let sockets = bind_new(&snapshot, bound).await?;
    snapshot.log_findings();
    bound.stop_removed(&snapshot);
    state.publish(snapshot);
    bound.start(sockets, state, permits, drain);
    metrics().reloads.inc();
    tracing::info!(trigger = why.as_str(), "reloaded");
    Ok(())
}

fn report_failure(why: Cause, error: &ReloadError) {
    metrics().reload_failures.inc();
    tracing::error!(
        trigger = why.as_str(),
        error = crate::words::error_chain(error),
        "reload failed; the previous configuration keeps serving"
    );
}

/// Runs the reload triggers until the process stops.
pub(super) async fn watch(
    path: PathBuf,
    state: Arc<State>,
    mut bound: Bound,
    permits: Arc<Semaphore>,
    drain: wch::Receiver<bool>,
    tx: UnboundedSender<Trigger>,
    mut rx: UnboundedReceiver<Trigger>,
) {
    let mut files = state.current.load().watched.clone();
    // What was actually loaded, not what is on disk now.
    let mut last = state.current.load().digest.clone();
    let mut _watcher = watcher(&files, &tx);
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A failure that files triggered, held back for SETTLE in case the
    // files are still being replaced: (trigger, error, report at).
    let mut pending: Option<(Cause, ReloadError, tokio::time::Instant)> = None;
    loop {
        let report_at = pending.as_ref().map(|p| p.2);
        let why = tokio::select! {
            t = rx.recv() => match t {
                Some(Trigger::Signal) => Cause::Signal,
                Some(Trigger::Files) => Cause::FileChange,
                None => return,
            },
            _ = tick.tick() => {
                let now = digest(&files);
                if now == last {
                    continue;
                }
                Cause::ContentChange
            }
            _ = tokio::time::sleep_until(report_at.unwrap_or_else(tokio::time::Instant::now)), if report_at.is_some() => {
                if let Some((why, error, _)) = pending.take() {
                    report_failure(why, &error);
                }
                continue;
            }
        };
        // Coalesce a burst of triggers into this one reload.
        while rx.try_recv().is_ok() {}
        let now = digest(&files);
        if why == Cause::FileChange && now == last {
            continue;
        }
        last = now;
        match reload(&path, &state, &mut bound, &permits, &drain, why).await {
            Ok(()) => {
                // The half-done update completed: nothing to report.
                pending = None;
                let current = state.current.load();
                last = current.digest.clone();
                if current.watched != files {
                    files = current.watched.clone();
                    _watcher = watcher(&files, &tx);
                }
            }
            // The operator asked: answer at once.
            Err(error) if why == Cause::Signal => report_failure(why, &error),
            Err(error) => {
                let at = pending
                    .take()
                    .map_or_else(|| tokio::time::Instant::now() + SETTLE, |p| p.2);
                pending = Some((why, error, at));
            }
        }
    }
}
