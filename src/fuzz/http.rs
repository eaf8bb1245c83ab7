//! The request path canonicalizer and the Host / `:authority` checks.

use crate::http::host;
use crate::http::route::prefix_matches;
use crate::path::{canonicalize, route_key, EscapedSlashes};
use crate::tls::{normalize_host, SniTable};

/// How a lenient backend reads a path: every escape decoded, each
/// segment's `;parameters` dropped (Tomcat), empty and `.` segments
/// dropped and `..` applied (Go's `path.Clean`).
fn lenient(path: &str) -> Vec<Vec<u8>> {
    let b = path.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                decoded.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(b[i]);
        i += 1;
    }
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for s in decoded.split(|c| *c == b'/' || *c == b'\\') {
        let s = s.split(|c| *c == b';').next().unwrap_or(s);
        match s {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(s.to_vec()),
        }
    }
    segments
}

/// The canonical path is a fixpoint, has none of the spellings it removes,
/// and routes every path a lenient backend would read as under `/admin`
/// to `/admin`.
pub(super) fn path(data: &[u8]) {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let slashes = if mode & 1 == 1 {
        EscapedSlashes::Keep
    } else {
        EscapedSlashes::Reject
    };
    let Ok(out) = canonicalize(raw, slashes) else {
        return;
    };
    let out = out.as_ref();
    assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
    assert_eq!(
        canonicalize(out, slashes).as_deref(),
        Ok(out),
        "not a fixpoint: {raw:?} -> {out:?}"
    );
    assert!(!out.contains("//"), "{raw:?} -> {out:?}");
    assert!(!out.contains('\\'), "{raw:?} -> {out:?}");
    for seg in out.split('/') {
        let name = seg.split(';').next().unwrap_or(seg);
        assert!(
            name != "." && name != "..",
            "dot segment: {raw:?} -> {out:?}"
        );
    }
    let b = out.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'%' {
            let esc = &b[i + 1..i + 3];
            assert!(
                esc.iter()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)),
                "escape not upper-case hex: {raw:?} -> {out:?}"
            );
            let v = u8::from_str_radix(std::str::from_utf8(esc).unwrap(), 16).unwrap();
            assert!(
                !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                "unreserved left escaped: {raw:?} -> {out:?}"
            );
            assert_ne!(v, 0, "{raw:?} -> {out:?}");
            if slashes == EscapedSlashes::Reject {
                assert!(v != b'/' && v != b'\\', "{raw:?} -> {out:?}");
            }
        }
    }
    let key = route_key(out);
    assert!(key.starts_with('/') && !key.contains(';') && !key.contains("//"));
    if slashes == EscapedSlashes::Reject {
        let seen = lenient(out);
        if seen.first().is_some_and(|s| s == b"admin") {
            assert!(
                prefix_matches("/admin", &key),
                "a backend reads {raw:?} (canonical {out:?}, routed as {key:?}) as under /admin"
            );
        }
    }
}

/// An accepted host is what `http`'s authority parser reads, names one
/// entry at most, and a table lookup agrees with its normalized name.
pub(super) fn host(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = host::name(value) else {
        return;
    };
    assert!(!name.is_empty());
    let authority: ::http::uri::Authority = value
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} accepted as a host but not an authority: {e}"));
    assert_eq!(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']'),
        name,
        "{value:?}"
    );
    assert!(!value.contains('@'));
    let normalized = normalize_host(name);
    assert!(!normalized.ends_with('.') || normalized.is_empty());
    assert!(!normalized.bytes().any(|b| b.is_ascii_uppercase()));
    let table = table();
    match table.lookup(Some(name)) {
        Some(0) => assert_eq!(normalized, "a.test", "{value:?}"),
        Some(1) => {
            let (first, rest) = normalized.split_once('.').unwrap();
            assert!(!first.is_empty() && rest == "w.test", "{value:?}");
        }
        Some(2) => assert!(
            normalized != "a.test"
                && !normalized
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == "w.test"),
            "{value:?}"
        ),
        other => panic!("{value:?}: {other:?}"),
    }
}

fn table() -> &'static SniTable {
    static TABLE: std::sync::OnceLock<SniTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        use crate::config::validate::host_pattern;
        let patterns = [
            (0, host_pattern("a.test").unwrap()),
            (1, host_pattern("*.w.test").unwrap()),
            (2, host_pattern("*").unwrap()),
        ];
        SniTable::from_patterns(patterns.iter().map(|(i, p)| (*i, p)))
    })
}
