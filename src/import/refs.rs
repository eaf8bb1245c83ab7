//! What the imported config refers to: Secrets written beside it, and the
//! certificates, trust bundles and upstreams made from Ingress references,
//! each under a name that stands for one object only.

use super::*;

impl State<'_> {
    /// A Secret referenced as `namespace/name`: written next to the output
    /// when it was in the input, else a placeholder path and a warning.
    pub(super) fn secret_file(&mut self, key: &str, why: &str) -> String {
        if let Some(p) = self.written.get(key) {
            return p.display().to_string();
        }
        let file = self
            .opts
            .secrets_dir
            .join(format!("{}.secret.yaml", key.replace('/', ".")));
        match self.secrets.get(key) {
            Some(s) => {
                let mut opts = serde_saphyr::SerializerOptions::default();
                opts.prefer_block_scalars = false;
                let yaml = serde_saphyr::to_string_with_options(s, opts).unwrap_or_default();
                self.out.secrets.push((file.clone(), yaml));
            }
            None => {
                self.out.placeholders = true;
                self.out.warnings.push(format!(
                    "Secret {key} ({why}) was not in the input: write it to {} (or change the path)",
                    file.display()
                ));
            }
        }
        self.written.insert(key.to_string(), file.clone());
        file.display().to_string()
    }

    /// Records that `section.name` stands for `source`; refuses a name that
    /// already stands for something else (two tenants' objects must never
    /// meet under one name: `prod/team-api` and `prod-team/api` both give
    /// `prod-team-api-…`).
    pub(super) fn claim(
        &mut self,
        section: &str,
        name: &str,
        source: String,
    ) -> Result<(), ImportError> {
        match self.claimed.get(&format!("{section}.{name}")) {
            Some(prev) if *prev != source => Err(ImportError::NameClash {
                first: prev.clone(),
                second: source,
                section: section.to_string(),
                name: name.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                self.claimed.insert(format!("{section}.{name}"), source);
                Ok(())
            }
        }
    }

    pub(super) fn certificate(&mut self, ns: &str, secret: &str) -> Result<String, ImportError> {
        let key = format!("{ns}/{secret}");
        let name = format!("{ns}-{secret}");
        self.claim("certificates", &name, format!("TLS Secret {key}"))?;
        if !self.certificates.contains_key(&name) {
            let file = self.secret_file(&key, "TLS certificate");
            self.certificates
                .insert(name.clone(), secret_certificate(file));
        }
        Ok(name)
    }

    pub(super) fn trust_bundle(&mut self, key: &str) -> Result<String, ImportError> {
        let name = format!("{}-ca", key.replace('/', "-"));
        self.claim("trustBundles", &name, format!("CA Secret {key}"))?;
        if !self.trust_bundles.contains_key(&name) {
            let file = self.secret_file(key, "CA certificates");
            let bundle = raw::TrustBundle {
                secret_file: Some(file),
                ..raw::TrustBundle::default()
            };
            self.trust_bundles.insert(name.clone(), bundle);
        }
        Ok(name)
    }

    pub(super) fn upstream(
        &mut self,
        ns: &str,
        backend: &Value,
        tls: Option<&UpTls>,
        grpc: bool,
        object: &str,
    ) -> Result<String, ImportError> {
        let svc = backend
            .get("service")
            .ok_or_else(|| ImportError::NoService {
                object: object.to_string(),
            })?;
        let name = service_name(svc, object)?;
        let port = match (
            svc.pointer("/port/number").and_then(Value::as_u64),
            str_at(svc, &["port", "name"]),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(p)) => {
                let p = k8s_name(p, &format!("{object}: service {name}: port name"))?;
                self.out.warnings.push(format!(
                    "{object}: service {name} uses the named port \"{p}\"; the upstream uses the scheme's default port — set the number"
                ));
                p.to_string()
            }
            (None, None) => {
                return Err(ImportError::NoPort {
                    object: object.to_string(),
                    service: name.to_string(),
                })
            }
        };
        let host = format!("{name}.{ns}.svc.cluster.local");
        let numeric = port.parse::<u16>().is_ok();
        let up_name = format!(
            "{ns}-{name}-{port}{}{}",
            if grpc { "-grpc" } else { "" },
            if tls.is_some() { "-tls" } else { "" }
        );
        let source = match tls {
            None if grpc => format!("service {ns}/{name} port {port} over gRPC"),
            None => format!("service {ns}/{name} port {port}"),
            Some(t) => format!(
                "service {ns}/{name} port {port} over TLS (proxy-ssl-secret {:?}, client certificate {}, proxy-ssl-name {:?})",
                t.secret.as_deref().unwrap_or(""),
                t.client_cert,
                t.name.as_deref().unwrap_or("")
            ),
        };
        self.claim("upstreams", &up_name, source)?;
        if !self.upstreams.contains_key(&up_name) {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = if numeric {
                format!("{scheme}://{host}:{port}")
            } else {
                format!("{scheme}://{host}")
            };
            let mut u = raw::Upstream {
                url: Some(url),
                // gRPC needs HTTP/2 end to end (h2c over http://).
                version: grpc.then_some(raw::HttpVersion::Http2),
                ..raw::Upstream::default()
            };
            if let Some(t) = tls {
                let mut tv = raw::UpstreamTls::default();
                if let Some(s) = &t.secret {
                    tv.trust_bundle = Some(self.trust_bundle(s)?);
                    if t.client_cert {
                        let file = self.secret_file(s, "client certificate for the upstream");
                        let cname = format!("{}-client", s.replace('/', "-"));
                        self.claim(
                            "certificates",
                            &cname,
                            format!("client certificate Secret {s}"),
                        )?;
                        self.certificates
                            .insert(cname.clone(), secret_certificate(file));
                        tv.certificate = Some(cname);
                    }
                }
                tv.server_name = t.name.clone();
                u.tls = Some(tv);
            }
            self.upstreams.insert(up_name.clone(), u);
        }
        Ok(up_name)
    }

    pub(super) fn passthrough_upstream(
        &mut self,
        ns: &str,
        backend: &Value,
        object: &str,
    ) -> Result<String, ImportError> {
        let svc = backend
            .get("service")
            .ok_or_else(|| ImportError::PassthroughWithoutService {
                object: object.to_string(),
            })?;
        let name = service_name(svc, object)?;
        let port = svc
            .pointer("/port/number")
            .and_then(Value::as_u64)
            .unwrap_or(443);
        let up_name = format!("{ns}-{name}-{port}-passthrough");
        self.claim(
            "upstreams",
            &up_name,
            format!("passthrough service {ns}/{name} port {port}"),
        )?;
        self.upstreams
            .entry(up_name.clone())
            .or_insert_with(|| raw::Upstream {
                address: Some(format!("{name}.{ns}.svc.cluster.local:{port}")),
                ..raw::Upstream::default()
            });
        Ok(up_name)
    }
}

/// A backend service's name, as the API server admits it.
fn service_name<'v>(svc: &'v Value, object: &str) -> Result<&'v str, ImportError> {
    let name = str_at(svc, &["name"]).ok_or_else(|| ImportError::UnnamedService {
        object: object.to_string(),
    })?;
    k8s_name(name, &format!("{object}: backend service"))
}

/// `certificates.NAME: { secretFile: FILE }`
fn secret_certificate(file: String) -> raw::Certificate {
    raw::Certificate {
        secret_file: Some(file),
        ..raw::Certificate::default()
    }
}
