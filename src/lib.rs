//! portcullis: a mutual-TLS gateway.
//!
//! ```text
//! config.yaml ─► config::raw ─► config::validate ─► Model ─┐
//! certificate sources ─► material::load ─► Material ───────┤
//!                     server::Snapshot::build(Model, Material) ─► Arc<Snapshot> ─► server
//! per connection: one Arc clone ─► tls ─► identity ─► http | stream
//! ```
//!
//! After `validate` the model holds no reference to resolve and no kind to
//! guess: listeners and host entries are enums of their kinds, upstreams are
//! ids of the right kind, so building a snapshot fails only inside rustls
//! or for the machine (no system CAs for an upstream without a trust
//! bundle); tests/it/model.rs builds every config of a grammar.
//!
//! Dependencies run one way (tests/it/layout.rs checks that no top-level
//! module depends on itself through others):
//!
//! ```text
//! cli ─► bench, probe ─► tools ─► tls::client
//! cli ─► import ─► config::raw;  cli ─► pki, server
//! server ─► http ─► stream ─► tls ─► material ─► pki ─► identity
//!                  └► telemetry, closer, forward, path, config
//! words, identity, path, closer: leaves
//! ```

#![warn(unreachable_pub)]

pub(crate) mod acme;
pub(crate) mod bench;
pub mod cli;
pub(crate) mod closer;
pub(crate) mod config;
pub(crate) mod forward;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod http;
pub mod identity;
pub(crate) mod import;
pub(crate) mod material;
pub(crate) mod path;
pub(crate) mod pki;
pub(crate) mod probe;
pub mod server;
pub(crate) mod stream;
pub(crate) mod telemetry;
pub(crate) mod tls;
pub(crate) mod tools;
pub(crate) mod words;
