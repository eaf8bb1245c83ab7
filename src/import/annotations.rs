//! The ingress-nginx annotations portcullis understands, and the reasons
//! for the ones it does not carry over.

use serde_json::{Map, Value};

use super::ImportError;
pub(super) use crate::config::raw::ClientAuthMode as Mode;

/// Client authentication of a host (`auth-tls-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Auth {
    /// `namespace/name` of the CA Secret.
    pub secret: String,
    /// `clientAuth.mode`
    pub mode: Mode,
    /// Intermediates allowed (ingress-nginx's default is 1).
    pub depth: u32,
    /// `auth-tls-pass-certificate-to-upstream`
    pub pass_certificate: bool,
    /// From `auth-tls-match-cn`.
    pub match_cn: MatchCn,
}

/// Who `auth-tls-match-cn` lets in, as far as portcullis can say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MatchCn {
    /// No `auth-tls-match-cn`: any verified certificate.
    Any,
    /// Certificates with one of these common names. ingress-nginx matches a
    /// regular expression over the whole subject DN, unanchored, so exact
    /// names admit a subset of what it admitted: narrower, never wider.
    Names(Vec<String>),
    /// It could not be translated exactly, so the host admits no one
    /// (SPEC §8: the importer never widens access). The reason, for the
    /// comment beside the rule in the config.
    Nobody(String),
}

/// TLS to the backends (`backend-protocol: HTTPS`, `proxy-ssl-*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Upstream {
    /// `proxy-ssl-secret` (`namespace/name`).
    pub secret: Option<String>,
    /// Whether that Secret also holds a client certificate to present.
    pub client_cert: bool,
    /// `proxy-ssl-name`
    pub name: Option<String>,
}

/// What an Ingress's annotations ask for.
#[derive(Debug, Default)]
pub(super) struct Annotations {
    /// Client authentication.
    pub auth: Option<Auth>,
    /// TLS to the backends.
    pub upstream: Option<Upstream>,
    /// `ssl-passthrough: "true"`.
    pub passthrough: bool,
    /// `backend-protocol: GRPC` or `GRPCS`: HTTP/2 to the backends.
    pub grpc: bool,
}

/// `CN=name`, `^CN=name$`, `CN=(a|b)`: exact common names; anything else is
/// a regular expression portcullis will not guess at.
pub(super) fn match_cn(v: &str) -> Option<Vec<String>> {
    let v = v.strip_prefix('^').unwrap_or(v);
    let v = v.strip_suffix('$').unwrap_or(v);
    let rest = v.strip_prefix("CN=")?;
    let names: Vec<String> = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner.split('|').map(str::to_string).collect(),
        None => vec![rest.to_string()],
    };
    let literal = |n: &String| {
        !n.is_empty()
            && !n.contains([
                '\\', '.', '*', '+', '?', '[', ']', '(', ')', '{', '}', '^', '$', '|', ',',
            ])
    };
    names.iter().all(literal).then_some(names)
}

fn bool_of(v: &str) -> Option<bool> {
    match v {
        "true" | "on" => Some(true),
        "false" | "off" => Some(false),
        _ => None,
    }
}

/// Reads the annotations under `prefix`; unsupported ones go to `left`.
pub(super) fn read(
    ann: &Map<String, Value>,
    prefix: &str,
    ns: &str,
    object: &str,
    left: &mut Vec<String>,
) -> Result<Annotations, ImportError> {
    let mut get = BTreeMapView::default();
    for (k, v) in ann {
        if let Some(short) = k.strip_prefix(prefix).and_then(|s| s.strip_prefix('/')) {
            get.0.insert(
                short.to_string(),
                v.as_str().unwrap_or_default().to_string(),
            );
        }
    }
    let mut out = Annotations::default();
    let mut leave = |a: &str, why: &str| left.push(format!("{object}: {prefix}/{a}: {why}"));
    let qualify = |v: &str| -> Result<String, ImportError> {
        match v.split_once('/') {
            Some((n, s))
                if super::k8s_namespace(n, "").is_ok() && super::k8s_name(s, "").is_ok() =>
            {
                Ok(v.to_string())
            }
            None if super::k8s_name(v, "").is_ok() => Ok(format!("{ns}/{v}")),
            _ => Err(ImportError::NotASecretRef {
                object: object.to_string(),
                prefix: prefix.to_string(),
                value: v.to_string(),
            }),
        }
    };
    if let Some(secret) = get.take("auth-tls-secret") {
        let secret = qualify(&secret)?;
        let mode = match get.take("auth-tls-verify-client").as_deref() {
            None | Some("on") => Mode::Require,
            Some("optional") => Mode::Optional,
            Some("optional_no_ca") => Mode::OptionalNoCa,
            Some("off") => Mode::None,
            Some(other) => {
                leave(
                    "auth-tls-verify-client",
                    &format!(
                        "{other:?} is not on, optional, optional_no_ca or off; require is used"
                    ),
                );
                Mode::Require
            }
        };
        let depth = match get.take("auth-tls-verify-depth") {
            None => 1,
            Some(d) => match d.parse() {
                Ok(n) => n,
                Err(_) => {
                    leave(
                        "auth-tls-verify-depth",
                        &format!("{d:?} is not a number; ingress-nginx's default 1 is used"),
                    );
                    1
                }
            },
        };
        let pass_certificate = match get.take("auth-tls-pass-certificate-to-upstream") {
            None => false,
            Some(v) => bool_of(&v).unwrap_or_else(|| {
                leave(
                    "auth-tls-pass-certificate-to-upstream",
                    &format!("{v:?} is not true or false"),
                );
                false
            }),
        };
        let match_cn = match get.take("auth-tls-match-cn") {
            None => MatchCn::Any,
            // ingress-nginx still checks the subject when it asks for no
            // certificate: the subject is empty, so every request gets 403.
            // Dropping the check with the client authentication would open
            // the host; it admits no one instead (with a certificate asked
            // for, as portcullis has no `allow` without one).
            Some(v) if mode == Mode::None => {
                leave(
                    "auth-tls-match-cn",
                    &format!("{v:?} with auth-tls-verify-client off: ingress-nginx asks for no certificate, so no subject matches and it refuses every request; the host admits no one"),
                );
                MatchCn::Nobody(format!("auth-tls-match-cn {v:?} with auth-tls-verify-client off refused every request in ingress-nginx (no certificate was asked for, so no subject matched)"))
            }
            Some(v) => match match_cn(&v) {
                Some(n) => MatchCn::Names(n),
                None => {
                    leave(
                        "auth-tls-match-cn",
                        &format!("{v:?} is a regular expression over the subject; only CN=name and CN=(a|b) translate to exact commonNames, so the host admits no one until its allow rule is written by hand"),
                    );
                    MatchCn::Nobody(format!("auth-tls-match-cn {v:?} is a regular expression over the subject DN that cannot be translated exactly"))
                }
            },
        };
        match (mode, &match_cn) {
            // `off` means no client authentication at all.
            (Mode::None, MatchCn::Any) => {}
            (Mode::None, _) => {
                out.auth = Some(Auth {
                    secret,
                    mode: Mode::Optional,
                    depth,
                    pass_certificate,
                    match_cn,
                })
            }
            _ => {
                out.auth = Some(Auth {
                    secret,
                    mode,
                    depth,
                    pass_certificate,
                    match_cn,
                })
            }
        }
    } else {
        for a in [
            "auth-tls-verify-client",
            "auth-tls-verify-depth",
            "auth-tls-pass-certificate-to-upstream",
            "auth-tls-match-cn",
        ] {
            if get.take(a).is_some() {
                leave(a, "has no effect without auth-tls-secret");
            }
        }
    }
    let https = match get.take("backend-protocol").as_deref() {
        None | Some("HTTP") => false,
        Some("HTTPS") => true,
        Some("GRPC") => {
            out.grpc = true;
            false
        }
        Some("GRPCS") => {
            out.grpc = true;
            true
        }
        Some(other) => {
            leave(
                "backend-protocol",
                &format!("{other:?} is not carried over (HTTP, HTTPS, GRPC and GRPCS are)"),
            );
            false
        }
    };
    let proxy_secret = get
        .take("proxy-ssl-secret")
        .map(|s| qualify(&s))
        .transpose()?;
    let verify = get.take("proxy-ssl-verify");
    let name = get.take("proxy-ssl-name");
    let server_name = get.take("proxy-ssl-server-name");
    if https {
        let mut u = Upstream {
            name,
            ..Upstream::default()
        };
        match verify.as_deref() {
            Some("on") => {}
            None | Some("off") => leave(
                "proxy-ssl-verify",
                "off: portcullis always verifies upstream certificates (with proxy-ssl-secret's ca.crt, or the system roots)",
            ),
            Some(other) => leave("proxy-ssl-verify", &format!("{other:?} is not on or off")),
        }
        if server_name.as_deref() == Some("off") {
            leave(
                "proxy-ssl-server-name",
                "off: portcullis always sends SNI to https upstreams",
            );
        }
        if let Some(s) = proxy_secret {
            u.client_cert = true;
            u.secret = Some(s);
        }
        out.upstream = Some(u);
    } else {
        for (a, v) in [
            ("proxy-ssl-secret", proxy_secret.is_some()),
            ("proxy-ssl-verify", verify.is_some()),
            ("proxy-ssl-name", name.is_some()),
            ("proxy-ssl-server-name", server_name.is_some()),
        ] {
            if v {
                leave(a, "has no effect without backend-protocol: HTTPS or GRPCS");
            }
        }
    }
    if let Some(d) = get.take("proxy-ssl-verify-depth") {
        leave(
            "proxy-ssl-verify-depth",
            &format!("{d:?}: upstream verification has no depth limit in portcullis"),
        );
    }
    out.passthrough = match get.take("ssl-passthrough") {
        None => false,
        Some(v) => bool_of(&v).unwrap_or_else(|| {
            leave("ssl-passthrough", &format!("{v:?} is not true or false"));
            false
        }),
    };
    if let Some(v) = get.take("auth-tls-error-page") {
        leave(
            "auth-tls-error-page",
            &format!(
                "{v:?}: a refused client gets a TLS alert that names the reason, not an error page"
            ),
        );
    }
    for (k, v) in get.0 {
        leave(&k, &format!("{v:?}: not carried over by the importer"));
    }
    Ok(out)
}

#[derive(Default)]
struct BTreeMapView(std::collections::BTreeMap<String, String>);

impl BTreeMapView {
    fn take(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_cn_translates_only_exact_forms() {
        assert_eq!(match_cn("CN=admin"), Some(vec!["admin".into()]));
        assert_eq!(match_cn("^CN=admin$"), Some(vec!["admin".into()]));
        assert_eq!(
            match_cn("CN=(ops|deploy-bot)"),
            Some(vec!["ops".into(), "deploy-bot".into()])
        );
        assert_eq!(match_cn("CN=admin.*"), None);
        assert_eq!(match_cn("O=Acme"), None);
        assert_eq!(match_cn("CN=a,O=b"), None);
    }
}
