//! Golden-file tests of `rsips -c`: each `golden/NAME.cfg` is a bad configuration and
//! `golden/NAME.stderr` the exact diagnostics expected. `RSIPS_BLESS=1 cargo test` rewrites the
//! expected files (review the diff before committing).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

#[test]
fn bad_configs_produce_their_exact_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("RSIPS_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "at least 40 golden configs, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for cfg in &cases {
        let name = cfg.file_name().unwrap().to_str().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
            .args(["-c", "-f", name])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = cfg.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        if out.status.success() {
            failures.push(format!("{name}: rsips -c accepted a bad config"));
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stderr != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- got\n{stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden configs differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
