//! The imported config as YAML, with the comments that explain it.

use super::*;

impl State<'_> {
    pub(super) fn render(mut self) -> Result<Imported, ImportError> {
        let mut hosts = Vec::new();
        // Why each rule that admits no one is there, in output order.
        let mut nobody = Vec::new();
        let hosts_in = std::mem::take(&mut self.hosts);
        for (name, h) in hosts_in {
            let names = json!([name]);
            if let Some(pt) = h.passthrough {
                hosts.push(json!({ "hostnames": names, "passthrough": pt }));
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
                        .or_insert_with(
                            || json!({ "certFile": "default.crt", "keyFile": "default.key" }),
                        );
                    "default".to_string()
                }
            };
            let mut entry = json!({ "hostnames": names, "certificate": cert, "routes": h.routes });
            if let Some((auth, origin)) = h.auth {
                let bundle = self.trust_bundle(&auth.secret)?;
                let mut ca =
                    json!({ "mode": auth.mode, "trustBundle": bundle, "verifyDepth": auth.depth });
                match &auth.match_cn {
                    MatchCn::Any => {}
                    MatchCn::Names(names) => ca["allow"] = json!({ "commonNames": names }),
                    MatchCn::Nobody(why) => {
                        ca["allow"] = json!({ "sha256Fingerprints": [ADMITS_NO_ONE] });
                        nobody.push(format!(
                            "host {name} (Ingress {origin}): {why}. This rule admits no one (no certificate has an all-zero SHA-256); replace it with the identities you mean."
                        ));
                    }
                }
                entry["clientAuth"] = ca;
                if auth.pass_certificate {
                    entry["passCertificateToUpstream"] = json!(true);
                }
            }
            hosts.push(entry);
        }
        let mut config = Map::new();
        if let Some(admin) = self.opts.admin {
            config.insert("admin".into(), json!({ "address": admin.to_string() }));
        }
        config.insert(
            "certificates".into(),
            Value::Object(std::mem::take(&mut self.certificates)),
        );
        if !self.trust_bundles.is_empty() {
            config.insert(
                "trustBundles".into(),
                Value::Object(std::mem::take(&mut self.trust_bundles)),
            );
        }
        config.insert(
            "listeners".into(),
            json!([{ "name": "https", "address": self.opts.listen.to_string(), "protocol": "https", "hosts": hosts }]),
        );
        config.insert(
            "upstreams".into(),
            Value::Object(std::mem::take(&mut self.upstreams)),
        );
        let mut opts = serde_saphyr::SerializerOptions::default();
        opts.prefer_block_scalars = false;
        let yaml = serde_saphyr::to_string_with_options(&Value::Object(config), opts)
            .map_err(|e| err(e.to_string()))?;
        self.out.config = format!(
            "# Imported from ingress-nginx by `portcullis import ingress-nginx`.\n{}",
            comment_nobody(&yaml, &nobody)
        );
        Ok(self.out)
    }
}
