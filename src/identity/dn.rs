//! Distinguished names as text, exactly as OpenSSL prints them with
//! `-nameopt RFC2253` (the form ingress-nginx, Envoy and most tooling show):
//! RDNs last-to-first joined by `,`, multi-valued RDNs joined by `+`, short
//! attribute names, RFC 2253 escaping (`,+"\<>;`, a leading `#` or space, a
//! trailing space), control and non-ASCII bytes as `\XX`, and unknown
//! attributes as `OID=#HEX` of their DER.

use std::fmt::Write;

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Encode, Tag, Tagged};
use x509_cert::name::Name;

/// OpenSSL's short names for the attributes found in certificates.
const SHORT_NAMES: &[(ObjectIdentifier, &str)] = &[
    (ObjectIdentifier::new_unwrap("2.5.4.3"), "CN"),
    (ObjectIdentifier::new_unwrap("2.5.4.4"), "SN"),
    (ObjectIdentifier::new_unwrap("2.5.4.5"), "serialNumber"),
    (ObjectIdentifier::new_unwrap("2.5.4.6"), "C"),
    (ObjectIdentifier::new_unwrap("2.5.4.7"), "L"),
    (ObjectIdentifier::new_unwrap("2.5.4.8"), "ST"),
    (ObjectIdentifier::new_unwrap("2.5.4.9"), "street"),
    (ObjectIdentifier::new_unwrap("2.5.4.10"), "O"),
    (ObjectIdentifier::new_unwrap("2.5.4.11"), "OU"),
    (ObjectIdentifier::new_unwrap("2.5.4.12"), "title"),
    (ObjectIdentifier::new_unwrap("2.5.4.13"), "description"),
    (ObjectIdentifier::new_unwrap("2.5.4.15"), "businessCategory"),
    (ObjectIdentifier::new_unwrap("2.5.4.16"), "postalAddress"),
    (ObjectIdentifier::new_unwrap("2.5.4.17"), "postalCode"),
    (ObjectIdentifier::new_unwrap("2.5.4.18"), "postOfficeBox"),
    (ObjectIdentifier::new_unwrap("2.5.4.41"), "name"),
    (ObjectIdentifier::new_unwrap("2.5.4.42"), "GN"),
    (ObjectIdentifier::new_unwrap("2.5.4.43"), "initials"),
    (
        ObjectIdentifier::new_unwrap("2.5.4.44"),
        "generationQualifier",
    ),
    (
        ObjectIdentifier::new_unwrap("2.5.4.45"),
        "x500UniqueIdentifier",
    ),
    (ObjectIdentifier::new_unwrap("2.5.4.46"), "dnQualifier"),
    (ObjectIdentifier::new_unwrap("2.5.4.65"), "pseudonym"),
    (ObjectIdentifier::new_unwrap("2.5.4.72"), "role"),
    (
        ObjectIdentifier::new_unwrap("2.5.4.97"),
        "organizationIdentifier",
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1"),
        "emailAddress",
    ),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        "UID",
    ),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        "DC",
    ),
    (
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.60.2.1.1"),
        "jurisdictionL",
    ),
    (
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.60.2.1.2"),
        "jurisdictionST",
    ),
    (
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.60.2.1.3"),
        "jurisdictionC",
    ),
];

fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    SHORT_NAMES.iter().find(|(o, _)| o == oid).map(|(_, n)| *n)
}

// OpenSSL's character classes (crypto/asn1/charmap.h), reduced to the bits
// RFC 2253 printing uses.
const ESC_2253: u8 = 1;
const ESC_CTRL: u8 = 2;
const FIRST: u8 = 0x20;
const LAST: u8 = 0x40;

fn class(b: u8) -> u8 {
    match b {
        0x00..=0x1f | 0x7f => ESC_CTRL,
        b' ' => FIRST | LAST,
        b'#' => FIRST,
        b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' => ESC_2253,
        _ => 0,
    }
}

fn push_escaped(out: &mut String, b: u8, position: u8) {
    if b > 0x7f {
        let _ = write!(out, "\\{b:02X}");
        return;
    }
    let c = class(b) & (ESC_2253 | ESC_CTRL | position);
    if c & (ESC_2253 | FIRST | LAST) != 0 {
        out.push('\\');
        out.push(char::from(b));
    } else if c & ESC_CTRL != 0 {
        let _ = write!(out, "\\{b:02X}");
    } else {
        out.push(char::from(b));
    }
}

/// One character as the (at most four) bytes OpenSSL prints for it.
#[derive(Clone, Copy)]
struct Char {
    buf: [u8; 4],
    len: u8,
}

impl Char {
    fn byte(b: u8) -> Char {
        Char {
            buf: [b, 0, 0, 0],
            len: 1,
        }
    }

    /// A code point as UTF-8 (nothing for an invalid one).
    fn utf8(cp: u32) -> Char {
        let mut buf = [0u8; 4];
        let len = char::from_u32(cp).map_or(0, |c| c.encode_utf8(&mut buf).len());
        Char {
            buf,
            len: len as u8,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// The characters of a string value, each as the bytes OpenSSL prints for it.
fn characters(tag: Tag, bytes: &[u8]) -> Option<Vec<Char>> {
    Some(match tag {
        // OpenSSL treats UTF8String bytes one by one (already UTF-8).
        Tag::Utf8String => bytes.iter().map(|b| Char::byte(*b)).collect(),
        // One byte per character, converted to UTF-8 as Latin-1.
        Tag::PrintableString
        | Tag::TeletexString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString
        | Tag::UtcTime
        | Tag::GeneralizedTime => bytes.iter().map(|b| Char::utf8(u32::from(*b))).collect(),
        Tag::BmpString => bytes
            .chunks(2)
            .map(|c| Char::utf8(u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))))
            .collect(),
        Tag::Application { .. } | Tag::ContextSpecific { .. } | Tag::Private { .. } => return None,
        other if other.number().value() == 28 => bytes
            .chunks(4)
            .map(|c| Char::utf8(c.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b))))
            .collect(),
        _ => return None,
    })
}

fn push_hex_dump(out: &mut String, der: &[u8]) {
    out.push('#');
    for b in der {
        let _ = write!(out, "{b:02X}");
    }
}

/// `name` as `openssl x509 -nameopt RFC2253` prints it.
pub fn rfc2253(name: &Name) -> String {
    let mut out = String::new();
    // An RDN with no attribute (invalid DER that parsers accept) has no
    // text: it adds no separator, so `CN=a,,O=b` cannot be spelled.
    for (i, rdn) in name.0.iter().rev().filter(|r| !r.0.is_empty()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        // OpenSSL walks every attribute of the name backwards, so the values
        // of a multi-valued RDN come out in reverse (DER) order too.
        for (j, atv) in rdn.0.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let known = short_name(&atv.oid);
            match known {
                Some(sn) => out.push_str(sn),
                None => out.push_str(&atv.oid.to_string()),
            }
            out.push('=');
            let chars = match known {
                Some(_) => characters(atv.value.tag(), atv.value.value()),
                None => None,
            };
            match chars {
                Some(chars) => {
                    let last = chars.len().saturating_sub(1);
                    for (k, ch) in chars.iter().enumerate() {
                        let position = if k == last {
                            LAST
                        } else if k == 0 {
                            FIRST
                        } else {
                            0
                        };
                        for b in ch.bytes() {
                            push_escaped(&mut out, *b, position);
                        }
                    }
                }
                None => push_hex_dump(&mut out, &atv.value.to_der().unwrap_or_default()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let chars = characters(Tag::Utf8String, s.as_bytes()).unwrap_or_default();
        let mut out = String::new();
        let last = chars.len().saturating_sub(1);
        for (k, ch) in chars.iter().enumerate() {
            let pos = if k == last {
                LAST
            } else if k == 0 {
                FIRST
            } else {
                0
            };
            for b in ch.bytes() {
                push_escaped(&mut out, *b, pos);
            }
        }
        out
    }

    #[test]
    fn rfc2253_escapes() {
        assert_eq!(
            esc("a,b+c\"d\\e<f>g;h=i"),
            "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h=i"
        );
        assert_eq!(esc("#x"), "\\#x");
        assert_eq!(esc("x#"), "x#");
        assert_eq!(esc(" x "), "\\ x\\ ");
        assert_eq!(esc("a b"), "a b");
        assert_eq!(esc("tab\there"), "tab\\09here");
        assert_eq!(esc("é"), "\\C3\\A9");
    }
}
