//! The PROXY protocol v2 header a `tls` listener sends first (HAProxy's
//! specification): addresses, AUTHORITY (SNI), ALPN, and the SSL TLV with
//! the client flags set truthfully, VERSION, CN, CIPHER and the client
//! certificate (PP2_SUBTYPE_SSL_CLIENT_CERT, 0x28, DER). Encoded by the
//! proxy-header crate.

use std::net::SocketAddr;

use proxy_header::{ProxiedAddress, ProxyHeader, SslInfo, Tlv};
use rustls::ServerConnection;

use crate::identity::PeerIdentity;

/// PP2_SUBTYPE_SSL_CLIENT_CERT (not yet named by proxy-header).
const PP2_SUBTYPE_SSL_CLIENT_CERT: u8 = 0x28;

/// The header bytes for one connection.
pub fn header(
    client: SocketAddr,
    local: SocketAddr,
    conn: &ServerConnection,
    id: Option<&PeerIdentity>,
) -> Vec<u8> {
    let presented = id.is_some();
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let verified = id.is_some_and(|i| i.verified);
    // verify = 0 means the client certificate was verified (HAProxy).
    let mut ssl = SslInfo::new(
        true,
        presented && !resumed,
        presented,
        if verified || !presented { 0 } else { 1 },
    );
    if let Some(v) = conn.protocol_version().and_then(crate::tls::version_name) {
        ssl.append_tlv(Tlv::SslVersion(v.into()));
    }
    if let Some(cn) = id.and_then(|i| i.cert.common_names.first()) {
        ssl.append_tlv(Tlv::SslCn(cn.as_str().into()));
    }
    if let Some(c) = conn
        .negotiated_cipher_suite()
        .and_then(|c| crate::tls::cipher_name(c.suite()))
    {
        ssl.append_tlv(Tlv::SslCipher(c.into()));
    }
    if let Some(leaf) = id.and_then(|i| i.chain.first()) {
        ssl.append_tlv(Tlv::Custom(
            PP2_SUBTYPE_SSL_CLIENT_CERT,
            leaf.as_ref().to_vec().into(),
        ));
    }
    let mut tlvs = Vec::new();
    if let Some(sni) = conn.server_name() {
        tlvs.push(Tlv::Authority(sni.into()));
    }
    if let Some(alpn) = conn.alpn_protocol() {
        tlvs.push(Tlv::Alpn(alpn.to_vec().into()));
    }
    tlvs.push(Tlv::Ssl(ssl));
    let h = ProxyHeader::with_tlvs(Some(ProxiedAddress::stream(client, local)), tlvs);
    let mut buf = Vec::with_capacity(256);
    let _ = h.encode_v2(&mut buf);
    buf
}
