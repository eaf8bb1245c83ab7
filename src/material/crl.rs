//! CRLs: parsed for webpki, described (issuer, nextUpdate, where from, how
//! to renew), and judged against the clock (SPEC §2): past nextUpdate is a
//! problem, within [`CRL_WARNING_DAYS`] a warning.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;

use super::Problem;
use crate::words::rfc3339;

/// CRLs whose nextUpdate is sooner than this are warned about (SPEC §2).
pub(crate) const CRL_WARNING_DAYS: u64 = 7;

/// One CRL and what it says about itself.
#[derive(Debug)]
pub(crate) struct Crl {
    /// Parsed for webpki.
    pub parsed: webpki::CertRevocationList<'static>,
    /// What it says about itself and where it came from.
    pub info: CrlInfo,
    /// Serials it revokes (upper-case hex).
    pub revoked: Vec<String>,
    /// SHA-256 of its DER.
    pub digest: [u8; 32],
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

/// How a CRL stands against the clock, with what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// More than [`CRL_WARNING_DAYS`] left (or no nextUpdate).
    Fresh,
    /// Expires within [`CRL_WARNING_DAYS`]: a warning.
    Expiring(CrlStanding),
    /// Past its nextUpdate: a problem.
    Expired(CrlStanding),
}

/// What is said of a CRL that lapsed or soon will.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CrlStanding {
    /// Past its nextUpdate.
    #[error(
        "CRL {} (issuer {}) expired on {} (its nextUpdate): every client certificate \
         checked against it is refused (crl_expired) until it is renewed: {}",
        .crl.source, .crl.issuer, rfc3339(*.next_update), .crl.renew
    )]
    Expired {
        /// The CRL.
        crl: CrlInfo,
        /// Its nextUpdate, Unix seconds.
        next_update: u64,
    },
    /// Within [`CRL_WARNING_DAYS`] of its nextUpdate.
    #[error(
        "CRL {} (issuer {}) expires in {}, on {} (its nextUpdate); after that every \
         client certificate checked against it is refused; renew it before: {}",
        .crl.source, .crl.issuer, span_words(*.left), rfc3339(*.next_update), .crl.renew
    )]
    Expiring {
        /// The CRL.
        crl: CrlInfo,
        /// Seconds left.
        left: u64,
        /// Its nextUpdate, Unix seconds.
        next_update: u64,
    },
}

/// A span of seconds in the largest whole unit that says enough.
fn span_words(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s if s >= 2 * 60 => format!("{} minutes", s / 60),
        s if s >= 60 => "1 minute".to_string(),
        _ => "less than a minute".to_string(),
    }
}

/// How `crl` stands at `now` (Unix seconds).
pub(crate) fn crl_freshness(crl: &CrlInfo, now: u64) -> Freshness {
    let Some(next) = crl.next_update else {
        return Freshness::Fresh;
    };
    // webpki: a CRL is expired when now >= nextUpdate.
    if now >= next {
        Freshness::Expired(CrlStanding::Expired {
            crl: crl.clone(),
            next_update: next,
        })
    } else if next - now < CRL_WARNING_DAYS * 86_400 {
        Freshness::Expiring(CrlStanding::Expiring {
            crl: crl.clone(),
            left: next - now,
            next_update: next,
        })
    } else {
        Freshness::Fresh
    }
}

/// The first seconds at which `crl`'s standing changes: it starts to be
/// warned about, and it expires (as [`crl_freshness`] judges).
fn turns(crl: &CrlInfo) -> Option<[u64; 2]> {
    let next = crl.next_update?;
    Some([next.saturating_sub(CRL_WARNING_DAYS * 86_400) + 1, next])
}

/// The CRLs of `crls` (config path, CRL) whose standing changed in the
/// seconds `(after, upto]`, with what to say about them now: what a
/// running gateway logs when a CRL enters its last week or lapses, since
/// start-up and reload only report how things stand when they run.
pub(crate) fn turned(crls: &[(String, CrlInfo)], after: u64, upto: u64) -> Vec<(&str, Freshness)> {
    crls.iter()
        .filter(|(_, c)| turns(c).is_some_and(|ts| ts.iter().any(|t| after < *t && *t <= upto)))
        .map(|(path, c)| (path.as_str(), crl_freshness(c, upto)))
        .filter(|(_, f)| *f != Freshness::Fresh)
        .collect()
}

/// The first second after `now` at which the standing of one of `crls`
/// changes.
pub(crate) fn next_turn(crls: &[(String, CrlInfo)], now: u64) -> Option<u64> {
    crls.iter()
        .filter_map(|(_, c)| turns(c))
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// How to renew the CRL in `file`: `portcullis ca crl` for a portcullis CA
/// directory (`DIR/ca.crl`), and in any case the CA that issued it. Only the
/// file is known here, not whether portcullis made it, so both are said.
pub(crate) fn renew_words(file: &Path) -> String {
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

/// Why webpki refused a CRL, in words (never its variant name).
fn crl_error_words(e: &webpki::Error) -> &'static str {
    use webpki::Error as E;
    match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => "malformed DER",
        E::UnsupportedCrlVersion => "only version 2 CRLs are supported",
        E::UnsupportedCriticalExtension => "it has a critical extension that is not supported",
        E::UnsupportedIndirectCrl => "indirect CRLs are not supported",
        E::UnsupportedDeltaCrl => "delta CRLs are not supported",
        E::UnsupportedRevocationReason => "an entry has an unsupported revocation reason",
        E::InvalidCrlNumber => "its CRL number is invalid",
        E::InvalidSerialNumber => "an entry's serial number is invalid",
        E::ExtensionValueInvalid => "an extension's value is invalid",
        _ => "it cannot be read as an X.509 CRL",
    }
}

/// Parses the CRLs in `bytes`, read from `what`; `renew` says how to renew
/// them.
pub(crate) fn parse_crls(bytes: &[u8], what: &str, renew: &str) -> Result<Vec<Crl>, Problem> {
    let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|source| Problem::CrlNotPem {
                what: what.to_string(),
                source,
            })?
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    if ders.is_empty() {
        return Err(Problem::NoCrl {
            what: what.to_string(),
        });
    }
    let mut out = Vec::new();
    for der in ders {
        use x509_cert::der::Decode;
        let parsed =
            webpki::OwnedCertRevocationList::from_der(&der).map_err(|e| Problem::BadCrl {
                what: what.to_string(),
                why: crl_error_words(&e),
            })?;
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
            digest: {
                let mut d = [0u8; 32];
                d.copy_from_slice(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()).as_ref(),
                );
                d
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn crl(next: u64) -> (String, CrlInfo) {
        (
            "trustBundles.b".into(),
            CrlInfo {
                issuer: "CN=CA".into(),
                next_update: Some(next),
                source: "ca.crl".into(),
                renew: "renew".into(),
            },
        )
    }

    #[test]
    fn spans_read_as_words() {
        assert_eq!(span_words(3 * DAY + 5), "3 days");
        assert_eq!(span_words(DAY + 3_600), "25 hours");
        assert_eq!(span_words(90 * 60), "90 minutes");
        assert_eq!(span_words(61), "1 minute");
        assert_eq!(span_words(6), "less than a minute");
    }

    #[test]
    fn standing_changes_a_week_ahead_and_at_next_update() {
        let next = 100 * DAY;
        let c = &crl(next).1;
        assert_eq!(crl_freshness(c, next - 7 * DAY), Freshness::Fresh);
        assert!(matches!(
            crl_freshness(c, next - 7 * DAY + 1),
            Freshness::Expiring(_)
        ));
        assert!(matches!(crl_freshness(c, next - 1), Freshness::Expiring(_)));
        assert!(matches!(crl_freshness(c, next), Freshness::Expired(_)));
    }

    #[test]
    fn each_change_is_reported_once_when_it_happens() {
        let next = 100 * DAY;
        let crls = [crl(next)];
        let warn = next - 7 * DAY + 1;
        assert_eq!(next_turn(&crls, 0), Some(warn));
        assert_eq!(next_turn(&crls, warn), Some(next));
        assert_eq!(next_turn(&crls, next), None);
        assert!(turned(&crls, 0, warn - 1).is_empty());
        let w = turned(&crls, warn - 1, warn);
        assert!(matches!(
            w.as_slice(),
            [("trustBundles.b", Freshness::Expiring(_))]
        ));
        assert!(turned(&crls, warn, next - 1).is_empty(), "said once");
        let e = turned(&crls, next - 1, next);
        assert!(
            matches!(e.as_slice(), [(_, Freshness::Expired(m))] if m.to_string().contains("expired on"))
        );
        assert!(turned(&crls, next, next + DAY).is_empty(), "said once");
        // Both passed during one long wait: only how it stands now.
        let both = turned(&crls, 0, next + 5);
        assert!(matches!(both.as_slice(), [(_, Freshness::Expired(_))]));
    }
}
