//! Request paths in canonical form (SPEC §2), so that no spelling of a path
//! reaches an upstream that its route's `allow` forbids.
//!
//! Backends normalize what a gateway does not: Go's `http.ServeMux` cleans
//! dot segments and doubled slashes, Werkzeug and Spring decode
//! percent-escapes, Tomcat drops `;parameters` from segments. A gateway that
//! routes the raw path and forwards it unchanged therefore authorizes one
//! path and serves another. Here the path is made canonical once, routed and
//! authorized in that form, and forwarded in that form:
//!
//! 1. percent-escapes of unreserved characters (`ALPHA DIGIT - . _ ~`) are
//!    decoded, the others kept with upper-case hex (`%3a` → `%3A`);
//! 2. runs of `/` become one;
//! 3. dot segments are removed (RFC 3986 §5.2.4).
//!
//! Refused (`400`), because no single reading exists: a path that climbs
//! above the root, `%00`, a malformed escape, a literal `\`, `%2F` / `%5C`
//! (unless the host says `escapedSlashes: keep`: then they pass on as they
//! are, never decoded), a dot segment carrying `;parameters` (`/..;/admin`, which
//! Tomcat reads as `..`), and a path that does not start with `/`.
//!
//! Routes are matched on [`route_key`]: the canonical path with every
//! segment's `;parameters` removed, so `/admin;x/` is judged as `/admin/`,
//! as a servlet container would serve it.

use std::borrow::Cow;

/// What to do with `%2F` / `%5C` in a request path (`escapedSlashes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request with 400 (default).
    #[default]
    Reject,
    /// Pass them on as they are, never decoded.
    Keep,
}

/// Why a path has no canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// The request target is not an absolute path (`*`, empty).
    #[error("the request path does not start with /")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("the request path holds a malformed percent-escape")]
    BadEscape,
    /// `%00`.
    #[error("the request path holds an encoded NUL (%00)")]
    Nul,
    /// `%2F` or `%5C` where the host rejects them.
    #[error("the request path holds an encoded slash or backslash (%2F, %5C); the host has escapedSlashes: reject")]
    EscapedSlash,
    /// A literal `\`, which some servers (WHATWG URL parsers, IIS) read
    /// as `/`.
    #[error("the request path holds a backslash")]
    Backslash,
    /// More `..` segments than there are segments before them.
    #[error("the request path climbs above the root")]
    Climbs,
    /// `.;x` or `..;x`: a dot segment that some servers strip to `..`.
    #[error("the request path holds a dot segment with ;parameters")]
    DotWithParameters,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `raw` may already be canonical: no escape, no doubled slash, no
/// segment starting with a dot. (Over-inclusive: `/.well-known` takes the
/// slow path, which returns it unchanged.)
fn maybe_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    !b.iter().any(|c| matches!(c, b'%' | b'\\')) && !b.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// The canonical form of `raw` (a request's path, without the query).
/// Borrowed when `raw` is already canonical, which is the common case.
pub(crate) fn canonicalize(raw: &str, slashes: EscapedSlashes) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if maybe_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode(raw, slashes)?;
    let out = remove_dots(&decoded)?;
    if out == raw {
        Ok(Cow::Borrowed(raw))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// Step 1: decodes unreserved escapes, upper-cases the others.
fn decode(raw: &str, slashes: EscapedSlashes) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            // Never a separator here, but one behind Node's URL parser or
            // IIS: `/x/..\admin` would be routed under `/x` and served
            // as `/admin`. No single reading: refused, whatever
            // `escapedSlashes` says.
            return Err(PathError::Backslash);
        }
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let v = hi << 4 | lo;
        match v {
            0 => return Err(PathError::Nul),
            b'/' | b'\\' if slashes == EscapedSlashes::Reject => {
                return Err(PathError::EscapedSlash)
            }
            v if unreserved(v) => out.push(v),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(&[b'%', HEX[usize::from(v >> 4)], HEX[usize::from(v & 15)]]);
            }
        }
        i += 3;
    }
    // Only ASCII bytes were decoded or rewritten, so UTF-8 is preserved;
    // the fallback cannot happen but must not panic.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

/// Steps 2 and 3: merges slashes and removes dot segments.
fn remove_dots(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    // Whether the result ends with `/` (a trailing slash, or a final dot
    // segment: RFC 3986 turns `/a/b/..` into `/a/`).
    let mut trailing = false;
    for seg in path.split('/').skip(1) {
        let bare = seg.split(';').next().unwrap_or(seg);
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                if kept.pop().is_none() {
                    return Err(PathError::Climbs);
                }
                trailing = true;
            }
            _ if bare == "." || bare == ".." => return Err(PathError::DotWithParameters),
            s => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The path routes are matched on: `canonical` with each segment's
/// `;parameters` removed (and the empty segments that leaves merged).
pub(crate) fn route_key(canonical: &str) -> Cow<'_, str> {
    if !canonical.contains(';') {
        return Cow::Borrowed(canonical);
    }
    let mut out = String::with_capacity(canonical.len());
    let segments: Vec<&str> = canonical
        .split('/')
        .skip(1)
        .map(|s| s.split(';').next().unwrap_or(s))
        .collect();
    let last = segments.len().saturating_sub(1);
    for (i, s) in segments.iter().enumerate() {
        if s.is_empty() {
            if i == last && !out.ends_with('/') {
                out.push('/');
            }
            continue;
        }
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        canonicalize(p, EscapedSlashes::Reject).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/.well-known/x", "/a;b=c/d", "/x%3A"] {
            assert!(
                matches!(
                    canonicalize(p, EscapedSlashes::Reject),
                    Ok(Cow::Borrowed(_))
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn spellings_of_one_path_become_one() {
        let table = [
            ("/admin/x", "/admin/x"),
            ("/%61dmin/x", "/admin/x"),
            ("/%41DMIN/x", "/ADMIN/x"),
            ("/adm%69n/x", "/admin/x"),
            ("//admin/x", "/admin/x"),
            ("/admin//x", "/admin/x"),
            ("///admin///x", "/admin/x"),
            ("/./admin/x", "/admin/x"),
            ("/public/../admin/x", "/admin/x"),
            ("/public/%2e%2e/admin/x", "/admin/x"),
            ("/public/%2E%2E/admin/x", "/admin/x"),
            ("/public/.%2e/admin/x", "/admin/x"),
            ("/public/%2e./admin/x", "/admin/x"),
            ("/%2e/admin/x", "/admin/x"),
            ("/admin/x/.", "/admin/x/"),
            ("/admin/x/..", "/admin/"),
            ("/admin/./x", "/admin/x"),
            ("/a/b/c/../../admin/x", "/a/admin/x"),
            ("/admin%2dx", "/admin-x"),
            ("/admin%5fx%7e", "/admin_x~"),
            ("/x%3a%3b", "/x%3A%3B"),
            ("/%20", "/%20"),
            ("/..a/", "/..a/"),
            ("/a/...", "/a/..."),
            ("/", "/"),
            ("/.", "/"),
            ("/a/..", "/"),
        ];
        for (raw, want) in table {
            assert_eq!(canon(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn paths_without_a_single_reading_are_refused() {
        let table = [
            ("/..", PathError::Climbs),
            ("/a/../..", PathError::Climbs),
            ("/%2e%2e/admin", PathError::Climbs),
            ("/a/%00", PathError::Nul),
            ("/a%2fb", PathError::EscapedSlash),
            ("/a%2Fb", PathError::EscapedSlash),
            ("/a%5cb", PathError::EscapedSlash),
            ("/a%5C..%5Cadmin", PathError::EscapedSlash),
            ("/a%", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%%32e", PathError::BadEscape),
            ("/x/..\\admin", PathError::Backslash),
            ("/x\\..\\admin", PathError::Backslash),
            ("/admin\\", PathError::Backslash),
            ("/public/..;/admin", PathError::DotWithParameters),
            ("/public/.;x/admin", PathError::DotWithParameters),
            ("/public/%2e%2e;x/admin", PathError::DotWithParameters),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
        ];
        for (raw, want) in table {
            assert_eq!(canon(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn escaped_slashes_kept_are_never_decoded() {
        let keep = |p| canonicalize(p, EscapedSlashes::Keep).map(Cow::into_owned);
        assert_eq!(keep("/api/a%2fb").as_deref(), Ok("/api/a%2Fb"));
        assert_eq!(keep("/api/a%5Cb").as_deref(), Ok("/api/a%5Cb"));
        // An encoded slash is never a separator, so it cannot hide a dot
        // segment: `..%2F` is one segment named `..%2F`.
        assert_eq!(keep("/api/..%2Fadmin").as_deref(), Ok("/api/..%2Fadmin"));
        assert_eq!(keep("/a/%00"), Err(PathError::Nul));
        assert_eq!(keep("/x/..\\admin"), Err(PathError::Backslash));
    }

    #[test]
    fn route_keys_drop_segment_parameters() {
        assert_eq!(route_key("/admin;x/y"), "/admin/y");
        assert_eq!(route_key("/admin;jsessionid=1"), "/admin");
        assert_eq!(route_key("/;x/admin"), "/admin");
        assert_eq!(route_key("/a/;x"), "/a/");
        assert_eq!(route_key("/;x"), "/");
        assert_eq!(route_key("/plain"), "/plain");
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        let inputs = [
            "/a/./b//../c/%2e%2E/d%41%3b/",
            "/x/%7e/../y;z/.",
            "//%2e//a",
            "/a%3F/%23",
        ];
        for raw in inputs {
            let once = canon(raw).unwrap_or_default();
            assert_eq!(canon(&once).as_deref(), Ok(once.as_str()), "{raw}");
        }
    }
}
