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

#[test]
fn x509_corpus_replays() {
    replay("x509", transport::x509::fuzz_invariants);
}

/// The corpus' seed leaf certificate (made with `openssl x509 -req -set_serial 4660`, a
/// notAfter past 2049 so a GeneralizedTime) read field by field.
#[test]
fn x509_reads_the_seed_leaf() {
    use transport::x509::CertInfo;
    let der = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/x509/leaf.der"),
    )
    .expect("the seed is committed");
    let c = CertInfo::parse(&der).expect("a certificate");
    assert_eq!(c.version, 2);
    assert_eq!(c.serial, 4660);
    assert_eq!(
        CertInfo::oneline(&c.subject),
        "/CN=leaf.example.test/O=Example/serialNumber=42/emailAddress=a@b.c/UID=u1/DC=example"
    );
    assert_eq!(
        CertInfo::oneline(&c.issuer),
        "/C=RO/ST=Bucharest/L=Bucharest/O=Example CA/OU=Ops/CN=Seed CA"
    );
    assert_eq!(CertInfo::field(&c.issuer, "OU"), Some("Ops"));
    assert_eq!(c.san_dns, ["leaf.example.test"]);
    assert_eq!(c.san_ip, ["192.0.2.1", "2001:db8::1"]);
    assert_eq!(c.san_email, ["ops@example.test"]);
    assert_eq!(c.san_uri, ["sip:leaf@example.test"]);
    assert!(c.not_after.ends_with(" 2081 GMT"), "{}", c.not_after);
    assert!(c.not_after_secs > 3_500_000_000);
}
