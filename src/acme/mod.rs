//! ACME (RFC 8555): certificates obtained and renewed in the background,
//! and the challenge answers the listeners give while an order is in
//! flight.

pub(crate) mod alpn;
pub(crate) mod challenges;
pub(crate) mod http;
pub(crate) mod manager;
pub(crate) mod order;

pub(crate) use challenges::challenges;
