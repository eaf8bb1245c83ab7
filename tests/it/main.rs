//! End-to-end tests: the real `portcullis` binary, real TLS clients,
//! certificates made in the test.

mod check;
mod client_auth;
mod proxy;
mod resumption;
mod sni;
mod support;
mod tools;
