//! Replays the committed cargo-fuzz corpus of the BIN packet reader (fuzz/corpus/bin_packets)
//! through what the `bin_packets` target checks, so CI exercises it without a fuzzer: framing
//! and parsing never panic, and an accepted frame fits its input.

use std::path::Path;

#[test]
fn bin_packets_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bin_packets");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 20,
        "the corpus is committed ({} files)",
        inputs.len()
    );
    for p in &inputs {
        let data = std::fs::read(p).expect("read corpus file");
        if let Ok(Some(n)) = clusterer::bin::check(&data) {
            assert!(n <= data.len(), "{}", p.display());
            let _ = clusterer::msg::parse(&data[..n]);
        }
        let _ = clusterer::msg::parse(&data);
    }
}
