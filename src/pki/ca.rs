//! A CA kept in a directory: `ca.crt`, `ca.key` (0600), `ca.crl` (its CRL,
//! empty at first) and, for an intermediate, `chain.crt` (this CA and its
//! parents up to, not including, the root — what leaves carry after
//! themselves).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use x509_cert::der::Decode;

use super::keys::KeyType;
use super::{read_text, refuse_existing, write_files, Output, PkiError};
use crate::identity::CertSummary;

/// A CA able to issue.
pub(crate) struct Ca {
    /// Its directory.
    pub dir: PathBuf,
    /// `ca.crt`.
    pub cert_pem: String,
    /// `chain.crt`: empty for a root.
    pub chain_pem: String,
    /// What `ca.crt` says.
    pub summary: CertSummary,
    /// The signer.
    pub issuer: Issuer<'static, KeyPair>,
}

/// Options of `ca init`.
#[derive(Debug, Clone)]
pub(crate) struct InitSpec {
    /// Common name.
    pub cn: String,
    /// Key type.
    pub key_type: KeyType,
    /// Validity in days.
    pub days: u32,
}

/// Sets validity starting one minute in the past (a peer with a slightly
/// slow clock still accepts a certificate made just now).
pub(crate) fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// A random positive serial of 127 bits (RFC 5280 asks for at least 64).
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, PkiError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| PkiError::Random)?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

fn ca_params(spec: &InitSpec) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, spec.cn.as_str());
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut p, spec.days);
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

/// Creates a CA in `out`: a self-signed root, or an intermediate signed by
/// `parent`. Refuses to overwrite an existing CA.
pub(crate) fn init(out: &Path, spec: &InitSpec, parent: Option<&Ca>) -> Result<Ca, PkiError> {
    std::fs::create_dir_all(out).map_err(|e| PkiError::Write {
        path: out.display().to_string(),
        source: e,
    })?;
    let (crt, key_path, crl, chain) = (
        out.join("ca.crt"),
        out.join("ca.key"),
        out.join("ca.crl"),
        out.join("chain.crt"),
    );
    refuse_existing(&[&crt, &key_path])?;
    let (ca, key_pem) = create(out, spec, parent)?;
    let (cert_pem, chain_pem) = (ca.cert_pem.clone(), ca.chain_pem.clone());
    let empty_crl = super::crl::sign(&ca, &[], 1, super::crl::DEFAULT_CRL_DAYS)?;
    let mut outputs = vec![
        Output::public(&crt, cert_pem),
        Output::secret(&key_path, key_pem),
        Output::public(&crl, empty_crl),
    ];
    if parent.is_some() {
        outputs.push(Output::public(&chain, chain_pem));
    }
    write_files(&outputs)?;
    Ok(ca)
}

/// A new CA in memory, kept in `dir` once written; also its key as PEM.
pub(crate) fn create(
    dir: &Path,
    spec: &InitSpec,
    parent: Option<&Ca>,
) -> Result<(Ca, String), PkiError> {
    let key = spec.key_type.generate()?;
    let mut params = ca_params(spec)?;
    let (cert, chain_pem) = match parent {
        None => (params.self_signed(&key)?, String::new()),
        Some(p) => {
            params.use_authority_key_identifier_extension = true;
            let c = params.signed_by(&key, &p.issuer)?;
            let chain = format!("{}{}", c.pem(), p.chain_pem);
            (c, chain)
        }
    };
    let summary = CertSummary::from_der(cert.der())?;
    let key_pem = key.serialize_pem();
    let ca = Ca {
        dir: dir.to_path_buf(),
        cert_pem: cert.pem(),
        chain_pem,
        summary,
        issuer: Issuer::new(params, key),
    };
    Ok((ca, key_pem))
}

/// Loads the CA in `dir`, checking that the key belongs to the certificate
/// and that it is a CA.
pub(crate) fn load(dir: &Path) -> Result<Ca, PkiError> {
    let crt = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    if !crt.exists() || !key_path.exists() {
        return Err(PkiError::NotACaDirectory {
            dir: dir.to_path_buf(),
        });
    }
    let cert_pem = read_text(&crt)?;
    let key_pem = read_text(&key_path)?;
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateDer<'_>| d.to_vec())
        .map_err(|_| PkiError::NoPemCertificate { path: crt.clone() })?;
    let in_crt = |e: PkiError| PkiError::In {
        path: crt.clone(),
        source: Box::new(e),
    };
    let summary = CertSummary::from_der(&der).map_err(|e| in_crt(e.into()))?;
    if !summary.is_ca {
        return Err(PkiError::NotACa { path: crt });
    }
    let key = KeyPair::from_pem(&key_pem).map_err(|_| PkiError::KeyNotPkcs8 {
        path: key_path.clone(),
    })?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|source| {
        in_crt(PkiError::Der {
            what: "certificate",
            source,
        })
    })?;
    let spki_key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    if spki_key != key.public_key_raw() {
        return Err(PkiError::KeyMismatch {
            key: key_path.display().to_string(),
            cert: crt.display().to_string(),
        });
    }
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
    let chain_file = dir.join("chain.crt");
    let chain_pem = if chain_file.exists() {
        read_text(&chain_file)?
    } else {
        String::new()
    };
    Ok(Ca {
        dir: dir.to_path_buf(),
        cert_pem,
        chain_pem,
        summary,
        issuer,
    })
}
