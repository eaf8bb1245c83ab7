#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz::run("tickets", data));
