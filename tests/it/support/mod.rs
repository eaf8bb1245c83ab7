//! Shared test support: certificates, the gateway process, TLS clients and
//! a recording upstream.
#![allow(dead_code)]

pub mod client;
pub mod gateway;
pub mod pki;
pub mod upstream;

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

/// Writes a leaf's chain and key as `NAME.crt` / `NAME.key`.
pub fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) {
    write(dir, &format!("{name}.crt"), &leaf.chain_pem);
    write(dir, &format!("{name}.key"), &leaf.key_pem);
}
