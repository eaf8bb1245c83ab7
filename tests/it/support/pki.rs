//! Test certificates, made with rcgen inside the tests (never with the
//! product's own `pki` module).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

fn next_serial() -> SerialNumber {
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SerialNumber::from_slice(&n.to_be_bytes())
}

/// A CA (root or intermediate) that can issue.
pub struct Ca {
    pub cert_pem: String,
    pub der: CertificateDer<'static>,
    /// Intermediates from this CA up to (not including) the root, this CA first.
    pub chain: Vec<CertificateDer<'static>>,
    pub chain_pem: String,
    /// Its serial number, for a parent's CRL.
    pub serial: SerialNumber,
    issuer: Issuer<'static, KeyPair>,
}

/// Extended key usage of a leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Eku {
    Client,
    Server,
    Both,
    Absent,
}

/// What a leaf should look like.
pub struct Spec {
    pub cn: String,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    /// Extra subject attributes before the CN, as (short name, value).
    pub dn: Vec<(&'static str, String)>,
    pub eku: Eku,
    /// Validity relative to now, in days.
    pub not_before_days: i64,
    pub not_after_days: i64,
    /// When set, notAfter is this many seconds from now instead.
    pub not_after_secs: Option<i64>,
}

impl Spec {
    pub fn client(cn: &str) -> Spec {
        Spec {
            cn: cn.into(),
            dns: Vec::new(),
            uris: Vec::new(),
            dn: Vec::new(),
            eku: Eku::Client,
            not_before_days: -1,
            not_after_days: 30,
            not_after_secs: None,
        }
    }

    pub fn server(names: &[&str]) -> Spec {
        Spec {
            cn: names[0].into(),
            dns: names.iter().map(|s| s.to_string()).collect(),
            uris: Vec::new(),
            dn: Vec::new(),
            eku: Eku::Server,
            not_before_days: -1,
            not_after_days: 30,
            not_after_secs: None,
        }
    }
}

/// A leaf with its chain and key.
#[derive(Clone)]
pub struct Leaf {
    /// Leaf then the issuing intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    pub chain_pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub serial: SerialNumber,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = OffsetDateTime::now_utc() - Duration::days(2);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(60);
    p.serial_number = Some(next_serial());
    p
}

impl Ca {
    pub fn root(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(cn);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            serial: params.serial_number.clone().unwrap(),
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            chain: Vec::new(),
            chain_pem: String::new(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn intermediate(&self, cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Ca {
            serial: params.serial_number.clone().unwrap(),
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            chain,
            chain_pem: format!("{}{}", cert.pem(), self.chain_pem),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn leaf(&self, spec: &Spec) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        for (kind, value) in &spec.dn {
            let t = match *kind {
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                other => panic!("unsupported attribute {other}"),
            };
            p.distinguished_name.push(t, value.as_str());
        }
        p.distinguished_name
            .push(DnType::CommonName, spec.cn.as_str());
        for u in &spec.uris {
            p.subject_alt_names
                .push(SanType::URI(u.as_str().try_into().unwrap()));
        }
        for d in &spec.dns {
            p.subject_alt_names
                .push(match d.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(d.as_str().try_into().unwrap()),
                });
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = match spec.eku {
            Eku::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Eku::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Eku::Both => vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
            Eku::Absent => Vec::new(),
        };
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(spec.not_before_days);
        p.not_after = match spec.not_after_secs {
            Some(s) => now + Duration::seconds(s),
            None => now + Duration::days(spec.not_after_days),
        };
        let serial = next_serial();
        p.serial_number = Some(serial.clone());
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Leaf {
            chain,
            chain_pem: format!("{}{}", cert.pem(), self.chain_pem),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            serial,
        }
    }

    /// The CA's private key (PKCS#8 PEM), for a test that lays it out as a
    /// CA directory (`ca.crt`, `ca.key`) for the `portcullis ca` commands.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A CRL signed by this CA revoking `serials`, valid for 30 days (not
    /// within the gateway's 7-day warning).
    pub fn crl(&self, serials: &[&SerialNumber]) -> String {
        self.crl_until(serials, OffsetDateTime::now_utc() + Duration::days(30))
    }

    /// A CRL signed by this CA revoking `serials` whose nextUpdate is
    /// `next_update` (which may be past, or a few seconds ahead); its
    /// thisUpdate is an hour before now or before `next_update`, whichever
    /// is earlier.
    pub fn crl_until(&self, serials: &[&SerialNumber], next_update: OffsetDateTime) -> String {
        let this_update = OffsetDateTime::now_utc().min(next_update) - Duration::hours(1);
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: next_serial(),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: (*s).clone(),
                    revocation_time: this_update + Duration::minutes(30),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

/// A self-signed client certificate (no CA behind it).
pub fn self_signed_client(cn: &str) -> Leaf {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let serial = next_serial();
    p.serial_number = Some(serial.clone());
    let cert = p.self_signed(&key).unwrap();
    Leaf {
        chain: vec![cert.der().clone()],
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
        serial,
    }
}
