//! Keeps every ACME certificate of the current configuration obtained and
//! renewed: one task per certificate, restarted when a reload changes its
//! block. A task orders when the stored certificate is missing, unusable or
//! due (`renewBefore`, default a third of its lifetime left), writes it to
//! `storageDir`, and asks for a reload, which swaps it in like any changed
//! certificate file. Failures are logged (with the problem document's
//! `type` and `detail`), counted, and retried with backoff while the old
//! certificate keeps serving. Several replicas may share `storageDir`: a
//! replica that finds a valid certificate there serves it without ordering.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;

use crate::config::model::AcmeSource;
use crate::identity::CertSummary;
use crate::server::State;
use crate::telemetry::metrics::{metrics, AcmeLabels};

/// An ACME certificate the configuration asks for.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Its name under `certificates`.
    pub name: String,
    /// Its block.
    pub spec: AcmeSource,
    /// The `trustBundle` CAs for the directory (`None`: system roots).
    pub roots: Option<Arc<RootCertStore>>,
}

impl PartialEq for Wanted {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.spec == other.spec
            && match (&self.roots, &other.roots) {
                (None, None) => true,
                (Some(a), Some(b)) => a.roots == b.roots,
                _ => false,
            }
    }
}

/// First wait after a failed order; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// A stored certificate is looked at again at least this often (another
/// replica may have renewed it, or an operator replaced it).
const RECHECK: Duration = Duration::from_secs(600);

/// Follows the published snapshots and keeps one task per ACME certificate.
pub(crate) async fn run(state: Arc<State>, reload: impl Fn() + Clone + Send + Sync + 'static) {
    let mut generation = state.generation.subscribe();
    let mut running: HashMap<String, (Wanted, tokio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        let wanted = state.current.load().acme.clone();
        running.retain(|name, (w, task)| {
            let keep = wanted.iter().any(|n| n == w);
            if !keep {
                tracing::info!(certificate = name.as_str(), "ACME block changed or removed; its task restarts");
                task.abort();
            }
            keep
        });
        for w in wanted {
            if !running.contains_key(&w.name) {
                let task = tokio::spawn(keep(w.clone(), reload.clone()));
                running.insert(w.name.clone(), (w, task));
            }
        }
        if generation.changed().await.is_err() {
            return;
        }
    }
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// When the stored certificate must be renewed (seconds since the epoch):
/// now when there is none or it does not cover the domains.
pub(crate) fn due(spec: &AcmeSource) -> u64 {
    let Ok(certs) = crate::material::read_certs(&spec.cert_file) else {
        return 0;
    };
    let Some(leaf) = certs.first().and_then(|c| CertSummary::from_der(c).ok()) else {
        return 0;
    };
    if !spec.domains.iter().all(|d| leaf.covers_hostname(d)) || !spec.key_file.is_file() {
        return 0;
    }
    let life = leaf.not_after.saturating_sub(leaf.not_before);
    let before = spec
        .renew_before
        .map_or(life / 3, |d| d.as_secs())
        .min(life);
    leaf.not_after.saturating_sub(before)
}

/// Obtains and renews one certificate, forever.
async fn keep(w: Wanted, reload: impl Fn()) {
    let mut backoff = FIRST_BACKOFF;
    let label = AcmeLabels {
        certificate: w.name.clone(),
        result: "ok",
    };
    loop {
        let due = due(&w.spec);
        let now = now();
        if due > now {
            let wait = Duration::from_secs(due - now).min(RECHECK);
            tokio::time::sleep(wait).await;
            continue;
        }
        let roots = match &w.roots {
            Some(r) => (**r).clone(),
            None => system_roots(),
        };
        let http = match super::http::Client::new(roots) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(certificate = w.name.as_str(), error = %e, "ACME client configuration");
                return;
            }
        };
        let client = move || -> Box<dyn instant_acme::HttpClient> { Box::new(Shared(http.clone())) };
        tracing::info!(certificate = w.name.as_str(), domains = w.spec.domains.join(",").as_str(), directory = w.spec.directory_url.as_str(), "ordering a certificate with ACME");
        match super::order::obtain(&w.name, &w.spec, client).await {
            Ok(()) => {
                metrics().acme_orders.get_or_create(&label).inc();
                tracing::info!(certificate = w.name.as_str(), file = %w.spec.cert_file.display(), "ACME certificate obtained and stored");
                backoff = FIRST_BACKOFF;
                reload();
                // The next turn reads what was stored and sleeps until due.
            }
            Err(e) => {
                metrics()
                    .acme_orders
                    .get_or_create(&AcmeLabels {
                        certificate: w.name.clone(),
                        result: "error",
                    })
                    .inc();
                let (kind, detail) = e.problem().unwrap_or(("", ""));
                tracing::warn!(
                    certificate = w.name.as_str(),
                    problem_type = kind,
                    detail = detail,
                    error = %crate::words::error_chain(&e),
                    retry_in_s = backoff.as_secs(),
                    "ACME order failed; the current certificate (if any) keeps serving"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The machine's CA certificates (an `acme` block without `trustBundle`).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    roots
}

/// One client shared by the boxed handles the ACME library asks for.
struct Shared(Arc<super::http::Client>);

impl instant_acme::HttpClient for Shared {
    fn request(
        &self,
        req: http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>>
                + Send,
        >,
    > {
        self.0.request(req)
    }
}
