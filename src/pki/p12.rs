//! `cert p12`: a PKCS#12 bundle of a key, its certificate and chain, for
//! browsers and Java/Windows clients. AES-256-CBC with PBKDF2 and an
//! HMAC-SHA256 MAC by default; `--legacy` writes 3DES with an HMAC-SHA1 MAC
//! for consumers that know nothing newer.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12ImportPolicy,
    PrivateKey, PrivateKeyChain,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::keys::read_private_key;
use super::PkiError;

/// Builds the PKCS#12 bytes.
pub(crate) fn build(
    cert_pem: &[u8],
    key_pem: &[u8],
    chain_pem: Option<&[u8]>,
    password: &str,
    alias: &str,
    legacy: bool,
) -> Result<Vec<u8>, PkiError> {
    let mut certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::NotPem {
            what: "--cert".into(),
            of: "certificate",
        })?;
    if certs.is_empty() {
        return Err(PkiError::Holds {
            what: "--cert".into(),
            of: "certificate",
        });
    }
    if let Some(chain) = chain_pem {
        let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<_, _>>()
            .map_err(|_| PkiError::NotPem {
                what: "--chain".into(),
                of: "certificate",
            })?;
        for c in extra {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
    }
    let key = read_private_key(key_pem).ok_or_else(|| PkiError::Holds {
        what: "--key".into(),
        of: "PKCS#8, PKCS#1 or SEC1 private key",
    })?;
    check_key_matches(&certs[0], &key)?;
    let p12_certs = certs
        .iter()
        .map(|c| {
            Certificate::from_der(c.as_ref()).map_err(|source| PkiError::Unusable {
                what: "certificate",
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKey::from_der(&key.pkcs8).map_err(|source| PkiError::Unusable {
        what: "private key",
        source,
    })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certs[0].as_ref());
    let local_key_id = digest.as_ref()[..20].to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, p12_certs)),
    );
    let writer = store.writer(password);
    let writer = if legacy {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
    } else {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
    };
    writer.write().map_err(PkiError::P12Build)
}

/// Refuses a key that does not belong to the certificate.
pub(crate) fn check_key_matches(
    cert: &CertificateDer<'_>,
    key: &super::keys::PrivateKey,
) -> Result<(), PkiError> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).map_err(|source| PkiError::Der {
        what: "certificate",
        source,
    })?;
    let spki = c
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    if spki != key.public.as_slice() {
        return Err(PkiError::KeyMismatch {
            key: "the private key".into(),
            cert: "the certificate".into(),
        });
    }
    Ok(())
}

/// The certificates and key inside a PKCS#12 file.
pub(crate) struct Contents {
    /// Certificates, leaf first when there is a key.
    pub certs: Vec<Vec<u8>>,
    /// The key's kind, when there is one.
    pub key: Option<String>,
    /// The key as PKCS#8 DER.
    pub key_der: Option<Vec<u8>>,
}

/// Opens a PKCS#12 file.
pub(crate) fn open(data: &[u8], password: &str) -> Result<Contents, PkiError> {
    let store = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed)
        .map_err(|_| PkiError::P12Open)?;
    let mut out = Contents {
        certs: Vec::new(),
        key: None,
        key_der: None,
    };
    for (_, entry) in store.entries() {
        match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => {
                let der = rustls_pki_types::PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec());
                let k = super::keys::classify(&der.into());
                out.key = k.as_ref().map(|k| k.kind.clone());
                out.key_der = k.map(|k| k.pkcs8);
                out.certs
                    .extend(chain.certs().iter().map(|c| c.as_der().to_vec()));
            }
            KeyStoreEntry::Certificate(c) => out.certs.push(c.as_der().to_vec()),
            KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok(out)
}
