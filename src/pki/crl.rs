//! The CA's CRL (`DIR/ca.crl`, PEM): `cert revoke` reads it, appends the
//! certificate (once), increments the CRL number and re-signs it; `ca crl`
//! re-signs it as it is, with a fresh thisUpdate/nextUpdate. Both go through
//! [`publish`], so there is one signing path.
//!
//! The existing CRL is read only when this CA signed it (issuer name and
//! signature), so a CRL copied in from another CA is never laundered into
//! this one, and only when every entry can be carried over whole.

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use x509_cert::crl::CertificateList;
use x509_cert::der::asn1::GeneralizedTime;
use x509_cert::der::oid::db::rfc5280;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};

use super::ca::Ca;
use super::{read, write_file, PkiError};
use crate::identity::CertSummary;

/// Days until a new CRL's nextUpdate, unless `--days` (`ca crl`) or
/// `--crl-days` (`cert revoke`) says otherwise.
pub(crate) const DEFAULT_CRL_DAYS: u32 = 30;

/// `--reason`, with RFC 5280's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
pub(crate) enum Reason {
    #[value(name = "unspecified")]
    Unspecified,
    #[value(name = "keyCompromise")]
    KeyCompromise,
    #[value(name = "cACompromise")]
    CaCompromise,
    #[value(name = "affiliationChanged")]
    AffiliationChanged,
    #[value(name = "superseded")]
    Superseded,
    #[value(name = "cessationOfOperation")]
    CessationOfOperation,
    #[value(name = "certificateHold")]
    CertificateHold,
    #[value(name = "removeFromCRL")]
    RemoveFromCrl,
    #[value(name = "privilegeWithdrawn")]
    PrivilegeWithdrawn,
    #[value(name = "aACompromise")]
    AaCompromise,
}

impl Reason {
    fn rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::CertificateHold => RevocationReason::CertificateHold,
            Reason::RemoveFromCrl => RevocationReason::RemoveFromCrl,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            Reason::AaCompromise => RevocationReason::AaCompromise,
        }
    }

    fn from_x509(r: CrlReason) -> RevocationReason {
        match r {
            CrlReason::Unspecified => RevocationReason::Unspecified,
            CrlReason::KeyCompromise => RevocationReason::KeyCompromise,
            CrlReason::CaCompromise => RevocationReason::CaCompromise,
            CrlReason::AffiliationChanged => RevocationReason::AffiliationChanged,
            CrlReason::Superseded => RevocationReason::Superseded,
            CrlReason::CessationOfOperation => RevocationReason::CessationOfOperation,
            CrlReason::CertificateHold => RevocationReason::CertificateHold,
            CrlReason::RemoveFromCRL => RevocationReason::RemoveFromCrl,
            CrlReason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            CrlReason::AaCompromise => RevocationReason::AaCompromise,
        }
    }
}

/// One revoked certificate.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Serial number, big-endian.
    pub serial: Vec<u8>,
    /// When.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: Option<RevocationReason>,
    /// Since when the key is known or suspected compromised (RFC 5280
    /// invalidityDate), when a CRL said so.
    pub invalid_since: Option<OffsetDateTime>,
}

/// A signed CRL.
struct Signed {
    pem: String,
    next_update: OffsetDateTime,
}

/// Signs a CRL with `entries` and CRL number `number` (big-endian).
pub(crate) fn sign(ca: &Ca, entries: &[Entry], number: u64, days: u32) -> Result<String, PkiError> {
    Ok(sign_numbered(ca, entries, &number.to_be_bytes(), days)?.pem)
}

fn sign_numbered(ca: &Ca, entries: &[Entry], number: &[u8], days: u32) -> Result<Signed, PkiError> {
    let now = OffsetDateTime::now_utc();
    let next_update = now + time::Duration::days(i64::from(days.max(1)));
    // Minimal big-endian: no leading zero bytes (DER INTEGERs are minimal).
    let first = number
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(number.len().saturating_sub(1));
    let number = &number[first..];
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update,
        crl_number: SerialNumber::from_slice(number),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|e| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&e.serial),
                revocation_time: e.revoked_at,
                reason_code: e.reason,
                invalidity_date: e.invalid_since,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(Signed {
        pem: params.signed_by(&ca.issuer)?.pem()?,
        next_update,
    })
}

/// Signs `entries` under CRL number `number` and writes `DIR/ca.crl`
/// atomically (see [`super::write_files`]): nothing is written unless
/// signing succeeded, and a reader sees the old file or the new one.
fn publish(ca: &Ca, entries: &[Entry], number: &[u8], days: u32) -> Result<Signed, PkiError> {
    let signed = sign_numbered(ca, entries, number, days)?;
    write_file(&ca.dir.join("ca.crl"), signed.pem.as_bytes(), false)?;
    Ok(signed)
}

/// What an existing CRL holds.
struct Current {
    entries: Vec<Entry>,
    number: Vec<u8>,
}

/// Unix seconds of an ASN.1 time as an `OffsetDateTime` (whole seconds, as
/// CRLs store them).
fn datetime(t: x509_cert::der::DateTime) -> OffsetDateTime {
    let secs = i64::try_from(t.unix_duration().as_secs()).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The contents of an AlgorithmIdentifier SEQUENCE (what webpki's
/// algorithm ids hold): the OID, then the parameters if any.
fn algorithm_id(a: &x509_cert::spki::AlgorithmIdentifierOwned) -> Option<Vec<u8>> {
    let mut out = a.oid.to_der().ok()?;
    if let Some(p) = &a.parameters {
        out.extend(p.to_der().ok()?);
    }
    Some(out)
}

/// Whether `crl` carries a valid signature of the CA certificate `ca`'s key.
fn signed_by(crl: &CertificateList, ca: &x509_cert::Certificate) -> bool {
    let spki = &ca.tbs_certificate.subject_public_key_info;
    let (Some(key_alg), Some(sig_alg), Ok(tbs)) = (
        algorithm_id(&spki.algorithm),
        algorithm_id(&crl.signature_algorithm),
        crl.tbs_cert_list.to_der(),
    ) else {
        return false;
    };
    let (Some(signature), key) = (
        crl.signature.as_bytes(),
        spki.subject_public_key.raw_bytes(),
    ) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS.iter().any(|alg| {
        alg.public_key_alg_id().as_ref() == key_alg.as_slice()
            && alg.signature_alg_id().as_ref() == sig_alg.as_slice()
            && alg.verify_signature(key, &tbs, signature).is_ok()
    })
}

/// The CA's own certificate, parsed.
fn ca_certificate(ca: &Ca) -> Result<x509_cert::Certificate, PkiError> {
    let ca_der = pem::parse(&ca.cert_pem)
        .map(|p| p.into_contents())
        .map_err(|_| PkiError::UnreadableCaCertificate)?;
    x509_cert::Certificate::from_der(&ca_der).map_err(|_| PkiError::UnreadableCaCertificate)
}

/// Reads `DIR/ca.crl` (none yet: no entries, number 0), refusing one this
/// CA did not sign or whose entries could not be carried over whole.
fn current(ca: &Ca) -> Result<Current, PkiError> {
    let path = ca.dir.join("ca.crl");
    if !path.exists() {
        return Ok(Current {
            entries: Vec::new(),
            number: vec![0],
        });
    }
    let shown = path.display().to_string();
    let bytes = read(&path)?;
    let der = pem::parse(&bytes)
        .map(|p| p.into_contents())
        .map_err(|_| PkiError::CrlNotPem {
            file: shown.clone(),
        })?;
    let crl = CertificateList::from_der(&der).map_err(|source| PkiError::In {
        path: path.clone(),
        source: Box::new(PkiError::Der {
            what: "CRL",
            source,
        }),
    })?;
    let ca_cert = ca_certificate(ca)?;
    if crl.tbs_cert_list.issuer != ca_cert.tbs_certificate.subject {
        return Err(PkiError::CrlIssuer {
            file: shown,
            issuer: crate::identity::dn::rfc2253(&crl.tbs_cert_list.issuer),
            ca: ca.summary.subject.clone(),
        });
    }
    if !signed_by(&crl, &ca_cert) {
        return Err(PkiError::CrlSignature {
            file: shown,
            ca_crt: ca.dir.join("ca.crt"),
        });
    }
    let tbs = crl.tbs_cert_list;
    let mut number = vec![0];
    for ext in tbs.crl_extensions.iter().flatten() {
        if ext.extn_id == rfc5280::ID_CE_CRL_NUMBER {
            if let Ok(n) = CrlNumber::from_der(ext.extn_value.as_bytes()) {
                number = n.0.as_bytes().to_vec();
            }
        } else if ext.critical && ext.extn_id != rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER {
            // An issuing distribution point or a delta-CRL indicator changes
            // what the CRL means; re-signing without it would change that.
            return Err(PkiError::CrlExtension {
                file: shown,
                oid: ext.extn_id.to_string(),
            });
        }
    }
    let mut entries = Vec::new();
    for r in tbs.revoked_certificates.unwrap_or_default() {
        let mut entry = Entry {
            serial: r.serial_number.as_bytes().to_vec(),
            revoked_at: datetime(r.revocation_date.to_date_time()),
            reason: None,
            invalid_since: None,
        };
        for e in r.crl_entry_extensions.iter().flatten() {
            if e.extn_id == rfc5280::ID_CE_CRL_REASONS {
                entry.reason = CrlReason::from_der(e.extn_value.as_bytes())
                    .ok()
                    .map(Reason::from_x509);
            } else if e.extn_id == rfc5280::ID_CE_INVALIDITY_DATE {
                entry.invalid_since = GeneralizedTime::from_der(e.extn_value.as_bytes())
                    .ok()
                    .map(|t| datetime(t.to_date_time()));
            } else {
                // A certificateIssuer (indirect CRL) or anything else we
                // would silently drop, changing the entry's meaning.
                return Err(PkiError::CrlEntryExtension {
                    file: shown,
                    serial: crate::identity::cert::hex_upper(r.serial_number.as_bytes()),
                    oid: e.extn_id.to_string(),
                });
            }
        }
        entries.push(entry);
    }
    Ok(Current { entries, number })
}

fn increment(number: &[u8]) -> Vec<u8> {
    let mut n = number.to_vec();
    for b in n.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return n;
        }
    }
    n.insert(0, 1);
    n
}

/// The outcome of `cert revoke`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Newly revoked; the CRL now has this number (hex).
    Added {
        /// Serial (hex).
        serial: String,
        /// New CRL number (hex).
        crl_number: String,
    },
    /// It was revoked before; nothing changed.
    Already {
        /// Serial (hex).
        serial: String,
    },
}

/// Revokes the certificate in `cert_pem` (which this CA must have issued).
pub(crate) fn revoke(
    ca: &Ca,
    cert: &[u8],
    reason: Option<Reason>,
    days: u32,
) -> Result<Revoked, PkiError> {
    let der = pem::parse(cert)
        .map(|p| p.into_contents())
        .or_else(|_| Ok::<_, PkiError>(cert.to_vec()))?;
    let x = x509_cert::Certificate::from_der(&der).map_err(|_| PkiError::NotACertificate)?;
    let leaf = CertSummary::from_der(&der)?;
    let ca_cert = ca_certificate(ca)?;
    if x.tbs_certificate.issuer.to_der().ok() != ca_cert.tbs_certificate.subject.to_der().ok() {
        return Err(PkiError::NotIssuedHere {
            issuer: leaf.issuer,
            ca: ca.summary.subject.clone(),
        });
    }
    let serial = x.tbs_certificate.serial_number.as_bytes().to_vec();
    let mut cur = current(ca)?;
    if cur.entries.iter().any(|e| e.serial == serial) {
        return Ok(Revoked::Already {
            serial: leaf.serial,
        });
    }
    cur.entries.push(Entry {
        serial,
        revoked_at: OffsetDateTime::now_utc(),
        reason: reason.map(Reason::rcgen),
        invalid_since: None,
    });
    let number = increment(&cur.number);
    publish(ca, &cur.entries, &number, days)?;
    Ok(Revoked::Added {
        serial: leaf.serial,
        crl_number: crate::identity::cert::hex_upper(&number),
    })
}

/// The outcome of `ca crl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renewed {
    /// Revoked entries carried over.
    pub entries: usize,
    /// The new CRL number (hex).
    pub crl_number: String,
    /// The new nextUpdate, Unix seconds.
    pub next_update: u64,
}

/// `ca crl`: re-signs `DIR/ca.crl` with a fresh thisUpdate and a nextUpdate
/// `days` from now and the next CRL number, keeping every entry (serial,
/// revocation date, reason, invalidity date). Without a `ca.crl` it makes
/// an empty one.
pub(crate) fn renew(ca: &Ca, days: u32) -> Result<Renewed, PkiError> {
    let cur = current(ca)?;
    let number = increment(&cur.number);
    let signed = publish(ca, &cur.entries, &number, days)?;
    Ok(Renewed {
        entries: cur.entries.len(),
        crl_number: crate::identity::cert::hex_upper(&number),
        next_update: u64::try_from(signed.next_update.unix_timestamp()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &std::path::Path, key_type: crate::pki::KeyType) -> Ca {
        let spec = super::super::ca::InitSpec {
            cn: "Unit CA".into(),
            key_type,
            days: 30,
        };
        super::super::ca::init(dir, &spec, None).unwrap()
    }

    #[test]
    fn renewing_keeps_dates_reasons_and_invalidity_dates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(dir.path(), crate::pki::KeyType::EcdsaP256);
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let entries = [
            Entry {
                serial: vec![0x42, 0x01],
                revoked_at: at(1_700_000_000),
                reason: Some(RevocationReason::KeyCompromise),
                invalid_since: Some(at(1_690_000_000)),
            },
            Entry {
                serial: vec![0x07],
                revoked_at: at(1_700_000_100),
                reason: None,
                invalid_since: None,
            },
        ];
        publish(&ca, &entries, &[5], 1).unwrap();
        let r = renew(&ca, 30).unwrap();
        assert_eq!((r.entries, r.crl_number.as_str()), (2, "06"));
        let now = OffsetDateTime::now_utc().unix_timestamp() as u64;
        assert!(r.next_update > now + 29 * 86_400, "{r:?}");
        let got = current(&ca).unwrap();
        assert_eq!(got.number, vec![6]);
        assert_eq!(got.entries.len(), 2);
        for (g, e) in got.entries.iter().zip(&entries) {
            assert_eq!(g.serial, e.serial);
            assert_eq!(g.revoked_at, e.revoked_at);
            assert_eq!(g.reason, e.reason);
            assert_eq!(g.invalid_since, e.invalid_since);
        }
    }

    #[test]
    fn the_signature_check_knows_every_key_type() {
        use crate::pki::KeyType as K;
        for kt in [K::EcdsaP256, K::EcdsaP384, K::Ed25519, K::Rsa2048] {
            let dir = tempfile::tempdir().unwrap();
            let ca = ca(dir.path(), kt);
            // ca init wrote a signed CRL; renewing reads (and verifies) it.
            renew(&ca, 30).unwrap_or_else(|e| panic!("{kt:?}: {e}"));
            assert_eq!(current(&ca).unwrap().number, vec![2], "{kt:?}");
        }
    }

    #[test]
    fn crl_numbers_increment_with_carry() {
        assert_eq!(increment(&[0]), vec![1]);
        assert_eq!(increment(&[0, 0xff]), vec![1, 0]);
        assert_eq!(increment(&[0xff]), vec![1, 0]);
    }
}
