//! The parsed SIP message: the original bytes, the start line, and an index of header lines.
//! Nothing beyond the start line and the header names is parsed here; typed header values are
//! parsed on access (see `access.rs`). RFC 3261 §7.

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{ParseError, Result};
use crate::header_name::HeaderName;
use crate::method::Method;
use crate::scan::{TOKEN, is_token, parse_u32, span};

/// Byte range in the message, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Messages are limited to far less than 4 GiB (see `ParseConfig::max_message`).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// As a `usize` range.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// One header line (with its folded continuation lines) in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEntry {
    pub name: HeaderName,
    /// The name as written.
    pub name_span: Span,
    /// The value with surrounding white space trimmed; may contain folding CR LF.
    pub value_span: Span,
    /// The whole line including its line ending, for removal and re-emission.
    pub line_span: Span,
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri_span: Span,
    },
    Response {
        code: u16,
        reason_span: Span,
    },
}

/// How to frame and bound a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConfig {
    /// Reliable transport: Content-Length is mandatory (RFC 3261 §18.3).
    pub stream: bool,
    /// Largest accepted message in bytes.
    pub max_message: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
    /// Read the headers of a message that failed to parse so a 400 can still be addressed:
    /// Content-Length is not enforced and a missing blank line is supplied.
    pub for_error_reply: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            stream: false,
            max_message: 65_535,
            max_headers: 512,
            for_error_reply: false,
        }
    }
}

/// A SIP request or response over its original bytes.
#[derive(Debug, Clone)]
pub struct SipMessage {
    pub(crate) raw: Bytes,
    /// The header section of `raw` (validated once), or when it is not UTF-8 a copy with invalid
    /// octets as `?` (same offsets), so typed access hands out `&str` while forwarding stays
    /// byte-exact.
    pub(crate) text: ByteString,
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<HeaderEntry>,
    /// Offset of the first header line.
    pub(crate) headers_start: u32,
    /// Offset of the empty line that ends the header section.
    pub(crate) headers_end: u32,
    pub(crate) body: Span,
    /// The top Via once read (by `check` or `top_via`): a message is asked for it several times
    /// on its way through (transaction key, reply address, relaying), and reads it once. `None`
    /// inside when it does not parse (each ask then reports the error).
    pub(crate) top_via: std::sync::OnceLock<Option<crate::headers::ViaSpans>>,
    /// The From tag (`[0]`) and To tag (`[1]`) once read, as spans of the text (`None` inside:
    /// no tag); asked for by transaction matching, dialog checks and replies alike.
    pub(crate) tags: [std::sync::OnceLock<Option<Span>>; 2],
}

/// Finds the next line starting at `pos`: (content end, next line start). Accepts CRLF and bare LF.
fn next_line(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + memchr::memchr(b'\n', b.get(pos..)?)?;
    let end = if nl > pos && b.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

fn trim_ws(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && matches!(b.get(s), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        s += 1;
    }
    while e > s && matches!(b.get(e - 1), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        e -= 1;
    }
    (s, e)
}

impl SipMessage {
    /// Parses one message from a datagram (RFC 3261 §18.3: Content-Length optional, the body
    /// otherwise runs to the end; bytes after Content-Length are ignored).
    pub fn parse(data: Bytes) -> Result<SipMessage> {
        SipMessage::parse_with(data, &ParseConfig::default())
    }

    /// Best-effort parse of a malformed datagram's headers, to address the 400 that answers it.
    pub fn parse_for_error_reply(data: &[u8]) -> Result<SipMessage> {
        let mut v = data.to_vec();
        if memchr::memmem::find(&v, b"\r\n\r\n").is_none()
            && memchr::memmem::find(&v, b"\n\n").is_none()
        {
            v.extend_from_slice(b"\r\n\r\n");
        }
        let cfg = ParseConfig {
            for_error_reply: true,
            ..ParseConfig::default()
        };
        match SipMessage::parse_with(Bytes::from(v.clone()), &cfg) {
            Ok(m) => Ok(m),
            // A bad request line: keep its method token, replace the rest, so the headers that
            // address the reply can still be read.
            Err(e) if !v.starts_with(b"SIP/") => {
                let nl = memchr::memchr(b'\n', &v).ok_or(e)?;
                let first = v.get(..nl).unwrap_or(&[]);
                let method: Vec<u8> = first.iter().copied().take_while(|&c| is_token(c)).collect();
                let method = if method.is_empty() {
                    b"UNKNOWN".to_vec()
                } else {
                    method
                };
                let mut fixed = method;
                fixed.extend_from_slice(b" sip:invalid SIP/2.0\r\n");
                fixed.extend_from_slice(v.get(nl + 1..).unwrap_or(&[]));
                SipMessage::parse_with(Bytes::from(fixed), &cfg)
            }
            Err(e) => Err(e),
        }
    }

    /// Parses one message with explicit framing rules and limits.
    pub fn parse_with(data: Bytes, cfg: &ParseConfig) -> Result<SipMessage> {
        if data.len() > cfg.max_message {
            return Err(ParseError::new(
                crate::ErrorKind::TooLarge,
                "Message too large",
            ));
        }
        let b = &data[..];
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let skip = b.iter().take_while(|c| matches!(c, b'\r' | b'\n')).count();
        let (sl_end, first_header) =
            next_line(b, skip).ok_or(ParseError::malformed("Missing end of start line"))?;
        let start = parse_start_line(b, skip, sl_end)?;
        let in_response = matches!(start, StartLine::Response { .. });
        let idx = index_headers(b, first_header, cfg).map_err(|e| e.in_response(in_response))?;
        let total = b.len();
        let head = data.slice(..idx.body_start.min(total));
        let text = ByteString::try_from(head).unwrap_or_else(|_| sanitize(b, idx.body_start));
        let mut msg = SipMessage {
            raw: data,
            text,
            start,
            headers: idx.headers,
            headers_start: first_header as u32,
            headers_end: idx.end as u32,
            body: Span::new(idx.body_start, idx.body_start),
            top_via: std::sync::OnceLock::new(),
            tags: Default::default(),
        };
        let body_end = msg
            .frame_body(idx.body_start, total, cfg)
            .map_err(|e| e.in_response(in_response))?;
        msg.body = Span::new(idx.body_start, body_end);
        if skip > 0 || body_end < total {
            msg.rebase(skip, body_end);
        }
        Ok(msg)
    }

    /// Applies Content-Length; returns where the body ends.
    fn frame_body(&self, body_start: usize, total: usize, cfg: &ParseConfig) -> Result<usize> {
        if cfg.for_error_reply {
            return Ok(total);
        }
        let stream = cfg.stream;
        let mut cl: Option<u32> = None;
        for h in self
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::ContentLength)
        {
            let v = parse_u32(self.value_of(h).trim())
                .ok_or(ParseError::malformed("Bad Content-Length header"))?;
            if cl.is_some_and(|c| c != v) {
                return Err(ParseError::malformed("Conflicting Content-Length headers"));
            }
            cl = Some(v);
        }
        match cl {
            Some(n) => {
                let end = body_start.saturating_add(n as usize);
                if end > total {
                    return Err(ParseError::malformed("Content-Length larger than body"));
                }
                Ok(end)
            }
            None if stream => Err(ParseError::malformed("Missing Content-Length header")),
            None => Ok(total),
        }
    }

    /// Cuts leading CRLFs and trailing octets off `raw` and shifts every span to match.
    fn rebase(&mut self, skip: usize, end: usize) {
        let shift = |s: &mut Span| {
            s.start = s.start.saturating_sub(skip as u32);
            s.end = s.end.saturating_sub(skip as u32);
        };
        self.raw = self.raw.slice(skip..end);
        self.top_via = std::sync::OnceLock::new();
        self.tags = Default::default();
        let text = self.text.get(skip..).unwrap_or("");
        self.text = self.text.slice_ref(text);
        match &mut self.start {
            StartLine::Request {
                method_span,
                uri_span,
                ..
            } => {
                shift(method_span);
                shift(uri_span);
            }
            StartLine::Response { reason_span, .. } => shift(reason_span),
        }
        for h in &mut self.headers {
            shift(&mut h.name_span);
            shift(&mut h.value_span);
            shift(&mut h.line_span);
        }
        self.headers_start = self.headers_start.saturating_sub(skip as u32);
        self.headers_end = self.headers_end.saturating_sub(skip as u32);
        shift(&mut self.body);
    }

    /// Text of a span of the header section.
    pub(crate) fn str_at(&self, s: Span) -> &str {
        self.text.get(s.range()).unwrap_or("")
    }

    pub(crate) fn value_of(&self, h: &HeaderEntry) -> &str {
        self.str_at(h.value_span)
    }

    /// A cheap shared handle on text taken from this message's header section (a header value,
    /// a URI part …): no copy when `part` lies inside the message, a copy otherwise.
    pub fn share(&self, part: &str) -> ByteString {
        let base = self.text.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p >= base && p + part.len() <= base + self.text.len() {
            self.text.slice_ref(part)
        } else {
            ByteString::from(part)
        }
    }

    /// The message bytes, from the start line to the end of the body.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The underlying buffer (cheap to clone).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// The header index, in message order.
    pub fn header_entries(&self) -> &[HeaderEntry] {
        &self.headers
    }

    /// The body as delimited by Content-Length (or the end of the datagram).
    pub fn body(&self) -> &[u8] {
        self.raw.get(self.body.range()).unwrap_or(&[])
    }

    /// The body as a cheap `Bytes` slice of the original buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.raw.slice(self.body.range())
    }
}

struct Index {
    headers: Vec<HeaderEntry>,
    /// Offset of the empty line.
    end: usize,
    body_start: usize,
}

/// Builds the header index from `pos` up to the empty line (RFC 3261 §7.3, folding per §7.3.1).
/// One memchr pass finds the line ends; each name is validated, classified and split from its
/// value in a single scan.
fn index_headers(b: &[u8], start: usize, cfg: &ParseConfig) -> Result<Index> {
    let tail = b.get(start..).unwrap_or(&[]);
    // The AVX2 searcher called directly: `memchr_iter` goes through a function pointer per line.
    #[cfg(target_arch = "x86_64")]
    if let Some(one) = memchr::arch::x86_64::avx2::memchr::One::new(b'\n') {
        return index_lines(b, start, one.iter(tail), cfg);
    }
    index_lines(b, start, memchr::memchr_iter(b'\n', tail), cfg)
}

/// [`index_headers`] over the offsets of the line feeds from `start`.
#[inline(always)]
fn index_lines(
    b: &[u8],
    start: usize,
    line_feeds: impl Iterator<Item = usize>,
    cfg: &ParseConfig,
) -> Result<Index> {
    let mut headers: Vec<HeaderEntry> = Vec::with_capacity(20);
    let mut pos = start;
    for nl in line_feeds {
        let next = start + nl + 1;
        let end = if next - 1 > pos && b.get(next - 2) == Some(&b'\r') {
            next - 2
        } else {
            next - 1
        };
        if end == pos {
            return Ok(Index {
                headers,
                end: pos,
                body_start: next,
            });
        }
        match b.get(pos) {
            Some(b' ' | b'\t') => fold_into_last(&mut headers, b, pos, end, next)?,
            _ => {
                if headers.len() >= cfg.max_headers {
                    return Err(ParseError::new(
                        crate::ErrorKind::TooLarge,
                        "Too many headers",
                    ));
                }
                headers.push(header_line(b, pos, end, next)?);
            }
        }
        pos = next;
    }
    Err(ParseError::malformed("Missing end of header section"))
}

/// A continuation line extends the previous header's value.
fn fold_into_last(
    headers: &mut [HeaderEntry],
    b: &[u8],
    pos: usize,
    end: usize,
    next: usize,
) -> Result<()> {
    let last = headers
        .last_mut()
        .ok_or(ParseError::malformed("Folded first header line"))?;
    let (vs, ve) = trim_ws(b, pos, end);
    if vs < ve {
        if last.value_span.is_empty() {
            // The value begins on a continuation line ("Contact:\r\n  <sip:...>").
            last.value_span.start = vs as u32;
        }
        last.value_span.end = ve as u32;
    }
    last.line_span.end = next as u32;
    Ok(())
}

/// `name *(SP/HT) ":" value` between `pos` and `end`.
#[inline]
fn header_line(b: &[u8], pos: usize, end: usize, next: usize) -> Result<HeaderEntry> {
    // `end` is a CR or LF, never a token character, so the run stops at or before it.
    let ne = span(b, pos, &TOKEN).min(end);
    let mut i = ne;
    while matches!(b.get(i), Some(b' ' | b'\t')) && i < end {
        i += 1;
    }
    if ne == pos || i >= end || b.get(i) != Some(&b':') {
        return Err(ParseError::malformed("Bad header name"));
    }
    let name = HeaderName::parse_bytes(b.get(pos..ne).unwrap_or(&[]));
    let (vs, ve) = trim_value(b, i + 1, end);
    let value_span = if vs == ve {
        Span::new(next, next)
    } else {
        Span::new(vs, ve)
    };
    Ok(HeaderEntry {
        name,
        name_span: Span::new(pos, ne),
        value_span,
        line_span: Span::new(pos, next),
    })
}

/// [`trim_ws`] for the value of a header line, over a slice: no bounds check per byte.
#[inline]
fn trim_value(b: &[u8], s: usize, e: usize) -> (usize, usize) {
    let v = b.get(s..e).unwrap_or(&[]);
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let Some(lead) = v.iter().position(|c| !ws(c)) else {
        return (e, e);
    };
    let trail = v.iter().rposition(|c| !ws(c)).map_or(lead, |p| p + 1);
    let r = (s + lead, s + trail);
    debug_assert_eq!(r, trim_ws(b, s, e));
    r
}

/// Copies the header section replacing each octet of an invalid UTF-8 sequence with `?`.
fn sanitize(b: &[u8], header_len: usize) -> ByteString {
    let mut out = b.get(..header_len).unwrap_or(b).to_vec();
    let mut i = 0;
    while i < header_len {
        match std::str::from_utf8(out.get(i..header_len).unwrap_or(&[])) {
            Ok(_) => break,
            Err(e) => {
                let bad = i + e.valid_up_to();
                let n = e.error_len().unwrap_or(header_len - bad).max(1);
                for c in out.iter_mut().skip(bad).take(n) {
                    *c = b'?';
                }
                i = bad + n;
            }
        }
    }
    ByteString::from(String::from_utf8_lossy(&out).into_owned())
}

/// RFC 3261 §7.1 / §7.2: `Method SP Request-URI SP SIP-Version` or
/// `SIP-Version SP Status-Code SP Reason-Phrase`. Exactly one SP between elements.
fn parse_start_line(b: &[u8], s: usize, e: usize) -> Result<StartLine> {
    let line = b.get(s..e).unwrap_or(&[]);
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line, s).map_err(|err| err.in_response(true));
    }
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or(&[]);
    let uri = parts
        .next()
        .ok_or(ParseError::malformed("Bad request line"))?;
    let version = parts
        .next()
        .ok_or(ParseError::malformed("Bad request line"))?;
    if method.is_empty() || !method.iter().all(|&c| is_token(c)) {
        return Err(ParseError::malformed("Bad method"));
    }
    if uri.is_empty() || uri.iter().any(|&c| c <= b' ' || c == 0x7f) {
        return Err(ParseError::malformed("Bad Request-URI"));
    }
    check_version(version)?;
    let method_span = Span::new(s, s + method.len());
    let uri_start = s + method.len() + 1;
    // A token is ASCII, so this is what `Method::from_token` makes of it as text.
    let method_kind = Method::from_bytes(method);
    Ok(StartLine::Request {
        method: method_kind,
        method_span,
        uri_span: Span::new(uri_start, uri_start + uri.len()),
    })
}

fn parse_status_line(line: &[u8], s: usize) -> Result<StartLine> {
    let mut parts = line.splitn(3, |&c| c == b' ');
    check_version(parts.next().unwrap_or(&[]))?;
    let code = parts
        .next()
        .ok_or(ParseError::malformed("Bad status line"))?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::malformed("Bad status code"));
    }
    let code = code.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
    if !(100..=699).contains(&code) {
        return Err(ParseError::malformed("Bad status code"));
    }
    let reason = parts.next().unwrap_or(&[]);
    if reason.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Err(ParseError::malformed("Bad reason phrase"));
    }
    let rs = s + line.len() - reason.len();
    Ok(StartLine::Response {
        code,
        reason_span: Span::new(rs, s + line.len()),
    })
}

/// Only SIP/2.0 is spoken; another well-formed version is 505 (RFC 3261 §8.2.2... §21.5.7).
fn check_version(v: &[u8]) -> Result<()> {
    // As written nearly always; the case-insensitive compare decides the rest.
    if v == b"SIP/2.0" || v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].iter().all(|&c| c.is_ascii_digit() || c == b'.')
        && v[4..].iter().filter(|&&c| c == b'.').count() == 1;
    if well_formed {
        Err(ParseError::new(
            crate::ErrorKind::VersionNotSupported,
            "Version Not Supported",
        ))
    } else {
        Err(ParseError::malformed("Bad SIP version"))
    }
}
