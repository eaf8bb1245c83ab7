//! Every file a configuration example names, made with rcgen in the layout
//! the example shows: PEM files, Secret manifests, Secret volume
//! directories, PKCS#12 bundles and their passwords, CRLs. One CA issues
//! all of it; each certificate covers every hostname of the host entries
//! that present it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::support::{Ca, Eku, Leaf, Spec};

/// The password of every PKCS#12 bundle (through `passwordEnv` or
/// `passwordFile`).
pub const PASSWORD: &str = "docs-test password";

/// What a Secret (manifest or volume) must hold.
#[derive(Default)]
struct SecretNeeds {
    leaf: Option<Leaf>,
    /// Session-ticket keys under `tickets`.
    tickets: bool,
}

/// A ticket-key file as `openssl rand -base64 48` writes one.
fn ticket_keys() -> String {
    format!("{}\n", b64(&[0x5a; 48]))
}

/// Writes into `dir` every file `config` names and returns the environment
/// variables `check` needs (those named by `passwordEnv`).
pub fn provide(dir: &Path, config: &Value) -> Result<Vec<(String, String)>, String> {
    let ca = Ca::root("Docs Test CA");
    let mut env = Vec::new();
    let mut manifests: BTreeMap<String, SecretNeeds> = BTreeMap::new();
    let mut volumes: BTreeMap<String, SecretNeeds> = BTreeMap::new();
    let names = hostnames_by_certificate(config);
    for (name, entry) in entries(&config["certificates"]) {
        let hosts: Vec<&str> = match names.get(name) {
            Some(set) if !set.is_empty() => set.iter().map(String::as_str).collect(),
            _ => vec!["localhost"],
        };
        // Both usages, so one certificate serves a host entry or is
        // presented to an upstream; valid inside the CA's own lifetime.
        let leaf = ca.leaf(&Spec {
            eku: Eku::Both,
            not_after_days: 59,
            ..Spec::server(&hosts)
        });
        if let Some(f) = text(entry, "certFile") {
            put(dir, f, leaf.chain_pem.as_bytes())?;
        }
        if let Some(f) = text(entry, "keyFile") {
            put(dir, f, leaf.key_pem.as_bytes())?;
        }
        if let Some(f) = text(entry, "secretFile") {
            manifests.entry(f.to_string()).or_default().leaf = Some(leaf.clone());
        }
        if let Some(d) = text(entry, "secretDir") {
            volumes.entry(d.to_string()).or_default().leaf = Some(leaf.clone());
        }
        if let Some(f) = text(entry, "pkcs12File") {
            put(dir, f, &pkcs12(&leaf))?;
        }
        if let Some(v) = text(entry, "passwordEnv") {
            env.push((v.to_string(), PASSWORD.to_string()));
        }
        if let Some(f) = text(entry, "passwordFile") {
            put(dir, f, format!("{PASSWORD}\n").as_bytes())?;
        }
    }
    for (_, entry) in entries(&config["trustBundles"]) {
        if let Some(f) = text(entry, "caFile") {
            put(dir, f, ca.cert_pem.as_bytes())?;
        }
        for f in entry["crlFiles"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str() {
                put(dir, f, ca.crl(&[]).as_bytes())?;
            }
        }
        if let Some(f) = text(entry, "secretFile") {
            manifests.entry(f.to_string()).or_default();
        }
        if let Some(d) = text(entry, "secretDir") {
            volumes.entry(d.to_string()).or_default();
        }
    }
    let tickets = &config["sessionTickets"];
    if let Some(f) = text(tickets, "keyFile") {
        put(dir, f, ticket_keys().as_bytes())?;
    }
    if let Some(f) = text(tickets, "secretFile") {
        manifests.entry(f.to_string()).or_default().tickets = true;
    }
    if let Some(d) = text(tickets, "secretDir") {
        volumes.entry(d.to_string()).or_default().tickets = true;
    }
    // A Secret always carries ca.crt, so one can serve a certificate and a
    // trust bundle at once (as an ingress-nginx TLS Secret does).
    for (file, needs) in &manifests {
        put(dir, file, manifest(file, &ca, needs).as_bytes())?;
    }
    for (sub, needs) in &volumes {
        let d = place(dir, sub)?;
        std::fs::create_dir_all(&d).map_err(|e| format!("{sub}: {e}"))?;
        if let Some(leaf) = &needs.leaf {
            std::fs::write(d.join("tls.crt"), &leaf.chain_pem).map_err(|e| e.to_string())?;
            std::fs::write(d.join("tls.key"), &leaf.key_pem).map_err(|e| e.to_string())?;
        }
        std::fs::write(d.join("ca.crt"), &ca.cert_pem).map_err(|e| e.to_string())?;
        if needs.tickets {
            std::fs::write(d.join("tickets"), ticket_keys()).map_err(|e| e.to_string())?;
        }
    }
    Ok(env)
}

/// The hostnames of the host entries that present each certificate.
fn hostnames_by_certificate(config: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for listener in config["listeners"].as_array().into_iter().flatten() {
        for host in listener["hosts"].as_array().into_iter().flatten() {
            let Some(cert) = host["certificate"].as_str() else {
                continue;
            };
            let set = out.entry(cert.to_string()).or_default();
            for name in host["hostnames"].as_array().into_iter().flatten() {
                // "*" is the catch-all: no certificate name covers it, and
                // none needs to. "*.x" is a wildcard SAN like any other.
                match name.as_str() {
                    Some("*") | None => {}
                    Some(n) => {
                        set.insert(n.trim_end_matches('.').to_string());
                    }
                }
            }
        }
    }
    out
}

fn entries(section: &Value) -> Vec<(&str, &Value)> {
    section
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

fn text<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry[key].as_str()
}

/// `rel` under `dir`; an example names files relative to its config.
pub fn place(dir: &Path, rel: &str) -> Result<PathBuf, String> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "{rel:?}: examples name files relative to the config (the test creates them there)"
        ));
    }
    Ok(dir.join(p))
}

/// Writes `rel` under `dir`, creating its directories.
pub fn put(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), String> {
    let path = place(dir, rel)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{rel}: {e}"))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("{rel}: {e}"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Secret manifest as `kubectl get secret -o yaml` prints it.
fn manifest(file: &str, ca: &Ca, needs: &SecretNeeds) -> String {
    let name = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("secret")
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let mut data = format!("  ca.crt: {}\n", b64(ca.cert_pem.as_bytes()));
    if needs.tickets {
        data.push_str(&format!("  tickets: {}\n", b64(ticket_keys().as_bytes())));
    }
    let kind = match &needs.leaf {
        Some(leaf) => {
            data.push_str(&format!(
                "  tls.crt: {}\n  tls.key: {}\n",
                b64(leaf.chain_pem.as_bytes()),
                b64(leaf.key_pem.as_bytes())
            ));
            "kubernetes.io/tls"
        }
        None => "Opaque",
    };
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: {kind}\ndata:\n{data}")
}

/// A PKCS#12 bundle of the leaf's key and chain, made with p12-keystore.
fn pkcs12(leaf: &Leaf) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let certs: Vec<Certificate> = leaf
        .chain
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).unwrap())
        .collect();
    let key = PrivateKey::from_der(&leaf.key_der).unwrap();
    let mut store = KeyStore::new();
    store.add_entry(
        "docs",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(vec![7u8; 20], key, certs)),
    );
    store.writer(PASSWORD).write().unwrap()
}
