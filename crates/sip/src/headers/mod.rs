//! Typed views of header values. Each borrows the message text and is parsed only when asked for;
//! parse failures name the header so they can become a 400 reason phrase.

mod auth;
mod date;
mod name_addr;
mod simple;
mod via;

pub use auth::{AuthHeader, AuthParam};
pub use date::SipDate;
pub use name_addr::{Contacts, NameAddr};
pub use simple::{CSeq, Event, MediaType, RAck, Reason};
pub use via::Via;
pub(crate) use via::ViaSpans;

#[cfg(test)]
pub(crate) use {name_addr::tests::name_addr_like, via::tests::via_like};
