//! The OpenSIPS 4.0 configuration language as rsips reads it: a lexer, a recovering parser that
//! produces a syntax tree with a span on every node, and diagnostics rendered like rustc's
//! (file:line:col, the offending text underlined, a hint). Name resolution (modules, functions,
//! PVs) is the engine's compile step. No I/O beyond reading `include_file`s.
#![forbid(unsafe_code)]

pub mod ast;
pub mod diag;
pub mod lexer;
mod parser;
pub mod pv;
pub mod socket;
pub mod source;

pub use diag::{Diagnostic, Severity, suggest};
pub use parser::{Parsed, parse};
pub use source::{FileId, SourceMap, Span, Spanned};

/// Parses and checks arbitrary text, asserting the invariants the fuzz target relies on: no
/// panic, every diagnostic renders, every span lies inside its file. Used by `fuzz/` and by the
/// corpus replay test.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) -> (Parsed, SourceMap) {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut sources = SourceMap::without_includes();
    let parsed = parse(&mut sources, std::path::Path::new("fuzz.cfg"), text);
    for d in &parsed.diagnostics {
        let _ = d.render(&sources);
        if let Some(span) = d.span {
            let len = sources.get(span.file).map_or(0, |f| f.text.len());
            assert!(
                span.start <= span.end && span.end as usize <= len,
                "span {span:?} outside the file ({len} bytes)"
            );
        }
    }
    (parsed, sources)
}
