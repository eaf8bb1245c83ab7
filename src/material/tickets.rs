//! The shared session-ticket keys as the operator writes them
//! (`sessionTickets`): one base64 key per line, the first encrypting. How
//! tickets are sealed with them: `tls::tickets`.

use base64::Engine;
use zeroize::Zeroizing;

/// Bytes a shared key has at least.
pub(crate) const MIN_KEY_BYTES: usize = 32;

/// Keys a file may hold (each costs a derivation per host entry at load
/// and a look-up per offered ticket).
pub(crate) const MAX_KEYS: usize = 16;

/// The shared keys as loaded, first one encrypting. Never printed.
pub struct TicketKeys {
    keys: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketKeys({} keys)", self.keys.len())
    }
}

/// Why a ticket-key file was refused. The key text is never quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKeys {
    /// No key line at all.
    #[error("holds no key (one base64 key per line; make one with `openssl rand -base64 48`)")]
    Empty,
    /// Not UTF-8 text.
    #[error("is not text (one base64 key per line)")]
    NotText,
    /// A line that is not base64.
    #[error("line {0} is not base64")]
    NotBase64(usize),
    /// A key too short to be a key.
    #[error("line {line}: a key of {bytes} bytes; at least {MIN_KEY_BYTES} random bytes are needed (`openssl rand -base64 48`)")]
    TooShort {
        /// Line number.
        line: usize,
        /// Its length.
        bytes: usize,
    },
    /// More keys than [`MAX_KEYS`].
    #[error("holds more than {MAX_KEYS} keys; remove old ones")]
    TooMany,
    /// The same key twice.
    #[error("line {line} repeats the key of line {first}")]
    Repeated {
        /// The later line.
        line: usize,
        /// The first.
        first: usize,
    },
}

impl TicketKeys {
    /// Parses a key file: one base64 key per line (padding optional);
    /// blank lines and lines starting with `#` are skipped.
    pub fn parse(bytes: &[u8]) -> Result<TicketKeys, BadKeys> {
        let text = std::str::from_utf8(bytes).map_err(|_| BadKeys::NotText)?;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = Zeroizing::new(engine.decode(line).map_err(|_| BadKeys::NotBase64(i + 1))?);
            if key.len() < MIN_KEY_BYTES {
                return Err(BadKeys::TooShort {
                    line: i + 1,
                    bytes: key.len(),
                });
            }
            if let Some(j) = keys.iter().position(|k| **k == *key) {
                return Err(BadKeys::Repeated {
                    line: i + 1,
                    first: lines[j],
                });
            }
            if keys.len() == MAX_KEYS {
                return Err(BadKeys::TooMany);
            }
            keys.push(key);
            lines.push(i + 1);
        }
        if keys.is_empty() {
            return Err(BadKeys::Empty);
        }
        Ok(TicketKeys { keys })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true (parsing refuses an empty file).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, the encrypting one first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|k| k.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    const A: [u8; 32] = [1; 32];
    const B: [u8; 48] = [2; 48];

    #[test]
    fn parse_accepts_keys_comments_and_blank_lines() {
        let text = format!(
            "# rotated 2026-12-01\n\n{}\n  {}  \r\n",
            b64(&B),
            b64(&A).trim_end_matches('=')
        );
        let k = TicketKeys::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.len(), 2);
        assert!(*k.keys[0] == B && *k.keys[1] == A, "file order kept");
        assert_eq!(format!("{k:?}"), "TicketKeys(2 keys)", "no key in Debug");
    }

    #[test]
    fn parse_refuses_bad_files_naming_the_line_never_the_key() {
        let short = b64(&[7; 31]);
        let cases: Vec<(String, BadKeys)> = vec![
            (String::new(), BadKeys::Empty),
            ("# only a comment\n\n".into(), BadKeys::Empty),
            (format!("{}\nnot base64!\n", b64(&A)), BadKeys::NotBase64(2)),
            (
                format!("{}\n{short}\n", b64(&B)),
                BadKeys::TooShort { line: 2, bytes: 31 },
            ),
            (
                format!("{}\n\n{}\n{}\n", b64(&A), b64(&B), b64(&A)),
                BadKeys::Repeated { line: 4, first: 1 },
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIGH\n".into(),
                BadKeys::NotBase64(1),
            ),
        ];
        for (text, want) in cases {
            let got = TicketKeys::parse(text.as_bytes()).map(|_| ());
            assert_eq!(got, Err(want.clone()), "{text:?}");
            assert!(!want.to_string().contains(&short), "{want}");
        }
        assert_eq!(
            TicketKeys::parse(&[0xff, 0xfe]).map(|_| ()),
            Err(BadKeys::NotText)
        );
        let many: String = (0..=MAX_KEYS as u8).map(|i| b64(&[i; 32]) + "\n").collect();
        assert_eq!(
            TicketKeys::parse(many.as_bytes()).map(|_| ()),
            Err(BadKeys::TooMany)
        );
    }
}
