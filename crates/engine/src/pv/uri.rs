//! The URI and address PVs: parts of the R-URI, the original R-URI and `$du`
//! (`$rp $rP $op $oP $dp $dP` with their defaults), and the parts of From, To and the other
//! name-addr headers (display names as written, quotes kept).

use sip::{NameAddr, SipMessage, Uri};

use super::{AddrPart, UriPart};
use crate::value::Value;

/// The transport a URI names (its `transport` parameter, any case), else the scheme's default:
/// TLS for `sips:`/`tels:`, UDP otherwise (RFC 3261 §19.1.2, OpenSIPS `get_uri_port`). `None`
/// for a transport parameter naming none rsips knows.
fn uri_proto(u: &Uri<'_>) -> Option<&'static str> {
    match u.transport() {
        Some(t) => ["udp", "tcp", "tls", "sctp", "ws", "wss"]
            .into_iter()
            .find(|p| t.eq_ignore_ascii_case(p)),
        None => {
            let scheme = u.scheme();
            let secure = ["sips", "tels"]
                .iter()
                .any(|s| scheme.as_str().eq_ignore_ascii_case(s));
            Some(if secure { "tls" } else { "udp" })
        }
    }
}

/// The port of a URI: the one written, else the default of its transport (5060, 5061 for TLS,
/// 80 / 443 for WS / WSS); 0 for an unknown transport, as OpenSIPS' table has none for it.
fn uri_port(u: &Uri<'_>) -> u16 {
    if let Some(p) = u.port() {
        return p;
    }
    match uri_proto(u) {
        Some("tls") => 5061,
        Some("ws") => 80,
        Some("wss") => 443,
        Some(_) => 5060,
        None => 0,
    }
}

/// A part of the URI `u`; `text` makes a value of a piece of `u` (shared with the message when
/// `u` is in it). The whole URI is its text; a part is NULL when `u` does not parse or has no
/// such part.
pub(super) fn uri_part(u: Option<&str>, part: UriPart, text: impl Fn(&str) -> Value) -> Value {
    let Some(u) = u else { return Value::Null };
    if part == UriPart::Whole {
        return text(u);
    }
    let Ok(p) = Uri::parse(u) else {
        return Value::Null;
    };
    let some = |s: Option<&str>| s.filter(|s| !s.is_empty()).map_or(Value::Null, &text);
    match part {
        UriPart::Whole => text(u),
        UriPart::User => some(p.user()),
        UriPart::Host => some(p.host().map(|h| h.as_str())),
        UriPart::Port => Value::Int(i64::from(uri_port(&p))),
        UriPart::Transport => match p.transport() {
            Some(t) => some(Some(t)),
            None => uri_proto(&p).map_or(Value::Null, Value::str),
        },
    }
}

/// A part of a URI that lives in the message.
pub(super) fn msg_uri_part(msg: &SipMessage, u: Option<&str>, part: UriPart) -> Value {
    uri_part(u, part, |s| Value::Str(msg.share(s)))
}

/// A part of a URI that lives in the context (a rewrite), copied out.
pub(super) fn owned_uri_part(u: &str, part: UriPart) -> Value {
    uri_part(Some(u), part, |s: &str| Value::from(s))
}

/// The display name as OpenSIPS' parsers keep it: a quoted one with its quotes (`"Alice A"`,
/// `""`), a token one as written; NULL without one.
pub(super) fn display_name<'m>(a: &NameAddr<'m>) -> Option<&'m str> {
    let d = a.display_name_raw()?;
    if a.as_str().starts_with('"') {
        // A quoted name opens the value: the quotes sit right around the raw text.
        a.as_str().get(..d.len() + 2)
    } else {
        (!d.is_empty()).then_some(d)
    }
}

pub(super) fn addr_part(msg: &SipMessage, a: Option<NameAddr<'_>>, part: AddrPart) -> Value {
    let Some(a) = a else { return Value::Null };
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Str(msg.share(s)));
    match part {
        AddrPart::Uri => text(Some(a.uri().as_str())),
        AddrPart::User => text(a.uri().user()),
        AddrPart::Host => text(a.uri().host().map(|h| h.as_str())),
        AddrPart::Name => text(display_name(&a)),
        AddrPart::Tag => text(a.tag()),
        AddrPart::Param(name) => text(a.param(name).flatten()),
    }
}
