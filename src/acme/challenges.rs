//! What the listeners answer for ACME validation while an order is in
//! flight: the key authorization of an http-01 token (served by `http`
//! listeners), and the certificate of a tls-alpn-01 challenge (served by
//! `https` listeners to a ClientHello that offers only `acme-tls/1`).
//!
//! Process-wide, not per snapshot: an order outlives reloads, and every
//! listener (old or new) must answer for it.

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
        let map = self.http01.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).cloned()
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
