//! `secret tls|istio|generic`: Kubernetes Secret manifests holding the files
//! byte for byte, in the layouts the consumers expect.

use std::collections::BTreeMap;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::keys::read_private_key;
use super::p12::check_key_matches;
use super::PkiError;

/// Which layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `kubernetes.io/tls`: `tls.crt`, `tls.key`, optional `ca.crt`
    /// (ingress-nginx, cert-manager).
    Tls,
    /// `Opaque`: `cert`, `key`, `cacert` (Istio `credentialName`).
    Istio,
    /// `Opaque` with whichever of `tls.crt`, `tls.key`, `ca.crt`, `ca.crl`
    /// were given (ingress-nginx `auth-tls-secret`, client-CA secrets).
    Generic,
}

/// The files going into a Secret (their exact bytes).
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Certificate chain.
    pub cert: Option<Vec<u8>>,
    /// Private key.
    pub key: Option<Vec<u8>>,
    /// CA bundle.
    pub ca: Option<Vec<u8>>,
    /// CRL.
    pub crl: Option<Vec<u8>>,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(rename = "type")]
    secret_type: &'static str,
    data: BTreeMap<&'static str, String>,
}

/// RFC 1123 subdomain (Secret names): lower-case alphanumerics, `-`, `.`.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// RFC 1123 label (namespaces).
fn dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && dns_subdomain(s)
}

fn certs(what: &str, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::NotPem {
            what: what.to_string(),
            of: "certificate",
        })?;
    if certs.is_empty() {
        return Err(PkiError::Holds {
            what: what.to_string(),
            of: "PEM certificate",
        });
    }
    Ok(certs)
}

/// Renders the Secret manifest.
pub(crate) fn render(
    layout: Layout,
    name: &str,
    namespace: Option<&str>,
    files: &Files,
) -> Result<String, PkiError> {
    if !dns_subdomain(name) {
        return Err(PkiError::NotA {
            flag: "--name",
            value: name.to_string(),
            kind: "a valid Secret name (lower-case letters, digits, '-' and '.', at most 253)",
        });
    }
    if let Some(ns) = namespace {
        if !dns_label(ns) {
            return Err(PkiError::NotA {
                flag: "--namespace",
                value: ns.to_string(),
                kind: "a valid namespace (lower-case letters, digits and '-', at most 63)",
            });
        }
    }
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => {
            let chain = certs("--cert", c)?;
            let key = read_private_key(k).ok_or_else(|| PkiError::Holds {
                what: "--key".into(),
                of: "PKCS#8, PKCS#1 or SEC1 private key",
            })?;
            check_key_matches(&chain[0], &key).map_err(|_| PkiError::KeyMismatch {
                key: "--key".into(),
                cert: "the certificate in --cert".into(),
            })?;
        }
        (None, None) if layout == Layout::Generic => {}
        _ => return Err(PkiError::Usage("give --cert and --key together")),
    }
    if let Some(ca) = &files.ca {
        certs("--ca", ca)?;
    }
    if let Some(crl) = &files.crl {
        let crls: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_slice_iter(crl)
                .collect::<Result<_, _>>()
                .map_err(|_| PkiError::NotPem {
                    what: "--crl".into(),
                    of: "CRL",
                })?;
        if crls.is_empty() {
            return Err(PkiError::Holds {
                what: "--crl".into(),
                of: "PEM CRL",
            });
        }
    }
    let b64 = |b: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    let mut data = BTreeMap::new();
    let (secret_type, keys): (&'static str, [&'static str; 4]) = match layout {
        Layout::Tls => ("kubernetes.io/tls", ["tls.crt", "tls.key", "ca.crt", ""]),
        Layout::Istio => ("Opaque", ["cert", "key", "cacert", ""]),
        Layout::Generic => ("Opaque", ["tls.crt", "tls.key", "ca.crt", "ca.crl"]),
    };
    for (key, file) in keys
        .iter()
        .zip([&files.cert, &files.key, &files.ca, &files.crl])
    {
        match (key.is_empty(), file) {
            (false, Some(bytes)) => {
                data.insert(*key, b64(bytes));
            }
            (true, Some(_)) => {
                return Err(PkiError::Usage("--crl only goes into a generic Secret"))
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return Err(PkiError::Usage(
            "nothing to put in the Secret: give --cert/--key, --ca or --crl",
        ));
    }
    let secret = Secret {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata { name, namespace },
        secret_type,
        data,
    };
    // Plain one-line scalars: what `kubectl create secret -o yaml` writes.
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    // SPEC §1: one document that starts with `---`, so outputs can be
    // concatenated into one file (`secret tls … >> s.yaml; secret generic … >> s.yaml`).
    serde_saphyr::to_string_with_options(&secret, options)
        .map(|yaml| format!("---\n{yaml}"))
        .map_err(PkiError::Yaml)
}
