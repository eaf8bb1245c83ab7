//! What a client hands the gateway for resumption (SPEC §2
//! `sessionTickets`): ticket bytes, opened with keys shared by replicas —
//! and the key file those keys come from.

use std::sync::{Arc, OnceLock};

use rustls::server::ProducesTickets;

use crate::material::TicketKeys;
use crate::tls::sessions::TimedTickets;

fn ticketer() -> &'static Arc<TimedTickets> {
    static T: OnceLock<Arc<TimedTickets>> = OnceLock::new();
    T.get_or_init(|| {
        let keys = TicketKeys::parse(
            b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w\n",
        )
        .unwrap();
        let sealed = crate::tls::tickets::for_scope(&keys, &[7; 32]).unwrap();
        TimedTickets::shared(std::time::Duration::from_secs(300), sealed)
    })
}

/// A ticket a client made up never opens (the AEAD holds), nothing panics
/// on any bytes, a sealed ticket opens to what was sealed; a key file is
/// refused with words or yields 1 to 16 keys.
pub(super) fn tickets(data: &[u8]) {
    let t = ticketer();
    assert_eq!(t.decrypt(data), None, "a made-up ticket opened");
    let sealed = t.encrypt(data).unwrap();
    assert_eq!(t.decrypt(&sealed).as_deref(), Some(data));
    match TicketKeys::parse(data) {
        Ok(keys) => assert!((1..=16).contains(&keys.len())),
        Err(e) => {
            let words = e.to_string();
            assert!(!words.is_empty());
            // The key text is never quoted back.
            if let Ok(text) = std::str::from_utf8(data) {
                for line in text.lines().map(str::trim).filter(|l| l.len() >= 8) {
                    assert!(!words.contains(line), "{words:?} quotes the input");
                }
            }
        }
    }
}
