//! Replays the committed `cfg_parse` fuzz corpus, the golden bad configs and the stock OpenSIPS
//! configs through the config fuzz invariants (`engine::fuzz_config`), so CI keeps every input
//! the fuzzer once found interesting.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

fn files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    v.sort();
    v
}

#[test]
fn cfg_fuzz_corpus_and_configs_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = files(&root.join("fuzz/corpus/cfg_parse"), None);
    assert!(
        corpus.len() >= 50,
        "the cfg_parse corpus is committed ({} files)",
        corpus.len()
    );
    let golden = files(&root.join("bin/rsips/tests/golden"), Some("cfg"));
    let reference = root.join("../shared/reference/opensips-configs");
    let mut stock = Vec::new();
    for dir in ["4.0", "master", "rendered"] {
        stock.extend(files(&reference.join(dir), Some("cfg")));
    }
    assert!(!golden.is_empty() && !stock.is_empty());
    for p in corpus.iter().chain(&golden).chain(&stock) {
        engine::fuzz_config(&std::fs::read(p).unwrap());
    }
}
