//! Certificate tooling. Today: what `demo` needs (a throwaway CA, a server
//! and a client certificate) and safe file writing; the `ca`/`cert`/`secret`
//! commands grow here.

use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Certificate tooling failures.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("cannot create certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a leaf certificate is for (SPEC §1 profiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// serverAuth
    Server,
    /// clientAuth
    Client,
    /// both
    Peer,
}

/// A CA able to sign.
pub struct Ca {
    /// The CA certificate in PEM.
    pub cert_pem: String,
    /// The CA key in PEM (PKCS#8).
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, both PEM.
pub struct Leaf {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 key PEM.
    pub key_pem: String,
}

fn validity(params: &mut CertificateParams, days: u32) {
    // Start a minute in the past so a peer with a slightly slow clock
    // accepts a certificate made just now.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn random_serial(params: &mut CertificateParams) {
    let mut serial = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut serial).is_ok() {
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    }
}

impl Ca {
    /// A new self-signed root CA (ECDSA P-256).
    pub fn new_root(common_name: &str, days: u32) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = false;
        validity(&mut params, days);
        random_serial(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a leaf for `profile` with DNS/IP names `sans` and common name `cn`.
    pub fn issue(
        &self,
        profile: Profile,
        cn: &str,
        sans: &[&str],
        days: u32,
    ) -> Result<Leaf, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for s in sans {
            params
                .subject_alt_names
                .push(match s.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*s).try_into()?),
                });
        }
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match profile {
            Profile::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Profile::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Profile::Peer => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days);
        random_serial(&mut params);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `contents` to `path` atomically (a temporary file renamed into
/// place, so a failure never leaves half a file). `secret` files get mode
/// 0600 from their creation on.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}
