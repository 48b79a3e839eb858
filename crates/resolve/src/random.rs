//! Randomness for query IDs (RFC 5452 §9.2: unpredictable IDs make spoofed answers harder) and
//! SRV weights.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

/// A random `u32` from the operating system.
pub(crate) fn random_u32() -> u32 {
    getrandom::u32().unwrap_or_else(|_| fallback())
}

/// Uniform in `0..=max`; the modulo bias is irrelevant at SRV weight sizes.
pub(crate) fn random_up_to(max: u32) -> u32 {
    match max.checked_add(1) {
        Some(span) => random_u32() % span,
        None => random_u32(),
    }
}

/// Only reached when the OS source fails; `RandomState` keys are still seeded by the OS once.
fn fallback() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}
