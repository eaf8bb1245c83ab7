//! `allow` rules: pure matching of a verified identity against rules
//! compiled at load. Each SAN kind is matched only against its own kind (a
//! DNS rule never sees a URI or email SAN; Envoy CVE-2022-21656), and common
//! names are compared with the parsed CN attribute values — never a
//! substring or pattern over the DN text, so `CN=admin-evil` or `OU=CN=admin`
//! never pass for `admin`.

use super::PeerIdentity;

/// A compiled `allow` block: any one matching entry grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    common_names: Vec<String>,
    organizations: Vec<String>,
    organizational_units: Vec<String>,
    uri_sans: Vec<UriGlob>,
    dns_sans: Vec<DnsGlob>,
    sha256: Vec<String>,
    /// SHA-256 of the lists as written: what session tickets are scoped to
    /// (a reload that changes the rules changes it).
    digest: [u8; 32],
}

/// Why an `allow` entry could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPattern {
    /// A `sha256Fingerprints` entry that is not 64 hex digits.
    #[error("\"{0}\" is not a SHA-256 fingerprint (64 hex digits, colons optional)")]
    NotAFingerprint(String),
    /// An empty string in a list (`commonNames: [""]`).
    #[error("an empty {0} never matches")]
    Empty(&'static str),
    /// An `allow` with every list empty.
    #[error(
        "allows nobody: give at least one entry, or remove it to allow any verified certificate"
    )]
    AllowsNobody,
    /// A `uriSans` entry without a scheme.
    #[error("\"{0}\" is not a URI (for example spiffe://example.org/ns/*)")]
    NotAUri(String),
    /// `**` before the end of a URI pattern.
    #[error("\"{0}\": \"**\" is only allowed at the end")]
    DoubleStarNotLast(String),
    /// `**` or `*` right after `*`.
    #[error("\"{0}\": two wildcards in a row")]
    AdjacentWildcards(String),
    /// A `dnsSans` entry that is not a DNS name or `*.` and one.
    #[error("\"{0}\" is not a DNS name or \"*.\" followed by one (the wildcard is one whole left-most label)")]
    NotADnsName(String),
}

/// The lists of an `allow` block as written.
#[derive(Debug, Clone, Default)]
pub struct AllowSpec<'a> {
    /// `commonNames`
    pub common_names: &'a [String],
    /// `organizations`
    pub organizations: &'a [String],
    /// `organizationalUnits`
    pub organizational_units: &'a [String],
    /// `uriSans`
    pub uri_sans: &'a [String],
    /// `dnsSans`
    pub dns_sans: &'a [String],
    /// `sha256Fingerprints`
    pub sha256_fingerprints: &'a [String],
}

/// The outcome of authorizing one identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Granted.
    Allow,
    /// No certificate was presented.
    NoCertificate,
    /// A certificate was presented but did not verify.
    Unverified,
    /// A verified certificate that matches no entry.
    NotAllowed,
}

impl AllowSpec<'_> {
    fn digest(&self) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for (tag, list) in [
            ("commonNames", self.common_names),
            ("organizations", self.organizations),
            ("organizationalUnits", self.organizational_units),
            ("uriSans", self.uri_sans),
            ("dnsSans", self.dns_sans),
            ("sha256Fingerprints", self.sha256_fingerprints),
        ] {
            ctx.update(tag.as_bytes());
            ctx.update(&(list.len() as u64).to_be_bytes());
            for v in list {
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(v.as_bytes());
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

impl Allow {
    /// What session tickets of an entry with these rules are scoped to.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Compiles an `allow` block. Each error names the list and the index.
    pub fn compile(spec: &AllowSpec<'_>) -> Result<Allow, Vec<(String, usize, BadPattern)>> {
        let mut errors = Vec::new();
        let mut a = Allow {
            common_names: spec.common_names.to_vec(),
            organizations: spec.organizations.to_vec(),
            organizational_units: spec.organizational_units.to_vec(),
            digest: spec.digest(),
            ..Allow::default()
        };
        for (i, p) in spec.uri_sans.iter().enumerate() {
            match UriGlob::new(p) {
                Ok(g) => a.uri_sans.push(g),
                Err(e) => errors.push(("uriSans".to_string(), i, e)),
            }
        }
        for (i, p) in spec.dns_sans.iter().enumerate() {
            match DnsGlob::new(p) {
                Ok(g) => a.dns_sans.push(g),
                Err(e) => errors.push(("dnsSans".to_string(), i, e)),
            }
        }
        for (i, f) in spec.sha256_fingerprints.iter().enumerate() {
            let hex: String = f
                .chars()
                .filter(|c| *c != ':')
                .collect::<String>()
                .to_ascii_lowercase();
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                a.sha256.push(hex);
            } else {
                errors.push((
                    "sha256Fingerprints".to_string(),
                    i,
                    BadPattern::NotAFingerprint(f.to_string()),
                ));
            }
        }
        for (list, name, values) in [
            ("commonNames", "common name", spec.common_names),
            ("organizations", "organization", spec.organizations),
            (
                "organizationalUnits",
                "organizational unit",
                spec.organizational_units,
            ),
        ] {
            for (i, v) in values.iter().enumerate() {
                if v.is_empty() {
                    errors.push((list.to_string(), i, BadPattern::Empty(name)));
                }
            }
        }
        if errors.is_empty() && a.is_empty() {
            errors.push((String::new(), 0, BadPattern::AllowsNobody));
        }
        if errors.is_empty() {
            Ok(a)
        } else {
            Err(errors)
        }
    }

    fn is_empty(&self) -> bool {
        self.common_names.is_empty()
            && self.organizations.is_empty()
            && self.organizational_units.is_empty()
            && self.uri_sans.is_empty()
            && self.dns_sans.is_empty()
            && self.sha256.is_empty()
    }

    /// Whether a *verified* identity matches any entry.
    fn matches(&self, id: &PeerIdentity) -> bool {
        let c = &id.cert;
        self.common_names.iter().any(|n| c.common_names.contains(n))
            || self
                .organizations
                .iter()
                .any(|n| c.organizations.contains(n))
            || self
                .organizational_units
                .iter()
                .any(|n| c.organizational_units.contains(n))
            || self
                .uri_sans
                .iter()
                .any(|g| c.uri_sans.iter().any(|u| g.matches(u)))
            || self
                .dns_sans
                .iter()
                .any(|g| c.dns_sans.iter().any(|d| g.matches(d)))
            || self.sha256.contains(&c.sha256)
    }
}

/// Authorizes an identity against a rule. An unverified identity
/// (optionalNoCa) is never granted, whatever it claims.
pub fn decide(rule: &Allow, id: Option<&PeerIdentity>) -> Decision {
    match id {
        None => Decision::NoCertificate,
        Some(id) if !id.verified => Decision::Unverified,
        Some(id) if rule.matches(id) => Decision::Allow,
        Some(_) => Decision::NotAllowed,
    }
}

/// One piece of a URI pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UriPart {
    Literal(String),
    /// `*`: one or more characters other than `/`.
    Star,
    /// `**` at the end: one or more characters of any kind.
    Rest,
}

/// A URI SAN pattern (ghostunnel semantics): `*` matches within one path
/// segment, `**` (only at the end) matches any suffix. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriGlob(Vec<UriPart>);

impl UriGlob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        if !pattern.contains(':') {
            return Err(BadPattern::NotAUri(pattern.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                if !r.is_empty() {
                    return Err(BadPattern::DoubleStarNotLast(pattern.to_string()));
                }
                parts.push(UriPart::Rest);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                if matches!(parts.last(), Some(UriPart::Star)) {
                    return Err(BadPattern::AdjacentWildcards(pattern.to_string()));
                }
                parts.push(UriPart::Star);
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                parts.push(UriPart::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(UriGlob(parts))
    }

    /// Whether `uri` matches.
    pub fn matches(&self, uri: &str) -> bool {
        fn go(parts: &[UriPart], s: &str) -> bool {
            match parts.split_first() {
                None => s.is_empty(),
                Some((UriPart::Literal(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|t| go(rest, t))
                }
                Some((UriPart::Rest, _)) => !s.is_empty(),
                Some((UriPart::Star, rest)) => {
                    let segment = s.find('/').unwrap_or(s.len());
                    (1..=segment).any(|n| s.is_char_boundary(n) && go(rest, &s[n..]))
                }
            }
        }
        go(&self.0, uri)
    }
}

/// A DNS SAN pattern: exact (case-insensitive, trailing dot ignored) or
/// `*.suffix`, where `*` is exactly one left-most label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsGlob {
    wildcard: bool,
    /// Lower case; for a wildcard the part after `*.`.
    name: String,
}

impl DnsGlob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        let p = pattern.trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, name) = match p.strip_prefix("*.") {
            Some(n) => (true, n.to_string()),
            None => (false, p.clone()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || !name.split('.').all(label_ok) {
            return Err(BadPattern::NotADnsName(pattern.to_string()));
        }
        Ok(DnsGlob { wildcard, name })
    }

    /// Whether the DNS SAN `san` matches.
    pub fn matches(&self, san: &str) -> bool {
        let s = san.trim_end_matches('.');
        if !self.wildcard {
            return s.eq_ignore_ascii_case(&self.name);
        }
        match s.split_once('.') {
            Some((first, rest)) => {
                !first.is_empty() && first != "*" && rest.eq_ignore_ascii_case(&self.name)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CertSummary;

    #[test]
    fn uri_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("spiffe://td/ns/*", "spiffe://td/ns/a", true),
            ("spiffe://td/ns/*", "spiffe://td/ns/a/b", false),
            ("spiffe://td/ns/*", "spiffe://td/ns/", false),
            (
                "spiffe://td/ns/*/sa/web",
                "spiffe://td/ns/prod/sa/web",
                true,
            ),
            (
                "spiffe://td/ns/*/sa/web",
                "spiffe://td/ns/prod/x/sa/web",
                false,
            ),
            ("spiffe://td/ns/**", "spiffe://td/ns/a/b/c", true),
            ("spiffe://td/ns/**", "spiffe://td/ns/", false),
            ("spiffe://td/ns/**", "spiffe://td/other/a", false),
            ("spiffe://td/a-*", "spiffe://td/a-b", true),
            ("spiffe://td/a-*", "spiffe://td/a-b/c", false),
            ("spiffe://td/exact", "spiffe://td/exact", true),
            ("spiffe://td/exact", "spiffe://td/exactly", false),
            ("spiffe://td/exact", "SPIFFE://td/exact", false),
        ];
        for (p, u, want) in cases {
            assert_eq!(UriGlob::new(p).unwrap().matches(u), *want, "{p} vs {u}");
        }
    }

    #[test]
    fn bad_uri_globs_are_refused() {
        assert!(UriGlob::new("spiffe://td/**/x").is_err());
        assert!(UriGlob::new("no-scheme").is_err());
    }

    #[test]
    fn dns_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.a.test", "x.a.test", true),
            ("*.a.test", "X.A.TEST.", true),
            ("*.a.test", "x.y.a.test", false),
            ("*.a.test", "a.test", false),
            ("*.a.test", "*.a.test", false),
            ("a.test", "A.test", true),
            ("a.test", "b.a.test", false),
        ];
        for (p, d, want) in cases {
            assert_eq!(DnsGlob::new(p).unwrap().matches(d), *want, "{p} vs {d}");
        }
        assert!(DnsGlob::new("a.*.test").is_err());
        assert!(DnsGlob::new("*a.test").is_err());
        assert!(DnsGlob::new("*").is_err());
    }

    fn id(f: impl FnOnce(&mut CertSummary)) -> PeerIdentity {
        let mut c = CertSummary {
            subject: String::new(),
            issuer: String::new(),
            common_names: vec![],
            organizations: vec![],
            organizational_units: vec![],
            dns_sans: vec![],
            uri_sans: vec![],
            ip_sans: vec![],
            email_sans: vec![],
            serial: String::new(),
            sha256: "ab".repeat(32),
            not_before: 0,
            not_after: 0,
            is_ca: false,
            eku: None,
        };
        f(&mut c);
        PeerIdentity {
            verified: true,
            failure: None,
            cert: std::sync::Arc::new(c),
            chain: Vec::new().into(),
            path: Default::default(),
        }
    }

    fn allow(cn: &[&str], dns: &[&str], uri: &[&str], fp: &[&str]) -> Allow {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (cn, dns, uri, fp) = (s(cn), s(dns), s(uri), s(fp));
        Allow::compile(&AllowSpec {
            common_names: &cn,
            dns_sans: &dns,
            uri_sans: &uri,
            sha256_fingerprints: &fp,
            ..AllowSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn common_names_match_whole_attribute_values_only() {
        let a = allow(&["admin"], &[], &[], &[]);
        let ok = id(|c| c.common_names = vec!["admin".into()]);
        let evil = id(|c| c.common_names = vec!["admin-evil".into()]);
        let ou = id(|c| {
            c.common_names = vec!["user".into()];
            c.organizational_units = vec!["CN=admin".into()];
            c.subject = "CN=user,OU=CN=admin".into();
        });
        assert_eq!(decide(&a, Some(&ok)), Decision::Allow);
        assert_eq!(decide(&a, Some(&evil)), Decision::NotAllowed);
        assert_eq!(decide(&a, Some(&ou)), Decision::NotAllowed);
    }

    #[test]
    fn san_kinds_never_cross() {
        let a = allow(&[], &["*.a.test"], &[], &[]);
        let uri_only = id(|c| c.uri_sans = vec!["x.a.test".into(), "https://x.a.test/".into()]);
        let email_only = id(|c| c.email_sans = vec!["x.a.test".into()]);
        let dns = id(|c| c.dns_sans = vec!["x.a.test".into()]);
        assert_eq!(decide(&a, Some(&uri_only)), Decision::NotAllowed);
        assert_eq!(decide(&a, Some(&email_only)), Decision::NotAllowed);
        assert_eq!(decide(&a, Some(&dns)), Decision::Allow);
        let u = allow(&[], &[], &["spiffe://td/*"], &[]);
        let dns_spiffe = id(|c| c.dns_sans = vec!["spiffe://td/x".into()]);
        assert_eq!(decide(&u, Some(&dns_spiffe)), Decision::NotAllowed);
    }

    #[test]
    fn fingerprints_ignore_colons_and_case() {
        let colon = "AB:".repeat(31) + "AB";
        let a = allow(&[], &[], &[], &[&colon]);
        assert_eq!(decide(&a, Some(&id(|_| {}))), Decision::Allow);
        let other = allow(&[], &[], &[], &[&"cd".repeat(32)]);
        assert_eq!(decide(&other, Some(&id(|_| {}))), Decision::NotAllowed);
    }

    #[test]
    fn unverified_and_absent_identities_are_never_granted() {
        let mut unverified = id(|c| c.common_names = vec!["admin".into()]);
        unverified.verified = false;
        let a = allow(&["admin"], &[], &[], &[]);
        assert_eq!(decide(&a, Some(&unverified)), Decision::Unverified);
        assert_eq!(decide(&a, None), Decision::NoCertificate);
    }

    #[test]
    fn empty_allow_and_bad_entries_are_refused() {
        assert!(Allow::compile(&AllowSpec::default()).is_err());
        let bad = vec!["xyz".to_string()];
        let errs = Allow::compile(&AllowSpec {
            sha256_fingerprints: &bad,
            ..AllowSpec::default()
        })
        .unwrap_err();
        assert_eq!(errs[0].0, "sha256Fingerprints");
        assert_eq!(errs[0].1, 0);
    }
}
