//! portcullis: a mutual-TLS gateway.
//!
//! ```text
//! config.yaml ─► config::raw ─► config::validate ─► Model ─┐
//! certificate sources ─► material::load ─► Material ───────┤
//!                     server::Snapshot::build(Model, Material) ─► Arc<Snapshot> ─► server
//! per connection: one Arc clone ─► tls ─► identity ─► http
//! ```
//!
//! Dependencies run one way (tests/it/layout.rs checks that no top-level
//! module depends on itself through others):
//!
//! ```text
//! cli ─► bench, probe, import, pki, server
//! server ─► http ─► stream ─► tls ─► material ─► pki ─► identity
//!                  └► telemetry, closer, forward, path, config
//! words, identity, path, closer: leaves
//! ```

pub mod bench;
pub mod cli;
pub mod closer;
pub mod config;
pub mod forward;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod identity;
pub mod import;
pub mod material;
pub mod path;
pub mod pki;
pub mod probe;
pub mod server;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod words;
