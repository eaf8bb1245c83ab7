//! RFC 9440 `Client-Cert` / `Client-Cert-Chain` (SPEC §4,
//! `clientCertHeaders`, issue 18): the verified client's certificates as
//! structured-field byte sequences, parsed back here with an independent
//! RFC 9651 parser (`sfv`) to the very DER the client sent; never for an
//! unverified or absent certificate, and never a client's own copy.

use crate::support::client::{config, connect, exchange};
use crate::support::pki::self_signed_client;
use crate::support::upstream::Seen;
use crate::support::{write, write_leaf, Ca, Gateway, Leaf, Spec, Upstream};

struct Rig {
    gw: Gateway,
    ca: Ca,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("RFC 9440 CA");
    write_leaf(
        d,
        "server",
        &ca.leaf(&Spec::server(&["cc.test", "noca.test", "off.test"])),
    );
    write(d, "ca.crt", &ca.cert_pem);
    let upstream = Upstream::start();
    let cfg = format!(
        "certificates:
  server: {{ certFile: server.crt, keyFile: server.key }}
trustBundles:
  clients: {{ caFile: ca.crt }}
listeners:
  - name: main
    address: 127.0.0.1:0
    protocol: https
    hosts:
      - hostnames: [cc.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        clientCertHeaders: true
        routes: [{{ pathPrefix: /, upstream: rec }}]
      - hostnames: [noca.test]
        certificate: server
        clientAuth: {{ mode: optionalNoCa, trustBundle: clients }}
        clientCertHeaders: true
        routes: [{{ pathPrefix: /, upstream: rec }}]
      - hostnames: [off.test]
        certificate: server
        clientAuth: {{ mode: require, trustBundle: clients }}
        routes: [{{ pathPrefix: /, upstream: rec }}]
upstreams:
  rec: {{ url: \"http://{}\" }}
",
        upstream.addr
    );
    let gw = Gateway::start(d, &cfg);
    Rig {
        gw,
        ca,
        upstream,
        _dir: dir,
    }
}

/// Client copies in several spellings, one of them naming a real
/// certificate of someone else.
fn forged(someone: &Leaf) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(someone.chain[0].as_ref());
    format!(
        "Client-Cert: :{b64}:\r\nclient_cert: :Zm9yZ2Vk:\r\nCLIENT-CERT-CHAIN: :{b64}:\r\nclient_cert_chain: :Zm9yZ2Vk:\r\n"
    )
}

impl Rig {
    /// One request as `sni` with `cert` and `extra` headers; what the
    /// upstream saw.
    fn seen(&self, sni: &str, cert: Option<&Leaf>, extra: &str) -> Seen {
        let before = self.upstream.seen().len();
        let mut s = connect(self.gw.addr("main"), sni, &config(&self.ca, cert, &[])).unwrap();
        let out = exchange(
            &mut s,
            &format!("GET / HTTP/1.1\r\nHost: {sni}\r\n{extra}Connection: close\r\n\r\n"),
        );
        assert_eq!(out.status(), 200, "{out:?}");
        let all = self.upstream.seen();
        assert_eq!(all.len(), before + 1);
        all.last().unwrap().clone()
    }
}

/// Every value of `name` in any spelling (`_` for `-`, any case).
fn values(seen: &Seen, name: &str) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The byte sequence of an RFC 9651 Item.
fn item_bytes(value: &str) -> Vec<u8> {
    let item: sfv::Item = sfv::Parser::new(value)
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} is not a structured-field item: {e}"));
    assert!(item.params.is_empty());
    item.bare_item
        .as_byte_sequence()
        .unwrap_or_else(|| panic!("{value:?} is not a byte sequence"))
        .to_vec()
}

/// The byte sequences of an RFC 9651 List.
fn list_bytes(value: &str) -> Vec<Vec<u8>> {
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} is not a structured-field list: {e}"));
    list.iter()
        .map(|m| match m {
            sfv::ListEntry::Item(i) => i.bare_item.as_byte_sequence().unwrap().to_vec(),
            sfv::ListEntry::InnerList(_) => panic!("an inner list in {value:?}"),
        })
        .collect()
}

#[test]
fn a_verified_client_s_certificates_arrive_as_byte_sequences_and_forgeries_do_not() {
    let r = rig();
    let someone = r.ca.leaf(&Spec::client("someone else"));
    // Through an intermediate, so there is a chain to carry.
    let inter = r.ca.intermediate("RFC 9440 Intermediate");
    let leaf = inter.leaf(&Spec::client("chained"));
    let seen = r.seen("cc.test", Some(&leaf), &forged(&someone));
    let cert = values(&seen, "client-cert");
    assert_eq!(cert.len(), 1, "{cert:?}");
    assert_eq!(item_bytes(&cert[0]), leaf.chain[0].as_ref());
    let chain = values(&seen, "client-cert-chain");
    assert_eq!(chain.len(), 1, "{chain:?}");
    let want: Vec<Vec<u8>> = leaf.chain[1..].iter().map(|c| c.to_vec()).collect();
    assert_eq!(list_bytes(&chain[0]), want);
    assert!(!want.is_empty());

    // Certificates the client sends along that the verification did not
    // use (an unrelated CA, another intermediate) are not in the chain
    // header: it carries the verified path.
    let unrelated = Ca::root("Unrelated CA");
    let other = r.ca.intermediate("Another Intermediate");
    let mut padded = leaf.clone();
    padded.chain.push(unrelated.der.clone());
    padded.chain.insert(1, other.der.clone());
    let seen = r.seen("cc.test", Some(&padded), "");
    assert_eq!(
        item_bytes(&values(&seen, "client-cert")[0]),
        leaf.chain[0].as_ref()
    );
    assert_eq!(list_bytes(&values(&seen, "client-cert-chain")[0]), want);

    // Two intermediates sent in the wrong order: the header lists them in
    // issuing order (the leaf's issuer first), as RFC 9440 asks.
    let deep = r.ca.intermediate("Upper").intermediate("Lower");
    let chained = deep.leaf(&Spec::client("deep"));
    assert_eq!(chained.chain.len(), 3, "leaf, Lower, Upper");
    let issuing: Vec<Vec<u8>> = chained.chain[1..].iter().map(|c| c.to_vec()).collect();
    let mut swapped = chained.clone();
    swapped.chain.swap(1, 2);
    let seen = r.seen("cc.test", Some(&swapped), "");
    assert_eq!(list_bytes(&values(&seen, "client-cert-chain")[0]), issuing);

    // Issued by the root itself: no intermediates, no chain header (the
    // client's copy is gone too).
    let mut direct = r.ca.leaf(&Spec::client("direct"));
    direct.chain.push(unrelated.der.clone());
    let seen = r.seen("cc.test", Some(&direct), &forged(&someone));
    let cert = values(&seen, "client-cert");
    assert_eq!(cert.len(), 1);
    assert_eq!(item_bytes(&cert[0]), direct.chain[0].as_ref());
    assert_eq!(values(&seen, "client-cert-chain"), Vec::<String>::new());
}

#[test]
fn unverified_absent_or_unasked_certificates_give_no_client_cert_headers() {
    let r = rig();
    let someone = r.ca.leaf(&Spec::client("someone else"));
    let stranger = self_signed_client("stranger");
    let good = r.ca.leaf(&Spec::client("good"));
    for (sni, cert, why) in [
        ("noca.test", Some(&stranger), "optionalNoCa, not verified"),
        ("noca.test", None, "optionalNoCa, no certificate"),
        (
            "off.test",
            Some(&good),
            "verified, clientCertHeaders not set",
        ),
    ] {
        let seen = r.seen(sni, cert, &forged(&someone));
        for name in ["client-cert", "client-cert-chain"] {
            assert_eq!(values(&seen, name), Vec::<String>::new(), "{why}: {name}");
        }
    }
    // Control: a verified client on noca.test gets them.
    let seen = r.seen("noca.test", Some(&good), "");
    assert_eq!(
        item_bytes(&values(&seen, "client-cert")[0]),
        good.chain[0].as_ref()
    );
}

/// A resumed session carries the same headers as the full handshake it
/// resumes: the leaf and the verified path, never the padding.
#[test]
fn a_resumed_session_forwards_the_same_client_cert_headers() {
    let r = rig();
    let inter = r.ca.intermediate("Resumed Intermediate");
    let leaf = inter.leaf(&Spec::client("resumer"));
    let mut padded = leaf.clone();
    padded.chain.push(Ca::root("Unrelated").der.clone());
    let cfg = config(&r.ca, Some(&padded), &[]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut s = connect(r.gw.addr("main"), "cc.test", &cfg).unwrap();
        let out = exchange(
            &mut s,
            "GET / HTTP/1.1\r\nHost: cc.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(out.status(), 200);
        seen.push((s.conn.handshake_kind(), r.upstream.seen().pop().unwrap()));
    }
    assert_eq!(seen[1].0, Some(rustls::HandshakeKind::Resumed));
    let want: Vec<Vec<u8>> = leaf.chain[1..].iter().map(|c| c.to_vec()).collect();
    for (kind, s) in &seen {
        assert_eq!(
            item_bytes(&values(s, "client-cert")[0]),
            leaf.chain[0].as_ref(),
            "{kind:?}"
        );
        assert_eq!(
            list_bytes(&values(s, "client-cert-chain")[0]),
            want,
            "{kind:?}"
        );
    }
}
