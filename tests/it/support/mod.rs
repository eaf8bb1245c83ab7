//! Shared test support: certificates, the gateway process, TLS clients and
//! a recording upstream.
#![allow(dead_code)]

pub mod client;
pub mod gateway;
pub mod pebble;
pub mod pki;
pub mod upstream;
pub mod volume;

use std::path::Path;

pub use client::Outcome;
pub use gateway::Gateway;
pub use pki::{Ca, Eku, Leaf, Spec};
pub use upstream::Upstream;

/// Writes `contents` to `dir/name` and returns the file name (configs use
/// paths relative to their own directory).
pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    std::fs::write(dir.join(name), contents).unwrap();
    name.to_string()
}

/// Replaces `dir/name` atomically (a rename), as a deploy tool would.
pub fn replace(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Writes a leaf's chain and key as `NAME.crt` / `NAME.key`.
pub fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) {
    write(dir, &format!("{name}.crt"), &leaf.chain_pem);
    write(dir, &format!("{name}.key"), &leaf.key_pem);
}

/// Asserts that a CLI run's output holds no Rust `Debug` rendering of a
/// library error (SPEC §3, issue 13); returns the output.
pub fn words_only(out: std::process::Output) -> std::process::Output {
    for stream in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            if let Some(what) = gateway::debug_rendering(line) {
                panic!("CLI output with a Debug rendering ({what}): {line}");
            }
        }
    }
    out
}
