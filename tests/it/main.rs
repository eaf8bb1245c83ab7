//! End-to-end tests: the real `portcullis` binary, real TLS clients,
//! certificates made in the test.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod acme;
mod balance;
mod bench;
mod bypass;
mod check;
mod client_auth;
mod configmap;
mod crl;
mod deploy;
mod dn;
mod docs;
mod grpc;
mod identity;
mod import;
mod layout;
mod lifecycle;
mod model;
mod ops;
mod pki;
mod plain;
mod pool;
mod proxy;
mod resumption;
mod rfc9440;
mod sni;
mod streams;
mod support;
mod tickets;
mod tools;
mod trailers;
