//! Reading material from its sources: PEM files, Kubernetes Secret
//! manifests (`data` base64 or `stringData`), mounted Secret volumes (read
//! through the `..data` symlinks kubelet swaps) and PKCS#12 bundles.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Problem;
use crate::config::model::{CaSource, CertificateSource, PasswordSource, TicketKeySource};

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Problem> {
    std::fs::read(path).map_err(|source| Problem::Read {
        file: path.to_path_buf(),
        source,
    })
}

/// Every certificate in PEM bytes; `what` names them in errors.
pub(crate) fn certs_from_pem(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|source| Problem::NotPem {
            what: what.to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Problem::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretManifest {
    kind: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
}

/// The entries of a Secret manifest, decoded (`stringData` wins, as in the
/// API server).
fn secret_entries(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    let text = String::from_utf8(read(path)?).map_err(|_| Problem::NotYaml {
        file: path.to_path_buf(),
    })?;
    secret_manifest_entries(path, &text)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMapManifest {
    kind: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    binary_data: BTreeMap<String, String>,
}

/// `key` of the ConfigMap manifest at `path`: from `data` (text, as
/// trust-manager writes bundles) or `binaryData` (base64).
fn config_map_entry(path: &Path, key: &str) -> Result<Vec<u8>, Problem> {
    let text = String::from_utf8(read(path)?).map_err(|_| Problem::NotYaml {
        file: path.to_path_buf(),
    })?;
    let m: ConfigMapManifest =
        serde_saphyr::from_str(&text).map_err(|e| Problem::NotAConfigMapManifest {
            file: path.to_path_buf(),
            reason: e.without_snippet().to_string(),
        })?;
    if m.kind.as_deref() != Some("ConfigMap") {
        return Err(Problem::NotAConfigMap {
            file: path.to_path_buf(),
            kind: m.kind.unwrap_or_default(),
        });
    }
    if let Some(v) = m.data.get(key) {
        return Ok(v.clone().into_bytes());
    }
    match m.binary_data.get(key) {
        Some(v) => {
            let clean: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|_| Problem::NotBase64 {
                    file: path.to_path_buf(),
                    key: key.to_string(),
                })
        }
        None => Err(Problem::NoConfigMapKey {
            file: path.to_path_buf(),
            key: key.to_string(),
        }),
    }
}

/// The entries of the Secret manifest `text`, read from `path`.
pub(crate) fn secret_manifest_entries(
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    let m: SecretManifest = serde_saphyr::from_str(text).map_err(|e| Problem::NotASecret {
        file: path.to_path_buf(),
        reason: e.without_snippet().to_string(),
    })?;
    if m.kind.as_deref().is_some_and(|k| k != "Secret") {
        return Err(Problem::WrongKind {
            file: path.to_path_buf(),
            kind: m.kind.unwrap_or_default(),
        });
    }
    let mut out = BTreeMap::new();
    for (k, v) in m.data {
        let clean: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map_err(|_| Problem::NotBase64 {
                file: path.to_path_buf(),
                key: k.clone(),
            })?;
        out.insert(k, bytes);
    }
    for (k, v) in m.string_data {
        out.insert(k, v.into_bytes());
    }
    Ok(out)
}

fn secret_dir_entries(dir: &Path, keys: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    if !dir.is_dir() {
        return Err(Problem::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let mut out = BTreeMap::new();
    for k in keys {
        let p = dir.join(k);
        if p.exists() {
            out.insert((*k).to_string(), read(&p)?);
        }
    }
    Ok(out)
}

fn pick<'a>(entries: &'a BTreeMap<String, Vec<u8>>, keys: &[&str]) -> Option<&'a Vec<u8>> {
    keys.iter().find_map(|k| entries.get(*k))
}

/// A password from its source.
pub(crate) fn password(p: &PasswordSource) -> Result<String, Problem> {
    match p {
        PasswordSource::Env(v) => {
            std::env::var(v).map_err(|_| Problem::PasswordEnvUnset { var: v.clone() })
        }
        PasswordSource::File(f) => {
            let t = String::from_utf8(read(f)?)
                .map_err(|_| Problem::PasswordNotText { file: f.clone() })?;
            let t = t.strip_suffix('\n').unwrap_or(&t);
            Ok(t.strip_suffix('\r').unwrap_or(t).to_string())
        }
    }
}

/// What a certificate source yields: the chain, the key, and a name for
/// messages.
pub(crate) struct Fetched {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// Where it came from, for messages.
    pub origin: String,
    /// Where the key came from, for messages (the key file when it is
    /// apart from the certificate).
    pub key_origin: String,
}

const CERT_KEYS: [&str; 2] = ["tls.crt", "cert"];
const KEY_KEYS: [&str; 2] = ["tls.key", "key"];
const CA_KEYS: [&str; 2] = ["ca.crt", "cacert"];

fn missing(origin: &str, entry: &'static str) -> Problem {
    Problem::MissingEntry {
        origin: origin.to_string(),
        entry,
    }
}

fn from_entries(entries: &BTreeMap<String, Vec<u8>>, origin: String) -> Result<Fetched, Problem> {
    let cert = pick(entries, &CERT_KEYS).ok_or_else(|| missing(&origin, "tls.crt or cert"))?;
    let key = pick(entries, &KEY_KEYS).ok_or_else(|| missing(&origin, "tls.key or key"))?;
    Ok(Fetched {
        chain: certs_from_pem(cert, &format!("{origin} (certificate)"))?,
        key: PrivateKeyDer::from_pem_slice(key).map_err(|_| Problem::NoKey {
            origin: origin.clone(),
        })?,
        key_origin: format!("{origin} (key)"),
        origin,
    })
}

/// Reads a certificate source.
pub(crate) fn fetch_identity(src: &CertificateSource) -> Result<Fetched, Problem> {
    let (cert_file, key_file) = match src {
        CertificateSource::Files {
            cert_file,
            key_file,
        } => (cert_file, key_file),
        // What ACME obtained, as stored.
        CertificateSource::Acme(a) => (&a.file, &a.file),
        _ => return fetch_other(src),
    };
    Ok(Fetched {
        chain: certs_from_pem(&read(cert_file)?, &cert_file.display().to_string())?,
        key: PrivateKeyDer::from_pem_slice(&read(key_file)?).map_err(|_| Problem::NoKey {
            origin: key_file.display().to_string(),
        })?,
        origin: cert_file.display().to_string(),
        key_origin: key_file.display().to_string(),
    })
}

fn fetch_other(src: &CertificateSource) -> Result<Fetched, Problem> {
    match src {
        CertificateSource::Files { .. } | CertificateSource::Acme(_) => fetch_identity(src),
        CertificateSource::SecretFile(p) => {
            from_entries(&secret_entries(p)?, p.display().to_string())
        }
        CertificateSource::SecretDir(d) => from_entries(
            &secret_dir_entries(d, &["tls.crt", "cert", "tls.key", "key"])?,
            d.display().to_string(),
        ),
        CertificateSource::Pkcs12 { file, password: pw } => {
            let pw = password(pw)?;
            let c = crate::pki::p12::open(&read(file)?, &pw).map_err(|source| Problem::Pkcs12 {
                file: file.clone(),
                source,
            })?;
            let key = c
                .key_der
                .ok_or_else(|| Problem::Pkcs12NoKey { file: file.clone() })?;
            if c.certs.is_empty() {
                return Err(Problem::Pkcs12NoCertificate { file: file.clone() });
            }
            Ok(Fetched {
                chain: c.certs.into_iter().map(CertificateDer::from).collect(),
                key: PrivateKeyDer::Pkcs8(key.into()),
                origin: file.display().to_string(),
                key_origin: file.display().to_string(),
            })
        }
    }
}

/// CA certificates, a CRL found with them (Secrets), and where they came from.
pub(crate) type FetchedCas = (Vec<CertificateDer<'static>>, Option<Vec<u8>>, String);

/// The CA certificates (PEM) and any CRL found with them.
pub(crate) fn fetch_cas(src: &CaSource) -> Result<FetchedCas, Problem> {
    let (entries, origin) = match src {
        CaSource::File(f) => {
            return Ok((
                certs_from_pem(&read(f)?, &f.display().to_string())?,
                None,
                f.display().to_string(),
            ))
        }
        CaSource::SecretFile(p) => (secret_entries(p)?, p.display().to_string()),
        CaSource::SecretDir(d) => (
            secret_dir_entries(d, &["ca.crt", "cacert", "ca.crl"])?,
            d.display().to_string(),
        ),
        CaSource::ConfigMapFile { file, key } => {
            let origin = format!("{} ({key})", file.display());
            let pem = config_map_entry(file, key)?;
            return Ok((certs_from_pem(&pem, &origin)?, None, origin));
        }
    };
    let ca = pick(&entries, &CA_KEYS).ok_or_else(|| missing(&origin, "ca.crt or cacert"))?;
    Ok((
        certs_from_pem(ca, &origin)?,
        entries.get("ca.crl").cloned(),
        origin,
    ))
}

/// The shared session-ticket keys (`sessionTickets`).
pub(crate) fn ticket_keys(src: &TicketKeySource) -> Result<super::TicketKeys, Problem> {
    let (bytes, origin) = match src {
        TicketKeySource::File(f) => (zeroize::Zeroizing::new(read(f)?), f.display().to_string()),
        TicketKeySource::SecretFile(p) | TicketKeySource::SecretDir(p) => {
            let origin = p.display().to_string();
            let mut entries = match src {
                TicketKeySource::SecretFile(_) => secret_entries(p)?,
                _ => secret_dir_entries(p, &["tickets"])?,
            };
            let bytes = entries
                .remove("tickets")
                .ok_or_else(|| missing(&origin, "tickets"))?;
            for v in entries.values_mut() {
                zeroize::Zeroize::zeroize(v);
            }
            (
                zeroize::Zeroizing::new(bytes),
                format!("{origin} (tickets)"),
            )
        }
    };
    super::TicketKeys::parse(&bytes).map_err(|reason| Problem::TicketKeys { origin, reason })
}

/// A warning when the ticket keys are readable by every user: whoever reads
/// them can forge a session for any client certificate.
pub(crate) fn ticket_keys_exposed(src: &TicketKeySource) -> Option<Problem> {
    use std::os::unix::fs::PermissionsExt;
    let file = match src {
        TicketKeySource::File(f) | TicketKeySource::SecretFile(f) => f.clone(),
        TicketKeySource::SecretDir(d) => d.join("tickets"),
    };
    let mode = std::fs::metadata(&file).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(Problem::TicketKeysReadable { file, mode })
}
