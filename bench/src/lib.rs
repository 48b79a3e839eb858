//! Shared inputs for the rsips benchmarks.
