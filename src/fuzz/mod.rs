//! Fuzz targets: one function per parser that reads untrusted bytes, each
//! checking the properties its callers rely on, not only that it returns.
//!
//! The same functions run three ways:
//! - `scripts/fuzz [SECONDS]`: coverage-guided, with cargo-fuzz (libFuzzer),
//!   one binary per target under `fuzz/`;
//! - `cargo test`: every target over its committed seed corpus
//!   (`fuzz/corpus/TARGET/`) and a few thousand deterministic mutations of
//!   it ([`mutations`]), so a short run of each is part of the suite;
//! - by hand: `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…`
//!   replays a crash.
//!
//! A target panics when a property fails; that is what a fuzzer reports.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod files;
mod http;
mod identity;
mod tickets;

/// A fuzz target: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory of its corpus and the cargo-fuzz
/// binary) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("path", http::path),
    ("host", http::host),
    ("dn", identity::dn),
    ("x509", identity::x509),
    ("xfcc", identity::xfcc),
    ("proxy_v2", identity::proxy_v2),
    ("config", files::config),
    ("import", files::import),
    ("material", files::material),
    ("p12", files::p12),
    ("csr", files::csr),
    ("crl", files::crl),
    ("tickets", tickets::tickets),
];

/// Runs the target called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(data),
        None => panic!("no fuzz target {name}"),
    }
}

/// Structured values read from fuzz bytes (an input that runs out yields
/// zeros and empty strings, never an error).
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A flag.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A length up to `max`: one byte, or three when the first is 255.
    pub fn len(&mut self, max: usize) -> usize {
        let n = match self.byte() {
            255 => usize::from(u16::from_le_bytes([self.byte(), self.byte()])) + 255,
            b => usize::from(b),
        };
        n.min(max)
    }

    /// Up to `max` bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.len(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    /// A string of up to `max` bytes (invalid UTF-8 replaced).
    pub fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// `count` deterministic mutations of `seed` (byte flips, insertions of
/// interesting bytes, deletions, duplications, splices of `other`): the
/// stable stand-in for a fuzzer that the test suite runs on every corpus.
pub fn mutations(seed: &[u8], other: &[u8], count: usize, mut state: u64) -> Vec<Vec<u8>> {
    const INTERESTING: &[&[u8]] = &[
        b"%",
        b"%2e",
        b"%2F",
        b"%00",
        b"/",
        b"..",
        b"\\",
        b";",
        b",",
        b"\"",
        b"=",
        b"@",
        b":",
        b"[",
        b"]",
        b"\n",
        b"\r\n",
        b"#",
        b"+",
        b"\x00",
        b"\xff",
        b"- ",
        b"---\n",
        b"*",
        b"&a",
        b"!!",
        b"{",
        b"}",
        b"\xc3\xa9",
    ];
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut v = seed.to_vec();
        for _ in 0..=(next() % 4) {
            let at = if v.is_empty() {
                0
            } else {
                (next() % (v.len() as u64 + 1)) as usize
            };
            match next() % 6 {
                0 if at < v.len() => v[at] ^= 1 << (next() % 8),
                1 => {
                    let ins = INTERESTING[(next() % INTERESTING.len() as u64) as usize];
                    v.splice(at..at, ins.iter().copied());
                }
                2 if at < v.len() => {
                    let end = (at + 1 + (next() % 8) as usize).min(v.len());
                    v.drain(at..end);
                }
                3 if at < v.len() => {
                    let end = (at + 1 + (next() % 16) as usize).min(v.len());
                    let dup = v[at..end].to_vec();
                    v.splice(at..at, dup);
                }
                4 if !other.is_empty() => {
                    let from = (next() % other.len() as u64) as usize;
                    let end = (from + 1 + (next() % 32) as usize).min(other.len());
                    v.splice(at..at, other[from..end].iter().copied());
                }
                _ if at < v.len() => v[at] = next() as u8,
                _ => v.push(next() as u8),
            }
        }
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed corpus of `target`.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Each target over its corpus and `per_seed` mutations of each seed.
    fn short_run(target: &str, per_seed: usize) {
        let seeds = corpus(target);
        assert!(seeds.len() >= 3, "fuzz/corpus/{target} needs a seed corpus");
        for (i, seed) in seeds.iter().enumerate() {
            run(target, seed);
            let other = &seeds[(i + 1) % seeds.len()];
            for m in mutations(seed, other, per_seed, 0x9E37_79B9_7F4A_7C15 ^ i as u64) {
                run(target, &m);
            }
        }
    }

    #[test]
    fn every_target_has_a_cargo_fuzz_binary() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for (name, _) in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "fuzz/Cargo.toml lacks the target {name}"
            );
            assert!(dir.join("fuzz_targets").join(format!("{name}.rs")).exists());
        }
    }

    #[test]
    fn mutations_are_deterministic_and_differ() {
        let a = mutations(b"/admin/secret", b"x", 50, 1);
        assert_eq!(a, mutations(b"/admin/secret", b"x", 50, 1));
        assert!(
            a.iter()
                .filter(|m| m.as_slice() != b"/admin/secret")
                .count()
                > 40
        );
    }

    #[test]
    fn short_run_tickets() {
        short_run("tickets", 2000);
    }

    #[test]
    fn short_run_path() {
        short_run("path", 2000);
    }
    #[test]
    fn short_run_host() {
        short_run("host", 2000);
    }
    #[test]
    fn short_run_dn() {
        short_run("dn", 500);
    }
    #[test]
    fn short_run_x509() {
        short_run("x509", 300);
    }
    #[test]
    fn short_run_xfcc() {
        short_run("xfcc", 300);
    }
    #[test]
    fn short_run_proxy_v2() {
        short_run("proxy_v2", 500);
    }
    #[test]
    fn short_run_config() {
        short_run("config", 300);
    }
    #[test]
    fn short_run_import() {
        short_run("import", 200);
    }
    #[test]
    fn short_run_material() {
        short_run("material", 200);
    }
    #[test]
    fn short_run_p12() {
        short_run("p12", 30);
    }
    #[test]
    fn short_run_csr() {
        short_run("csr", 100);
    }
    #[test]
    fn short_run_crl() {
        short_run("crl", 300);
    }
}
