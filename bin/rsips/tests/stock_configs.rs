//! `rsips -c` on the stock OpenSIPS configurations: one whose modules rsips all implements
//! checks clean; in any other the only errors are the missing modules themselves (and the
//! database-backed modes of the modules rsips runs in memory) — nothing cascades from them. The
//! one known template bug (`$sp=5060` inside a condition) is reported as OpenSIPS reports it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/opensips-configs")
}

fn rsips_check(path: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stderr).unwrap())
}

/// The modules a config loads, by name.
fn loaded_modules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("loadmodule"))
        .map(|r| {
            r.trim()
                .trim_matches('"')
                .trim_end_matches(".so")
                .to_owned()
        })
        .collect()
}

/// The error headlines of rsips' output.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.starts_with("error: could not load"))
        .collect()
}

/// The modules this rsips build implements (`rsips --list-modules`).
fn implemented() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("--list-modules")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_only_missing_modules(path: &Path, text: &str, extra: &[&str]) {
    let (ok, stderr) = rsips_check(path, extra);
    let implemented = implemented();
    let expected: BTreeSet<String> = loaded_modules(text)
        .into_iter()
        .filter(|m| !implemented.contains(m))
        .map(|m| format!("error: module `{m}` is not available in rsips"))
        .collect();
    // Functions that an implemented module does not have yet are named as such (and only
    // those: anything else is a real error).
    let (partial, got): (Vec<&str>, Vec<&str>) = errors(&stderr)
        .into_iter()
        .partition(|e| e.ends_with("is not available in rsips yet"));
    for e in partial {
        let module = e
            .split("(module `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap_or("");
        assert!(
            implemented.contains(module),
            "{}: {e} (module not implemented?)",
            path.display()
        );
    }
    // A database-backed usrloc mode is refused where it is set (rsips' usrloc is in memory
    // only); such a config also loads a database module.
    let (modes, got): (Vec<&str>, Vec<&str>) =
        got.into_iter().partition(|e| e.contains("needs a cluster"));
    if !modes.is_empty() {
        assert!(
            loaded_modules(text).iter().any(|m| m.starts_with("db_")),
            "{}: {modes:?} without a database module",
            path.display()
        );
    }
    // With every module there, `rsips -c` also reads the TLS certificates (OpenSIPS' -c does
    // not): the stock TLS configs name files of an OpenSIPS installation, missing here. That
    // error, and only for files that really are missing, is the machine's, not the config's.
    let (tls, got): (Vec<&str>, Vec<&str>) = got.into_iter().partition(|e| {
        e.starts_with("error: tls domain")
            && e.split('`')
                .nth(3)
                .is_some_and(|file| text.contains(file) && !Path::new(file).exists())
    });
    if !tls.is_empty() {
        assert!(
            expected.is_empty() && loaded_modules(text).contains("tls_mgm"),
            "{}: {tls:?}",
            path.display()
        );
    }
    let got: BTreeSet<String> = got.into_iter().map(str::to_owned).collect();
    assert_eq!(got, expected, "{}:\n{stderr}", path.display());
    assert_eq!(
        ok,
        expected.is_empty() && errors(&stderr).is_empty(),
        "{}: the check passes exactly when nothing is missing:\n{stderr}",
        path.display()
    );
}

#[test]
fn implemented_modules_are_listed() {
    assert!(implemented().contains("sipmsgops"));
}

#[test]
fn etc_opensips_cfg_and_the_default_residential_config_check_clean() {
    for cfg in [
        "4.0/opensips.cfg",
        "rendered/residential_default.cfg",
        "rendered/trunking_default.cfg",
        "rendered/loadbalancer_default.cfg",
        "rendered/loadbalancer_dispatcher.cfg",
    ] {
        let (ok, stderr) = rsips_check(&reference().join(cfg), &[]);
        assert!(ok, "{cfg}:\n{stderr}");
    }
}

#[test]
fn usrloc_modes_are_checked_at_their_line() {
    let path = reference().join("rendered/residential_allyes.cfg");
    let (_, stderr) = rsips_check(&path, &[]);
    // Its SQL write-back preset is one rsips runs.
    assert!(!stderr.contains("working_mode_preset"), "{stderr}");
    // A preset that needs a cachedb is not: refused where it is set.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "single-instance-sql-write-back",
        "full-sharing-cachedb-cluster",
    );
    let copy = std::env::temp_dir().join(format!("rsips-allyes-{}.cfg", std::process::id()));
    std::fs::write(&copy, text).unwrap();
    let (ok, stderr) = rsips_check(&copy, &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "error: bad `working_mode_preset` for module `usrloc`: \"full-sharing-cachedb-cluster\" needs a cachedb"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:85:43", copy.display())),
        "points at the value: {stderr}"
    );
}

#[test]
fn every_stock_cfg_reports_only_missing_modules() {
    for dir in ["4.0", "master", "rendered"] {
        for entry in std::fs::read_dir(reference().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "cfg")
                || path.ends_with("residential_pstn_static.cfg")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert_only_missing_modules(&path, &text, &[]);
        }
    }
}

#[test]
fn m4_templates_check_through_the_preprocessor() {
    for t in [
        "4.0/residential.m4",
        "4.0/trunking.m4",
        "4.0/loadbalancer.m4",
    ] {
        let path = reference().join(t);
        let rendered = Command::new("m4").arg(&path).output().unwrap();
        let text = String::from_utf8(rendered.stdout).unwrap();
        assert_only_missing_modules(&path, &text, &["-p", "m4"]);
    }
}

#[test]
fn the_sp_assignment_template_bug_is_a_clear_error() {
    let path = reference().join("rendered/residential_pstn_static.cfg");
    let (ok, stderr) = rsips_check(&path, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("error: cannot assign to `$sp`: it is read-only"),
        "{stderr}"
    );
    assert!(
        stderr.contains("inside a condition `=` assigns; to compare, write `==`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("residential_pstn_static.cfg:186:"),
        "points at the line: {stderr}"
    );
}

#[test]
fn the_embedded_default_config_checks_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-c")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("config file ok"), "{stderr}");
}
