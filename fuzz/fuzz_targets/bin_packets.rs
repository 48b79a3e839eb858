//! The clusterer's BIN packets as they come off a proto_bin connection: framing and parsing
//! never panic, and a frame the checker accepts is no longer than the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(Some(n)) = clusterer::bin::check(data) {
        assert!(n <= data.len());
        let _ = clusterer::msg::parse(&data[..n]);
    }
    let _ = clusterer::msg::parse(data);
});
