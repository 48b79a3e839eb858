//! Replays the committed cargo-fuzz corpora of the transport codecs (fuzz/corpus/proxy_header,
//! fuzz/corpus/ws_frames) through the same invariants the fuzz targets check, so CI exercises
//! them without a fuzzer.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` over every file of the committed corpus of `target`.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= 20,
        "the {target} corpus is committed ({} files)",
        inputs.len()
    );
    for p in &inputs {
        check(&std::fs::read(p).expect("read corpus file"));
    }
}

#[test]
fn proxy_header_corpus_replays() {
    replay("proxy_header", transport::proxy_protocol::fuzz_invariants);
}

#[test]
fn ws_frames_corpus_replays() {
    replay("ws_frames", transport::ws::fuzz_invariants);
}
