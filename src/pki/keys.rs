//! Private keys: generation for the six key types, and reading any PEM key
//! (PKCS#8, PKCS#1, SEC1) into its kind and a PKCS#8 encoding. Key material
//! never leaves this module in a message.
//!
//! Every key is encoded as PKCS#8 v1 (RFC 5208 `PrivateKeyInfo`, SPEC §1).
//! aws-lc-rs writes Ed25519 keys as PKCS#8 v2 (RFC 5958, with the public
//! key) by default, which OpenSSL 3.0 and Python `cryptography` refuse, so
//! Ed25519 keys are made and re-encoded with its v1 functions.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::PkiError;

/// `--key-type`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum KeyType {
    /// ECDSA on P-256 with SHA-256 (default).
    #[default]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
    /// RSA 2048 with SHA-256.
    #[value(name = "rsa2048")]
    Rsa2048,
    /// RSA 3072 with SHA-256.
    #[value(name = "rsa3072")]
    Rsa3072,
    /// RSA 4096 with SHA-256.
    #[value(name = "rsa4096")]
    Rsa4096,
}

impl KeyType {
    /// A new key pair of this type.
    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        use rcgen::RsaKeySize;
        Ok(match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
            KeyType::Ed25519 => {
                let v1 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
                    .map_err(|_| PkiError::from(rcgen::Error::RingUnspecified))?;
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &rustls_pki_types::PrivatePkcs8KeyDer::from(v1.as_ref()),
                    &rcgen::PKCS_ED25519,
                )?
            }
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
            }
            KeyType::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?
            }
        })
    }
}

/// A private key read from a file.
pub(crate) struct PrivateKey {
    /// "ECDSA P-256", "RSA 2048", "Ed25519".
    pub kind: String,
    /// The key as PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// The public key, as the raw bytes a certificate's SPKI carries.
    pub public: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey({})", self.kind)
    }
}

/// Reads the first private key in PEM `text` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_private_key(text: &[u8]) -> Option<PrivateKey> {
    let der = PrivateKeyDer::from_pem_slice(text).ok()?;
    classify(&der)
}

/// Identifies a DER private key and converts it to PKCS#8.
pub(crate) fn classify(der: &PrivateKeyDer<'_>) -> Option<PrivateKey> {
    let bytes = der.secret_der();
    let ec = |alg: &'static signature::EcdsaSigningAlgorithm, name: &str| -> Option<PrivateKey> {
        let kp = EcdsaKeyPair::from_private_key_der(alg, bytes).ok()?;
        Some(PrivateKey {
            kind: name.to_string(),
            pkcs8: kp.to_pkcs8v1().ok()?.as_ref().to_vec(),
            public: kp.public_key().as_ref().to_vec(),
        })
    };
    match der {
        PrivateKeyDer::Pkcs1(_) => {
            let kp = RsaKeyPair::from_der(bytes).ok()?;
            rsa(&kp)
        }
        PrivateKeyDer::Sec1(_) => ec(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, "ECDSA P-256")
            .or_else(|| ec(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, "ECDSA P-384")),
        PrivateKeyDer::Pkcs8(_) => ec(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, "ECDSA P-256")
            .or_else(|| ec(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, "ECDSA P-384"))
            .or_else(|| {
                // v1 or v2 in, v1 out.
                let kp = Ed25519KeyPair::from_pkcs8(bytes).ok()?;
                Some(PrivateKey {
                    kind: "Ed25519".into(),
                    pkcs8: kp.to_pkcs8v1().ok()?.as_ref().to_vec(),
                    public: kp.public_key().as_ref().to_vec(),
                })
            })
            .or_else(|| RsaKeyPair::from_pkcs8(bytes).ok().and_then(|kp| rsa(&kp))),
        _ => None,
    }
}

fn rsa(kp: &RsaKeyPair) -> Option<PrivateKey> {
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().ok()?;
    Some(PrivateKey {
        kind: format!("RSA {}", kp.public_modulus_len() * 8),
        pkcs8: pkcs8.as_ref().to_vec(),
        public: kp.public_key().as_ref().to_vec(),
    })
}

/// Describes a certificate's public key ("ECDSA P-256", "RSA 3072", …).
pub(crate) fn describe_spki(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> String {
    use x509_cert::der::Encode;
    let alg = spki.algorithm.oid.to_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    match (alg.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ECDSA P-256".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ECDSA P-384".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => "ECDSA P-521".into(),
        ("1.3.101.112", _) => "Ed25519".into(),
        ("1.2.840.113549.1.1.1", _) => match spki
            .to_der()
            .ok()
            .and_then(|d| aws_lc_rs::rsa::PublicEncryptingKey::from_der(&d).ok())
        {
            Some(k) => format!("RSA {}", k.key_size_bits()),
            None => "RSA".into(),
        },
        (other, _) => format!("unknown ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{PublicKeyData, SigningKey};

    const ALL: [KeyType; 6] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Ed25519,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    /// The version of a PKCS#8 document: 0 is v1 (RFC 5208), 1 is v2.
    fn pkcs8_version(der: &[u8]) -> u8 {
        use x509_cert::der::{Any, Decode, SliceReader};
        let seq = Any::from_der(der).unwrap();
        u8::decode(&mut SliceReader::new(seq.value()).unwrap()).unwrap()
    }

    fn verification(kt: KeyType) -> &'static dyn signature::VerificationAlgorithm {
        match kt {
            KeyType::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
            KeyType::Ed25519 => &signature::ED25519,
            _ => &signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }

    #[test]
    fn every_key_type_is_written_as_pkcs8_v1_and_still_signs() {
        for kt in ALL {
            let key = kt.generate().unwrap();
            let der = key.serialize_der();
            assert_eq!(pkcs8_version(&der), 0, "{kt:?}");
            // As `ca load` reads it back: the same key, and it signs.
            let again = KeyPair::from_pem(&key.serialize_pem()).unwrap();
            assert_eq!(again.der_bytes(), key.der_bytes(), "{kt:?}");
            let msg = b"portcullis";
            let sig = again.sign(msg).unwrap();
            signature::UnparsedPublicKey::new(verification(kt), key.public_key_raw())
                .verify(msg, &sig)
                .unwrap_or_else(|_| panic!("{kt:?}: signature does not verify"));
            // And `classify` (p12, secret) keeps it v1.
            let read = classify(&PrivateKeyDer::Pkcs8(der.into())).unwrap();
            assert_eq!(pkcs8_version(&read.pkcs8), 0, "{kt:?}");
            assert_eq!(read.public, key.public_key_raw(), "{kt:?}");
        }
    }

    #[test]
    fn an_ed25519_key_read_as_pkcs8_v2_is_passed_on_as_v1() {
        let v2 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        assert_eq!(pkcs8_version(v2.as_ref()), 1);
        let read = classify(&PrivateKeyDer::Pkcs8(v2.as_ref().to_vec().into())).unwrap();
        assert_eq!(read.kind, "Ed25519");
        assert_eq!(pkcs8_version(&read.pkcs8), 0);
        let kp = Ed25519KeyPair::from_pkcs8(&read.pkcs8).unwrap();
        assert_eq!(kp.public_key().as_ref(), read.public.as_slice());
    }
}
