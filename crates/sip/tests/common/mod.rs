//! Helpers shared by the integration tests: locating ../shared/testdata and classifying messages.
#![allow(dead_code)]

use std::path::PathBuf;

use bytes::Bytes;
use sip::{Reaction, SipMessage};

/// The shared conformance data, beside the repository (override with RSIPS_TESTDATA).
pub fn testdata() -> PathBuf {
    if let Ok(p) = std::env::var("RSIPS_TESTDATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
}

/// Rows of a manifest.tsv: (file, section, class, expected).
pub fn manifest(dir: &str) -> Vec<(String, String, String, String)> {
    let path = testdata().join(dir).join("manifest.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "bad manifest row {l:?}");
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].to_owned(),
                f[3].to_owned(),
            )
        })
        .collect()
}

pub fn read(dir: &str, file: &str) -> Bytes {
    let path = testdata().join(dir).join(file);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// What a stateless SIP element does with a datagram: process it, reply with an error, or drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Reject(Reaction),
}

pub fn outcome(bytes: Bytes) -> Outcome {
    match SipMessage::parse(bytes) {
        Err(e) => Outcome::Reject(e.reaction()),
        Ok(m) => match m.check() {
            Ok(()) => Outcome::Accept,
            Err(e) => Outcome::Reject(e.reaction()),
        },
    }
}
