//! The built-in `echo` upstream: answers with what it received, after the
//! gateway's processing, and the TLS facts of the connection (like httpbin's
//! `/headers`, plus the peer identity).

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde_json::{json, Map, Value};

use super::Conn;

/// The JSON answer for one request.
pub(crate) fn respond(
    conn: &Conn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<Bytes> {
    let mut hs = Map::new();
    for (name, value) in headers {
        let v = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match hs.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(v),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, v]);
            }
            None => {
                hs.insert(name.as_str().to_string(), v);
            }
        }
    }
    let body = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": hs,
        "tls": {
            "sni": conn.tls.sni,
            "version": conn.tls.version,
            "cipher": conn.tls.cipher,
            "alpn": conn.tls.alpn,
            "peer": conn.identity.as_deref(),
        },
    });
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
