//! Certificates, keys, trust bundles and CRLs, read from their sources and
//! checked at load and at every reload (SPEC §2): the key matches the
//! certificate, it is inside its validity period (a warning under 30 days),
//! a server certificate covers every hostname it serves, a chain leads to
//! CAs, a trust bundle holds only CAs. A CRL past its nextUpdate is a
//! problem (`check` fails, `run` logs it as an error but starts), one that
//! expires within 7 days a warning. The result is immutable; a reload
//! builds a new one. No message ever contains key material.

pub mod sources;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use crate::config::model::{self, Config, HostPattern};
use crate::identity::CertSummary;

pub use sources::certs_from_pem;

/// Certificates expiring sooner than this are warned about.
pub const EXPIRY_WARNING_DAYS: u64 = 30;

/// CRLs whose nextUpdate is sooner than this are warned about (SPEC §2).
pub const CRL_WARNING_DAYS: u64 = 7;

/// One of our own certificates with its key, ready to present.
#[derive(Debug)]
pub struct Identity {
    /// Its name under `certificates:`.
    pub name: String,
    /// Chain and signing key for rustls.
    pub certified_key: Arc<CertifiedKey>,
    /// What the leaf says.
    pub leaf: CertSummary,
}

/// One CRL and what it says about itself.
#[derive(Debug)]
pub struct Crl {
    /// Parsed for webpki.
    pub parsed: webpki::CertRevocationList<'static>,
    /// What it says about itself and where it came from.
    pub info: CrlInfo,
    /// Serials it revokes (upper-case hex).
    pub revoked: Vec<String>,
}

/// A loaded CRL described: for the gauge, the verifier's window and the
/// messages about its nextUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// Issuer (RFC 2253).
    pub issuer: String,
    /// nextUpdate, Unix seconds.
    pub next_update: Option<u64>,
    /// Where it was read: the file, or the Secret and its key.
    pub source: String,
    /// How to renew it, in words (a command where one is known).
    pub renew: String,
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
    /// Every certificate the CRLs revoke: (issuer as RFC 2253, serial as
    /// upper-case hex, as in [`CertSummary`]), so a reload can find the
    /// open connections they concern (SPEC §3).
    pub revoked: Vec<(String, String)>,
}

/// Everything the configuration names, loaded and checked.
#[derive(Debug, Default)]
pub struct Material {
    /// By name.
    pub identities: BTreeMap<String, Arc<Identity>>,
    /// By name.
    pub trust_bundles: BTreeMap<String, Arc<TrustBundle>>,
    /// Things worth knowing that do not stop loading (expiry soon).
    pub warnings: Vec<MaterialError>,
    /// Things `check` fails on (exit 1) but that do not stop `run`, which
    /// logs them as errors: a CRL past its nextUpdate (SPEC §2). Refusing
    /// to start over it would take down every host, not only the clients
    /// that CRL covers, and a renewed CRL arrives by reload.
    pub problems: Vec<MaterialError>,
}

/// One problem with one piece of material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialError {
    /// Key path of the config entry (`certificates.gateway`).
    pub path: String,
    /// What is wrong, naming the file.
    pub message: String,
}

/// Every problem found while loading.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>().join("\n"))]
pub struct MaterialErrors(pub Vec<MaterialError>);

/// Formats Unix seconds as RFC 3339.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    certs_from_pem(&sources::read(path)?, &path.display().to_string())
}

/// Trust anchors from a PEM file (probe, bench: the `--ca` flag).
pub fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (i, der) in read_certs(path)?.into_iter().enumerate() {
        roots.add(der).map_err(|e| {
            format!(
                "{}: certificate {} is not a usable trust anchor: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(roots)
}

/// A chain and its private key as a rustls signing identity; a key of
/// another certificate and a key rustls cannot use get different messages.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    origin: &str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("the private key does not belong to the certificate in {origin}")
        }
        other => format!("{origin}: unusable private key: {other}"),
    })
}

/// A client or server identity from a PEM certificate file and key file.
pub fn certified_key_from_files(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let f = sources::fetch_identity(&crate::config::model::CertificateSource::Files {
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
    })?;
    certified_key(f.chain, f.key, &f.origin, provider)
}

/// Loads and checks everything `config` names, as of `now`.
pub fn load(
    config: &Config,
    provider: &CryptoProvider,
    now: UnixTime,
) -> Result<Material, MaterialErrors> {
    let mut errors = Vec::new();
    let mut m = Material::default();
    let now = now.as_secs();
    for (name, src) in &config.certificates {
        let path = format!("certificates.{name}");
        match load_identity(name, src, provider, now) {
            Ok(id) => {
                if let Some(days) = expires_soon(&id.leaf, now) {
                    m.warnings.push(MaterialError {
                        path: path.clone(),
                        message: format!(
                            "certificate \"{}\" expires in {days} days ({})",
                            id.leaf.subject,
                            rfc3339(id.leaf.not_after)
                        ),
                    });
                }
                m.identities.insert(name.clone(), Arc::new(id));
            }
            Err(message) => errors.push(MaterialError { path, message }),
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
                            message: format!("CA \"{}\" expires in {days} days", ca.subject),
                        });
                    }
                }
                for crl in &b.crl_info {
                    match crl_freshness(crl, now) {
                        Freshness::Fresh => {}
                        Freshness::Expiring(message) => m.warnings.push(MaterialError {
                            path: path.clone(),
                            message,
                        }),
                        Freshness::Expired(message) => m.problems.push(MaterialError {
                            path: path.clone(),
                            message,
                        }),
                    }
                }
                m.trust_bundles.insert(name.clone(), Arc::new(b));
            }
            Err(message) => errors.push(MaterialError { path, message }),
        }
    }
    // A server certificate must cover every hostname it serves.
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, h) in l.hosts.iter().enumerate() {
            let Some(id) = m.identities.get(&h.certificate) else {
                continue;
            };
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
                        message: format!(
                            "certificate \"{}\" does not cover \"{name}\"; it covers [{}]",
                            h.certificate,
                            covers.join(", ")
                        ),
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

/// How a CRL stands against the clock.
enum Freshness {
    Fresh,
    /// Expires within [`CRL_WARNING_DAYS`]: a warning.
    Expiring(String),
    /// Past its nextUpdate: a problem.
    Expired(String),
}

/// A span of seconds in the largest whole unit that says enough.
fn span_words(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

fn crl_freshness(crl: &CrlInfo, now: u64) -> Freshness {
    let Some(next) = crl.next_update else {
        return Freshness::Fresh;
    };
    // webpki: a CRL is expired when now >= nextUpdate.
    if now >= next {
        Freshness::Expired(format!(
            "CRL {} (issuer {}) expired on {} (its nextUpdate): every client certificate \
             checked against it is refused (crl_expired) until it is renewed: {}",
            crl.source,
            crl.issuer,
            rfc3339(next),
            crl.renew
        ))
    } else if next - now < CRL_WARNING_DAYS * 86_400 {
        Freshness::Expiring(format!(
            "CRL {} (issuer {}) expires in {}, on {} (its nextUpdate); after that every \
             client certificate checked against it is refused; renew it before: {}",
            crl.source,
            crl.issuer,
            span_words(next - now),
            rfc3339(next),
            crl.renew
        ))
    } else {
        Freshness::Fresh
    }
}

/// How to renew the CRL in `file`: `portcullis ca crl` for a portcullis CA
/// directory (`DIR/ca.crl`), and in any case the CA that issued it. Only the
/// file is known here, not whether portcullis made it, so both are said.
fn renew_words(file: &Path) -> String {
    let is_ca_crl = file.file_name().is_some_and(|n| n == "ca.crl");
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if is_ca_crl {
        format!(
            "`portcullis ca crl --ca {}` where the CA's key is (then copy ca.crl here if that is elsewhere), \
             or, for a CRL portcullis did not make, re-sign it with your CA",
            dir.display()
        )
    } else {
        "re-sign it with your CA (`portcullis ca crl --ca DIR` for a portcullis CA directory), \
         then replace this file"
            .to_string()
    }
}

fn load_identity(
    name: &str,
    src: &model::CertificateSource,
    provider: &CryptoProvider,
    now: u64,
) -> Result<Identity, String> {
    let f = sources::fetch_identity(src)?;
    let origin = f.origin.clone();
    let mut summaries = Vec::new();
    for (i, der) in f.chain.iter().enumerate() {
        let s = CertSummary::from_der(der)
            .map_err(|e| format!("{origin}: certificate {}: {e}", i + 1))?;
        summaries.push(s);
    }
    let leaf = summaries.remove(0);
    let certified_key = certified_key(f.chain, f.key, &origin, provider)?;
    check_validity(&origin, &leaf, now)?;
    for (i, s) in summaries.iter().enumerate() {
        if !s.is_ca {
            return Err(format!(
                "{origin}: certificate {} of the chain ({}) is not a CA, so the chain cannot lead to a trust anchor; \
                 the file must hold the leaf first, then its intermediates",
                i + 2,
                s.subject
            ));
        }
    }
    Ok(Identity {
        name: name.to_string(),
        certified_key: Arc::new(certified_key),
        leaf,
    })
}

fn check_validity(origin: &str, s: &CertSummary, now: u64) -> Result<(), String> {
    if now < s.not_before {
        return Err(format!(
            "{origin}: certificate \"{}\" is not valid before {}",
            s.subject,
            rfc3339(s.not_before)
        ));
    }
    if now > s.not_after {
        return Err(format!(
            "{origin}: certificate \"{}\" expired on {}",
            s.subject,
            rfc3339(s.not_after)
        ));
    }
    Ok(())
}

/// Parses the CRLs in `bytes`, read from `what`; `renew` says how to renew
/// them.
fn parse_crls(bytes: &[u8], what: &str, renew: &str) -> Result<Vec<Crl>, String> {
    let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{what}: not a PEM CRL file: {e}"))?
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    if ders.is_empty() {
        return Err(format!("{what}: contains no CRL"));
    }
    let mut out = Vec::new();
    for der in ders {
        use x509_cert::der::Decode;
        let parsed = webpki::OwnedCertRevocationList::from_der(&der)
            .map_err(|e| format!("{what}: not a valid CRL: {e:?}"))?;
        let info = x509_cert::crl::CertificateList::from_der(&der).ok();
        let issuer = info
            .as_ref()
            .map(|c| crate::identity::dn::rfc2253(&c.tbs_cert_list.issuer))
            .unwrap_or_default();
        out.push(Crl {
            parsed: webpki::CertRevocationList::from(parsed),
            revoked: info
                .as_ref()
                .and_then(|c| c.tbs_cert_list.revoked_certificates.as_ref())
                .map(|r| {
                    r.iter()
                        .map(|e| crate::identity::cert::hex_upper(e.serial_number.as_bytes()))
                        .collect()
                })
                .unwrap_or_default(),
            info: CrlInfo {
                issuer,
                next_update: info
                    .and_then(|c| c.tbs_cert_list.next_update)
                    .map(|t| t.to_unix_duration().as_secs()),
                source: what.to_string(),
                renew: renew.to_string(),
            },
        });
    }
    Ok(out)
}

fn load_bundle(
    name: &str,
    src: &model::TrustBundleSource,
    now: u64,
) -> Result<TrustBundle, String> {
    let (certs, crl_in_secret, origin) = sources::fetch_cas(&src.ca)?;
    let mut roots = RootCertStore::empty();
    let mut cas = Vec::new();
    for (i, der) in certs.into_iter().enumerate() {
        let s = CertSummary::from_der(&der)
            .map_err(|e| format!("{origin}: certificate {}: {e}", i + 1))?;
        if !s.is_ca {
            return Err(format!(
                "{origin}: certificate {} ({}) is not a CA certificate; a trust bundle holds only CAs",
                i + 1,
                s.subject
            ));
        }
        if now > s.not_after {
            return Err(format!(
                "{origin}: CA \"{}\" expired on {}",
                s.subject,
                rfc3339(s.not_after)
            ));
        }
        roots.add(der).map_err(|e| {
            format!(
                "{origin}: certificate {} is not a usable trust anchor: {e}",
                i + 1
            )
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
        revoked,
    })
}
