//! Session-ticket keys shared by every replica (SPEC §2 `sessionTickets`).
//!
//! The operator gives one or more random keys (one base64 key per line; the
//! first encrypts, every one decrypts). No ticket is sealed with one of them
//! directly: each host entry seals with its own key, derived by HKDF-SHA256
//! from the shared key and the entry's *scope* — the listener, the entry's
//! names and everything of its TLS policy (see `tls::ticket_scope`). So a
//! ticket made for one entry does not even decrypt on another, on this
//! replica or any other, and a reload that changes an entry's policy
//! changes its key: its old tickets stop resuming there (SPEC §3).
//!
//! A ticket is `key id (8) || nonce (12) || AES-256-GCM-SIV(plain) || tag
//! (16)`. The key id, also derived from the shared key and the scope, picks
//! the decrypting key without trial decryption. GCM-SIV rather than GCM: the
//! nonce is random and a shared key may seal many tickets on many replicas
//! before it is rotated; a repeated nonce under GCM-SIV reveals only that
//! two tickets are equal, never the key stream.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV};
use aws_lc_rs::hkdf;
use rustls::server::ProducesTickets;
use zeroize::Zeroizing;

use crate::material::TicketKeys;

const ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The ticket sealer of one host entry: the shared keys derived for `scope`.
pub(crate) fn for_scope(
    shared: &TicketKeys,
    scope: &[u8; 32],
) -> Result<SharedTickets, rustls::Error> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis session tickets v1");
    let fail = || rustls::Error::General("session-ticket key derivation failed".into());
    let keys = shared
        .keys()
        .map(|shared| {
            let prk = salt.extract(shared);
            let mut key = Zeroizing::new([0u8; 32]);
            prk.expand(&[&b"key "[..], &scope[..]], hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(&mut key[..]))
                .map_err(|_| fail())?;
            let mut id = [0u8; 32];
            prk.expand(&[&b"id "[..], &scope[..]], hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(&mut id))
                .map_err(|_| fail())?;
            let mut short = [0u8; ID_LEN];
            short.copy_from_slice(&id[..ID_LEN]);
            let sealer = RandomizedNonceKey::new(&AES_256_GCM_SIV, &key[..]).map_err(|_| fail())?;
            Ok((short, sealer))
        })
        .collect::<Result<Vec<_>, rustls::Error>>()?;
    Ok(SharedTickets { keys })
}

/// One host entry's ticket keys, derived from the shared ones: the first
/// seals, any opens.
pub(crate) struct SharedTickets {
    keys: Vec<([u8; ID_LEN], RandomizedNonceKey)>,
}

impl std::fmt::Debug for SharedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedTickets({} keys)", self.keys.len())
    }
}

impl ProducesTickets for SharedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // The lifetime is `TimedTickets`' business.
        0
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (id, key) = self.keys.first()?;
        let mut out = Vec::with_capacity(ID_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(id);
        out.extend_from_slice(&[0; NONCE_LEN]);
        out.extend_from_slice(plain);
        let (nonce, tag) = key
            .seal_in_place_separate_tag(Aad::from(id), &mut out[ID_LEN + NONCE_LEN..])
            .ok()?;
        out[ID_LEN..ID_LEN + NONCE_LEN].copy_from_slice(nonce.as_ref());
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (id, rest) = cipher.split_first_chunk::<ID_LEN>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        if sealed.len() < TAG_LEN {
            return None;
        }
        let (_, key) = self.keys.iter().find(|(k, _)| k == id)?;
        let mut buf = sealed.to_vec();
        let n = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(id),
                &mut buf,
            )
            .ok()?
            .len();
        buf.truncate(n);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[&[u8]]) -> TicketKeys {
        let text: Vec<String> = lines.iter().map(|k| b64(k)).collect();
        TicketKeys::parse(text.join("\n").as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    const A: [u8; 32] = [1; 32];
    const B: [u8; 48] = [2; 48];

    #[test]
    fn first_key_seals_every_key_opens_and_scopes_do_not_mix() {
        let scope = [9u8; 32];
        let old = for_scope(&keys(&[&A]), &scope).unwrap();
        let rotated = for_scope(&keys(&[&B, &A]), &scope).unwrap();
        let only_new = for_scope(&keys(&[&B]), &scope).unwrap();
        let t_old = old.encrypt(b"made before the rotation").unwrap();
        let t_new = rotated.encrypt(b"made after").unwrap();
        assert_eq!(
            rotated.decrypt(&t_old).as_deref(),
            Some(&b"made before the rotation"[..])
        );
        assert_eq!(
            only_new.decrypt(&t_new).as_deref(),
            Some(&b"made after"[..])
        );
        assert_eq!(old.decrypt(&t_new), None, "the new key is not known there");
        assert_eq!(only_new.decrypt(&t_old), None, "the old key was removed");
        // Another entry (another scope) with the very same shared keys.
        let other = for_scope(&keys(&[&B, &A]), &[8u8; 32]).unwrap();
        assert_eq!(other.decrypt(&t_new), None);
        assert_eq!(other.decrypt(&t_old), None);
        // Random nonces: equal plaintexts seal differently.
        assert_ne!(rotated.encrypt(b"x"), rotated.encrypt(b"x"));
    }

    #[test]
    fn tampered_or_truncated_tickets_do_not_open() {
        let t = for_scope(&keys(&[&A]), &[1; 32]).unwrap();
        let c = t.encrypt(b"session state").unwrap();
        assert_eq!(c.len(), ID_LEN + NONCE_LEN + 13 + TAG_LEN);
        for i in 0..c.len() {
            let mut bad = c.clone();
            bad[i] ^= 0x40;
            assert_eq!(t.decrypt(&bad), None, "byte {i} flipped");
        }
        for n in 0..c.len() {
            assert_eq!(t.decrypt(&c[..n]), None, "cut to {n}");
        }
        assert_eq!(t.decrypt(&c).as_deref(), Some(&b"session state"[..]));
    }
}
