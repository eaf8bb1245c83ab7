//! The imported config as YAML, with the comments that explain it.

use super::*;

/// A raw config part as the JSON value its parent section holds (the raw
/// types keep sections as values so that each element fails on its own).
fn value(v: impl serde::Serialize) -> Result<Value, ImportError> {
    Ok(serde_json::to_value(v)?)
}

impl State<'_> {
    pub(super) fn render(mut self) -> Result<Imported, ImportError> {
        let mut hosts = Vec::new();
        // Why each rule that admits no one is there, in output order.
        let mut nobody = Vec::new();
        let hosts_in = std::mem::take(&mut self.hosts);
        for (name, h) in hosts_in {
            if let Some(pt) = h.passthrough {
                hosts.push(value(raw::Host {
                    hostnames: vec![name],
                    passthrough: Some(pt),
                    ..raw::Host::default()
                })?);
                continue;
            }
            let cert = match h.certificate {
                Some(c) => c,
                None => {
                    self.out.placeholders = true;
                    self.out.warnings.push(format!(
                        "host {name} (Ingress {}) has no TLS secret: it uses certificate \"default\"; provide default.crt and default.key",
                        h.origin
                    ));
                    self.certificates
                        .entry("default".to_string())
                        .or_insert_with(|| raw::Certificate {
                            cert_file: Some("default.crt".into()),
                            key_file: Some("default.key".into()),
                            ..raw::Certificate::default()
                        });
                    "default".to_string()
                }
            };
            let mut entry = raw::Host {
                hostnames: vec![name.clone()],
                certificate: Some(cert),
                routes: h.routes.iter().map(value).collect::<Result<_, _>>()?,
                ..raw::Host::default()
            };
            if let Some((auth, origin)) = h.auth {
                let allow = match &auth.match_cn {
                    MatchCn::Any => None,
                    MatchCn::Names(names) => Some(raw::Allow {
                        common_names: names.clone(),
                        ..raw::Allow::default()
                    }),
                    MatchCn::Nobody(why) => {
                        nobody.push(format!(
                            "host {name} (Ingress {origin}): {why}. This rule admits no one (no certificate has an all-zero SHA-256); replace it with the identities you mean."
                        ));
                        Some(raw::Allow {
                            sha256_fingerprints: vec![ADMITS_NO_ONE.into()],
                            ..raw::Allow::default()
                        })
                    }
                };
                entry.client_auth = Some(value(raw::ClientAuth {
                    mode: auth.mode,
                    trust_bundle: Some(self.trust_bundle(&auth.secret)?),
                    verify_depth: Some(auth.depth),
                    crl_check: None,
                    allow,
                })?);
                if auth.pass_certificate {
                    entry.pass_certificate_to_upstream = Some(true);
                }
            }
            hosts.push(value(entry)?);
        }
        let config = raw::Top {
            session_tickets: None,
            admin: match self.opts.admin {
                Some(a) => Some(value(raw::Admin {
                    address: a.to_string(),
                })?),
                None => None,
            },
            certificates: Some(value(std::mem::take(&mut self.certificates))?),
            trust_bundles: match self.trust_bundles.is_empty() {
                true => None,
                false => Some(value(std::mem::take(&mut self.trust_bundles))?),
            },
            listeners: Some(value([raw::Listener {
                name: "https".into(),
                address: self.opts.listen.to_string(),
                protocol: raw::Protocol::Https,
                tls: None,
                hosts,
                certificate: None,
                client_auth: None,
                upstream: None,
                proxy_protocol: None,
                routes: None,
                default_upstream: None,
                redirect: None,
            }])?),
            upstreams: Some(value(std::mem::take(&mut self.upstreams))?),
            logging: None,
            limits: None,
        };
        let mut opts = serde_saphyr::SerializerOptions::default();
        opts.prefer_block_scalars = false;
        let yaml =
            serde_saphyr::to_string_with_options(&config, opts).map_err(ImportError::Yaml)?;
        self.out.config = format!(
            "# Imported from ingress-nginx by `portcullis import ingress-nginx`.\n{}",
            comment_nobody(&yaml, &nobody)
        );
        Ok(self.out)
    }
}
