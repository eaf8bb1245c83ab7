//! `portcullis import ingress-nginx` (SPEC §8): Ingress objects, their
//! mTLS annotations and the Secrets in the same files → a portcullis config
//! on stdout. Every annotation that cannot be carried over is reported as
//! `namespace/name: annotation: why`; nothing is dropped silently.

mod annotations;
mod comments;
mod error;
mod refs;
mod render;
use comments::*;
pub(crate) use error::ImportError;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::raw;

use annotations::{Auth, MatchCn, Upstream as UpTls};

/// The `allow` rule of a host whose access restriction could not be
/// translated exactly: a SHA-256 fingerprint of all zeros. Only a
/// certificate whose DER hashes to it would match — a SHA-256 preimage — so
/// it admits no one. (`allow` cannot be empty, and no common name, SAN or
/// organization is out of reach of a CA that signs what it is asked.)
const ADMITS_NO_ONE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Options of the command.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Files to read (`-` = stdin).
    pub files: Vec<PathBuf>,
    /// Annotation prefix (default `nginx.ingress.kubernetes.io`).
    pub prefix: String,
    /// Where Secret manifests referenced by the config are written.
    pub secrets_dir: PathBuf,
    /// The https listener's address (`--listen`, default `0.0.0.0:443`).
    pub listen: std::net::SocketAddr,
    /// The admin endpoint's address (`--admin`), if any.
    pub admin: Option<std::net::SocketAddr>,
}

/// The result: the config text, the files to write, and what was left behind.
pub(crate) struct Imported {
    /// The portcullis config (YAML).
    pub config: String,
    /// Secret manifests to write: (path, YAML).
    pub secrets: Vec<(PathBuf, String)>,
    /// `namespace/name: annotation: why` lines.
    pub left_behind: Vec<String>,
    /// Other warnings (missing Secrets, named ports, …).
    pub warnings: Vec<String>,
    /// A placeholder stands where input was missing (a Secret, a
    /// certificate): the config will not pass `check` as it is.
    pub placeholders: bool,
}

#[derive(Default)]
struct Host {
    /// The Ingress that first defined it, for conflict messages.
    origin: String,
    certificate: Option<String>,
    auth: Option<(Auth, String)>,
    routes: Vec<raw::Route>,
    passthrough: Option<String>,
}

struct State<'a> {
    opts: &'a Options,
    secrets: BTreeMap<String, Value>,
    written: BTreeMap<String, PathBuf>,
    certificates: BTreeMap<String, raw::Certificate>,
    trust_bundles: BTreeMap<String, raw::TrustBundle>,
    upstreams: BTreeMap<String, raw::Upstream>,
    hosts: BTreeMap<String, Host>,
    /// What each generated name stands for (`section/name` → source), so
    /// that two different objects never share a name (the names join
    /// namespace, name and port with `-`, which names may contain).
    claimed: BTreeMap<String, String>,
    out: Imported,
}

/// A Kubernetes object name as the API server admits it (an RFC 1123
/// subdomain: lower-case letters, digits, `-` and `.`, starting and ending
/// with a letter or digit, at most 253 bytes). Names become host names,
/// URLs, file names and config keys, so anything else is refused.
pub(crate) fn k8s_name<'v>(value: &'v str, what: &str) -> Result<&'v str, ImportError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(value)
    } else {
        Err(ImportError::NotAName {
            what: what.to_string(),
            value: value.to_string(),
        })
    }
}

/// A namespace as the API server admits it: an RFC 1123 label (no `.`),
/// so that `namespace.name` file names cannot collide.
pub(crate) fn k8s_namespace<'v>(value: &'v str, what: &str) -> Result<&'v str, ImportError> {
    let v = k8s_name(value, what)?;
    if v.contains('.') || v.len() > 63 {
        return Err(ImportError::NotANamespace {
            what: what.to_string(),
            value: value.to_string(),
        });
    }
    Ok(v)
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

impl State<'_> {
    fn ingress(&mut self, obj: &Value) -> Result<(), ImportError> {
        let ns = k8s_namespace(
            str_at(obj, &["metadata", "namespace"]).unwrap_or("default"),
            "Ingress namespace",
        )?
        .to_string();
        let name = str_at(obj, &["metadata", "name"])
            .ok_or(ImportError::Unnamed { what: "an Ingress" })?;
        let name = k8s_name(name, &format!("Ingress {ns}/{name}: name"))?.to_string();
        let object = format!("{ns}/{name}");
        let spec = obj.get("spec").ok_or_else(|| ImportError::NoSpec {
            object: object.clone(),
        })?;
        let empty = Map::new();
        let ann = obj
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let a = annotations::read(
            ann,
            &self.opts.prefix,
            &ns,
            &object,
            &mut self.out.left_behind,
        )?;
        // Certificates by host from spec.tls.
        let mut tls_by_host: BTreeMap<String, String> = BTreeMap::new();
        let mut tls_default: Option<String> = None;
        for t in spec
            .get("tls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(secret) = str_at(t, &["secretName"]) else {
                continue;
            };
            let secret = k8s_name(secret, &format!("{object}: spec.tls secretName"))?;
            let cert = self.certificate(&ns, secret)?;
            let hosts = t
                .get("hosts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if hosts.is_empty() {
                tls_default = Some(cert.clone());
            }
            for h in hosts.iter().filter_map(Value::as_str) {
                ingress_host(h, &object)?;
                tls_by_host.insert(h.to_string(), cert.clone());
            }
        }
        let upstream_tls = a.upstream.as_ref();
        let mut rules: Vec<(String, Vec<raw::Route>, Option<String>)> = Vec::new();
        for rule in spec
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let host = str_at(rule, &["host"]).unwrap_or("*").to_string();
            if host != "*" {
                ingress_host(&host, &object)?;
            }
            let mut routes = Vec::new();
            let mut pt = None;
            for p in rule
                .pointer("/http/paths")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let path = str_at(p, &["path"]).unwrap_or("/").to_string();
                let backend = p
                    .get("backend")
                    .ok_or_else(|| ImportError::PathWithoutBackend {
                        object: object.clone(),
                    })?;
                if a.passthrough {
                    pt.get_or_insert(self.passthrough_upstream(&ns, backend, &object)?);
                    continue;
                }
                let up = self.upstream(&ns, backend, upstream_tls, a.grpc, &object)?;
                let exact = match str_at(p, &["pathType"]).unwrap_or("ImplementationSpecific") {
                    "Exact" => true,
                    "Prefix" => false,
                    _ => {
                        if path.contains(['*', '(', '[', '$', '^', '+', '?', '{', '|']) {
                            self.out.left_behind.push(format!(
                                "{object}: path {path:?}: an ImplementationSpecific regular expression is not carried over (routes match literal prefixes)"
                            ));
                            continue;
                        }
                        false
                    }
                };
                // The API server admits only absolute paths; routes must be
                // canonical (SPEC §2), or check refuses the config.
                if !path.starts_with('/') {
                    return Err(ImportError::RelativePath {
                        object: object.clone(),
                        path,
                    });
                }
                match crate::path::canonicalize(&path, crate::path::EscapedSlashes::Reject) {
                    Ok(c) if c == path.as_str() => {}
                    _ => {
                        self.out.left_behind.push(format!(
                            "{object}: path {path:?} is not a canonical path (no //, dot segments, escapes or backslashes): not carried over; write the route by its canonical path"
                        ));
                        continue;
                    }
                }
                routes.push(match exact {
                    true => raw::Route {
                        path: Some(path),
                        upstream: up,
                        ..raw::Route::default()
                    },
                    false => raw::Route {
                        path_prefix: Some(path),
                        upstream: up,
                        ..raw::Route::default()
                    },
                });
            }
            rules.push((host, routes, pt));
        }
        if let Some(db) = spec.get("defaultBackend") {
            let up = self.upstream(&ns, db, upstream_tls, a.grpc, &object)?;
            if rules.is_empty() {
                rules.push(("*".into(), Vec::new(), None));
            }
            for (_, routes, _) in &mut rules {
                if !routes.iter().any(|r| r.path_prefix.as_deref() == Some("/")) {
                    routes.push(raw::Route {
                        path_prefix: Some("/".into()),
                        upstream: up.clone(),
                        ..raw::Route::default()
                    });
                }
            }
        }
        for (host, routes, pt) in rules {
            if routes.is_empty() && pt.is_none() {
                self.out.warnings.push(format!(
                    "{object}: host {host} has no paths and the Ingress no defaultBackend: not carried over"
                ));
                continue;
            }
            let cert = tls_by_host
                .get(&host)
                .cloned()
                .or_else(|| tls_default.clone());
            let entry = self.hosts.entry(host.clone()).or_insert_with(|| Host {
                origin: object.clone(),
                ..Host::default()
            });
            if let Some(pt) = pt {
                entry.passthrough = Some(pt);
                continue;
            }
            if let Some(c) = cert {
                entry.certificate.get_or_insert(c);
            }
            if let Some(auth) = &a.auth {
                match &entry.auth {
                    Some((prev, origin)) if prev != auth => {
                        return Err(ImportError::AuthDiffers {
                            host,
                            first: origin.clone(),
                            second: object.clone(),
                        })
                    }
                    Some(_) => {}
                    None => entry.auth = Some((auth.clone(), object.clone())),
                }
            }
            for r in routes {
                if !entry.routes.contains(&r) {
                    entry.routes.push(r);
                }
            }
        }
        Ok(())
    }
}

fn read_input(p: &Path) -> Result<String, ImportError> {
    if p.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(ImportError::ReadStdin)?;
        Ok(s)
    } else {
        std::fs::read_to_string(p).map_err(|source| ImportError::Read {
            file: p.to_path_buf(),
            source,
        })
    }
}

/// A YAML error in words. A key that appears twice in one document is
/// almost always two manifests concatenated without `---` between them.
fn yaml_error(file: &str, e: &serde_saphyr::Error) -> ImportError {
    use serde_saphyr::Error as E;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    match inner {
        E::DuplicateMappingKey { key, location } => ImportError::DuplicateKey {
            file: file.to_string(),
            line: location.line(),
            key: key
                .as_deref()
                .map_or_else(|| "?".to_string(), |k| format!("\"{k}\"")),
        },
        _ => ImportError::NotYaml {
            file: file.to_string(),
            reason: e.without_snippet().to_string(),
        },
    }
}

/// An Ingress rule's host as the API server admits it: a DNS name, or
/// `*.` and one.
fn ingress_host(host: &str, object: &str) -> Result<(), ImportError> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    k8s_name(name, &format!("{object}: host"))
        .map(|_| ())
        .map_err(|_| ImportError::NotAHost {
            object: object.to_string(),
            host: host.to_string(),
        })
}

/// Runs the import.
pub(crate) fn run(opts: &Options) -> Result<Imported, ImportError> {
    let mut inputs = Vec::new();
    for f in &opts.files {
        inputs.push((f.display().to_string(), read_input(f)?));
    }
    from_texts(opts, &inputs)
}

/// Imports manifests already read: (file name, text) pairs.
pub(crate) fn from_texts(
    opts: &Options,
    inputs: &[(String, String)],
) -> Result<Imported, ImportError> {
    let mut objects = Vec::new();
    for (f, text) in inputs {
        let docs: Vec<Value> =
            serde_saphyr::from_str_multiple(text).map_err(|e| yaml_error(f, &e))?;
        for d in docs {
            if d.is_null() {
                continue;
            }
            match str_at(&d, &["kind"]) {
                Some("List") => objects.extend(
                    d.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                ),
                Some(_) => objects.push(d),
                None => return Err(ImportError::NoKind { file: f.clone() }),
            }
        }
    }
    let mut st = State {
        opts,
        secrets: BTreeMap::new(),
        written: BTreeMap::new(),
        certificates: BTreeMap::new(),
        trust_bundles: BTreeMap::new(),
        upstreams: BTreeMap::new(),
        hosts: BTreeMap::new(),
        claimed: BTreeMap::new(),
        out: Imported {
            config: String::new(),
            secrets: Vec::new(),
            left_behind: Vec::new(),
            warnings: Vec::new(),
            placeholders: false,
        },
    };
    for o in &objects {
        if str_at(o, &["kind"]) == Some("Secret") {
            let ns = k8s_namespace(
                str_at(o, &["metadata", "namespace"]).unwrap_or("default"),
                "Secret namespace",
            )?;
            let name = str_at(o, &["metadata", "name"])
                .ok_or(ImportError::Unnamed { what: "a Secret" })?;
            let name = k8s_name(name, &format!("Secret {ns}/{name}: name"))?;
            // The manifest is copied as it is: what the gateway cannot read
            // is refused here, not at its first start.
            let as_yaml = serde_saphyr::to_string(o).unwrap_or_default();
            crate::material::sources::secret_manifest_entries(
                std::path::Path::new(&format!("Secret {ns}/{name}")),
                &as_yaml,
            )?;
            st.secrets.insert(format!("{ns}/{name}"), o.clone());
        }
    }
    for o in &objects {
        match str_at(o, &["kind"]) {
            Some("Ingress") => st.ingress(o)?,
            Some("Secret") => {}
            Some(other) => st.out.warnings.push(format!(
                "ignored a {other} object (only Ingress and Secret are read)"
            )),
            None => {}
        }
    }
    if st.hosts.is_empty() {
        return Err(ImportError::Nothing);
    }
    st.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> String {
        format!("allow:\n  sha256Fingerprints:\n  - \"{ADMITS_NO_ONE}\"\n")
    }

    #[test]
    fn the_reason_goes_above_its_rule() {
        let out = comment_nobody(&rule(), &["why".into()]);
        assert_eq!(
            out,
            format!("allow:\n  sha256Fingerprints:\n  # why\n  - \"{ADMITS_NO_ONE}\"\n")
        );
    }

    #[test]
    fn a_line_break_in_a_reason_cannot_end_the_comment() {
        let out = comment_nobody(&rule(), &["host a\nlisteners: []\r\u{85}\u{2028}x".into()]);
        assert_eq!(out.lines().count(), 4, "{out}");
        let v: Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "allow": { "sha256Fingerprints": [ADMITS_NO_ONE] } })
        );
    }

    #[test]
    fn reasons_that_do_not_match_the_rules_go_to_the_top() {
        let out = comment_nobody(&rule(), &["one".into(), "two".into()]);
        assert!(out.starts_with("# one\n# two\nallow:"), "{out}");
    }
}
