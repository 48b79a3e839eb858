//! Hosts and ports as they appear in URIs and Via sent-by (RFC 3261 §25.1 hostport, RFC 5118).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ParseError, Result};
use crate::scan::{Cursor, HOST_CLASS, HOST_DOT, HOST_NAME};

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
    let run = scan_domain(c.rest().as_bytes(), 0);
    let raw = c.rest().get(..run.end).unwrap_or("");
    c.advance(run.end);
    if raw.is_empty() || raw.starts_with('-') || run.bad_dot {
        return Err(ParseError::malformed("Bad host"));
    }
    if run.numeric {
        let a = parse_ipv4(raw.as_bytes()).ok_or(ParseError::malformed("Bad IPv4 address"))?;
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

/// A dotted quad, as `Ipv4Addr::from_str` accepts it (four decimal octets of one to three
/// digits, none above 255, no leading zero), read in one pass without the general address
/// parser's machinery: every URI and Via host of every message comes through here.
#[inline]
pub fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut idx, mut octet, mut digits) = (0usize, 0u32, 0u32);
    for &c in b {
        if c.is_ascii_digit() {
            // A digit after a leading zero, or a value past 255 (which also stops a fourth
            // digit, leading zeros being refused).
            if digits == 1 && octet == 0 {
                return None;
            }
            octet = octet * 10 + u32::from(c - b'0');
            digits += 1;
            if octet > 255 {
                return None;
            }
        } else if c == b'.' && digits > 0 {
            *octets.get_mut(idx)? = octet as u8;
            idx += 1;
            if idx == 4 {
                return None;
            }
            (octet, digits) = (0, 0);
        } else {
            return None;
        }
    }
    if idx != 3 || digits == 0 {
        return None;
    }
    octets[3] = octet as u8;
    Some(Ipv4Addr::from(octets))
}

/// A run of host name characters, read in one pass with what [`parse_host`] needs to judge it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DomainRun {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Only digits and dots: an IPv4 candidate.
    pub(crate) numeric: bool,
    /// A dot first or after another dot (an empty label).
    pub(crate) bad_dot: bool,
}

/// Scans host name characters from `start`: one table look-up per byte, the label rules
/// folded into the same pass.
#[inline]
pub(crate) fn scan_domain(b: &[u8], start: usize) -> DomainRun {
    let (mut seen, mut bad, mut prev) = (0, 0, HOST_DOT);
    let mut end = start;
    while let Some(&c) = b.get(end) {
        let k = HOST_CLASS[c as usize];
        if k == 0 {
            break;
        }
        // Two dots in a row (or one first, as `prev` starts as a dot) make an empty label.
        bad |= k & prev;
        prev = k;
        seen |= k;
        end += 1;
    }
    DomainRun {
        start,
        end,
        numeric: seen & HOST_NAME == 0,
        bad_dot: bad & HOST_DOT != 0,
    }
}

/// Reads `1*5DIGIT` at `i` as a port: the port and where its digits end; `None` when there are
/// no digits, more than five, or the value exceeds 65535.
#[inline]
pub(crate) fn scan_port(b: &[u8], mut i: usize) -> Option<(u16, usize)> {
    let start = i;
    let mut v: u32 = 0;
    while let Some(&d) = b.get(i)
        && d.is_ascii_digit()
    {
        if i - start == 5 {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
        i += 1;
    }
    if i == start {
        return None;
    }
    u16::try_from(v).ok().map(|p| (p, i))
}

/// Parses an optional `:port` at the cursor.
#[inline]
pub(crate) fn parse_port(c: &mut Cursor<'_>) -> Result<Option<u16>> {
    if !c.eat(b':') {
        return Ok(None);
    }
    let (port, len) = scan_port(c.rest().as_bytes(), 0).ok_or(ParseError::malformed("Bad port"))?;
    c.advance(len);
    Ok(Some(port))
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
    fn ports() {
        let port = |s: &str| parse_port(&mut Cursor::new(s));
        assert_eq!(port(""), Ok(None));
        assert_eq!(port(":0"), Ok(Some(0)));
        assert_eq!(port(":00080"), Ok(Some(80)));
        assert_eq!(port(":65535"), Ok(Some(65535)));
        for bad in [":", ":x", ":65536", ":99999", ":000001", ":123456"] {
            assert!(port(bad).is_err(), "{bad}");
        }
        assert_eq!(scan_port(b"5060;lr", 0), Some((5060, 4)));
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
