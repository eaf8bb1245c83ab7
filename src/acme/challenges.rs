//! What the listeners answer for ACME validation while an order is in
//! flight: the key authorization of an http-01 token (served by `http`
//! listeners), and the certificate of a tls-alpn-01 challenge (served by
//! `https` listeners to a ClientHello that offers only `acme-tls/1`).
//!
//! Process-wide, not per snapshot: an order outlives reloads, and every
//! listener (old or new) must answer for it.
//!
//! Replicas that share `storageDir` share http-01 answers too: the replica
//! that orders also writes each key authorization to
//! `storageDir/challenges/http-01/TOKEN`, and a replica that does not hold
//! a token in memory looks there — the CA's validation request may reach
//! any replica behind the Service. (tls-alpn-01 answers are not shared.)

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use rustls::sign::CertifiedKey;

/// The challenges being answered now.
#[derive(Debug, Default)]
pub(crate) struct Challenges {
    /// http-01: token → key authorization.
    http01: RwLock<HashMap<String, String>>,
    /// tls-alpn-01: lower-case domain → challenge certificate.
    alpn01: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// The `storageDir`s of the configuration's ACME certificates, where
    /// other replicas publish their http-01 answers.
    shared: RwLock<Vec<std::path::PathBuf>>,
}

/// Where the http-01 answer for `token` is published under `storage_dir`.
pub(crate) fn published(storage_dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    storage_dir.join("challenges").join("http-01").join(token)
}

/// The process's challenges.
pub(crate) fn challenges() -> &'static Challenges {
    static ALL: OnceLock<Challenges> = OnceLock::new();
    ALL.get_or_init(Challenges::default)
}

impl Challenges {
    /// The key authorization for an http-01 `token`, if one is in flight.
    pub(crate) fn http01(&self, token: &str) -> Option<String> {
        // Tokens are base64url (RFC 8555 §8.1); anything else is no token.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        if token.len() > 256 {
            return None;
        }
        if let Some(ka) = self
            .http01
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            return Some(ka.clone());
        }
        // Another replica's order (the token is base64url: a file name).
        let dirs = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        dirs.iter().find_map(|d| {
            let text = std::fs::read_to_string(published(d, token)).ok()?;
            let ka = text.trim_end();
            // A key authorization is `token.thumbprint`, nothing else.
            (ka.len() < 512
                && ka.starts_with(token)
                && ka.as_bytes().get(token.len()) == Some(&b'.'))
            .then(|| ka.to_string())
        })
    }

    /// The storage directories to look in for other replicas' answers.
    pub(crate) fn share_from(&self, dirs: Vec<std::path::PathBuf>) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = dirs;
    }

    /// Answers `token` with `key_authorization` until [`Self::forget_http01`].
    pub(crate) fn answer_http01(&self, token: &str, key_authorization: &str) {
        let mut map = self.http01.write().unwrap_or_else(|p| p.into_inner());
        map.insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering `token`.
    pub(crate) fn forget_http01(&self, token: &str) {
        let mut map = self.http01.write().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }

    /// The tls-alpn-01 certificate for `domain`, if one is in flight.
    pub(crate) fn alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.alpn01.read().unwrap_or_else(|p| p.into_inner());
        map.get(crate::tls::normalize_host(domain).as_ref())
            .cloned()
    }

    /// Presents `cert` to tls-alpn-01 validation of `domain`.
    pub(crate) fn answer_alpn01(&self, domain: &str, cert: Arc<CertifiedKey>) {
        let mut map = self.alpn01.write().unwrap_or_else(|p| p.into_inner());
        map.insert(domain.to_ascii_lowercase(), cert);
    }

    /// Stops presenting a challenge certificate for `domain`.
    pub(crate) fn forget_alpn01(&self, domain: &str) {
        let mut map = self.alpn01.write().unwrap_or_else(|p| p.into_inner());
        map.remove(&domain.to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_published_by_another_replica_are_found_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = Challenges::default();
        c.share_from(vec![dir.path().to_path_buf()]);
        let file = published(dir.path(), "tok_1-A");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "tok_1-A.thumb\n").unwrap();
        assert_eq!(c.http01("tok_1-A").as_deref(), Some("tok_1-A.thumb"));
        // Not a key authorization of that token.
        std::fs::write(&file, "something else").unwrap();
        assert_eq!(c.http01("tok_1-A"), None);
        // Names that are not tokens never become paths.
        for t in ["../x", "a/b", "", ".", "..", "%2e%2e"] {
            assert_eq!(c.http01(t), None, "{t}");
        }
        assert_eq!(c.http01("unknown"), None);
    }

    #[test]
    fn only_base64url_tokens_in_flight_are_answered() {
        let c = Challenges::default();
        c.answer_http01("tok_en-1", "tok_en-1.thumb");
        assert_eq!(c.http01("tok_en-1").as_deref(), Some("tok_en-1.thumb"));
        for other in [
            "",
            "tok_en-2",
            "tok_en-1/",
            "../tok_en-1",
            "tok%5Fen-1",
            "TOK_EN-1",
        ] {
            assert_eq!(c.http01(other), None, "{other:?}");
        }
        c.forget_http01("tok_en-1");
        assert_eq!(c.http01("tok_en-1"), None);
    }
}
