//! The peer certificate reader behind `$tls_peer_*`: hostile DER never panics, a parse is
//! deterministic and prints.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| transport::x509::fuzz_invariants(data));
