//! The CA's CRL (`DIR/ca.crl`, PEM): `cert revoke` reads it, appends the
//! certificate (once), increments the CRL number and re-signs it.

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};

use super::ca::Ca;
use super::{invalid, read, write_file, PkiError};
use crate::identity::CertSummary;

/// Days until a new CRL's nextUpdate, unless `--crl-days` says otherwise.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// `--reason`, with RFC 5280's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
pub enum Reason {
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
pub struct Entry {
    /// Serial number, big-endian.
    pub serial: Vec<u8>,
    /// When.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: Option<RevocationReason>,
}

/// Signs a CRL with `entries` and CRL number `number` (big-endian).
pub fn sign(ca: &Ca, entries: &[Entry], number: u64, days: u32) -> Result<String, PkiError> {
    sign_numbered(ca, entries, &number.to_be_bytes(), days)
}

fn sign_numbered(ca: &Ca, entries: &[Entry], number: &[u8], days: u32) -> Result<String, PkiError> {
    let now = OffsetDateTime::now_utc();
    // Minimal big-endian: no leading zero bytes (DER INTEGERs are minimal).
    let first = number
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(number.len().saturating_sub(1));
    let number = &number[first..];
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(i64::from(days.max(1))),
        crl_number: SerialNumber::from_slice(number),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|e| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&e.serial),
                revocation_time: e.revoked_at,
                reason_code: e.reason,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&ca.issuer)?.pem()?)
}

/// What an existing CRL holds.
struct Current {
    entries: Vec<Entry>,
    number: Vec<u8>,
}

fn current(ca: &Ca) -> Result<Current, PkiError> {
    let path = ca.dir.join("ca.crl");
    if !path.exists() {
        return Ok(Current {
            entries: Vec::new(),
            number: vec![0],
        });
    }
    let bytes = read(&path)?;
    let der = pem::parse(&bytes)
        .map(|p| p.into_contents())
        .map_err(|_| invalid(format!("{}: not a PEM CRL", path.display())))?;
    let crl = x509_cert::crl::CertificateList::from_der(&der)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let tbs = crl.tbs_cert_list;
    let mut number = vec![0];
    for ext in tbs.crl_extensions.iter().flatten() {
        if ext.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_CRL_NUMBER {
            if let Ok(n) = CrlNumber::from_der(ext.extn_value.as_bytes()) {
                number = n.0.as_bytes().to_vec();
            }
        }
    }
    let entries = tbs
        .revoked_certificates
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let reason = r
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_CRL_REASONS)
                .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok())
                .map(Reason::from_x509);
            let secs = i64::try_from(r.revocation_date.to_unix_duration().as_secs()).unwrap_or(0);
            Entry {
                serial: r.serial_number.as_bytes().to_vec(),
                revoked_at: OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason,
            }
        })
        .collect();
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
pub enum Revoked {
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
pub fn revoke(
    ca: &Ca,
    cert: &[u8],
    reason: Option<Reason>,
    days: u32,
) -> Result<Revoked, PkiError> {
    let der = pem::parse(cert)
        .map(|p| p.into_contents())
        .or_else(|_| Ok::<_, PkiError>(cert.to_vec()))?;
    let x = x509_cert::Certificate::from_der(&der)
        .map_err(|_| invalid("not a certificate (PEM or DER)"))?;
    let leaf = CertSummary::from_der(&der).map_err(|e| invalid(e.to_string()))?;
    let ca_der = pem::parse(&ca.cert_pem)
        .map(|p| p.into_contents())
        .map_err(|_| invalid("unreadable ca.crt"))?;
    let ca_cert = x509_cert::Certificate::from_der(&ca_der).map_err(|e| invalid(e.to_string()))?;
    if x.tbs_certificate.issuer.to_der().ok() != ca_cert.tbs_certificate.subject.to_der().ok() {
        return Err(invalid(format!(
            "this certificate was issued by {}, not by this CA ({})",
            leaf.issuer, ca.summary.subject
        )));
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
    });
    let number = increment(&cur.number);
    let pem = sign_numbered(ca, &cur.entries, &number, days)?;
    write_file(&ca.dir.join("ca.crl"), pem.as_bytes(), false)?;
    Ok(Revoked::Added {
        serial: leaf.serial,
        crl_number: crate::identity::cert::hex_upper(&number),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_increment_with_carry() {
        assert_eq!(increment(&[0]), vec![1]);
        assert_eq!(increment(&[0, 0xff]), vec![1, 0]);
        assert_eq!(increment(&[0xff]), vec![1, 0]);
    }
}
