//! Every stock OpenSIPS config in ../shared/reference/opensips-configs parses without a syntax
//! error: the .cfg files as they are, the .m4 templates through the real `m4` (as `-p m4` does).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

fn configs() -> PathBuf {
    match std::env::var("RSIPS_REFERENCE") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/opensips-configs")
        }
    }
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(configs().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Parses `text` as `name`; returns the rendered diagnostics (empty when clean).
fn check(name: &Path, text: String) -> String {
    let mut sm = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sm, name, text);
    assert!(
        !parsed.config.items.is_empty(),
        "{}: nothing parsed",
        name.display()
    );
    parsed.diagnostics.iter().map(|d| d.render(&sm)).collect()
}

fn m4(inputs: &[&Path]) -> String {
    let out = Command::new("m4")
        .args(inputs)
        .output()
        .expect("m4 is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "m4 failed on {inputs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_cfg_parses() {
    let mut failures = Vec::new();
    let mut n = 0;
    for dir in ["4.0", "master", "rendered"] {
        for f in files(dir, "cfg") {
            n += 1;
            let diags = check(&f, std::fs::read_to_string(&f).unwrap());
            if !diags.is_empty() {
                failures.push(format!("{}:\n{diags}", f.display()));
            }
        }
    }
    assert_eq!(n, 13, "the stock .cfg files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_m4_template_parses() {
    let mut failures = Vec::new();
    let mut n = 0;
    for dir in ["4.0", "master", "4.0/menuconfig"] {
        // `*_def.m4` only define feature switches; they are tested with their template below.
        for f in files(dir, "m4")
            .into_iter()
            .filter(|f| !f.to_string_lossy().ends_with("_def.m4"))
        {
            n += 1;
            let diags = check(&f, m4(&[&f]));
            if !diags.is_empty() {
                failures.push(format!("{}:\n{diags}", f.display()));
            }
        }
    }
    assert_eq!(n, 9, "the stock .m4 templates");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn menuconfig_definitions_with_their_templates_parse() {
    for kind in ["residential", "trunking", "loadbalancer"] {
        let dir = configs().join("4.0/menuconfig");
        let def = dir.join(format!("opensips_{kind}_def.m4"));
        let tpl = dir.join(format!("opensips_{kind}.m4"));
        let diags = check(&tpl, m4(&[&def, &tpl]));
        assert!(diags.is_empty(), "{kind}:\n{diags}");
    }
}
