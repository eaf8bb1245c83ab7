//! Request header processing before a request leaves the gateway (SPEC §4):
//! hop-by-hop headers first (so `Connection: …` cannot remove what the
//! gateway adds), then identity (the `forward` module), then
//! `X-Forwarded-*`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy ones every proxy
/// drops, and `HTTP2-Settings`, which belongs to an `h2c` upgrade only).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("http2-settings"),
];

/// Removes hop-by-hop headers, including every header the `Connection`
/// header names. Returns the `Upgrade` value when the request asks for a
/// WebSocket upgrade (`Connection: upgrade`, `Upgrade: websocket`), so the
/// caller can re-add it. Every other upgrade (`h2c`, `TLS/1.2`, …) is
/// dropped and the request proceeds as an ordinary one (SPEC §2): a backend
/// that switched protocol would serve every later request on that
/// connection without the gateway's routes, `allow` or header stripping.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // Most requests carry none: one pass over the names present is cheaper
    // than hashing seven names for removal.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return None;
    }
    // `TE: trailers` says the client takes trailers: gRPC needs it to
    // reach an HTTP/2 upstream (RFC 9113 §8.2.2 allows exactly that value;
    // the pool drops it toward HTTP/1.1).
    let trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    let mut upgrade_requested = false;
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| {
            let t = t.trim();
            if t.eq_ignore_ascii_case("upgrade") {
                upgrade_requested = true;
            }
            HeaderName::from_bytes(t.as_bytes()).ok()
        })
        .collect();
    let upgrade = if upgrade_requested {
        let mut all = headers.get_all(header::UPGRADE).iter();
        match (all.next(), all.next()) {
            (Some(v), None) if is_websocket(v) => Some(v.clone()),
            _ => None,
        }
    } else {
        None
    };
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    upgrade
}

/// Whether an `Upgrade` value asks for exactly WebSocket.
fn is_websocket(v: &HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|s| s.trim().eq_ignore_ascii_case("websocket"))
}

/// Sets `X-Forwarded-For` (the client address; a value sent by the client is
/// replaced, as an edge proxy does), `X-Forwarded-Proto` and
/// `X-Forwarded-Host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    forwarded_for: &HeaderValue,
    host: &HeaderValue,
    proto: HeaderValue,
) {
    // What a client sends of these is never passed on: RFC 7239
    // `Forwarded`, and `_` spellings of the X-Forwarded-* names, which
    // CGI/WSGI upstreams read as the real ones (`HTTP_X_FORWARDED_FOR`).
    if headers
        .keys()
        .any(|k| k.as_str().contains('_') || k == "forwarded")
    {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                n == "forwarded"
                    || (n.contains('_')
                        && FORWARDED_NAMES
                            .iter()
                            .any(|w| crate::forward::same_header(n, w)))
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
    }
    headers.insert(X_FORWARDED_FOR, forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, proto);
    headers.insert(X_FORWARDED_HOST, host.clone());
}

// Built at compile time: `from_static` in a function runs its checks on
// every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto` of requests that came over TLS.
pub(crate) const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// The names the gateway sets, whatever spelling a client uses.
const FORWARDED_NAMES: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// The `X-Forwarded-For` value for a client address.
pub(crate) fn forwarded_for(client: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The request header block's size as the SPEC limit counts it: each line's
/// name, value and the four bytes of `: ` and CRLF.
pub(crate) fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(header::ACCEPT),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "5"),
            ("te", "gzip"),
            ("accept", "*/*"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn te_trailers_alone_survives() {
        for (te, kept) in [
            ("trailers", true),
            ("Trailers", true),
            ("gzip, trailers;q=1", false),
            ("deflate, trailers", true),
            ("gzip", false),
        ] {
            let mut h = map(&[("te", te), ("connection", "te")]);
            strip_hop_by_hop(&mut h);
            let got: Vec<&HeaderValue> = h.get_all(header::TE).iter().collect();
            assert_eq!(got.len(), usize::from(kept), "{te}");
            if kept {
                assert_eq!(got[0], "trailers");
            }
            assert!(!h.contains_key(header::CONNECTION));
        }
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in &HOP_BY_HOP {
            let mut h = map(&[(name.as_str(), "x"), ("accept", "*/*")]);
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name} was kept");
            assert!(h.contains_key("accept"));
        }
    }

    #[test]
    fn upgrade_is_reported_only_when_connection_asks() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(
            strip_hop_by_hop(&mut h),
            Some(HeaderValue::from_static("websocket"))
        );
        let mut h = map(&[("upgrade", "websocket")]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        assert!(h.is_empty());
    }

    #[test]
    fn only_websocket_upgrades_survive() {
        for (conn, up) in [
            ("Upgrade, HTTP2-Settings", "h2c"),
            ("upgrade", "H2C"),
            ("Upgrade", "TLS/1.2"),
            ("Upgrade", "websocket, h2c"),
            ("Upgrade", "h2c, websocket"),
            ("Upgrade", "websocketx"),
            ("Upgrade", "IRC/6.9"),
        ] {
            let mut h = map(&[
                ("connection", conn),
                ("upgrade", up),
                ("http2-settings", "AAMAAABkAAQAAP__"),
            ]);
            assert_eq!(strip_hop_by_hop(&mut h), None, "{up}");
            assert!(h.is_empty(), "{up}: {h:?}");
        }
        let mut h = map(&[("connection", "upgrade"), ("upgrade", "WebSocket")]);
        assert!(strip_hop_by_hop(&mut h).is_some());
        let mut h = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), None, "two Upgrade lines");
    }

    #[test]
    fn client_forwarding_headers_in_any_spelling_are_dropped() {
        let mut h = map(&[
            ("forwarded", "for=6.6.6.6;host=evil"),
            ("x_forwarded_for", "6.6.6.6"),
            ("X_Forwarded_Host", "evil"),
            ("x_forwarded_proto", "http"),
            ("x_other", "kept"),
        ]);
        set_forwarded(
            &mut h,
            &forwarded_for(std::net::IpAddr::from([127, 0, 0, 1])),
            &HeaderValue::from_static("a.test"),
            HTTPS,
        );
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "x_other",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host"
            ]
        );
    }

    #[test]
    fn forwarded_for_replaces_client_value() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6")]);
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        set_forwarded(
            &mut h,
            &forwarded_for(ip),
            &HeaderValue::from_static("a.test"),
            HTTPS,
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "a.test");
    }
}
