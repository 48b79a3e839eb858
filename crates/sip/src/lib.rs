//! The SIP message core of rsips: parsing, typed header access, URIs, stream framing,
//! serialization with edits, and digest authentication math. Sans-IO: no sockets, no clock,
//! no async runtime.
//!
//! A [`SipMessage`] keeps the original bytes and an index of its header lines; typed values
//! ([`Via`], [`NameAddr`], [`CSeq`] …) are parsed when asked for and borrow from the message.
//! Outgoing messages are produced by applying an [`Edits`] list to the original, so headers that
//! rsips does not touch — unknown ones included — leave byte for byte as they arrived.
#![forbid(unsafe_code)]

mod access;
mod check;
pub mod digest;
mod error;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod header_name;
pub mod headers;
mod host;
mod message;
mod method;
mod numtext;
mod params;
mod scan;
pub mod sdp;
mod serialize;
mod uri;

pub use access::HeaderRef;
pub use bytestring::ByteString;
pub use error::{ErrorKind, ParseError, Reaction, Result};
pub use header_name::HeaderName;
pub use headers::{
    AuthHeader, CSeq, Contacts, Event, MediaType, NameAddr, RAck, Reason, SipDate, Via,
};
pub use host::{Host, HostKind, parse_ipv4};
pub use message::{HeaderEntry, ParseConfig, SipMessage, Span, StartLine};
pub use method::Method;
pub use numtext::{hex_lower, push_decimal, push_hex, push_hex_bytes};
pub use params::{Param, ParamIter, Params};
pub use scan::{split_values, unquote};
pub use serialize::{Edits, RequestBuilder, ResponseBuilder};
pub use uri::{Scheme, Uri, unescape};
