//! Datagram and stream parsing, typed access, and serialization round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip::fuzzing::parse_invariants(data));
