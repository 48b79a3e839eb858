//! The rsips script engine: compiles a parsed opensips.cfg (names resolved once, "fixups") and
//! runs its routes over SIP messages. This crate grows with issue #3; for now it holds the script
//! value type and the transformation library.
#![forbid(unsafe_code)]

mod catalog;
pub mod check;
pub mod transform;
mod value;

pub use check::{Available, check};
pub use value::Value;
