//! The configuration language: lexer, parser, load-time check and diagnostic rendering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::fuzz_config(data));
