//! Keeps every ACME certificate of the current configuration obtained and
//! renewed: one task per certificate, restarted when a reload changes its
//! block. A task orders when the stored certificate is missing, unusable or
//! due (`renewBefore`, default a third of its lifetime left), writes it to
//! `storageDir`, and asks for a reload, which swaps it in like any changed
//! certificate file. Failures are logged (with the problem document's
//! `type` and `detail`), counted, and retried with backoff while the old
//! certificate keeps serving. Several replicas may share `storageDir`: a
//! replica that finds a valid certificate there serves it without ordering;
//! one replica at a time orders (it holds `storageDir/NAME.lock`), and the
//! others answer its http-01 challenges from `storageDir` (see
//! `challenges`) and pick the stored certificate up by reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;

use crate::config::model::AcmeSource;
use crate::identity::CertSummary;
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
/// How often a replica looks again while another one orders.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// A lock this old is a replica that died while ordering: taken over.
/// (An order gives up well before: two polls of at most 120 s.)
const LOCK_STALE: Duration = Duration::from_secs(600);

/// The right to order one certificate, among the replicas sharing its
/// `storageDir`: the file `NAME.lock` there, created exclusively, removed
/// when the order ends.
struct OrderLock(std::path::PathBuf);

impl OrderLock {
    /// Takes the lock, or says another replica holds it (`None`).
    fn take(name: &str, spec: &AcmeSource) -> Result<Option<OrderLock>, String> {
        super::order::ensure_dir(&spec.storage_dir).map_err(|e| e.to_string())?;
        let path = spec.storage_dir.join(format!("{name}.lock"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Some(OrderLock(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    match age {
                        Some(age) if age > LOCK_STALE => {
                            tracing::warn!(lock = %path.display(), "taking over an ACME order lock left by a replica that stopped");
                            let _ = std::fs::remove_file(&path);
                        }
                        _ => return Ok(None),
                    }
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(None)
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Follows the published snapshots and keeps one task per ACME certificate
/// (restarted should one ever end).
pub(crate) async fn run(
    mut generation: tokio::sync::watch::Receiver<Vec<Wanted>>,
    reload: impl Fn() + Clone + Send + Sync + 'static,
) {
    let mut running: HashMap<String, (Wanted, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wanted = generation.borrow_and_update().clone();
        // Where other replicas publish http-01 answers.
        let mut dirs: Vec<std::path::PathBuf> =
            wanted.iter().map(|w| w.spec.storage_dir.clone()).collect();
        dirs.sort();
        dirs.dedup();
        super::challenges().share_from(dirs);
        running.retain(|name, (w, task)| {
            if task.is_finished() {
                tracing::error!(
                    certificate = name.as_str(),
                    "the ACME task of this certificate ended; restarting it"
                );
                return false;
            }
            let keep = wanted.iter().any(|n| n == w);
            if !keep {
                tracing::info!(
                    certificate = name.as_str(),
                    "ACME block changed or removed; its task restarts"
                );
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
        tokio::select! {
            r = generation.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
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
/// now when there is none, it does not cover the domains, or its key is
/// not its own (what the gateway cannot serve is ordered anew).
pub(crate) fn due(spec: &AcmeSource) -> u64 {
    if crate::material::certified_key_from_files(&spec.file, &spec.file, &crate::tls::provider())
        .is_err()
    {
        return 0;
    }
    let Ok(certs) = crate::material::read_certs(&spec.file) else {
        return 0;
    };
    let Some(leaf) = certs.first().and_then(|c| CertSummary::from_der(c).ok()) else {
        return 0;
    };
    // Not served before its notBefore (beyond a little clock skew): a new
    // one is ordered rather than waiting for it.
    if !spec.domains.iter().all(|d| leaf.covers_hostname(d))
        || leaf.not_before > now() + crate::material::ACME_CLOCK_SKEW
    {
        return 0;
    }
    let life = leaf.not_after.saturating_sub(leaf.not_before);
    // At most half the lifetime: a renewBefore longer than what the CA
    // issues must not make every new certificate due at once (an order
    // loop against the CA's rate limits).
    let before = spec
        .renew_before
        .map_or(life / 3, |d| d.as_secs())
        .min(life / 2);
    leaf.not_after.saturating_sub(before)
}

/// Obtains and renews one certificate, forever.
async fn keep(w: Wanted, reload: impl Fn()) {
    let mut backoff = FIRST_BACKOFF;
    let label = AcmeLabels {
        certificate: w.name.clone(),
        result: "ok",
    };
    let mut waiting = false;
    loop {
        let due = due(&w.spec);
        let now = now();
        if due > now {
            waiting = false;
            let wait = Duration::from_secs(due - now).min(RECHECK);
            tokio::time::sleep(wait).await;
            continue;
        }
        let lock = match OrderLock::take(&w.name, &w.spec) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                if !waiting {
                    tracing::info!(
                        certificate = w.name.as_str(),
                        "another replica is ordering this certificate; waiting for what it stores"
                    );
                    waiting = true;
                }
                tokio::time::sleep(LOCK_WAIT).await;
                continue;
            }
            Err(e) => {
                tracing::error!(
                    certificate = w.name.as_str(),
                    error = e.as_str(),
                    retry_in_s = backoff.as_secs(),
                    "cannot take the ACME order lock"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        waiting = false;
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
        let client =
            move || -> Box<dyn instant_acme::HttpClient> { Box::new(Shared(http.clone())) };
        tracing::info!(
            certificate = w.name.as_str(),
            domains = w.spec.domains.join(",").as_str(),
            directory = w.spec.directory_url.as_str(),
            "ordering a certificate with ACME"
        );
        let result = super::order::obtain(&w.name, &w.spec, client).await;
        // Before any backoff: the other replicas may try meanwhile.
        drop(lock);
        match result {
            Ok(()) => {
                metrics().acme_orders.get_or_create(&label).inc();
                tracing::info!(certificate = w.name.as_str(), file = %w.spec.file.display(), "ACME certificate obtained and stored");
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
            dyn std::future::Future<
                    Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                > + Send,
        >,
    > {
        self.0.request(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::AcmeChallenge;

    /// A stored certificate for `a.test` from 10 days ago to 20 days ahead.
    fn stored(dir: &std::path::Path) -> (AcmeSource, u64) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(10);
        p.not_after = now + time::Duration::days(20);
        let cert = p.self_signed(&key).unwrap();
        let file = dir.join("a.pem");
        std::fs::write(&file, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let spec = AcmeSource {
            directory_url: "https://acme.test/dir".into(),
            email: None,
            domains: vec!["a.test".into()],
            challenge: AcmeChallenge::Http01,
            storage_dir: dir.to_path_buf(),
            trust_bundle: None,
            key_type: crate::pki::keys::KeyType::EcdsaP256,
            renew_before: None,
            file,
        };
        (spec, p.not_after.unix_timestamp().unsigned_abs())
    }

    #[test]
    fn one_replica_orders_at_a_time_and_a_dead_one_s_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, _) = stored(dir.path());
        let first = OrderLock::take("a", &spec).unwrap();
        assert!(first.is_some());
        assert!(OrderLock::take("a", &spec).unwrap().is_none(), "held");
        assert!(
            OrderLock::take("b", &spec).unwrap().is_some(),
            "per certificate"
        );
        drop(first);
        let again = OrderLock::take("a", &spec).unwrap();
        assert!(again.is_some(), "released");
        // A lock older than LOCK_STALE: its replica stopped while ordering.
        let path = dir.path().join("a.lock");
        std::mem::forget(again);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - LOCK_STALE - Duration::from_secs(1))
            .unwrap();
        assert!(OrderLock::take("a", &spec).unwrap().is_some(), "stale");
    }

    #[test]
    fn renewal_is_due_a_third_before_the_end_or_renew_before_at_most_half() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spec, not_after) = stored(dir.path());
        let day = 86_400;
        assert_eq!(due(&spec), not_after - 10 * day);
        spec.renew_before = Some(Duration::from_secs(5 * day));
        assert_eq!(due(&spec), not_after - 5 * day);
        // Longer than the lifetime: half of it, not "due at once, forever".
        spec.renew_before = Some(Duration::from_secs(90 * day));
        assert_eq!(due(&spec), not_after - 15 * day);
        assert!(due(&spec) > now());
        // Names it does not cover, or no usable file: due now.
        spec.domains.push("b.test".into());
        assert_eq!(due(&spec), 0);
        spec.domains.pop();
        std::fs::write(&spec.file, "garbage").unwrap();
        assert_eq!(due(&spec), 0);
    }
}
