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
