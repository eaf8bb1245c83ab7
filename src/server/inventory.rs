//! What the loaded material says, gathered once per snapshot: the
//! `/certificates` inventory, the certificate-expiry and CRL gauges, the
//! serials the CRLs revoke and the CRLs' dates.

use crate::identity::CertSummary;
use crate::material::{CrlInfo, Material};

/// See the module comment.
#[derive(Debug, Default)]
pub struct Inventory {
    /// `/certificates`: every loaded certificate and trust-bundle CA.
    pub entries: Vec<serde_json::Value>,
    /// Expiry gauges: (name, subject, notAfter).
    expiry: Vec<(String, String, u64)>,
    /// CRL gauges: (bundle, issuer, nextUpdate).
    crl_updates: Vec<(String, String, u64)>,
    /// Every (issuer, serial) the loaded CRLs revoke (SPEC §3: a reload
    /// closes the open connections they concern).
    pub revoked: Vec<(String, String)>,
    /// Every loaded CRL with the config path of its trust bundle, for the
    /// messages when one enters its last week or lapses while running.
    pub crls: Vec<(String, CrlInfo)>,
}

fn inventory_entry(kind: &str, name: &str, s: &CertSummary) -> serde_json::Value {
    let mut sans: Vec<String> = s.dns_sans.iter().map(|d| format!("DNS:{d}")).collect();
    sans.extend(s.ip_sans.iter().map(|i| format!("IP:{i}")));
    sans.extend(s.uri_sans.iter().map(|u| format!("URI:{u}")));
    sans.extend(s.email_sans.iter().map(|m| format!("email:{m}")));
    serde_json::json!({
        "kind": kind,
        "name": name,
        "subject": s.subject,
        "sans": sans,
        "issuer": s.issuer,
        "serial": s.serial,
        "notBefore": crate::words::rfc3339(s.not_before),
        "notAfter": crate::words::rfc3339(s.not_after),
        "sha256": s.sha256,
    })
}

impl Inventory {
    /// Gathers what `material` says.
    pub fn of(material: &Material) -> Self {
        let mut inventory = Vec::new();
        let mut expiry = Vec::new();
        let mut crl_updates = Vec::new();
        for (name, id) in &material.identities {
            inventory.push(inventory_entry("certificate", name, &id.leaf));
            expiry.push((name.clone(), id.leaf.subject.clone(), id.leaf.not_after));
        }
        let mut revoked = Vec::new();
        let mut crls = Vec::new();
        for (name, b) in &material.trust_bundles {
            revoked.extend(b.revoked.iter().cloned());
            for ca in &b.cas {
                inventory.push(inventory_entry("trustBundle", name, ca));
                expiry.push((name.clone(), ca.subject.clone(), ca.not_after));
            }
            for crl in &b.crl_info {
                if let Some(n) = crl.next_update {
                    crl_updates.push((name.clone(), crl.issuer.clone(), n));
                }
                crls.push((format!("trustBundles.{name}"), crl.clone()));
            }
        }
        Inventory {
            entries: inventory,
            expiry,
            crl_updates,
            revoked,
            crls,
        }
    }

    /// Sets the certificate and CRL gauges to this snapshot's material.
    pub fn record_metrics(&self) {
        use crate::telemetry::metrics::{metrics, CertLabels, CrlLabels};
        let m = metrics();
        m.cert_expiry.clear();
        for (name, subject, t) in &self.expiry {
            m.cert_expiry
                .get_or_create(&CertLabels {
                    name: name.clone(),
                    subject: subject.clone(),
                })
                .set(i64::try_from(*t).unwrap_or(i64::MAX));
        }
        m.crl_next_update.clear();
        for (bundle, issuer, t) in &self.crl_updates {
            m.crl_next_update
                .get_or_create(&CrlLabels {
                    trust_bundle: bundle.clone(),
                    issuer: issuer.clone(),
                })
                .set(i64::try_from(*t).unwrap_or(i64::MAX));
        }
    }
}
