//! Certificates, keys, trust bundles and CRLs, read from their sources and
//! checked at load and at every reload (SPEC §2): the key matches the
//! certificate, it is inside its validity period (a warning under 30 days),
//! a server certificate covers every hostname it serves, a chain leads to
//! CAs, a trust bundle holds only CAs. A CRL past its nextUpdate is a
//! problem (`check` fails, `run` logs it as an error but starts), one that
//! expires within 7 days a warning. The result is immutable; a reload
//! builds a new one. No message ever contains key material.

pub(crate) mod crl;
mod problem;
pub(crate) mod sources;
pub(crate) mod tickets;

pub(crate) use problem::Problem;

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::model::{self, Config, HostPattern};
use crate::identity::CertSummary;

pub(crate) use crl::CrlInfo;
pub(crate) use sources::certs_from_pem;
pub(crate) use tickets::TicketKeys;

use crl::{crl_freshness, parse_crls, renew_words, Freshness};

/// How far in the future an ACME certificate's notBefore may be and still
/// be served (seconds).
pub(crate) const ACME_CLOCK_SKEW: u64 = 300;

/// Certificates expiring sooner than this are warned about.
pub(crate) const EXPIRY_WARNING_DAYS: u64 = 30;

/// One of our own certificates with its key, ready to present.
#[derive(Debug)]
pub struct Credential {
    /// Its name under `certificates:`.
    pub name: String,
    /// Chain and signing key for rustls.
    pub certified_key: Arc<CertifiedKey>,
    /// What the leaf says.
    pub leaf: CertSummary,
}

/// A set of CAs (and their CRLs) that verifies peers.
#[derive(Debug)]
pub struct TrustBundle {
    /// Its name under `trustBundles:`.
    pub name: String,
    /// The trust anchors.
    pub roots: Arc<RootCertStore>,
    /// What each CA certificate says.
    pub cas: Vec<CertSummary>,
    /// Parsed CRLs.
    pub crls: Vec<webpki::CertRevocationList<'static>>,
    /// The same CRLs, described.
    pub crl_info: Vec<CrlInfo>,
    /// SHA-256 of each CRL's DER: what session tickets are scoped to.
    pub crl_digests: Vec<[u8; 32]>,
    /// Every certificate the CRLs revoke: (issuer as RFC 2253, serial as
    /// upper-case hex, as in [`CertSummary`]), so a reload can find the
    /// open connections they concern (SPEC §3).
    pub revoked: Vec<(String, String)>,
}

/// Everything the configuration names, loaded and checked.
#[derive(Debug, Default)]
pub struct Material {
    /// By name.
    pub identities: BTreeMap<String, Arc<Credential>>,
    /// By name.
    pub trust_bundles: BTreeMap<String, Arc<TrustBundle>>,
    /// The shared session-ticket keys (`sessionTickets`), if configured.
    pub ticket_keys: Option<Arc<TicketKeys>>,
    /// Things worth knowing that do not stop loading (expiry soon).
    pub warnings: Vec<MaterialError>,
    /// Things `check` fails on (exit 1) but that do not stop `run`, which
    /// logs them as errors: a CRL past its nextUpdate (SPEC §2). Refusing
    /// to start over it would take down every host, not only the clients
    /// that CRL covers, and a renewed CRL arrives by reload.
    pub problems: Vec<MaterialError>,
    /// ACME certificates not obtained yet (none stored, or the stored one
    /// is unusable), with the reason: their host entries refuse
    /// handshakes and `/readyz` fails until the ACME client stores one.
    pub pending: BTreeMap<String, String>,
}

/// One problem with one piece of material.
#[derive(Debug)]
pub struct MaterialError {
    /// Key path of the config entry (`certificates.gateway`).
    pub path: String,
    /// What is wrong, naming the file.
    pub(crate) problem: Problem,
}

impl MaterialError {
    /// The problem and its causes on one line.
    pub fn message(&self) -> String {
        crate::words::error_chain(&self.problem)
    }
}

/// Every problem found while loading.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.path, e.message())).collect::<Vec<_>>().join("\n"))]
pub struct MaterialErrors(pub Vec<MaterialError>);

/// Reads every certificate in a PEM file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Problem> {
    certs_from_pem(&sources::read(path)?, &path.display().to_string())
}

/// Trust anchors from a PEM file (probe, bench: the `--ca` flag).
pub(crate) fn roots_from_file(path: &Path) -> Result<RootCertStore, Problem> {
    let mut roots = RootCertStore::empty();
    for (i, der) in read_certs(path)?.into_iter().enumerate() {
        roots.add(der).map_err(|_| Problem::NotAnAnchor {
            origin: path.display().to_string(),
            index: i + 1,
        })?;
    }
    Ok(roots)
}

/// A chain and its private key as a rustls signing identity; a key of
/// another certificate and a key rustls cannot use get different messages.
pub(crate) fn certified_key(
    f: sources::Fetched,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Problem> {
    let (origin, key_origin) = (f.origin, f.key_origin);
    CertifiedKey::from_der(f.chain, f.key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Problem::KeyMismatch { key_origin, origin },
        source => Problem::UnusableKey { key_origin, source },
    })
}

/// A client or server identity from a PEM certificate file and key file.
pub(crate) fn certified_key_from_files(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Problem> {
    let f = sources::fetch_identity(&crate::config::model::CertificateSource::Files {
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
    })?;
    certified_key(f, provider)
}

/// Loads and checks everything `config` names, as of `now`.
pub(crate) fn load(
    config: &Config,
    provider: &CryptoProvider,
    now: UnixTime,
) -> Result<Material, MaterialErrors> {
    let mut errors = Vec::new();
    let mut m = Material::default();
    let now = now.as_secs();
    for (name, src) in &config.certificates {
        let path = format!("certificates.{name}");
        let acme = match src {
            model::CertificateSource::Acme(a) => Some(a),
            _ => None,
        };
        let mut loaded = load_identity(name, src, provider, now);
        // A CA that does not backdate, and a clock a little behind: a
        // freshly issued ACME certificate is served rather than left
        // pending until some later reload.
        if let (Some(_), Err(Problem::NotYetValid { not_before, .. })) = (acme, &loaded) {
            if *not_before <= now + ACME_CLOCK_SKEW {
                loaded = load_identity(name, src, provider, *not_before);
            }
        }
        match loaded {
            // (A stored one that does not cover every name of `domains` —
            // names were added — serves the names it covers while the ACME
            // task orders one that covers them all.)
            Err(problem) if acme.is_some() => {
                m.pending
                    .insert(name.clone(), crate::words::error_chain(&problem));
            }
            Ok(id) => {
                if let Some(days) = expires_soon(&id.leaf, now) {
                    m.warnings.push(MaterialError {
                        path: path.clone(),
                        problem: Problem::ExpiresSoon {
                            subject: id.leaf.subject.clone(),
                            days,
                            not_after: id.leaf.not_after,
                        },
                    });
                }
                m.identities.insert(name.clone(), Arc::new(id));
            }
            Err(problem) => errors.push(MaterialError { path, problem }),
        }
    }
    for (name, src) in &config.trust_bundles {
        let path = format!("trustBundles.{name}");
        match load_bundle(name, src, now) {
            Ok(b) => {
                for ca in &b.cas {
                    if let Some(days) = expires_soon(ca, now) {
                        m.warnings.push(MaterialError {
                            path: path.clone(),
                            problem: Problem::CaExpiresSoon {
                                subject: ca.subject.clone(),
                                days,
                            },
                        });
                    }
                }
                for crl in &b.crl_info {
                    match crl_freshness(crl, now) {
                        Freshness::Fresh => {}
                        Freshness::Expiring(s) => m.warnings.push(MaterialError {
                            path: path.clone(),
                            problem: Problem::Crl(s),
                        }),
                        Freshness::Expired(s) => m.problems.push(MaterialError {
                            path: path.clone(),
                            problem: Problem::Crl(s),
                        }),
                    }
                }
                m.trust_bundles.insert(name.clone(), Arc::new(b));
            }
            Err(problem) => errors.push(MaterialError { path, problem }),
        }
    }
    if let Some(src) = &config.session_tickets {
        match sources::ticket_keys(src) {
            Ok(k) => {
                m.ticket_keys = Some(Arc::new(k));
                if let Some(problem) = sources::ticket_keys_exposed(src) {
                    m.warnings.push(MaterialError {
                        path: "sessionTickets".into(),
                        problem,
                    });
                }
            }
            Err(problem) => errors.push(MaterialError {
                path: "sessionTickets".into(),
                problem,
            }),
        }
    }
    // A server certificate must cover every hostname it serves.
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, h) in l.hosts().iter().enumerate() {
            let crate::config::model::HostKind::Terminate(t) = &h.kind else {
                continue;
            };
            let Some(id) = m.identities.get(&t.certificate) else {
                continue;
            };
            if matches!(
                config.certificates.get(&t.certificate),
                Some(model::CertificateSource::Acme(_))
            ) {
                // Its ACME task orders what covers them all.
                continue;
            }
            for (k, pattern) in h.hostnames.iter().enumerate() {
                let name = match pattern {
                    HostPattern::Exact(n) => n.clone(),
                    HostPattern::Wildcard(suffix) => format!("*{suffix}"),
                    HostPattern::CatchAll => continue,
                };
                if !id.leaf.covers_hostname(&name) {
                    let mut covers: Vec<String> = id.leaf.dns_sans.clone();
                    covers.extend(id.leaf.ip_sans.iter().map(ToString::to_string));
                    errors.push(MaterialError {
                        path: format!("listeners[{i}].hosts[{j}].hostnames[{k}]"),
                        problem: Problem::DoesNotCover {
                            certificate: t.certificate.clone(),
                            name,
                            covers,
                        },
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(MaterialErrors(errors))
    }
}

fn expires_soon(s: &CertSummary, now: u64) -> Option<u64> {
    let left = s.not_after.checked_sub(now)?;
    let days = left / 86_400;
    (days < EXPIRY_WARNING_DAYS).then_some(days)
}

fn load_identity(
    name: &str,
    src: &model::CertificateSource,
    provider: &CryptoProvider,
    now: u64,
) -> Result<Credential, Problem> {
    let f = sources::fetch_identity(src)?;
    let origin = f.origin.clone();
    let mut summaries = Vec::new();
    for (i, der) in f.chain.iter().enumerate() {
        let s = CertSummary::from_der(der).map_err(|source| Problem::BadCertificate {
            origin: origin.clone(),
            index: i + 1,
            source,
        })?;
        summaries.push(s);
    }
    let leaf = summaries.remove(0);
    let certified_key = certified_key(f, provider)?;
    check_validity(&origin, &leaf, now)?;
    for (i, s) in summaries.iter().enumerate() {
        if !s.is_ca {
            return Err(Problem::ChainNotCa {
                origin,
                index: i + 2,
                subject: s.subject.clone(),
            });
        }
    }
    Ok(Credential {
        name: name.to_string(),
        certified_key: Arc::new(certified_key),
        leaf,
    })
}

fn check_validity(origin: &str, s: &CertSummary, now: u64) -> Result<(), Problem> {
    if now < s.not_before {
        return Err(Problem::NotYetValid {
            origin: origin.to_string(),
            subject: s.subject.clone(),
            not_before: s.not_before,
        });
    }
    if now > s.not_after {
        return Err(Problem::Expired {
            origin: origin.to_string(),
            subject: s.subject.clone(),
            not_after: s.not_after,
        });
    }
    Ok(())
}

fn load_bundle(
    name: &str,
    src: &model::TrustBundleSource,
    now: u64,
) -> Result<TrustBundle, Problem> {
    let (certs, crl_in_secret, origin) = sources::fetch_cas(&src.ca)?;
    let mut roots = RootCertStore::empty();
    let mut cas = Vec::new();
    for (i, der) in certs.into_iter().enumerate() {
        let s = CertSummary::from_der(&der).map_err(|source| Problem::BadCertificate {
            origin: origin.clone(),
            index: i + 1,
            source,
        })?;
        if !s.is_ca {
            return Err(Problem::NotACa {
                origin,
                index: i + 1,
                subject: s.subject,
            });
        }
        if now > s.not_after {
            return Err(Problem::CaExpired {
                origin,
                subject: s.subject,
                not_after: s.not_after,
            });
        }
        roots.add(der).map_err(|_| Problem::NotAnAnchor {
            origin: origin.clone(),
            index: i + 1,
        })?;
        cas.push(s);
    }
    let mut crls = Vec::new();
    if let Some(bytes) = crl_in_secret {
        crls.extend(parse_crls(
            &bytes,
            &format!("{origin} (ca.crl)"),
            &format!(
                "re-sign it with your CA (`portcullis ca crl --ca DIR` for a portcullis CA directory) \
                 and put the new ca.crl in {origin}"
            ),
        )?);
    }
    for file in &src.crl_files {
        crls.extend(parse_crls(
            &sources::read(file)?,
            &file.display().to_string(),
            &renew_words(file),
        )?);
    }
    let crl_info = crls.iter().map(|c| c.info.clone()).collect();
    let crl_digests = crls.iter().map(|c| c.digest).collect();
    let revoked = crls
        .iter()
        .flat_map(|c| c.revoked.iter().map(|s| (c.info.issuer.clone(), s.clone())))
        .collect();
    Ok(TrustBundle {
        name: name.to_string(),
        roots: Arc::new(roots),
        cas,
        crls: crls.into_iter().map(|c| c.parsed).collect(),
        crl_info,
        crl_digests,
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACME config whose stored certificate for `a.test` starts
    /// `starts_in` seconds from now.
    fn acme_with_stored(dir: &Path, starts_in: i64) -> Config {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::seconds(starts_in);
        p.not_after = now + time::Duration::days(30);
        let cert = p.self_signed(&key).unwrap();
        std::fs::create_dir_all(dir.join("acme")).unwrap();
        std::fs::write(
            dir.join("acme/pub.pem"),
            format!("{}{}", cert.pem(), key.serialize_pem()),
        )
        .unwrap();
        let text = "\
certificates:
  pub: { acme: { directoryUrl: \"https://acme.test/dir\", storageDir: acme, challenge: tls-alpn-01 } }
listeners:
  - name: public
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - { hostnames: [a.test], certificate: pub, routes: [{ pathPrefix: /, upstream: echo }] }
upstreams:
  echo: { builtin: echo }
";
        crate::config::parse(&dir.join("gw.yaml"), text).unwrap()
    }

    #[test]
    fn an_acme_certificate_starting_within_the_clock_skew_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let provider = crate::tls::provider();
        let c = acme_with_stored(dir.path(), 60);
        let m = load(&c, &provider, UnixTime::now()).unwrap();
        assert!(m.identities.contains_key("pub"), "{:?}", m.pending);
        assert!(m.pending.is_empty());
        // Far in the future: not served yet (pending, ordered anew).
        let c = acme_with_stored(dir.path(), 3600);
        let m = load(&c, &provider, UnixTime::now()).unwrap();
        assert!(!m.identities.contains_key("pub"));
        assert!(m.pending.contains_key("pub"));
    }
}
