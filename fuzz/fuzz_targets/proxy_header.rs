//! PROXY protocol v1/v2 headers: prefixes agree with the whole, parsed headers re-encode to the
//! same addresses and TLVs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| transport::proxy_protocol::fuzz_invariants(data));
