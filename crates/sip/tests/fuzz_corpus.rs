//! Replays the committed cargo-fuzz corpora (fuzz/corpus/*) and every torture message through the
//! same invariants the fuzz targets check, so CI exercises them without a fuzzer.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn corpus(target: &str) -> Vec<PathBuf> {
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target),
    )
}

fn torture() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for (dir, _) in [
        ("rfc4475", ()),
        ("rfc5118/wire", ()),
        ("rfc5118/archive", ()),
    ] {
        v.extend(
            files(&common::testdata().join(dir))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "dat")),
        );
    }
    v
}

/// Runs `check` over the committed corpus of `target` and over every torture message.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= 50,
        "the {target} corpus is committed ({} files)",
        inputs.len()
    );
    for p in inputs.iter().chain(torture().iter()) {
        check(&std::fs::read(p).expect("read corpus file"));
    }
}

#[test]
fn parse_corpus_replays() {
    replay("parse", sip::fuzzing::parse_invariants);
}

#[test]
fn framing_corpus_replays() {
    replay("framing", sip::fuzzing::framing_invariants);
}

#[test]
fn torture_messages_back_to_back_on_a_stream() {
    // Every message that carries a valid Content-Length frames exactly on a stream, one after
    // another, with keepalives between them.
    let mut stream = Vec::new();
    let mut expected = 0;
    for p in torture() {
        let data = std::fs::read(&p).expect("read");
        let cfg = sip::ParseConfig {
            stream: true,
            ..Default::default()
        };
        if let Ok(m) = sip::SipMessage::parse_with(bytes::Bytes::from(data.clone()), &cfg) {
            stream.extend_from_slice(m.as_bytes());
            stream.extend_from_slice(b"\r\n\r\n");
            expected += 1;
        }
    }
    assert!(expected > 20);
    let limits = sip::framing::Limits::default();
    let (mut rest, mut messages, mut pings) = (&stream[..], 0, 0);
    while !rest.is_empty() {
        let len = match sip::framing::check(rest, &limits).expect("frames") {
            Some(sip::framing::Frame::Message { len }) => {
                messages += 1;
                len
            }
            Some(sip::framing::Frame::Ping { len }) => {
                pings += 1;
                len
            }
            other => panic!("unexpected {other:?}"),
        };
        rest = &rest[len..];
    }
    assert_eq!((messages, pings), (expected, expected));
}
