//! Small structured headers: CSeq, RAck, Event, Reason, Content-Type.

use std::borrow::Cow;

use crate::error::{ParseError, Result};
use crate::method::Method;
use crate::params::Params;
use crate::scan::{Cursor, is_token, parse_u32, trim_lws, unquote};

/// CSeq (RFC 3261 §20.16): a 32-bit sequence number and a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method,
    /// The method text as written (needed for extension methods).
    pub method_str: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`; the number must fit 32 bits (RFC 4475 §3.1.2.4).
    pub fn parse(s: &'a str) -> Result<CSeq<'a>> {
        let bad = || ParseError::malformed("Bad CSeq header");
        let mut c = Cursor::new(trim_lws(s));
        let seq = parse_u32(c.take_while(|b| b.is_ascii_digit())).ok_or_else(bad)?;
        let before = c.pos();
        c.skip_lws();
        let spaced = c.pos() > before;
        let method_str = c.take_while(is_token);
        if !spaced || method_str.is_empty() || !c.eof() {
            return Err(bad());
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method_str),
            method_str,
        })
    }
}

/// RAck (RFC 3262 §7.2): response number, CSeq number, method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RAck<'a> {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method,
    pub method_str: &'a str,
}

impl<'a> RAck<'a> {
    pub fn parse(s: &'a str) -> Result<RAck<'a>> {
        let bad = || ParseError::malformed("Bad RAck header");
        let mut parts = trim_lws(s).split_ascii_whitespace();
        let rseq = parts.next().and_then(parse_u32).ok_or_else(bad)?;
        let cseq = parts.next().and_then(parse_u32).ok_or_else(bad)?;
        let method_str = parts
            .next()
            .filter(|m| crate::scan::is_token_str(m))
            .ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(RAck {
            rseq,
            cseq,
            method: Method::from_token(method_str),
            method_str,
        })
    }
}

/// Event (RFC 6665 §8.2.1): an event package with parameters (`presence;id=7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub package: &'a str,
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    pub fn parse(s: &'a str) -> Result<Event<'a>> {
        let mut c = Cursor::new(trim_lws(s));
        let package = c.take_while(is_token);
        if package.is_empty() {
            return Err(ParseError::malformed("Bad Event header"));
        }
        let params =
            Params::header(c.rest()).map_err(|_| ParseError::malformed("Bad Event header"))?;
        Ok(Event { package, params })
    }

    /// The `id` parameter.
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// One Reason value (RFC 3326): `SIP ;cause=200 ;text="Call completed elsewhere"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason<'a> {
    pub protocol: &'a str,
    pub params: Params<'a>,
}

impl<'a> Reason<'a> {
    pub fn parse(s: &'a str) -> Result<Reason<'a>> {
        let mut c = Cursor::new(trim_lws(s));
        let protocol = c.take_while(is_token);
        if protocol.is_empty() {
            return Err(ParseError::malformed("Bad Reason header"));
        }
        let params =
            Params::header(c.rest()).map_err(|_| ParseError::malformed("Bad Reason header"))?;
        Ok(Reason { protocol, params })
    }

    /// The `cause` parameter.
    pub fn cause(&self) -> Option<u16> {
        self.params
            .get("cause")
            .flatten()
            .and_then(|c| c.parse().ok())
    }

    /// The `text` parameter, unquoted.
    pub fn text(&self) -> Option<Cow<'a, str>> {
        self.params.get("text").flatten().map(unquote)
    }
}

/// Content-Type (RFC 3261 §20.15): `type/subtype *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub top: &'a str,
    pub sub: &'a str,
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    pub fn parse(s: &'a str) -> Result<MediaType<'a>> {
        let bad = || ParseError::malformed("Bad Content-Type header");
        let mut c = Cursor::new(trim_lws(s));
        let top = c.take_while(is_token);
        c.skip_lws();
        if top.is_empty() || !c.eat(b'/') {
            return Err(bad());
        }
        c.skip_lws();
        let sub = c.take_while(is_token);
        if sub.is_empty() {
            return Err(bad());
        }
        let params = Params::header(c.rest()).map_err(|_| bad())?;
        Ok(MediaType { top, sub, params })
    }

    /// Case-insensitive match on type and subtype, e.g. `is("application", "sdp")`.
    pub fn is(&self, top: &str, sub: &str) -> bool {
        self.top.eq_ignore_ascii_case(top) && self.sub.eq_ignore_ascii_case(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        let c = CSeq::parse("4294967295 RE%47IST%45R").unwrap();
        assert_eq!(
            (c.seq, c.method, c.method_str),
            (u32::MAX, Method::Other, "RE%47IST%45R")
        );
        for s in [
            "36893488147419103232 REGISTER",
            "1",
            "INVITE",
            "1INVITE",
            "-1 INVITE",
            "1 INVITE x",
        ] {
            assert!(CSeq::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn rack_event_reason_ctype() {
        let r = RAck::parse("776656 1 INVITE").unwrap();
        assert_eq!((r.rseq, r.cseq, r.method), (776656, 1, Method::Invite));
        assert!(RAck::parse("1 INVITE").is_err());
        let e = Event::parse("presence;id=7").unwrap();
        assert_eq!((e.package, e.id()), ("presence", Some("7")));
        assert!(Event::parse(";id=1").is_err());
        let r = Reason::parse(r#"SIP ;cause=200 ;text="Call completed elsewhere""#).unwrap();
        assert_eq!(r.protocol, "SIP");
        assert_eq!(r.cause(), Some(200));
        assert_eq!(r.text().unwrap(), "Call completed elsewhere");
        let m = MediaType::parse("Application/SDP ; charset=utf-8").unwrap();
        assert!(m.is("application", "sdp"));
        assert_eq!(m.params.get("charset"), Some(Some("utf-8")));
        assert!(MediaType::parse("application").is_err());
    }
}
