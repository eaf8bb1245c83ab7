//! The host a request names (`Host` or `:authority`), checked strictly.
//!
//! RFC 9110 §7.2: `Host = uri-host [ ":" port ]`. The gateway selects the
//! host entry (and so the TLS policy and `allow` lists) by this name, so a
//! spelling that one reader takes for `admin.test` and another for something
//! else must not pass: user information (`u@admin.test`), a port that is not
//! digits (`admin.test:443.`), percent-escapes and every other character
//! outside a DNS name or an IP literal are refused with `400`, as nginx
//! refuses an invalid Host.

use std::net::Ipv6Addr;

/// Why a host was refused (the text of the `400`).
pub(crate) type BadHost = &'static str;

/// The name in `value` without its port; an IPv6 literal without brackets.
///
/// Accepts `name`, `name.`, `name:port`, `[v6]` and `[v6]:port`, where a
/// name is dot-separated non-empty labels of ASCII letters, digits, `-` and
/// `_` (an IPv4 address is such a name), and a port is 0 to 65535 in at
/// most five digits.
pub(crate) fn name(value: &str) -> Result<&str, BadHost> {
    if value.is_empty() {
        return Err("empty Host");
    }
    // Byte searches: this runs twice per request (the check, then the
    // entry's lookup), and `char` patterns cost several times more.
    if value.as_bytes().contains(&b'@') {
        return Err("invalid Host: user information is not allowed");
    }
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (inner, after) = rest
                .split_once(']')
                .ok_or("invalid Host: unclosed IPv6 literal")?;
            if inner.parse::<Ipv6Addr>().is_err() {
                return Err("invalid Host: not an IPv6 address");
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or("invalid Host: text after the IPv6 literal")?,
                ),
            };
            (inner, port)
        }
        None => match value.as_bytes().iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        },
    };
    if let Some(port) = port {
        check_port(port)?;
    }
    if !value.starts_with('[') {
        check_dns_name(host)?;
    }
    Ok(host)
}

fn check_port(port: &str) -> Result<(), BadHost> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid Host: the port is not a number");
    }
    match port.parse::<u32>() {
        Ok(n) if n <= u32::from(u16::MAX) => Ok(()),
        _ => Err("invalid Host: the port is out of range"),
    }
}

fn check_dns_name(host: &str) -> Result<(), BadHost> {
    let labels = host.strip_suffix('.').unwrap_or(host);
    if labels.is_empty() {
        return Err("invalid Host: no host name");
    }
    // A name whose last label starts with a digit is an IPv4 address (no
    // top-level domain does): only its one canonical dotted-quad spelling
    // passes, so `10.0.0.05`, `0xa.0.0.5` or `167772165` — which inet_aton
    // reads as 10.0.0.5 — cannot miss an entry named 10.0.0.5.
    let bytes = labels.as_bytes();
    let last = bytes.iter().rposition(|&b| b == b'.').map_or(0, |i| i + 1);
    if bytes.get(last).is_some_and(u8::is_ascii_digit) {
        return match labels.parse::<std::net::Ipv4Addr>() {
            Ok(ip) if ip.to_string() == labels => Ok(()),
            _ => Err("invalid Host: not a canonical IPv4 address"),
        };
    }
    // Label by label, in order: the first empty label or bad character is
    // what the answer names.
    for label in bytes.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err("invalid Host: empty label in the host name");
        }
        if !label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("invalid Host: character not allowed in a host name");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports() {
        for (value, want) in [
            ("a.test", "a.test"),
            ("A.Test", "A.Test"),
            ("a.test.", "a.test."),
            ("a.test:443", "a.test"),
            ("a.test:0", "a.test"),
            ("a.test:65535", "a.test"),
            ("127.0.0.1:8443", "127.0.0.1"),
            ("[::1]", "::1"),
            ("[::1]:443", "::1"),
            ("under_score.test", "under_score.test"),
        ] {
            assert_eq!(name(value), Ok(want), "{value}");
        }
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for value in [
            "",
            "u@a.test",
            "u:p@a.test",
            "@a.test",
            "a.test@b.test",
            "a.test:443.",
            "a.test:",
            "a.test:443:443",
            "a.test:44a",
            "a.test:65536",
            "a.test:000443",
            "a.test:+443",
            "a.test: 443",
            "a.test ",
            " a.test",
            "a.test%2e",
            "a%2etest",
            "a..test",
            ".a.test",
            "a.test..",
            ".",
            "a.test/",
            "a.test\\",
            "a.test/x",
            "a.test?x",
            "a.test#x",
            "a.test\t",
            "*.a.test",
            "a,b.test",
            "a.test;x",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[a.test]",
            "[::1]:443]",
            "::1",
            "a.tést",
            "10.0.0.05",
            "0xa.0.0.5",
            "167772165",
            "10.0.5",
            "10.0.0.5.6",
            "1e1",
            "a.1",
        ] {
            assert!(name(value).is_err(), "{value:?} was accepted");
        }
    }
}
