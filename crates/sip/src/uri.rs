//! URIs: `sip:`, `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any other absolute URI kept as
//! opaque text (RFC 3986 scheme ":" rest). Parsing borrows from the message; comparison follows
//! RFC 3261 §19.1.4.

use std::borrow::Cow;
use std::fmt;

use crate::error::{ParseError, Result};
use crate::host::{Host, HostKind, parse_host, parse_port, scan_domain, scan_port};
use crate::params::{Params, is_hex, uri_params_end};
use crate::scan::{
    Cursor, escaped_chars_valid, escapes_valid, find_byte, is_hnv_char, is_password_char,
    is_user_char, is_user_plain_char,
};

/// A URI scheme. SIP and tel schemes are case-insensitive on the wire; `Other` keeps the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    Other(&'a str),
}

impl Scheme<'_> {
    /// Whether this is `sip` or `sips`.
    pub fn is_sip(&self) -> bool {
        matches!(self, Scheme::Sip | Scheme::Sips)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A parsed URI borrowing the message text. For `tel:` the subscriber number is [`Uri::user`];
/// for other schemes only [`Uri::opaque`] is meaningful.
///
/// Components are kept as 16-bit offsets into the text, so the value stays small enough to be
/// returned and copied cheaply on the per-packet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    scheme: SchemeKind,
    colon: u16,
    user: Part,
    password: Part,
    host: Part,
    host_kind: HostKind,
    port: Option<u16>,
    params: Part,
    headers: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemeKind {
    Sip,
    Sips,
    Tel,
    Other,
}

/// A component's byte range in the URI text; `NONE` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    start: u16,
    end: u16,
}

impl Part {
    const NONE: Part = Part {
        start: u16::MAX,
        end: u16::MAX,
    };

    fn is_none(self) -> bool {
        self.start == u16::MAX
    }

    /// `start..end`, both at most [`MAX_URI`].
    fn new(start: usize, end: usize) -> Part {
        Part {
            start: start as u16,
            end: end as u16,
        }
    }

    /// The range of `sub` within `raw` (`sub` must be a slice of `raw`).
    fn of(raw: &str, sub: &str) -> Part {
        let start = (sub.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize);
        let start = start.min(raw.len());
        Part {
            start: start as u16,
            end: (start + sub.len()).min(raw.len()) as u16,
        }
    }
}

/// URIs longer than this are rejected (offsets are 16-bit).
const MAX_URI: usize = u16::MAX as usize - 1;

impl<'a> Uri<'a> {
    /// Parses a whole string as a URI. No white space is allowed anywhere in it.
    #[inline]
    pub fn parse(s: &'a str) -> Result<Uri<'a>> {
        match Uri::scan_sip(s, true) {
            Some((uri, n)) if n == s.len() => Ok(uri),
            _ => Uri::parse_general(s),
        }
    }

    /// One pass over the common shape of a `sip:`/`sips:` URI at the start of `s`:
    /// `[user "@"] host [":" port] *(";" param)`, the user part made of plain user characters
    /// and escapes, the host a domain name or an IPv4 address. Each byte is read once. The scan
    /// stops at the first byte that cannot continue the URI and returns the URI with its
    /// length; the caller decides whether that byte may end it (`>` in a name-addr, the end of
    /// a Request-URI). With `params` false it also stops at `;` (an addr-spec, where `;` starts
    /// header parameters).
    ///
    /// `None` leaves the text to [`Uri::parse_general`], the reference parser: other schemes,
    /// passwords, IPv6 hosts, URI headers, a user part holding `;`, `?` or `,`, and every error
    /// with its reason. The scanner accepts nothing the general parser rejects and reads the
    /// same parts: `parse_general(&s[..n])` returns exactly its result (asserted in debug
    /// builds, so every test and fuzz run checks it).
    #[inline(always)] // built in place by its callers: copying a returned `Uri` stalls
    pub(crate) fn scan_sip(s: &'a str, params: bool) -> Option<(Uri<'a>, usize)> {
        let b = s.as_bytes();
        let (scheme, colon) = sip_scheme(b)?;
        let start = colon + 1;
        // A host name run, continued as a user part if what follows says so: an `@` (after
        // which the host comes) or a user character a host cannot hold.
        let run = scan_domain(b, start);
        let end = scan_user(b, run.end)?;
        let (user, host) = if b.get(end) == Some(&b'@') && end > start {
            (Some((start, end)), scan_domain(b, end + 1))
        } else if end == run.end {
            (None, run)
        } else {
            return None;
        };
        let host_text = s.get(host.start..host.end)?;
        if host_text.is_empty() || host_text.starts_with('-') || host.bad_dot {
            return None;
        }
        let host_kind = if host.numeric {
            HostKind::Ipv4(crate::host::parse_ipv4(host_text.as_bytes())?)
        } else {
            HostKind::Domain
        };
        let mut i = host.end;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let (p, e) = scan_port(b, i + 1)?;
            port = Some(p);
            i = e;
        }
        let params_start = i;
        if params {
            i = uri_params_end(b, i)?;
        }
        if i > MAX_URI {
            return None;
        }
        let uri = Uri {
            raw: s.get(..i)?,
            scheme,
            colon: colon as u16,
            user: user.map_or(Part::NONE, |(s, e)| Part::new(s, e)),
            password: Part::NONE,
            host: Part::new(host.start, host.end),
            host_kind,
            port,
            params: Part::new(params_start, i),
            headers: Part::NONE,
        };
        debug_assert_eq!(
            Uri::parse_general(uri.raw),
            Ok(uri),
            "one-pass scan of {:?}",
            uri.raw
        );
        Some((uri, i))
    }

    /// The reference parser: every scheme and form, and the reason for every error.
    pub(crate) fn parse_general(s: &'a str) -> Result<Uri<'a>> {
        if s.len() > MAX_URI {
            return Err(ParseError::malformed("URI too long"));
        }
        let colon =
            find_byte(b':', s.as_bytes()).ok_or(ParseError::malformed("Bad URI: no scheme"))?;
        let scheme_text = s.get(..colon).unwrap_or("");
        let rest = s.get(colon + 1..).unwrap_or("");
        if !is_scheme(scheme_text) {
            return Err(ParseError::malformed("Bad URI scheme"));
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            SchemeKind::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            SchemeKind::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            SchemeKind::Tel
        } else {
            SchemeKind::Other
        };
        let mut uri = Uri {
            raw: s,
            scheme,
            colon: colon as u16,
            user: Part::NONE,
            password: Part::NONE,
            host: Part::NONE,
            host_kind: HostKind::Domain,
            port: None,
            params: Part::NONE,
            headers: Part::NONE,
        };
        match scheme {
            SchemeKind::Sip | SchemeKind::Sips => parse_sip(&mut uri, rest)?,
            SchemeKind::Tel => parse_tel(&mut uri, rest)?,
            SchemeKind::Other => {
                if rest.is_empty() || rest.bytes().any(|b| b <= b' ' || b"<>\"".contains(&b)) {
                    return Err(ParseError::malformed("Bad URI"));
                }
            }
        }
        Ok(uri)
    }

    fn part(&self, p: Part) -> Option<&'a str> {
        if p.is_none() {
            None
        } else {
            self.raw.get(p.start as usize..p.end as usize)
        }
    }

    /// The URI exactly as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn scheme(&self) -> Scheme<'a> {
        match self.scheme {
            SchemeKind::Sip => Scheme::Sip,
            SchemeKind::Sips => Scheme::Sips,
            SchemeKind::Tel => Scheme::Tel,
            SchemeKind::Other => Scheme::Other(self.raw.get(..self.colon as usize).unwrap_or("")),
        }
    }

    /// The user part as written (still %-escaped); the number for `tel:`.
    pub fn user(&self) -> Option<&'a str> {
        self.part(self.user)
    }

    /// The user part with %-escapes decoded. May contain any octet, NUL included.
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user().map(unescape)
    }

    pub fn password(&self) -> Option<&'a str> {
        self.part(self.password)
    }

    /// The host; `None` for `tel:` and opaque URIs.
    pub fn host(&self) -> Option<Host<'a>> {
        self.part(self.host)
            .map(|raw| Host::from_parts(raw, self.host_kind))
    }

    /// Where `host[:port]` is in [`Uri::as_str`] (what NAT fixing rewrites); `None` for
    /// `tel:` and opaque URIs.
    pub fn hostport_span(&self) -> Option<std::ops::Range<usize>> {
        if self.host.is_none() {
            return None;
        }
        let (start, mut end) = (self.host.start as usize, self.host.end as usize);
        if self.port.is_some() {
            let digits = self
                .raw
                .get(end + 1..)
                .map_or(0, |t| t.bytes().take_while(u8::is_ascii_digit).count());
            end += 1 + digits;
        }
        Some(start..end.min(self.raw.len()))
    }

    /// The explicit port, if one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters (`;transport=tcp;lr`).
    pub fn params(&self) -> Params<'a> {
        Params::validated(self.part(self.params).unwrap_or(""), true)
    }

    /// A URI parameter by name; `Some(None)` for a flag like `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params().get(name)
    }

    /// The `?` headers part, without the `?`.
    pub fn headers(&self) -> Option<&'a str> {
        self.part(self.headers)
    }

    /// Everything after `scheme:`.
    pub fn opaque(&self) -> &'a str {
        self.raw.split_once(':').map_or("", |(_, r)| r)
    }

    /// Whether the URI carries the `lr` parameter (RFC 3261 §19.1.1, loose routing).
    pub fn is_loose_router(&self) -> bool {
        self.params().contains("lr")
    }

    /// The `transport` parameter value.
    pub fn transport(&self) -> Option<&'a str> {
        self.params().get("transport").flatten()
    }

    /// The `maddr` parameter value.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params().get("maddr").flatten()
    }

    /// URI equivalence, RFC 3261 §19.1.4. User and password compare case-sensitively after
    /// unescaping; the host case-insensitively; an absent port differs from an explicit 5060;
    /// `user`, `ttl`, `method`, `maddr` and `transport` must match when present in either; other
    /// parameters only when present in both; URI headers must all match.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        if !self
            .scheme()
            .as_str()
            .eq_ignore_ascii_case(other.scheme().as_str())
        {
            return false;
        }
        if !self.scheme().is_sip() {
            return self.raw.eq_ignore_ascii_case(other.raw);
        }
        let same_opt = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => unescape(a) == unescape(b),
            (None, None) => true,
            _ => false,
        };
        let hosts = match (self.host(), other.host()) {
            (Some(a), Some(b)) => a.equivalent(&b),
            _ => false,
        };
        hosts
            && same_opt(self.user(), other.user())
            && same_opt(self.password(), other.password())
            && self.port == other.port
            && params_equivalent(&self.params(), &other.params())
            && headers_equivalent(self.headers(), other.headers())
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// `sip:` or `sips:` in any case: the scheme and the position of its colon.
#[inline]
fn sip_scheme(b: &[u8]) -> Option<(SchemeKind, usize)> {
    if !b.get(..3)?.eq_ignore_ascii_case(b"sip") {
        return None;
    }
    match b.get(3)? {
        b':' => Some((SchemeKind::Sip, 3)),
        b's' | b'S' if b.get(4) == Some(&b':') => Some((SchemeKind::Sips, 4)),
        _ => None,
    }
}

/// Continues a user part from `i` over plain user characters and `%HH` escapes; `None` on a
/// bad escape.
#[inline]
fn scan_user(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(&c) = b.get(i) {
        if is_user_plain_char(c) {
            i += 1;
        } else if c == b'%' {
            if !(is_hex(b.get(i + 1)) && is_hex(b.get(i + 2))) {
                return None;
            }
            i += 3;
        } else {
            break;
        }
    }
    Some(i)
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

#[inline]
fn parse_sip<'a>(uri: &mut Uri<'a>, rest: &'a str) -> Result<()> {
    let raw = uri.raw;
    // The user part may hold ';', '?' and ',' (RFC 4475 §3.1.1.9), so the first '@' ends it.
    let hostpart = match find_byte(b'@', rest.as_bytes()) {
        Some(at) => {
            let userinfo = rest.get(..at).unwrap_or("");
            let (user, password) = match find_byte(b':', userinfo.as_bytes()) {
                Some(c) => (userinfo.get(..c).unwrap_or(""), userinfo.get(c + 1..)),
                None => (userinfo, None),
            };
            if user.is_empty() || !escaped_chars_valid(user, is_user_char) {
                return Err(ParseError::malformed("Bad user part in URI"));
            }
            if let Some(p) = password
                && !escaped_chars_valid(p, is_password_char)
            {
                return Err(ParseError::malformed("Bad password in URI"));
            }
            uri.user = Part::of(raw, user);
            if let Some(p) = password {
                uri.password = Part::of(raw, p);
            }
            rest.get(at + 1..).unwrap_or("")
        }
        None => rest,
    };
    let mut c = Cursor::new(hostpart);
    let host = parse_host(&mut c)?;
    uri.host = Part::of(raw, host.as_str());
    uri.host_kind = host.kind();
    uri.port = parse_port(&mut c)?;
    let tail = c.rest();
    let (params, headers) = match find_byte(b'?', tail.as_bytes()) {
        Some(q) => (tail.get(..q).unwrap_or(""), tail.get(q + 1..)),
        None => (tail, None),
    };
    if !params.is_empty() && !params.starts_with(';') {
        return Err(ParseError::malformed("Bad URI host"));
    }
    Params::uri(params)?;
    uri.params = Part::of(raw, params);
    if let Some(h) = headers {
        validate_uri_headers(h)?;
        uri.headers = Part::of(raw, h);
    }
    Ok(())
}

/// RFC 3966: `tel:` global or local number, then parameters.
fn parse_tel<'a>(uri: &mut Uri<'a>, rest: &'a str) -> Result<()> {
    let (number, params) = match find_byte(b';', rest.as_bytes()) {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let ok = |b: u8| {
        b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
    };
    if number.is_empty() || !number.bytes().all(ok) {
        return Err(ParseError::malformed("Bad tel URI"));
    }
    uri.user = Part::of(uri.raw, number);
    Params::uri(params)?;
    uri.params = Part::of(uri.raw, params);
    Ok(())
}

fn validate_uri_headers(h: &str) -> Result<()> {
    for pair in h.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.is_empty()
            || !name.bytes().all(is_hnv_char)
            || !value.bytes().all(is_hnv_char)
            || !escapes_valid(pair)
        {
            return Err(ParseError::malformed("Bad URI headers"));
        }
    }
    Ok(())
}

const SIGNIFICANT_PARAMS: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

fn params_equivalent(a: &Params<'_>, b: &Params<'_>) -> bool {
    let value_eq = |x: Option<&str>, y: Option<&str>| match (x, y) {
        (Some(x), Some(y)) => unescape(x).eq_ignore_ascii_case(&unescape(y)),
        (None, None) => true,
        _ => false,
    };
    for name in SIGNIFICANT_PARAMS {
        match (a.get(name), b.get(name)) {
            (None, None) => {}
            (Some(x), Some(y)) if value_eq(x, y) => {}
            _ => return false,
        }
    }
    a.iter().flatten().all(|p| {
        let name = unescape(p.name);
        let name = String::from_utf8_lossy(&name);
        // A repeated name compares by its first occurrence on both sides.
        match (a.get(&name), b.get(&name)) {
            (Some(x), Some(y)) => value_eq(x, y),
            _ => true,
        }
    })
}

fn headers_equivalent(a: Option<&str>, b: Option<&str>) -> bool {
    let split = |h: Option<&str>| -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<(Vec<u8>, Vec<u8>)> = h
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (unescape(n).to_ascii_lowercase(), unescape(v).into_owned())
            })
            .collect();
        v.sort();
        v
    };
    split(a) == split(b)
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2). Invalid escapes are kept as written.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match decoded {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::HostKind;
    use proptest::prelude::*;

    /// Text shaped like a SIP URI, with the characters and mistakes that send the one-pass
    /// scanner to the general parser: other schemes, passwords, `;?,` in the user part, IPv6
    /// and numeric hosts, bad escapes, long ports, URI headers, stray `@` and delimiters.
    pub(crate) fn uri_like() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                6 => Just("sip:"),
                1 => Just("SIP:"),
                1 => Just("sips:"),
                1 => Just("sIpS:"),
                1 => Just("tel:"),
                1 => Just("sip"),
                1 => Just("sipx:"),
            ],
            prop_oneof![
                4 => Just(String::new()),
                4 => "[a-z0-9]{1,6}@",
                1 => "[a-z]{1,3}%[0-9A-F]{2}@",
                2 => "[a-z0-9%.!~*'()&=+$/;?,:-]{0,8}@",
            ],
            prop_oneof![
                6 => "[a-z][a-z0-9-]{0,6}(\\.[a-z0-9-]{1,6}){0,2}",
                2 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                1 => "[a-z0-9._-]{0,12}",
                1 => "[0-9.]{0,16}",
                1 => "\\[2001:db8::[0-9]{1,2}\\]",
                1 => "\\[[0-9a-f:.]{0,12}\\]?",
            ],
            prop_oneof![
                4 => Just(String::new()),
                3 => ":[0-9]{1,4}",
                1 => ":[0-9]{0,6}",
            ],
            prop_oneof![
                6 => "(;[a-z]{1,5}(=[a-z0-9.]{1,5})?){0,3}",
                2 => "(;[a-z0-9=%.:@-]{0,6}){0,3}",
            ],
            prop_oneof![
                8 => Just(String::new()),
                1 => "\\?[a-z]{1,3}=[a-z]{1,3}",
                1 => "\\?[a-z=&%@]{0,6}",
            ],
        )
            .prop_map(|(scheme, user, host, port, params, headers)| {
                let mut s = scheme.to_owned();
                for part in [user, host, port, params, headers] {
                    s.push_str(&part);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The one-pass scanner only ever stands in for the general parser: same URI, same
        /// error, and on any prefix it accepts, the same parts.
        #[test]
        fn one_pass_scan_agrees_with_the_general_parser(
            s in uri_like(),
            tail in "[>;, \"@?]?",
        ) {
            prop_assert_eq!(Uri::parse(&s), Uri::parse_general(&s));
            let with_tail = format!("{s}{tail}");
            for params in [true, false] {
                if let Some((u, n)) = Uri::scan_sip(&with_tail, params) {
                    prop_assert_eq!(Uri::parse_general(&with_tail[..n]), Ok(u));
                }
            }
        }
    }

    #[test]
    fn sip_uri_components() {
        let u =
            Uri::parse("sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi").unwrap();
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host().unwrap().as_str(), "Example.com");
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.headers(), Some("subject=hi"));
    }

    #[test]
    fn hostport_span_is_the_host_and_written_port() {
        for (uri, hostport) in [
            (
                "sip:alice:secret@Example.com:5070;transport=tcp?x=y",
                "Example.com:5070",
            ),
            (
                "sip:a;maddr=lice@10.0.0.1:5062;transport=udp",
                "10.0.0.1:5062",
            ),
            ("sips:[::1]:05061", "[::1]:05061"),
            ("sip:who?me@h;lr", "h"),
            ("sip:host", "host"),
        ] {
            let u = Uri::parse(uri).unwrap();
            assert_eq!(u.hostport_span().map(|r| &uri[r]), Some(hostport), "{uri}");
        }
        assert_eq!(Uri::parse("tel:+1555").unwrap().hostport_span(), None);
    }

    #[test]
    fn unusual_user_parts() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().unwrap().as_ref(),
            b"user;par=u@example.net"
        );
        assert!(u.params().is_empty());
        let u = Uri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user_unescaped().unwrap().as_ref(), b"null-\0-null");
        let u = Uri::parse(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            u.user(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
    }

    #[test]
    fn ipv6_hosts_and_ports() {
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.host().unwrap().as_str(), "[2001:db8::10:5070]");
        assert_eq!(u.port(), None);
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert!(matches!(u.host().unwrap().kind(), HostKind::Ipv6(_)));
        assert_eq!(u.port(), Some(5070));
        assert!(Uri::parse("sip:2001:db8::10").is_err());
    }

    #[test]
    fn other_schemes() {
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme(), Scheme::Tel);
        assert_eq!(t.user(), Some("+1-201-555-0123"));
        assert_eq!(t.param("phone-context"), Some(Some("example.com")));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme(), Scheme::Other("soap.beep"));
        assert_eq!(o.opaque(), "//192.0.2.103:3002");
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b; lr").is_err());
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Uri::parse("sip:a%zz@b").is_err());
    }

    #[test]
    fn repeated_parameter_names_compare_reflexively() {
        let u = Uri::parse("sip:a;f;f=A").unwrap();
        assert!(u.equivalent(&u));
        assert!(!u.equivalent(&Uri::parse("sip:a;f=B").unwrap()));
    }

    /// The equivalent and non-equivalent pairs of RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_comparison_examples() {
        let eq = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in eq {
            let (ua, ub) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
            assert!(ua.equivalent(&ub), "{a} == {b}");
            assert!(ub.equivalent(&ua), "{b} == {a}");
        }
        let ne = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
        ];
        for (a, b) in ne {
            let (ua, ub) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
            assert!(!ua.equivalent(&ub), "{a} != {b}");
            assert!(!ub.equivalent(&ua), "{b} != {a}");
        }
    }
}
