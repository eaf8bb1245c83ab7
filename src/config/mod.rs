//! Configuration: `raw` (the file's shape) → `validate` (every error, with
//! file, line and key path) → `model` (types that cannot be invalid).
//!
//! ```text
//! config.yaml ─► node::Node (YAML with lines) ─► raw::* per element ─► validate ─► model::Config
//! ```

pub(crate) mod model;
pub(crate) mod node;
pub(crate) mod raw;
pub(crate) mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub(crate) use model::Config;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// Key path such as `listeners[0].hosts[1].clientAuth.mode`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read config {}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and has problems.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// Reads and validates the configuration file at `path`.
pub(crate) fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text).map_err(LoadError::Invalid)
}

/// Validates configuration text as if read from `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    let root: node::Node = match serde_saphyr::from_str_with_options(text, options) {
        Ok(n) => n,
        Err(err) => {
            let line = err.location().map(|l| l.line());
            let message = err.without_snippet().to_string();
            return Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                path: String::new(),
                message: message.lines().next().unwrap_or("invalid YAML").to_string(),
            }]));
        }
    };
    validate::validate(path, &root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("gw.yaml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = "\
certificates:
  gw: { certFile: s.crt, keyFile: s.key }
trustBundles:
  clients: { caFile: ca.crt }
listeners:
  - name: public
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [a.test]
        certificate: gw
        clientAuth: { mode: require, trustBundle: clients }
        routes:
          - pathPrefix: /
            upstream: echo
upstreams:
  echo: { builtin: echo }
";

    #[test]
    fn good_config_validates() {
        assert_eq!(errors(GOOD), Vec::<String>::new());
    }

    #[test]
    fn unknown_enum_names_line_and_key_path() {
        let bad = GOOD.replace("mode: require", "mode: requir");
        assert_eq!(
            errors(&bad),
            vec!["gw.yaml:12: listeners[0].hosts[0].clientAuth.mode: unknown variant \"requir\", expected one of \"require\", \"optional\", \"optionalNoCa\", \"none\"; did you mean \"require\"?".to_string()]
        );
    }

    #[test]
    fn independent_mistakes_are_all_reported() {
        let bad = GOOD
            .replace("mode: require", "mode: requir")
            .replace(
                "  echo: { builtin: echo }",
                "  echo: { builtin: echo, colour: red }",
            )
            .replace("  gw: { certFile", "  gw: { keyFileX: 1, certFile");
        let errs = errors(&bad);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("gw.yaml:2: certificates.gw"),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("gw.yaml:17: upstreams.echo")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("clientAuth.mode")),
            "{errs:#?}"
        );
    }

    #[test]
    fn mistakes_in_sibling_hosts_and_routes_are_all_reported() {
        let bad = GOOD.replace("mode: require", "mode: requir").replace(
            "          - pathPrefix: /\n",
            "          - pathPrefix: /\n            colour: red\n",
        ) + "";
        let bad = bad.replace(
            "upstreams:",
            "      - hostnames: [b.test]\n        certificate: gw\n        routes: [{ pathPrefix: /, upstream: echo, weight: 3 }]\nupstreams:",
        );
        let errs = errors(&bad);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].contains("listeners[0].hosts[0].clientAuth.mode"),
            "{errs:#?}"
        );
        assert!(
            errs[1].contains("listeners[0].hosts[0].routes[0].colour"),
            "{errs:#?}"
        );
        assert!(
            errs[2].contains("listeners[0].hosts[1].routes[0].weight"),
            "{errs:#?}"
        );
    }

    /// GOOD plus an `http` listener whose body is `listener`.
    fn with_http(listener: &str) -> String {
        GOOD.replace(
            "upstreams:",
            &format!("  - name: plain\n    address: 127.0.0.1:0\n    protocol: http\n{listener}upstreams:"),
        )
    }

    #[test]
    fn http_listeners_validate() {
        assert_eq!(errors(&with_http("")), Vec::<String>::new());
        let full = with_http(
            "    redirect: { port: 8443, status: 301 }\n    hosts:\n      - hostnames: [plain.test]\n        escapedSlashes: keep\n        routes: [{ pathPrefix: /, upstream: echo }]\n",
        );
        assert_eq!(errors(&full), Vec::<String>::new());
        let hsts = GOOD.replace(
            "        routes:\n",
            "        hsts: { maxAge: 31536000, includeSubDomains: true }\n        routes:\n",
        );
        assert_eq!(errors(&hsts), Vec::<String>::new());
    }

    #[test]
    fn http_listener_mistakes_name_their_key() {
        let cases = [
            (
                "    redirect: { status: 200 }\n",
                "gw.yaml:19: listeners[1].redirect.status: 200 is not a redirect status; use 301, 302, 307 or 308",
            ),
            (
                "    redirect: { port: 0 }\n",
                "gw.yaml:19: listeners[1].redirect.port: 0 is not a port",
            ),
            (
                "    redirect: { port: 70000 }\n",
                "gw.yaml:19: listeners[1].redirect.port: invalid value: integer \"70000\", expected u16",
            ),
            (
                "    redirect: { to: x }\n",
                "gw.yaml:19: listeners[1].redirect.to: unknown field \"to\", expected \"port\" or \"status\"",
            ),
            (
                "    tls: { minVersion: \"1.3\" }\n",
                "gw.yaml:19: listeners[1].tls: does not apply to an \"http\" listener (plain HTTP)",
            ),
            (
                "    certificate: gw\n",
                "gw.yaml:19: listeners[1].certificate: does not apply to a \"http\" listener",
            ),
            (
                "    hosts:\n      - hostnames: [p.test]\n        clientAuth: { mode: require, trustBundle: clients }\n        routes: [{ pathPrefix: /, upstream: echo }]\n",
                "gw.yaml:21: listeners[1].hosts[0].clientAuth: does not apply to a host of an http listener (plain HTTP: no TLS, no client identity)",
            ),
            (
                "    hosts:\n      - hostnames: [p.test]\n        hsts: { maxAge: 1 }\n        routes: [{ pathPrefix: /, upstream: echo }]\n",
                "gw.yaml:21: listeners[1].hosts[0].hsts: does not apply to a host of an http listener (plain HTTP: no TLS, no client identity)",
            ),
            (
                "    hosts:\n      - hostnames: [p.test]\n        routes: [{ pathPrefix: /, upstream: echo, allow: { commonNames: [x] } }]\n",
                "gw.yaml:21: listeners[1].hosts[0].routes[0].allow: needs client certificates, which plain HTTP has none of: serve this route on an https listener",
            ),
            (
                "    hosts:\n      - hostnames: [p.test]\n        routes: [{ pathPrefix: /, upstream: nope }]\n",
                "gw.yaml:21: listeners[1].hosts[0].routes[0].upstream: no upstream named \"nope\"",
            ),
            (
                "    hosts:\n      - hostnames: [\"*\"]\n        routes: [{ pathPrefix: /, upstream: echo }]\n",
                "gw.yaml:20: listeners[1].hosts[0].hostnames[0]: \"*\" is not allowed on an http listener",
            ),
            (
                "    hosts:\n      - hostnames: [p.test, P.test.]\n        routes: [{ pathPrefix: /, upstream: echo }]\n",
                "gw.yaml:20: listeners[1].hosts[0].hostnames[1]: \"P.test.\" is already served by hosts[0] of this listener",
            ),
        ];
        for (listener, want) in cases {
            let errs = errors(&with_http(listener));
            assert_eq!(errs.len(), 1, "{listener}: {errs:#?}");
            assert!(
                errs[0].starts_with(want),
                "{listener}:\n{}\nwanted\n{want}",
                errs[0]
            );
        }
        let bad = GOOD.replace(
            "        routes:\n",
            "        hsts: { maxAge: -1 }\n        routes:\n",
        );
        let errs = errors(&bad);
        assert!(
            errs.len() == 1
                && errs[0]
                    .starts_with("gw.yaml:13: listeners[0].hosts[0].hsts.maxAge: invalid value"),
            "{errs:#?}"
        );
        let bad = GOOD.replace("    hosts:\n", "    redirect: { port: 80 }\n    hosts:\n");
        assert_eq!(
            errors(&bad),
            vec![
                "gw.yaml:9: listeners[0].redirect: does not apply to a \"https\" listener"
                    .to_string()
            ]
        );
    }

    #[test]
    fn an_upstream_url_with_user_information_is_refused() {
        for url in [
            "http://user:pw@10.0.0.1:80",
            "https://user@api.test",
            "http://@api.test",
        ] {
            let bad = GOOD.replace(
                "echo: { builtin: echo }",
                &format!("echo: {{ url: \"{url}\" }}"),
            );
            assert_eq!(
                errors(&bad),
                vec!["gw.yaml:17: upstreams.echo.url: an upstream URL has no user information (user:password@ is never sent)".to_string()],
                "{url}"
            );
        }
    }

    #[test]
    fn endpoint_upstreams_name_every_mistake() {
        let ok = GOOD.replace(
            "echo: { builtin: echo }",
            "echo: { endpoints: [\"http://10.0.0.1:80\", \"http://[::1]:81\"], loadBalancing: leastRequest, healthCheck: { maxFailures: 3, ejectFor: 30s }, version: http1 }",
        );
        assert_eq!(errors(&ok), Vec::<String>::new());
        let at = "gw.yaml:17: upstreams.echo";
        for (upstream, want) in [
            ("{ endpoints: [] }", format!("{at}.endpoints: give at least one endpoint URL")),
            (
                "{ endpoints: [\"http://a.test\", \"https://b.test\"] }",
                format!("{at}.endpoints[1]: every endpoint has the scheme of the first"),
            ),
            (
                "{ endpoints: [\"http://a.test:80\", \"http://a.test:80\"] }",
                format!("{at}.endpoints[1]: \"a.test:80\" is listed twice"),
            ),
            (
                "{ endpoints: [\"http://a.test/x\"] }",
                format!("{at}.endpoints[0]: an upstream URL has no path or query (routes keep the request's path)"),
            ),
            (
                "{ endpoints: [\"http://u@a.test\"] }",
                format!("{at}.endpoints[0]: an upstream URL has no user information (user:password@ is never sent)"),
            ),
            (
                "{ url: \"http://a.test\", endpoints: [\"http://b.test\"] }",
                format!("{at}: an upstream has exactly one of \"builtin\", \"url\", \"endpoints\" or \"address\""),
            ),
            (
                "{ builtin: echo, loadBalancing: roundRobin }",
                format!("{at}.loadBalancing: only applies to a url or endpoints upstream"),
            ),
            (
                "{ address: \"a.test:1\", healthCheck: {} }",
                format!("{at}.healthCheck: only applies to a url or endpoints upstream"),
            ),
            (
                "{ url: \"http://a.test\", healthCheck: { maxFailures: 0 } }",
                format!("{at}.healthCheck.maxFailures: must be at least 1"),
            ),
        ] {
            let bad = GOOD.replace("echo: { builtin: echo }", &format!("echo: {upstream}"));
            let errs = errors(&bad);
            assert!(errs.contains(&want), "{upstream}: {errs:#?}");
        }
        let bad = GOOD.replace(
            "echo: { builtin: echo }",
            "echo: { url: \"http://a.test\", loadBalancing: random }",
        );
        let errs = errors(&bad);
        assert!(
            errs.len() == 1 && errs[0].starts_with(&format!("{at}.loadBalancing: unknown variant")),
            "{errs:#?}"
        );
        let bad = GOOD.replace(
            "echo: { builtin: echo }",
            "echo: { url: \"http://a.test\", healthCheck: { ejectFor: soon } }",
        );
        let errs = errors(&bad);
        assert!(
            errs.len() == 1 && errs[0].starts_with(&format!("{at}.healthCheck.ejectFor: ")),
            "{errs:#?}"
        );
    }

    const ACME: &str = "\
certificates:
  pub: { acme: { directoryUrl: \"https://acme.test/dir\", storageDir: acme } }
listeners:
  - name: public
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [a.test, B.test]
        certificate: pub
        routes: [{ pathPrefix: /, upstream: echo }]
  - name: plain
    address: 127.0.0.1:0
    protocol: http
upstreams:
  echo: { builtin: echo }
";

    #[test]
    fn acme_domains_default_to_the_hostnames_that_use_the_certificate() {
        let c = parse(Path::new("gw.yaml"), ACME).unwrap();
        let model::CertificateSource::Acme(a) = &c.certificates["pub"] else {
            panic!("not acme")
        };
        assert_eq!(a.domains, ["a.test", "b.test"]);
        assert_eq!(a.challenge, model::AcmeChallenge::Http01);
        assert_eq!(a.file, Path::new("acme/pub.pem"));
        assert_eq!(a.renew_before, None);
    }

    #[test]
    fn every_invalid_acme_block_names_its_key() {
        let block = "{ directoryUrl: \"https://acme.test/dir\", storageDir: acme }";
        let with = |acme: &str| ACME.replace(block, acme);
        let cases: Vec<(String, &str)> = vec![
            (
                ACME.replace("[a.test, B.test]", "[a.test, \"*.w.test\"]"),
                "gw.yaml:2: certificates.pub.acme: listeners[0].hosts[0] serves \"*.w.test\" with this certificate: a wildcard can only be validated with dns-01",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, domains: [a.test, b.test, c.test] }"),
                "gw.yaml:2: certificates.pub.acme.domains[2]: \"c.test\": no https host entry that uses this certificate serves it",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, domains: [a.test] }"),
                "gw.yaml:2: certificates.pub.acme.domains: listeners[0].hosts[0] serves \"b.test\" with this certificate; add it to domains",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, domains: [\"*.a.test\"] }"),
                "gw.yaml:2: certificates.pub.acme.domains[0]: \"*.a.test\": a wildcard can only be validated with dns-01",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, domains: [] }"),
                "gw.yaml:2: certificates.pub.acme.domains: is empty",
            ),
            (
                ACME.replace("  - name: plain\n    address: 127.0.0.1:0\n    protocol: http\n", ""),
                "gw.yaml:2: certificates.pub.acme.challenge: http-01 is answered by an http listener (port 80) and there is none",
            ),
            (
                with("{ directoryUrl: \"http://acme.test/dir\", storageDir: acme }"),
                "gw.yaml:2: certificates.pub.acme.directoryUrl: \"http://acme.test/dir\" is not an https:// URL",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, email: ops }"),
                "gw.yaml:2: certificates.pub.acme.email: \"ops\" is not an email address",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, keyType: dsa }"),
                "gw.yaml:2: certificates.pub.acme.keyType: \"dsa\" is not one of ecdsa-p256",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, renewBefore: soon }"),
                "gw.yaml:2: certificates.pub.acme.renewBefore: \"soon\" is not a duration",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, challenge: dns-01 }"),
                "gw.yaml:2: certificates.pub.acme.challenge: unknown variant \"dns-01\"",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\", storageDir: acme, trustBundle: nope }"),
                "gw.yaml:2: certificates.pub.acme.trustBundle: no trust bundle named \"nope\"",
            ),
            (
                with("{ directoryUrl: \"https://acme.test/dir\" }"),
                "gw.yaml:2: certificates.pub.acme: missing field \"storageDir\"",
            ),
            (
                ACME.replace("  pub: { acme:", "  pub: { certFile: a.crt, acme:"),
                "gw.yaml:2: certificates.pub: a certificate has one source: acme, or",
            ),
            (
                ACME.replace("certificate: pub", "certificate: other")
                    .replace("certificates:\n", "certificates:\n  other: { certFile: o.crt, keyFile: o.key }\n"),
                "gw.yaml:3: certificates.pub.acme: no https host entry uses this certificate",
            ),
        ];
        for (text, want) in cases {
            let errs = errors(&text);
            assert_eq!(errs.len(), 1, "{want}: {errs:#?}");
            assert!(errs[0].starts_with(want), "{}\nwanted\n{want}", errs[0]);
        }
    }

    #[test]
    fn dangling_references_name_their_key() {
        let bad = GOOD
            .replace("upstream: echo", "upstream: nope")
            .replace("trustBundle: clients", "trustBundle: x");
        let errs = errors(&bad);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0]
            .contains("listeners[0].hosts[0].clientAuth.trustBundle: no trust bundle named \"x\""));
        assert!(errs[1]
            .contains("listeners[0].hosts[0].routes[0].upstream: no upstream named \"nope\""));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        let bad = GOOD.replace(
            "    protocol: https\n",
            "    protocol: https\n    protocol: https\n",
        );
        assert_eq!(
            errors(&bad),
            vec![
                "gw.yaml:9: listeners[0].protocol: duplicate key (first given at line 8)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn malformed_allow_patterns_and_templates_name_their_key() {
        let bad = GOOD
            .replace(
                "mode: require, trustBundle: clients }",
                "mode: require, trustBundle: clients, allow: { uriSans: [\"spiffe://td/**/x\"], dnsSans: [\"a.*.test\"], sha256Fingerprints: [xyz] } }",
            )
            .replace(
                "        routes:\n",
                "        requestHeaders: { X-Who: \"%DOWNSTREAM_PEER_NAME%\", Host: x }\n        xfccDetails: [Hash]\n        routes:\n",
            );
        let errs = errors(&bad);
        let want = [
            "gw.yaml:12: listeners[0].hosts[0].clientAuth.allow.uriSans[0]: \"spiffe://td/**/x\": \"**\" is only allowed at the end",
            "gw.yaml:12: listeners[0].hosts[0].clientAuth.allow.dnsSans[0]: \"a.*.test\" is not a DNS name",
            "gw.yaml:12: listeners[0].hosts[0].clientAuth.allow.sha256Fingerprints[0]: \"xyz\" is not a SHA-256 fingerprint",
            "gw.yaml:13: listeners[0].hosts[0].requestHeaders.Host: \"Host\" is set by the gateway itself",
            "gw.yaml:13: listeners[0].hosts[0].requestHeaders.X-Who: unknown variable %DOWNSTREAM_PEER_NAME%",
            "gw.yaml:14: listeners[0].hosts[0].xfccDetails[0]: By and Hash are always present",
        ];
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn route_allow_needs_client_auth_on_the_host() {
        let bad = GOOD
            .replace(
                "        clientAuth: { mode: require, trustBundle: clients }\n",
                "",
            )
            .replace(
                "upstream: echo\n",
                "upstream: echo\n            allow: { commonNames: [ops] }\n",
            );
        let errs = errors(&bad);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("routes[0].allow: needs client certificates"),
            "{errs:#?}"
        );
    }

    #[test]
    fn yaml_syntax_error_has_a_line() {
        let errs = errors("listeners:\n  - name: [unclosed\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("gw.yaml:"), "{errs:?}");
    }
}
