//! Certificates, keys, trust bundles and CRLs, read from their sources and
//! checked once at load (SPEC §2): the key matches the certificate, it is
//! inside its validity period, a server certificate covers every hostname it
//! serves, a chain leads to CAs, and a trust bundle holds only CAs. The
//! result is immutable; a reload builds a new one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::config::model::{self, Config, HostPattern};
use crate::identity::CertSummary;

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
}

/// Everything the configuration names, loaded and checked.
#[derive(Debug, Default)]
pub struct Material {
    /// By name.
    pub identities: BTreeMap<String, Arc<Identity>>,
    /// By name.
    pub trust_bundles: BTreeMap<String, Arc<TrustBundle>>,
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
                m.identities.insert(name.clone(), Arc::new(id));
            }
            Err(message) => errors.push(MaterialError { path, message }),
        }
    }
    for (name, src) in &config.trust_bundles {
        let path = format!("trustBundles.{name}");
        match load_bundle(name, src) {
            Ok(b) => {
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
                    errors.push(MaterialError {
                        path: format!("listeners[{i}].hosts[{j}].hostnames[{k}]"),
                        message: format!(
                            "certificate \"{}\" ({}) does not cover \"{name}\"; its names are [{}]",
                            h.certificate,
                            config
                                .certificates
                                .get(&h.certificate)
                                .map_or_else(String::new, |c| c.cert_file.display().to_string()),
                            id.leaf.dns_sans.join(", ")
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

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: contains no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn load_identity(
    name: &str,
    src: &model::CertificateSource,
    provider: &CryptoProvider,
    now: u64,
) -> Result<Identity, String> {
    let chain = read_certs(&src.cert_file)?;
    let key_bytes = read(&src.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| {
        format!(
            "{}: no PKCS#8, PKCS#1 or SEC1 private key in PEM form",
            src.key_file.display()
        )
    })?;
    let mut summaries = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let s = CertSummary::from_der(der)
            .map_err(|e| format!("{}: certificate {}: {e}", src.cert_file.display(), i + 1))?;
        summaries.push(s);
    }
    let leaf = summaries.remove(0);
    let certified_key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "{} does not belong to the certificate in {}",
            src.key_file.display(),
            src.cert_file.display()
        ),
        other => format!("{}: unusable private key: {other}", src.key_file.display()),
    })?;
    check_validity(&src.cert_file, &leaf, now)?;
    for (i, s) in summaries.iter().enumerate() {
        if !s.is_ca {
            return Err(format!(
                "{}: certificate {} of the chain ({}) is not a CA, so the chain cannot lead to a trust anchor; \
                 the file must hold the leaf first, then its intermediates",
                src.cert_file.display(),
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

fn check_validity(file: &Path, s: &CertSummary, now: u64) -> Result<(), String> {
    if now < s.not_before {
        return Err(format!(
            "{}: certificate \"{}\" is not valid before {}",
            file.display(),
            s.subject,
            rfc3339(s.not_before)
        ));
    }
    if now > s.not_after {
        return Err(format!(
            "{}: certificate \"{}\" expired on {}",
            file.display(),
            s.subject,
            rfc3339(s.not_after)
        ));
    }
    Ok(())
}

fn load_bundle(name: &str, src: &model::TrustBundleSource) -> Result<TrustBundle, String> {
    let certs = read_certs(&src.ca_file)?;
    let mut roots = RootCertStore::empty();
    let mut cas = Vec::new();
    for (i, der) in certs.into_iter().enumerate() {
        let s = CertSummary::from_der(&der)
            .map_err(|e| format!("{}: certificate {}: {e}", src.ca_file.display(), i + 1))?;
        if !s.is_ca {
            return Err(format!(
                "{}: certificate {} ({}) is not a CA certificate; a trust bundle holds only CAs",
                src.ca_file.display(),
                i + 1,
                s.subject
            ));
        }
        roots.add(der).map_err(|e| {
            format!(
                "{}: certificate {} is not a usable trust anchor: {e}",
                src.ca_file.display(),
                i + 1
            )
        })?;
        cas.push(s);
    }
    let mut crls = Vec::new();
    for file in &src.crl_files {
        let bytes = read(file)?;
        let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not a PEM CRL file: {e}", file.display()))?
        } else {
            vec![CertificateRevocationListDer::from(bytes)]
        };
        if ders.is_empty() {
            return Err(format!("{}: contains no CRL", file.display()));
        }
        for der in ders {
            let crl = webpki::OwnedCertRevocationList::from_der(&der)
                .map_err(|e| format!("{}: not a valid CRL: {e:?}", file.display()))?;
            crls.push(webpki::CertRevocationList::from(crl));
        }
    }
    Ok(TrustBundle {
        name: name.to_string(),
        roots: Arc::new(roots),
        cas,
        crls,
    })
}
