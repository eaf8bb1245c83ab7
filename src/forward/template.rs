//! `requestHeaders` value templates with Envoy's variable names (SPEC §4),
//! compiled at load: an unknown variable is a configuration error, and
//! rendering is a walk over prepared parts.

use std::fmt::Write;

use crate::identity::PeerIdentity;

use super::{percent_encode, ConnFacts};

/// A variable of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    /// `%DOWNSTREAM_PEER_SUBJECT%`
    PeerSubject,
    /// `%DOWNSTREAM_PEER_ISSUER%`
    PeerIssuer,
    /// `%DOWNSTREAM_PEER_URI_SAN%` (comma-separated)
    PeerUriSan,
    /// `%DOWNSTREAM_PEER_DNS_SAN%` (comma-separated)
    PeerDnsSan,
    /// `%DOWNSTREAM_PEER_SERIAL%` (lower-case hex, as Envoy)
    PeerSerial,
    /// `%DOWNSTREAM_PEER_FINGERPRINT_256%`
    PeerFingerprint256,
    /// `%DOWNSTREAM_PEER_CERT%` (URL-encoded PEM)
    PeerCert,
    /// `%DOWNSTREAM_TLS_VERSION%`
    TlsVersion,
    /// `%DOWNSTREAM_TLS_CIPHER%`
    TlsCipher,
    /// `%DOWNSTREAM_TLS_SNI%`
    TlsSni,
}

const VARS: &[(&str, Var)] = &[
    ("DOWNSTREAM_PEER_SUBJECT", Var::PeerSubject),
    ("DOWNSTREAM_PEER_ISSUER", Var::PeerIssuer),
    ("DOWNSTREAM_PEER_URI_SAN", Var::PeerUriSan),
    ("DOWNSTREAM_PEER_DNS_SAN", Var::PeerDnsSan),
    ("DOWNSTREAM_PEER_SERIAL", Var::PeerSerial),
    ("DOWNSTREAM_PEER_FINGERPRINT_256", Var::PeerFingerprint256),
    ("DOWNSTREAM_PEER_CERT", Var::PeerCert),
    ("DOWNSTREAM_TLS_VERSION", Var::TlsVersion),
    ("DOWNSTREAM_TLS_CIPHER", Var::TlsCipher),
    ("DOWNSTREAM_TLS_SNI", Var::TlsSni),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// Why a template does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `%` that opens a variable no `%` closes.
    #[error("\"{0}\": unterminated variable (write %% for a literal %)")]
    Unterminated(String),
    /// A variable of no known name.
    #[error("unknown variable %{0}%; known: {known}", known = known_variables())]
    Unknown(String),
}

/// `%NAME%` of every variable, for messages.
fn known_variables() -> String {
    let known: Vec<String> = VARS.iter().map(|(n, _)| format!("%{n}%")).collect();
    known.join(", ")
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Compiles `text`: `%NAME%` is a variable, `%%` a literal `%`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                lit.push('%');
                rest = r;
                continue;
            }
            let Some(end) = rest.find('%') else {
                return Err(TemplateError::Unterminated(text.to_string()));
            };
            let name = &rest[..end];
            let Some((_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                return Err(TemplateError::Unknown(name.to_string()));
            };
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(*var));
            rest = &rest[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template(parts))
    }

    /// Renders for one connection. Peer variables render only a *verified*
    /// identity; a variable with no value renders empty.
    pub fn render(&self, id: Option<&PeerIdentity>, facts: &ConnFacts<'_>) -> String {
        let id = id.filter(|i| i.verified);
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => render_var(&mut out, *v, id, facts),
            }
        }
        out
    }
}

fn render_var(out: &mut String, v: Var, id: Option<&PeerIdentity>, facts: &ConnFacts<'_>) {
    let c = id.map(|i| &i.cert);
    match v {
        Var::PeerSubject => out.push_str(c.map_or("", |c| c.subject.as_str())),
        Var::PeerIssuer => out.push_str(c.map_or("", |c| c.issuer.as_str())),
        Var::PeerUriSan => out.push_str(&c.map_or(String::new(), |c| c.uri_sans.join(","))),
        Var::PeerDnsSan => out.push_str(&c.map_or(String::new(), |c| c.dns_sans.join(","))),
        Var::PeerSerial => {
            out.push_str(&c.map_or(String::new(), |c| c.serial.to_ascii_lowercase()))
        }
        Var::PeerFingerprint256 => out.push_str(c.map_or("", |c| c.sha256.as_str())),
        Var::PeerCert => {
            if let Some(i) = id {
                let _ = write!(out, "{}", percent_encode(&i.leaf_pem()));
            }
        }
        Var::TlsVersion => out.push_str(facts.version.unwrap_or("")),
        Var::TlsCipher => out.push_str(facts.cipher.unwrap_or("")),
        Var::TlsSni => out.push_str(facts.sni.unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_and_literals() {
        let t =
            Template::parse("cn=%DOWNSTREAM_PEER_SUBJECT%;sni=%DOWNSTREAM_TLS_SNI%;100%%").unwrap();
        assert_eq!(
            t.0,
            vec![
                Part::Text("cn=".into()),
                Part::Var(Var::PeerSubject),
                Part::Text(";sni=".into()),
                Part::Var(Var::TlsSni),
                Part::Text(";100%".into()),
            ]
        );
    }

    #[test]
    fn unknown_and_unterminated_variables_are_errors() {
        assert_eq!(
            Template::parse("%DOWNSTREAM_PEER_NAME%"),
            Err(TemplateError::Unknown("DOWNSTREAM_PEER_NAME".into()))
        );
        assert!(Template::parse("%DOWNSTREAM_PEER_NAME%")
            .unwrap_err()
            .to_string()
            .starts_with(
                "unknown variable %DOWNSTREAM_PEER_NAME%; known: %DOWNSTREAM_PEER_SUBJECT%"
            ));
        assert_eq!(
            Template::parse("50%"),
            Err(TemplateError::Unterminated("50%".into()))
        );
    }

    #[test]
    fn missing_values_render_empty() {
        let t = Template::parse(
            "[%DOWNSTREAM_PEER_SUBJECT%][%DOWNSTREAM_TLS_SNI%][%DOWNSTREAM_TLS_VERSION%]",
        )
        .unwrap();
        let facts = ConnFacts {
            sni: None,
            version: Some("TLSv1.3"),
            cipher: None,
        };
        assert_eq!(t.render(None, &facts), "[][][TLSv1.3]");
    }
}
