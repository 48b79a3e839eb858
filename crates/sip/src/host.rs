//! Hosts and ports as they appear in URIs and Via sent-by (RFC 3261 §25.1 hostport, RFC 5118).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ParseError, Result};
use crate::scan::{Cursor, is_domain_char};

/// What kind of host a [`Host`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A domain name (not resolved here).
    Domain,
    Ipv4(Ipv4Addr),
    /// An IPv6 reference; the raw text keeps its brackets.
    Ipv6(Ipv6Addr),
}

/// A host as written, with its classification. `raw` keeps IPv6 brackets: `[2001:db8::10]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    raw: &'a str,
    kind: HostKind,
}

impl<'a> Host<'a> {
    pub(crate) fn from_parts(raw: &'a str, kind: HostKind) -> Host<'a> {
        Host { raw, kind }
    }

    /// The host exactly as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// The address, for IP hosts.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.kind {
            HostKind::Ipv4(a) => Some(IpAddr::V4(a)),
            HostKind::Ipv6(a) => Some(IpAddr::V6(a)),
            HostKind::Domain => None,
        }
    }

    /// RFC 3261 §19.1.4: hosts compare case-insensitively; IP addresses compare as addresses, so
    /// `[2001:db8::1]` equals `[2001:DB8:0::1]`.
    pub fn equivalent(&self, other: &Host<'_>) -> bool {
        match (self.ip(), other.ip()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.raw.eq_ignore_ascii_case(other.raw),
            _ => false,
        }
    }

    /// Parses a whole string as a host (no port).
    pub fn parse(s: &'a str) -> Result<Host<'a>> {
        let mut c = Cursor::new(s);
        let h = parse_host(&mut c)?;
        if !c.eof() {
            return Err(ParseError::malformed("Bad host"));
        }
        Ok(h)
    }
}

/// Parses an IPv6 address, tolerating the `:::` that RFC 3261's ABNF bug lets through
/// (RFC 5118 §4.10: read `2001:db8:::192.0.2.1` as `2001:db8::192.0.2.1`).
pub(crate) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    if s.contains(":::") {
        let fixed: Cow<'_, str> = Cow::Owned(s.replacen(":::", "::", 1));
        return fixed.parse().ok();
    }
    None
}

/// Parses a host at the cursor: an IPv6 reference, an IPv4 address or a domain name.
#[inline]
pub(crate) fn parse_host<'a>(c: &mut Cursor<'a>) -> Result<Host<'a>> {
    let start = c.pos();
    if c.eat(b'[') {
        let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !c.eat(b']') {
            return Err(ParseError::malformed("Bad IPv6 reference"));
        }
        let addr = parse_ipv6(inner).ok_or(ParseError::malformed("Bad IPv6 address"))?;
        return Ok(Host {
            raw: c.slice(start, c.pos()),
            kind: HostKind::Ipv6(addr),
        });
    }
    // One pass: extent, all-numeric (IPv4 candidate) and the label rules.
    let b = c.rest().as_bytes();
    let (mut n, mut numeric, mut bad_dot) = (0, true, false);
    while let Some(&ch) = b.get(n) {
        if !is_domain_char(ch) {
            break;
        }
        numeric &= ch.is_ascii_digit() || ch == b'.';
        bad_dot |= ch == b'.' && (n == 0 || b.get(n - 1) == Some(&b'.'));
        n += 1;
    }
    let raw = c.rest().get(..n).unwrap_or("");
    c.advance(n);
    if raw.is_empty() || raw.starts_with('-') || bad_dot {
        return Err(ParseError::malformed("Bad host"));
    }
    if numeric {
        let a: Ipv4Addr = raw
            .parse()
            .map_err(|_| ParseError::malformed("Bad IPv4 address"))?;
        return Ok(Host {
            raw,
            kind: HostKind::Ipv4(a),
        });
    }
    Ok(Host {
        raw,
        kind: HostKind::Domain,
    })
}

/// Parses an optional `:port` at the cursor.
#[inline]
pub(crate) fn parse_port(c: &mut Cursor<'_>) -> Result<Option<u16>> {
    if !c.eat(b':') {
        return Ok(None);
    }
    let digits = c.take_while(|b| b.is_ascii_digit());
    if digits.is_empty() || digits.len() > 5 {
        return Err(ParseError::malformed("Bad port"));
    }
    digits
        .parse::<u16>()
        .map(Some)
        .map_err(|_| ParseError::malformed("Bad port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(Host::parse("Example.COM").unwrap().kind(), HostKind::Domain);
        assert_eq!(
            Host::parse("192.0.2.1").unwrap().ip(),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        let h = Host::parse("[2001:db8::10]").unwrap();
        assert_eq!(h.as_str(), "[2001:db8::10]");
        assert!(matches!(h.kind(), HostKind::Ipv6(_)));
        assert!(Host::parse("[2001:db8::10").is_err());
        assert!(Host::parse("1.2.3.256").is_err());
        assert!(Host::parse("").is_err());
        assert!(Host::parse("a..b").is_err());
        let tolerant = Host::parse("[2001:db8:::192.0.2.1]").unwrap();
        assert_eq!(tolerant.ip(), "2001:db8::192.0.2.1".parse::<IpAddr>().ok());
    }

    #[test]
    fn host_equivalence() {
        let a = Host::parse("[2001:db8::1]").unwrap();
        let b = Host::parse("[2001:DB8:0::1]").unwrap();
        assert!(a.equivalent(&b));
        assert!(
            Host::parse("EXAMPLE.com")
                .unwrap()
                .equivalent(&Host::parse("example.COM").unwrap())
        );
        assert!(
            !Host::parse("127.0.0.1")
                .unwrap()
                .equivalent(&Host::parse("localhost").unwrap())
        );
    }
}
