//! The tls-alpn-01 challenge certificate (RFC 8737 §3): self-signed, for
//! exactly one name, with the critical `id-pe-acmeIdentifier` extension
//! holding the SHA-256 of the key authorization. Made per challenge with a
//! throwaway key; presented only to a ClientHello that offers nothing but
//! `acme-tls/1` for that name.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::pki::PkiError;

/// The challenge certificate for `domain` and the key authorization's
/// SHA-256 `digest`.
pub(crate) fn challenge_certificate(
    domain: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, PkiError> {
    if digest.len() != 32 {
        return Err(PkiError::Generate(rcgen::Error::CouldNotParseKeyPair));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = crate::tls::provider();
    let signer = provider
        .key_provider
        .load_private_key(der_key)
        .map_err(|_| PkiError::Generate(rcgen::Error::CouldNotParseKeyPair))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_one_domain_and_carries_the_digest_critically() {
        let digest = [7u8; 32];
        let ck = challenge_certificate("a.test", &digest).unwrap();
        use x509_cert::der::Decode;
        let cert = x509_cert::Certificate::from_der(ck.cert[0].as_ref()).unwrap();
        let exts = cert.tbs_certificate.extensions.unwrap_or_default();
        let ext = exts
            .iter()
            .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
        // An OCTET STRING of the 32 bytes.
        assert_eq!(
            ext.extn_value.as_bytes(),
            [&[4u8, 32][..], &digest[..]].concat()
        );
        let san = exts
            .iter()
            .find(|e| e.extn_id.to_string() == "2.5.29.17")
            .unwrap();
        // One dNSName: SEQUENCE { [2] "a.test" }.
        assert_eq!(san.extn_value.as_bytes(), b"\x30\x08\x82\x06a.test");
        assert!(challenge_certificate("a.test", &[1u8; 31]).is_err());
    }
}
