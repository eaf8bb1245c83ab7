//! The PROXY protocol v2 header a `tls` listener sends first (HAProxy's
//! specification): addresses, AUTHORITY (SNI), ALPN, and the SSL TLV with
//! the client flags set truthfully, VERSION, CN, CIPHER and the client
//! certificate (PP2_SUBTYPE_SSL_CLIENT_CERT, 0x28, DER). Encoded by the
//! proxy-header crate.
//!
//! The header is built whole in memory and only then written, so an
//! upstream never receives part of one: an encoding error closes the
//! client's connection before the upstream is even dialled.
//!
//! Size: the v2 length field is 16 bits, so addresses and TLVs together hold
//! at most 65,535 bytes (and proxy-header panics on a TLV it cannot fit).
//! The budget is checked here, before anything is encoded:
//! - AUTHORITY, ALPN, VERSION, CIPHER and CN are required. They are bounded
//!   by the handshake (an SNI host name ≤ 253 bytes, an ALPN id ≤ 255) and a
//!   legitimate CN (X.509's upper bound is 64 characters) takes a few hundred
//!   bytes at most, so they fit with room to spare. A CN is never truncated
//!   (a cut name is somebody else's name): if they do not fit, the
//!   connection is closed ([`HeaderError::TooLarge`], fail closed).
//! - The client certificate is the one optional TLV. A leaf may be as large
//!   as a TLS handshake message (64 KiB), which cannot fit beside the rest;
//!   when it does not fit it is left out whole — never cut — and the caller
//!   logs it. The SSL flags still say a certificate was presented and
//!   whether it verified, and the CN is still there: the upstream loses a
//!   copy of the certificate, never learns a false identity.

use std::net::SocketAddr;

use proxy_header::{ProxiedAddress, ProxyHeader, SslInfo, Tlv};
use rustls::ServerConnection;

use crate::identity::PeerIdentity;

/// PP2_SUBTYPE_SSL_CLIENT_CERT (not yet named by proxy-header).
const PP2_SUBTYPE_SSL_CLIENT_CERT: u8 = 0x28;

/// The most the v2 length field can say: addresses plus every TLV.
const MAX_PAYLOAD: usize = u16::MAX as usize;

/// A TLV's type and length bytes.
const TLV_HEAD: usize = 3;

/// The SSL TLV's own fields before its sub-TLVs: client flags (1) and
/// verify (4).
const SSL_HEAD: usize = 5;

/// Why no header could be made; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// The required fields alone exceed the 64 KiB a v2 header can carry.
    #[error("the PROXY v2 header would need {needed} bytes of addresses and TLVs, more than the {MAX_PAYLOAD} it can carry")]
    TooLarge {
        /// Bytes the required fields need.
        needed: usize,
    },
    /// proxy-header refused the header (for example client and local
    /// addresses of different families).
    #[error("cannot encode the PROXY v2 header")]
    Encode(#[source] proxy_header::Error),
}

/// A header ready to be written.
#[derive(Debug)]
pub(crate) struct Header {
    /// The whole header.
    pub bytes: Vec<u8>,
    /// The client certificate was presented but left out for lack of room.
    pub client_cert_omitted: bool,
}

/// What the header says about one connection, gathered from the handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// SNI.
    pub authority: Option<&'a str>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<&'a [u8]>,
    /// `TLSv1.3`, …
    pub version: Option<&'a str>,
    /// The IANA name of the cipher suite.
    pub cipher: Option<&'a str>,
    /// A client certificate was presented (on this connection or on the
    /// session it resumed).
    pub presented: bool,
    /// The session was resumed (the certificate was presented earlier).
    pub resumed: bool,
    /// The certificate verified.
    pub verified: bool,
    /// The client certificate's first common name.
    pub cn: Option<&'a str>,
    /// The client certificate, DER.
    pub client_cert: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// The fields of a finished handshake.
    pub(crate) fn of(
        client: SocketAddr,
        local: SocketAddr,
        conn: &'a ServerConnection,
        id: Option<&'a PeerIdentity>,
    ) -> Self {
        Fields {
            client,
            local,
            authority: conn.server_name(),
            alpn: conn.alpn_protocol(),
            version: conn.protocol_version().and_then(crate::tls::version_name),
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|c| crate::tls::cipher_name(c.suite())),
            presented: id.is_some(),
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            verified: id.is_some_and(|i| i.verified),
            cn: id.and_then(|i| i.cert.common_names.first().map(String::as_str)),
            client_cert: id.and_then(|i| i.chain.first().map(|c| c.as_ref())),
        }
    }
}

/// The header for one connection.
pub(crate) fn header(
    client: SocketAddr,
    local: SocketAddr,
    conn: &ServerConnection,
    id: Option<&PeerIdentity>,
) -> Result<Header, HeaderError> {
    encode(&Fields::of(client, local, conn, id))
}

fn tlv_len(value: Option<usize>) -> usize {
    value.map_or(0, |n| TLV_HEAD + n)
}

/// Encodes `f` into a complete header (see the module comment for what is
/// left out when it does not fit).
pub(crate) fn encode(f: &Fields<'_>) -> Result<Header, HeaderError> {
    let addresses = match f.client {
        SocketAddr::V4(_) => 4 + 4 + 2 + 2,
        SocketAddr::V6(_) => 16 + 16 + 2 + 2,
    };
    let required = addresses
        + tlv_len(f.authority.map(str::len))
        + tlv_len(f.alpn.map(<[u8]>::len))
        + TLV_HEAD
        + SSL_HEAD
        + tlv_len(f.version.map(str::len))
        + tlv_len(f.cn.map(str::len))
        + tlv_len(f.cipher.map(str::len));
    if required > MAX_PAYLOAD {
        return Err(HeaderError::TooLarge { needed: required });
    }
    // Every TLV, the SSL TLV included, is part of the payload, so none can
    // exceed its own 16-bit length once the payload fits.
    let client_cert = f
        .client_cert
        .filter(|der| required + TLV_HEAD + der.len() <= MAX_PAYLOAD);
    // verify = 0 means the client certificate was verified (HAProxy).
    let mut ssl = SslInfo::new(
        true,
        f.presented && !f.resumed,
        f.presented,
        if f.verified || !f.presented { 0 } else { 1 },
    );
    if let Some(v) = f.version {
        ssl.append_tlv(Tlv::SslVersion(v.into()));
    }
    if let Some(cn) = f.cn {
        ssl.append_tlv(Tlv::SslCn(cn.into()));
    }
    if let Some(c) = f.cipher {
        ssl.append_tlv(Tlv::SslCipher(c.into()));
    }
    if let Some(der) = client_cert {
        ssl.append_tlv(Tlv::Custom(PP2_SUBTYPE_SSL_CLIENT_CERT, der.into()));
    }
    let mut tlvs = Vec::new();
    if let Some(sni) = f.authority {
        tlvs.push(Tlv::Authority(sni.into()));
    }
    if let Some(alpn) = f.alpn {
        tlvs.push(Tlv::Alpn(alpn.into()));
    }
    tlvs.push(Tlv::Ssl(ssl));
    let h = ProxyHeader::with_tlvs(Some(ProxiedAddress::stream(f.client, f.local)), tlvs);
    let mut bytes = Vec::with_capacity(16 + required);
    h.encode_v2(&mut bytes).map_err(HeaderError::Encode)?;
    Ok(Header {
        bytes,
        client_cert_omitted: f.client_cert.is_some() && client_cert.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_header::ParseConfig;

    const CIPHER: &str = "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";

    /// The largest fields a real handshake can bring besides the
    /// certificate: a 253-byte SNI, a 255-byte ALPN id, IPv6 addresses and
    /// a 64-character CN of 4-byte characters.
    fn largest<'a>(cn: &'a str, cert: &'a [u8], sni: &'a str, alpn: &'a [u8]) -> Fields<'a> {
        Fields {
            client: "[2001:db8::1]:40000".parse().unwrap(),
            local: "[2001:db8::2]:443".parse().unwrap(),
            authority: Some(sni),
            alpn: Some(alpn),
            version: Some("TLSv1.2"),
            cipher: Some(CIPHER),
            presented: true,
            resumed: false,
            verified: true,
            cn: Some(cn),
            client_cert: Some(cert),
        }
    }

    fn parse(bytes: &[u8]) -> ProxyHeader<'_> {
        let (h, used) = ProxyHeader::parse(bytes, ParseConfig::default()).unwrap();
        assert_eq!(used, bytes.len(), "one whole header, nothing more");
        h
    }

    fn cert_of(h: &ProxyHeader<'_>) -> Option<Vec<u8>> {
        h.ssl()?.tlvs().find_map(|t| match t {
            Ok(Tlv::Custom(PP2_SUBTYPE_SSL_CLIENT_CERT, der)) => Some(der.into_owned()),
            _ => None,
        })
    }

    fn big() -> (String, String, Vec<u8>) {
        let sni = format!("{}.test", "a".repeat(248));
        assert_eq!(sni.len(), 253);
        ("𝔞".repeat(64), sni, vec![b'x'; 255])
    }

    /// The room left for the certificate's DER beside the largest other
    /// fields.
    fn room(cn: &str, sni: &str, alpn: &[u8]) -> usize {
        MAX_PAYLOAD
            - 36
            - (3 + sni.len())
            - (3 + alpn.len())
            - (3 + 5)
            - (3 + "TLSv1.2".len())
            - (3 + cn.len())
            - (3 + CIPHER.len())
            - 3
    }

    #[test]
    fn a_maximal_identity_with_the_largest_certificate_that_fits_is_carried_whole() {
        let (cn, sni, alpn) = big();
        let cert = vec![0x30; room(&cn, &sni, &alpn)];
        let h = encode(&largest(&cn, &cert, &sni, &alpn)).unwrap();
        assert!(!h.client_cert_omitted);
        assert_eq!(h.bytes.len(), 16 + MAX_PAYLOAD, "exactly at the limit");
        let p = parse(&h.bytes);
        assert_eq!(p.authority(), Some(sni.as_str()));
        let ssl = p.ssl().unwrap();
        assert_eq!(ssl.cn(), Some(cn.as_str()));
        assert_eq!(ssl.cipher(), Some(CIPHER));
        assert_eq!(cert_of(&p), Some(cert));
    }

    #[test]
    fn a_certificate_one_byte_too_large_is_left_out_whole_and_the_rest_is_kept() {
        let (cn, sni, alpn) = big();
        let cert = vec![0x30; room(&cn, &sni, &alpn) + 1];
        let h = encode(&largest(&cn, &cert, &sni, &alpn)).unwrap();
        assert!(h.client_cert_omitted);
        let p = parse(&h.bytes);
        assert_eq!(cert_of(&p), None);
        let ssl = p.ssl().unwrap();
        assert_eq!(ssl.cn(), Some(cn.as_str()));
        assert!(ssl.client_cert_conn() && ssl.client_cert_sess());
        assert_eq!(ssl.verify(), 0);
        assert_eq!(p.alpn(), Some(&alpn[..]));
    }

    #[test]
    fn a_certificate_as_large_as_a_handshake_message_does_not_panic() {
        // rustls accepts a Certificate message of up to 64 KiB; the leaf in
        // it cannot be larger.
        let cert = vec![0x30; 65_535];
        let h = encode(&largest("client", &cert, "pp.test", b"h2")).unwrap();
        assert!(h.client_cert_omitted);
        assert_eq!(parse(&h.bytes).ssl().unwrap().cn(), Some("client"));
    }

    #[test]
    fn a_common_name_too_large_for_any_header_fails_closed() {
        let cn = "a".repeat(MAX_PAYLOAD);
        let f = largest(&cn, b"\x30", "pp.test", b"h2");
        assert!(matches!(encode(&f), Err(HeaderError::TooLarge { .. })));
    }

    #[test]
    fn an_encoding_error_yields_no_bytes() {
        // Mixed address families: proxy-header refuses, nothing is returned
        // that could be written.
        let f = Fields {
            client: "192.0.2.1:40000".parse().unwrap(),
            local: "[2001:db8::2]:443".parse().unwrap(),
            ..largest("client", b"\x30", "pp.test", b"h2")
        };
        assert!(matches!(encode(&f), Err(HeaderError::Encode(_))));
    }

    #[test]
    fn anonymous_client_over_ipv4() {
        let f = Fields {
            client: "192.0.2.1:40000".parse().unwrap(),
            local: "192.0.2.2:443".parse().unwrap(),
            presented: false,
            verified: false,
            cn: None,
            client_cert: None,
            ..largest("", b"", "pp.test", b"h2")
        };
        let h = encode(&f).unwrap();
        assert!(!h.client_cert_omitted);
        let p = parse(&h.bytes);
        let ssl = p.ssl().unwrap();
        assert!(!ssl.client_cert_conn() && !ssl.client_cert_sess());
        assert_eq!(ssl.verify(), 0);
        assert_eq!(ssl.cn(), None);
        assert_eq!(cert_of(&p), None);
    }
}
