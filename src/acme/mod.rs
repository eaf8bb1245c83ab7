//! ACME (RFC 8555): the challenge answers the listeners give while an order
//! is in flight.

pub(crate) mod challenges;

pub(crate) use challenges::challenges;
