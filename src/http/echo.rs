//! The built-in `echo` upstream: answers with what it received, after the
//! gateway's processing, and the TLS facts of the connection (like httpbin's
//! `/headers`, plus the peer identity).

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde::Serialize;

use super::TlsInfo;
use crate::identity::PeerIdentity;

/// The answer's JSON, borrowed from the request (typed, so serializing it
/// allocates only the output).
#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// By name (sorted); a repeated header lists its values in order.
    headers: BTreeMap<&'a str, Values<'a>>,
    /// `null` on plain HTTP.
    tls: Option<Tls<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Values<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

#[derive(Serialize)]
struct Tls<'a> {
    sni: Option<&'a str>,
    version: Option<&'a str>,
    cipher: Option<&'a str>,
    alpn: Option<&'a str>,
    peer: Option<&'a PeerIdentity>,
}

/// The JSON answer for one request; `tls` is `None` on plain HTTP.
pub(crate) fn respond(
    tls: Option<&TlsInfo>,
    peer: Option<&PeerIdentity>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<Bytes> {
    let mut hs: BTreeMap<&str, Values<'_>> = BTreeMap::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        match hs.get_mut(name.as_str()) {
            Some(Values::Many(list)) => list.push(v),
            Some(prev) => {
                let first = std::mem::replace(prev, Values::Many(Vec::new()));
                if let Values::One(first) = first {
                    *prev = Values::Many(vec![first, v]);
                }
            }
            None => {
                hs.insert(name.as_str(), Values::One(v));
            }
        }
    }
    let body = Echo {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers: hs,
        tls: tls.map(|t| Tls {
            sni: t.sni.as_deref(),
            version: t.version,
            cipher: t.cipher,
            alpn: t.alpn.as_deref(),
            peer,
        }),
    };
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    text.push(b'\n');
    let mut resp = Response::new(Bytes::from(text));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
