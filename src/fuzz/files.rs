//! What operators and clusters hand the gateway: config files, Ingress
//! manifests, PEM/DER/PKCS#12 material, Secret manifests, CSRs and CRLs.

use std::path::Path;
use std::sync::OnceLock;

use super::Input;
use crate::pki::ca::{Ca, InitSpec};
use crate::pki::issue::Profile;

/// A message shown to an operator: names its source and holds no Rust
/// debug rendering of a library value.
fn assert_words(message: &str, source: &str) {
    assert!(
        message.contains(source),
        "{message:?} does not name {source}"
    );
    // What the message quotes of the input ("…", escaped as Rust does) is
    // the input's, not a rendering.
    let mut own = String::new();
    let mut quoted = false;
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                chars.next();
            }
            '"' => quoted = !quoted,
            c if !quoted => own.push(c),
            _ => {}
        }
    }
    for debug in ["Error {", "Some(", "{ kind: ", "Kind("] {
        assert!(!own.contains(debug), "debug rendering in {message:?}");
    }
}

/// A config either loads or every error names the file and a line or key
/// path in words; loading never panics.
pub(super) fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = crate::config::parse(Path::new("fuzz.yaml"), text) {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(!e.message.is_empty());
            assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
            // The key path is the input's own text; the message is ours.
            assert_words(&format!("fuzz.yaml: {}", e.message), "fuzz.yaml");
        }
    }
}

/// An import either fails with one message naming its input, or writes a
/// config that `check` reads.
pub(super) fn import(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let opts = crate::import::Options {
        files: vec![],
        prefix: "nginx.ingress.kubernetes.io".into(),
        secrets_dir: "secrets".into(),
        listen: ([0, 0, 0, 0], 443).into(),
        admin: Some(([127, 0, 0, 1], 9901).into()),
    };
    match crate::import::from_texts(&opts, &[("in.yaml".into(), text)]) {
        Ok(out) => {
            if let Err(e) = crate::config::parse(Path::new("imported.yaml"), &out.config) {
                panic!(
                    "import wrote a config that does not load:\n{e}\n---\n{}",
                    out.config
                );
            }
            for (path, yaml) in &out.secrets {
                if let Err(e) = crate::material::sources::secret_manifest_entries(path, yaml) {
                    panic!("import wrote an unreadable Secret: {e}");
                }
            }
        }
        Err(e) => assert!(!crate::words::error_chain(&e).is_empty()),
    }
}

/// PEM certificates, PEM keys and Secret manifests: read or refused in
/// words naming their source.
pub(super) fn material(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => match crate::material::sources::certs_from_pem(rest, "fuzz.crt") {
            Ok(certs) => assert!(!certs.is_empty()),
            Err(e) => assert_words(&crate::words::error_chain(&e), "fuzz.crt"),
        },
        1 => {
            if let Some(k) = crate::pki::keys::read_private_key(rest) {
                // The PKCS#8 form reads back as the same kind of key.
                let der = rustls_pki_types::PrivateKeyDer::Pkcs8(k.pkcs8.clone().into());
                let again = crate::pki::keys::classify(&der).expect("PKCS#8 re-read");
                assert_eq!(again.kind, k.kind);
                assert!(!format!("{k:?}").contains(&format!("{:?}", k.pkcs8)));
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Err(e) =
                crate::material::sources::secret_manifest_entries(Path::new("s.yaml"), text)
            {
                assert_words(&crate::words::error_chain(&e), "s.yaml");
            }
        }
    }
}

/// PKCS#12: opened, or refused in one sentence.
pub(super) fn p12(data: &[u8]) {
    match crate::pki::p12::open(data, "fuzz") {
        Ok(c) => {
            if let Some(der) = &c.key_der {
                let der = rustls_pki_types::PrivateKeyDer::Pkcs8(der.clone().into());
                assert!(crate::pki::keys::classify(&der).is_some());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let spec = InitSpec {
            cn: "Fuzz CA".into(),
            key_type: Default::default(),
            days: 30,
        };
        crate::pki::ca::create(Path::new("fuzz-ca"), &spec, None)
            .expect("a CA")
            .0
    })
}

/// A CSR key, made once.
fn csr_key() -> &'static rcgen::KeyPair {
    static KEY: OnceLock<rcgen::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| rcgen::KeyPair::generate().expect("a key"))
}

/// CSRs, raw or built from arbitrary names: signed into a leaf that keeps
/// the subject and SANs and is never a CA, or refused in words.
pub(super) fn csr(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let profile = match which % 3 {
        0 => Profile::Client,
        1 => Profile::Server,
        _ => Profile::Peer,
    };
    let csr = if which & 0x80 == 0 {
        rest.to_vec()
    } else {
        let mut input = Input::new(rest);
        let Ok(mut params) = rcgen::CertificateParams::new(Vec::<String>::new()) else {
            return;
        };
        for _ in 0..input.byte() % 4 {
            let kind = match input.byte() % 4 {
                0 => rcgen::DnType::CommonName,
                1 => rcgen::DnType::OrganizationName,
                2 => rcgen::DnType::OrganizationalUnitName,
                _ => rcgen::DnType::CountryName,
            };
            let text = input.text(80);
            let value = match input.byte() % 3 {
                0 => rcgen::DnValue::Utf8String(text),
                // (Only what rcgen's writer can write: it panics on `?`.)
                1 if !crate::pki::issue::printable_for_writer(&text) => continue,
                1 => match rcgen::string::PrintableString::try_from(text) {
                    Ok(p) => rcgen::DnValue::PrintableString(p),
                    Err(_) => continue,
                },
                _ => match rcgen::string::Ia5String::try_from(text) {
                    Ok(p) => rcgen::DnValue::Ia5String(p),
                    Err(_) => continue,
                },
            };
            params.distinguished_name.push(kind, value);
        }
        for _ in 0..input.byte() % 3 {
            let text = input.text(80);
            let san = match input.byte() % 2 {
                0 => rcgen::string::Ia5String::try_from(text).map(rcgen::SanType::DnsName),
                _ => rcgen::string::Ia5String::try_from(text).map(rcgen::SanType::URI),
            };
            if let Ok(san) = san {
                params.subject_alt_names.push(san);
            }
        }
        match params.serialize_request(csr_key()) {
            Ok(r) => r.der().to_vec(),
            Err(_) => return,
        }
    };
    match crate::pki::issue::sign(ca(), profile, &csr, 30) {
        Ok(issued) => {
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(issued.cert_pem.as_bytes())
                .map(|d: rustls_pki_types::CertificateDer<'_>| d.to_vec())
                .expect("a PEM certificate");
            let s = crate::identity::CertSummary::from_der(&der).expect("a readable leaf");
            assert!(!s.is_ca, "a CSR got a CA certificate");
            assert!(issued.key_pem.is_empty());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert_words(&msg, "CSR");
        }
    }
}

/// CRLs: parsed, or refused in words naming the file.
pub(super) fn crl(data: &[u8]) {
    match crate::material::crl::parse_crls(data, "fuzz.crl", "renew it") {
        Ok(crls) => {
            for c in crls {
                assert!(c
                    .revoked
                    .iter()
                    .all(|s| s.bytes().all(|b| b.is_ascii_hexdigit())));
                let _ = crate::material::crl::crl_freshness(&c.info, 0);
            }
        }
        Err(e) => assert_words(&crate::words::error_chain(&e), "fuzz.crl"),
    }
}
