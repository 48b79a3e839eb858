//! WebSocket upgrade requests, accept responses and frames: incremental decoding matches
//! one-shot decoding, messages survive a re-encode, accepted handshakes complete.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| transport::ws::fuzz_invariants(data));
