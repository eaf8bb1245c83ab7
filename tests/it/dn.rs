//! The DN formatter against `openssl x509 -noout -subject -nameopt RFC2253`
//! on tricky subjects made in the test (with rcgen, and with `openssl req`
//! for multi-valued RDNs).

use std::process::Command;

use rustls::pki_types::pem::PemObject;

use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

fn openssl_subject(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.pem");
    std::fs::write(&file, pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&file)
        .output()
        .expect("openssl is installed by ./scripts/test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim_end_matches('\n')
        .strip_prefix("subject=")
        .unwrap()
        .to_string()
}

fn ours(der: &[u8]) -> String {
    portcullis::identity::CertSummary::from_der(der)
        .unwrap()
        .subject
}

fn cert_with(dn: Vec<(DnType, DnValue)>) -> (String, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    for (t, v) in dn {
        p.distinguished_name.push(t, v);
    }
    let c = p.self_signed(&key).unwrap();
    (c.pem(), c.der().to_vec())
}

fn utf8(t: DnType, s: &str) -> (DnType, DnValue) {
    (t, DnValue::Utf8String(s.into()))
}

#[test]
fn subjects_match_openssl_rfc2253_output() {
    let cn = DnType::CommonName;
    let custom = |oid: &[u64]| DnType::CustomDnType(oid.to_vec());
    let cases: Vec<Vec<(DnType, DnValue)>> = vec![
        vec![utf8(cn.clone(), "plain")],
        vec![utf8(cn.clone(), "Acme, Inc. + Co")],
        vec![utf8(cn.clone(), "a\"b\\c<d>e;f=g")],
        vec![utf8(cn.clone(), "#hash at start, # inside")],
        vec![utf8(cn.clone(), " padded both ends ")],
        vec![utf8(cn.clone(), "Jürgen Ωmega 日本")],
        vec![utf8(cn.clone(), "tab\there")],
        vec![utf8(cn.clone(), "#")],
        vec![utf8(cn.clone(), " ")],
        vec![
            utf8(DnType::CountryName, "DE"),
            utf8(DnType::OrganizationName, "Org, GmbH"),
            utf8(DnType::OrganizationalUnitName, "CN=admin"),
            utf8(cn.clone(), "user"),
        ],
        vec![(
            cn.clone(),
            DnValue::PrintableString("Printable (x) = y".try_into().unwrap()),
        )],
        vec![(
            cn.clone(),
            DnValue::BmpString("Bmp Ü €".try_into().unwrap()),
        )],
        vec![(
            cn.clone(),
            DnValue::TeletexString("teletex, text".try_into().unwrap()),
        )],
        vec![
            (
                custom(&[0, 9, 2342, 19200300, 100, 1, 25]),
                DnValue::Ia5String("org".try_into().unwrap()),
            ),
            (
                custom(&[0, 9, 2342, 19200300, 100, 1, 25]),
                DnValue::Ia5String("example".try_into().unwrap()),
            ),
            (
                custom(&[1, 2, 840, 113549, 1, 9, 1]),
                DnValue::Ia5String("ops@example.org".try_into().unwrap()),
            ),
            utf8(cn.clone(), "with email"),
        ],
        vec![
            utf8(custom(&[1, 3, 6, 1, 4, 1, 99999, 1]), "private attribute"),
            utf8(cn.clone(), "x"),
        ],
        vec![
            utf8(DnType::StateOrProvinceName, "Bayern"),
            utf8(DnType::LocalityName, "München"),
            utf8(custom(&[2, 5, 4, 5]), "12345"),
            utf8(cn.clone(), "trailing backslash\\"),
        ],
    ];
    assert!(cases.len() >= 10);
    for dn in cases {
        let (pem, der) = cert_with(dn);
        assert_eq!(ours(&der), openssl_subject(&pem));
    }
}

#[test]
fn multi_valued_rdns_match_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for subj in [
        "/O=Org/OU=a+CN=multi",
        "/CN=x+CN=y/O=Two+OU=Parts",
        "/DC=org/DC=example/CN=a\\, b+UID=42",
    ] {
        let cert = dir.path().join("m.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
            ])
            .args(["-multivalue-rdn", "-subj", subj, "-keyout"])
            .arg(dir.path().join("m.key"))
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed by ./scripts/test");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = std::fs::read_to_string(&cert).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let theirs = openssl_subject(&pem);
        assert!(theirs.contains('+'), "{subj} -> {theirs}");
        assert_eq!(ours(&der), theirs, "{subj}");
    }
}
