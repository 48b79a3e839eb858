//! Stream framing over arbitrary bytes, including keepalives and back-to-back messages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip::fuzzing::framing_invariants(data));
