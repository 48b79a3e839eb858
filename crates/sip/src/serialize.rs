//! Building messages: new requests and responses, and forwarding an original message with an
//! edit list applied. Untouched header lines are copied from the original bytes in as few runs
//! as possible, so unknown headers leave exactly as they arrived. Byte-range patches of the
//! original (OpenSIPS "lumps", what textops records) are applied while those bytes are copied.

use std::ops::Range;

use bytes::Bytes;

use crate::header_name::HeaderName;
use crate::message::SipMessage;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    InsertBefore(String),
    Remove,
    Replace(String),
    InsertAfter(String),
}

impl Op {
    fn order(&self) -> u8 {
        match self {
            Op::InsertBefore(_) => 0,
            Op::Remove | Op::Replace(_) => 1,
            Op::InsertAfter(_) => 2,
        }
    }
}

/// Bytes `start..end` of the original message replaced by `with` (an empty range inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patch {
    start: usize,
    end: usize,
    with: Bytes,
}

impl Patch {
    /// Whether this patch changes bytes of `start..end`. An insertion clashes only with a range
    /// that strictly contains its point; ranges that merely touch do not clash.
    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.start < end && start < self.end
    }
}

/// Changes to apply to a message when it is serialized (what a proxy does to a request it
/// forwards: new Request-URI, a new top Via, Record-Route, header edits, a new body).
/// Header positions are indexes into [`SipMessage::header_entries`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    request_uri: Option<String>,
    /// A new status line (responses only): code and reason phrase.
    status: Option<(u16, String)>,
    first: Vec<String>,
    ops: Vec<(usize, Op)>,
    last: Vec<String>,
    body: Option<(Bytes, Option<String>)>,
    force_content_length: bool,
    /// Rewrites of byte ranges of the original message, sorted by range, never overlapping.
    patches: Vec<Patch>,
}

fn line(name: &str, value: &str) -> String {
    let mut s = String::with_capacity(name.len() + value.len() + 2);
    s.push_str(name);
    s.push_str(": ");
    s.push_str(value);
    s
}

impl Edits {
    pub fn new() -> Edits {
        Edits::default()
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Edits::default()
    }

    /// Replaces the status code and reason phrase (responses only).
    pub fn set_status(&mut self, code: u16, reason: impl Into<String>) -> &mut Self {
        self.status = Some((code, reason.into()));
        self
    }

    /// Replaces the Request-URI (requests only).
    pub fn set_request_uri(&mut self, uri: impl Into<String>) -> &mut Self {
        self.request_uri = Some(uri.into());
        self
    }

    /// Adds a header above all others (a new top Via). Later calls go above earlier ones.
    pub fn add_first(&mut self, name: &str, value: &str) -> &mut Self {
        self.first.insert(0, line(name, value));
        self
    }

    /// Adds a header above the message's own headers, below those added this way before it
    /// (`insert_hf`: successive calls keep their order). A Via added later with
    /// [`Edits::add_first`] still goes on top.
    pub fn add_top(&mut self, name: &str, value: &str) -> &mut Self {
        self.first.push(line(name, value));
        self
    }

    /// Adds a header after all others.
    pub fn append(&mut self, name: &str, value: &str) -> &mut Self {
        self.last.push(line(name, value));
        self
    }

    pub fn insert_before(&mut self, index: usize, name: &str, value: &str) -> &mut Self {
        self.ops.push((index, Op::InsertBefore(line(name, value))));
        self
    }

    /// As [`Edits::insert_before`], above the lines inserted there before (diversion's newest
    /// Diversion on top).
    pub fn insert_before_first(&mut self, index: usize, name: &str, value: &str) -> &mut Self {
        self.ops
            .insert(0, (index, Op::InsertBefore(line(name, value))));
        self
    }

    /// How many lines [`Edits::append`] has added.
    pub fn appended(&self) -> usize {
        self.last.len()
    }

    /// Adds a header after the message's own, as the `at`-th of those appended (0: first).
    pub fn append_at(&mut self, at: usize, name: &str, value: &str) -> &mut Self {
        let at = at.min(self.last.len());
        self.last.insert(at, line(name, value));
        self
    }

    pub fn insert_after(&mut self, index: usize, name: &str, value: &str) -> &mut Self {
        self.ops.push((index, Op::InsertAfter(line(name, value))));
        self
    }

    /// Removes a whole header line.
    pub fn remove(&mut self, index: usize) -> &mut Self {
        // A removal overrides an earlier replacement of the line.
        self.ops
            .retain(|(i, op)| !(*i == index && matches!(op, Op::Replace(_))));
        self.ops.push((index, Op::Remove));
        self
    }

    /// Replaces a header line's value, keeping its name as written; a later replacement of the
    /// same line wins.
    pub fn replace_value(&mut self, index: usize, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        match self
            .ops
            .iter_mut()
            .find(|(i, op)| *i == index && matches!(op, Op::Replace(_)))
        {
            Some((_, op)) => *op = Op::Replace(value),
            None => self.ops.push((index, Op::Replace(value))),
        }
        self
    }

    /// Whether header line `index` is already removed.
    pub fn is_removed(&self, index: usize) -> bool {
        self.ops
            .iter()
            .any(|(i, op)| *i == index && matches!(op, Op::Remove))
    }

    /// The value a header line was given with [`Edits::replace_value`], if any.
    pub fn replaced_value(&self, index: usize) -> Option<&str> {
        self.ops.iter().find_map(|(i, op)| match op {
            Op::Replace(v) if *i == index => Some(v.as_str()),
            _ => None,
        })
    }

    /// Replaces the body; Content-Length is rewritten and Content-Type too when given.
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) -> &mut Self {
        self.body = Some((body, content_type.map(str::to_owned)));
        self
    }

    /// Rewrites `range` of the original message bytes ([`SipMessage::as_bytes`]) to `with` when
    /// the message is serialized; an empty range inserts `with` there. The range is taken from
    /// the message as received, whatever other patches do, as OpenSIPS lumps are.
    ///
    /// Returns false and records nothing when the range overlaps an earlier patch (several
    /// insertions at one point are kept, in the order they were made). A patch from the body's
    /// first byte on makes the patched body the new one, with Content-Length rewritten (and
    /// Content-Type kept). When serializing, a patch is dropped when it lies in a header line
    /// that is removed or replaced, in a first line that is rebuilt, or in a body given with
    /// [`Edits::set_body`]; and when it crosses from one stretch of original bytes into another
    /// that is not copied right after it (into such a line, into a line with lines inserted
    /// before it, or from the header lines into the blank line or the body).
    pub fn patch(&mut self, range: Range<usize>, with: impl Into<Bytes>) -> bool {
        if !self.can_patch(range.clone()) {
            return false;
        }
        let at = self.patch_slot(&range);
        self.patches.insert(
            at,
            Patch {
                start: range.start,
                end: range.end,
                with: with.into(),
            },
        );
        true
    }

    /// Whether a patch touches `range` of the original bytes (an insertion at either end
    /// included).
    pub fn patched_within(&self, range: Range<usize>) -> bool {
        self.patches
            .iter()
            .any(|p| p.start <= range.end && p.end >= range.start)
    }

    /// Whether [`Edits::patch`] would accept `range`.
    pub fn can_patch(&self, range: Range<usize>) -> bool {
        if range.start > range.end {
            return false;
        }
        // Patches are sorted and disjoint: only the neighbours of the slot can clash.
        let at = self.patch_slot(&range);
        let clash = |i: usize| {
            self.patches
                .get(i)
                .is_some_and(|p| p.overlaps(range.start, range.end))
        };
        !clash(at) && !at.checked_sub(1).is_some_and(clash)
    }

    /// Where a patch of `range` goes: after every patch that sorts before or equal to it.
    fn patch_slot(&self, range: &Range<usize>) -> usize {
        self.patches
            .partition_point(|p| (p.start, p.end) <= (range.start, range.end))
    }

    /// Ensures a Content-Length header is present (required when a datagram without one is
    /// forwarded over a stream, RFC 3261 §18.3).
    pub fn force_content_length(&mut self) -> &mut Self {
        self.force_content_length = true;
        self
    }

    /// Removes the topmost Via value, as a proxy does when forwarding a response (RFC 3261
    /// §16.7 step 3). When the top line holds several values only the first is taken out.
    pub fn remove_top_via(&mut self, msg: &SipMessage) -> &mut Self {
        let Some(h) = msg.headers().find(|h| h.name == HeaderName::Via) else {
            return self;
        };
        let mut parts = crate::scan::CommaSplit::new(h.value);
        parts.next();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            self.remove(h.index)
        } else {
            self.replace_value(h.index, rest.join(", "))
        }
    }

    /// Adds a Record-Route value above the existing ones (RFC 3261 §16.6 step 4).
    pub fn add_record_route(&mut self, msg: &SipMessage, value: &str) -> &mut Self {
        match msg.headers().find(|h| h.name == HeaderName::RecordRoute) {
            Some(h) => self.insert_before(h.index, "Record-Route", value),
            None => self.add_first_after_via(msg, "Record-Route", value),
        }
    }

    /// Adds a header right after the Via headers.
    fn add_first_after_via(&mut self, msg: &SipMessage, name: &str, value: &str) -> &mut Self {
        match msg.headers().filter(|h| h.name == HeaderName::Via).last() {
            Some(h) => self.insert_after(h.index, name, value),
            None => self.append(name, value),
        }
    }
}

/// `uri` as a Request-URI: a SIP URI's `?` headers part is not allowed there (RFC 3261
/// §19.1.1), so a target that brought one (a redirect's or a registration's Contact, a
/// script's `$ru`) is sent without it.
fn request_uri_of(uri: &str) -> &str {
    if !uri.as_bytes().contains(&b'?') {
        return uri;
    }
    match crate::uri::Uri::parse(uri) {
        Ok(u) if u.scheme().is_sip() => match u.headers() {
            // The headers part is the URI's last.
            Some(h) => uri.get(..uri.len() - h.len() - 1).unwrap_or(uri),
            None => uri,
        },
        _ => uri,
    }
}

fn push_line(out: &mut Vec<u8>, l: &str) {
    out.extend_from_slice(l.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Walks the sorted patches along the original bytes while they are copied out, in order.
struct Patcher<'a> {
    raw: &'a [u8],
    patches: &'a [Patch],
    next: usize,
}

impl<'a> Patcher<'a> {
    fn new(raw: &'a [u8], patches: &'a [Patch]) -> Patcher<'a> {
        Patcher {
            raw,
            patches,
            next: 0,
        }
    }

    /// Copies `range` of the original with the patches inside it, insertions at either end
    /// included. A patch that starts inside and ends beyond is dropped: the bytes after `range`
    /// are not copied as they stand (other lines may go between).
    fn copy(&mut self, out: &mut Vec<u8>, range: Range<usize>) {
        let mut pos = range.start;
        while let Some(p) = self.patches.get(self.next) {
            if p.start > range.end || (p.start == range.end && p.end > p.start) {
                break;
            }
            self.next += 1;
            if p.start < pos || p.end > range.end {
                continue;
            }
            out.extend_from_slice(self.raw.get(pos..p.start).unwrap_or(&[]));
            out.extend_from_slice(&p.with);
            pos = p.end;
        }
        out.extend_from_slice(self.raw.get(pos..range.end).unwrap_or(&[]));
    }

    /// Passes over `range` of the original, which is not copied (a removed or rewritten line):
    /// the patches that start inside it are dropped. An insertion at its start went out with
    /// the stretch before; one at its end goes with the stretch after.
    fn skip(&mut self, range: Range<usize>) {
        while self
            .patches
            .get(self.next)
            .is_some_and(|p| p.start < range.end)
        {
            self.next += 1;
        }
    }
}

impl SipMessage {
    /// The message with `edits` applied. With no edits the result equals [`SipMessage::as_bytes`].
    pub fn serialize(&self, edits: &Edits) -> Vec<u8> {
        let raw = self.as_bytes();
        let body_start = self.body.start as usize;
        // Patches from the body's first byte on rewrite the body; the others the lines above.
        let split = edits.patches.partition_point(|p| p.start < body_start);
        let (head_patches, body_patches) = edits.patches.split_at(split);
        let patched_body = (edits.body.is_none() && !body_patches.is_empty()).then(|| {
            let mut b = Vec::with_capacity(self.body.len() + 64);
            Patcher::new(raw, body_patches).copy(&mut b, self.body.range());
            b
        });
        let new_body = match (&edits.body, &patched_body) {
            (Some((b, _)), _) => Some(&b[..]),
            (None, Some(b)) => Some(&b[..]),
            (None, None) => None,
        };
        let mut out = Vec::with_capacity(raw.len() + 256);
        let mut patcher = Patcher::new(raw, head_patches);
        let hs = self.headers_start as usize;
        match (&edits.request_uri, self.method_str(), &edits.status) {
            (Some(uri), Some(method), _) => {
                out.extend_from_slice(method.as_bytes());
                out.push(b' ');
                out.extend_from_slice(request_uri_of(uri).as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
                patcher.skip(0..hs);
            }
            (_, None, Some((code, reason))) => {
                out.extend_from_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
                patcher.skip(0..hs);
            }
            _ => patcher.copy(&mut out, 0..hs.min(raw.len())),
        }
        for l in &edits.first {
            push_line(&mut out, l);
        }
        self.copy_headers(edits, new_body.is_some(), &mut patcher, &mut out);
        for l in &edits.last {
            push_line(&mut out, l);
        }
        let body = new_body.unwrap_or(self.body());
        if let Some((_, Some(ct))) = &edits.body {
            push_line(&mut out, &line("Content-Type", ct));
        }
        let has_cl = self.header(HeaderName::ContentLength).is_some();
        if new_body.is_some() || (edits.force_content_length && !has_cl) {
            push_line(&mut out, &line("Content-Length", &body.len().to_string()));
        }
        let blank = self.headers_end as usize..body_start;
        if raw.get(blank.clone()).is_some() {
            patcher.copy(&mut out, blank);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(body);
        out
    }

    /// Copies header lines, applying ops and patches; runs of untouched lines go in one copy.
    /// `new_body`: the body changes, so Content-Length is written apart.
    fn copy_headers(
        &self,
        edits: &Edits,
        new_body: bool,
        patcher: &mut Patcher<'_>,
        out: &mut Vec<u8>,
    ) {
        let (hs, he) = (self.headers_start as usize, self.headers_end as usize);
        if edits.ops.is_empty() && !new_body {
            // Nothing to change among the lines: one copy.
            patcher.copy(out, hs..he);
            return;
        }
        let mut ops: Vec<&(usize, Op)> = edits.ops.iter().collect();
        ops.sort_by_key(|(i, op)| (*i, op.order()));
        let replacing_ct = matches!(&edits.body, Some((_, Some(_))));
        let mut ops = ops.into_iter().peekable();
        let mut run_start = hs;
        for (i, h) in self.headers.iter().enumerate() {
            let dropped = (new_body && h.name == HeaderName::ContentLength)
                || (replacing_ct && h.name == HeaderName::ContentType);
            let touched = dropped || ops.peek().is_some_and(|(j, _)| *j == i);
            if !touched {
                continue;
            }
            patcher.copy(out, run_start..h.line_span.start as usize);
            let mut keep = !dropped;
            let mut after = Vec::new();
            while let Some((_, op)) = ops.next_if(|(j, _)| *j == i) {
                match op {
                    Op::InsertBefore(l) => push_line(out, l),
                    Op::Remove => keep = false,
                    Op::Replace(v) if keep => {
                        out.extend_from_slice(self.str_at(h.name_span).as_bytes());
                        out.extend_from_slice(b": ");
                        push_line(out, v);
                        keep = false;
                    }
                    Op::Replace(_) => {}
                    Op::InsertAfter(l) => after.push(l),
                }
            }
            if keep {
                patcher.copy(out, h.line_span.range());
            } else {
                patcher.skip(h.line_span.range());
            }
            for l in after {
                push_line(out, l);
            }
            run_start = h.line_span.end as usize;
        }
        patcher.copy(out, run_start..he);
    }
}

/// Builds a request from scratch.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    buf: Vec<u8>,
}

impl RequestBuilder {
    pub fn new(method: &str, uri: &str) -> RequestBuilder {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(method.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(uri.as_bytes());
        buf.extend_from_slice(b" SIP/2.0\r\n");
        RequestBuilder { buf }
    }

    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        push_line(&mut self.buf, &line(name, value));
        self
    }

    /// Finishes with Content-Length and the body.
    pub fn body(mut self, body: &[u8]) -> Vec<u8> {
        push_line(
            &mut self.buf,
            &line("Content-Length", &body.len().to_string()),
        );
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(body);
        self.buf
    }

    /// Finishes with `Content-Length: 0`.
    pub fn build(self) -> Vec<u8> {
        self.body(&[])
    }
}

/// Builds a response, usually to a received request (RFC 3261 §8.2.6.2: Via, From, Call-ID and
/// CSeq copied; To copied with a tag added when it has none).
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    buf: Vec<u8>,
}

impl ResponseBuilder {
    pub fn new(code: u16, reason: &str) -> ResponseBuilder {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"SIP/2.0 ");
        if (100..1000).contains(&code) {
            let digits = [code / 100, code / 10 % 10, code % 10];
            buf.extend(digits.iter().map(|&d| b'0' + d as u8));
        } else {
            buf.extend_from_slice(code.to_string().as_bytes());
        }
        buf.push(b' ');
        buf.extend_from_slice(reason.as_bytes());
        buf.extend_from_slice(b"\r\n");
        ResponseBuilder { buf }
    }

    /// A reply to `req`. `to_tag` is added to To unless it already has a tag (never for 100).
    /// Record-Route is copied for 18x and 2xx replies, which may create a dialog (§12.1.1).
    pub fn reply_to(
        req: &SipMessage,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> ResponseBuilder {
        let mut b = ResponseBuilder::new(code, reason);
        // OpenSIPS' order: every Via, Record-Route, To, From, Call-ID, CSeq.
        let copy = |b: ResponseBuilder, name: HeaderName| {
            req.headers().filter(|h| h.name == name).fold(b, |b, h| {
                b.header(h.name.as_str().unwrap_or(h.name_str), h.value)
            })
        };
        b = copy(b, HeaderName::Via);
        if (180..300).contains(&code) {
            b = copy(b, HeaderName::RecordRoute);
        }
        if let Some(h) = req.headers().find(|h| h.name == HeaderName::To) {
            let has_tag = req.to_header().is_ok_and(|t| t.tag().is_some());
            b = match to_tag {
                Some(tag) if !has_tag && code > 100 => {
                    b.header("To", &format!("{};tag={tag}", h.value))
                }
                _ => b.header("To", h.value),
            };
        }
        for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
            if let Some(h) = req.headers().find(|h| h.name == name) {
                b = b.header(h.name.as_str().unwrap_or(h.name_str), h.value);
            }
        }
        b
    }

    pub fn header(mut self, name: &str, value: &str) -> ResponseBuilder {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Finishes with Content-Length and the body.
    pub fn body(mut self, body: &[u8]) -> Vec<u8> {
        push_line(
            &mut self.buf,
            &line("Content-Length", &body.len().to_string()),
        );
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(body);
        self.buf
    }

    /// Finishes with `Content-Length: 0`.
    pub fn build(self) -> Vec<u8> {
        self.body(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP p3.example.com;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
X-Unknown:   kept  exactly ;; ,,\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:rr1.example.com;lr>\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn msg() -> SipMessage {
        SipMessage::parse(Bytes::from_static(REQ)).unwrap()
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn no_edits_is_identity() {
        assert_eq!(msg().serialize(&Edits::new()), REQ);
    }

    /// A new Request-URI loses a SIP URI's headers part; a `?` in its user part stays.
    #[test]
    fn a_request_uri_is_written_without_uri_headers() {
        for (set, written) in [
            (
                "sip:a@10.0.0.1:5062?Route=%3Csip:c%3E",
                "sip:a@10.0.0.1:5062",
            ),
            (
                "sips:b@h;transport=tls?Subject=x&Replaces=y",
                "sips:b@h;transport=tls",
            ),
            ("sip:who?me@h;lr", "sip:who?me@h;lr"),
            ("sip:who?me@h?x=1", "sip:who?me@h"),
            ("tel:+1555?x", "tel:+1555?x"),
        ] {
            let mut e = Edits::new();
            e.set_request_uri(set);
            let out = text(msg().serialize(&e));
            assert!(
                out.starts_with(&format!("INVITE {written} SIP/2.0\r\n")),
                "{set}: {out}"
            );
        }
    }

    #[test]
    fn proxy_edits() {
        let m = msg();
        let mut e = Edits::new();
        e.set_request_uri("sip:bob@192.0.2.4:5062");
        e.add_first("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp");
        e.add_record_route(&m, "<sip:proxy.example.com;lr>");
        e.replace_value(2, "69");
        let out = text(m.serialize(&e));
        assert!(out.starts_with(
            "INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP p1"
        ));
        assert!(out.contains("Max-Forwards: 69\r\n"));
        assert!(out.contains("X-Unknown:   kept  exactly ;; ,,\r\n"));
        assert!(out.contains(
            "Record-Route: <sip:proxy.example.com;lr>\r\nRecord-Route: <sip:rr1.example.com;lr>\r\n"
        ));
        assert!(out.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
    }

    #[test]
    fn top_via_removal_splits_a_combined_line() {
        let m = msg();
        let once = text(m.serialize(Edits::new().remove_top_via(&m)));
        assert!(once.contains(
            "\r\nVia: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP p3"
        ));
        assert!(!once.contains("p1.example.com"));
        let m2 = SipMessage::parse(Bytes::from(once)).unwrap();
        let twice = text(m2.serialize(Edits::new().remove_top_via(&m2)));
        assert!(
            twice.contains("\r\nVia: SIP/2.0/UDP p3.example.com;branch=z9hG4bK3\r\nMax-Forwards")
        );
        assert_eq!(
            SipMessage::parse(Bytes::from(twice))
                .unwrap()
                .vias()
                .count(),
            1
        );
    }

    #[test]
    fn insert_remove_and_append() {
        let m = msg();
        let mut e = Edits::new();
        e.insert_before(3, "X-Before", "b")
            .insert_after(3, "X-After", "a")
            .remove(3)
            .append("X-Last", "z");
        let out = text(m.serialize(&e));
        assert!(out.contains("Max-Forwards: 70\r\nX-Before: b\r\nX-After: a\r\nTo: Bob"));
        assert!(!out.contains("X-Unknown"));
        assert!(out.contains("Content-Length: 4\r\nX-Last: z\r\n\r\nv=0\n"));
    }

    #[test]
    fn new_body_rewrites_length_and_type() {
        let m = msg();
        let mut e = Edits::new();
        e.set_body(Bytes::from_static(b"hello world"), Some("text/plain"));
        let out = SipMessage::parse(Bytes::from(m.serialize(&e))).unwrap();
        assert_eq!(out.body(), b"hello world");
        assert_eq!(out.content_length().unwrap(), Some(11));
        assert_eq!(out.header_count(HeaderName::ContentLength), 1);
        assert!(out.content_type().unwrap().unwrap().is("text", "plain"));
    }

    #[test]
    fn forced_content_length_for_streams() {
        let dgram = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\nbody";
        let m = SipMessage::parse(Bytes::from_static(dgram)).unwrap();
        let out = text(m.serialize(Edits::new().force_content_length()));
        assert!(out.ends_with("Content-Length: 4\r\n\r\nbody"));
        let with = msg();
        let same = with.serialize(Edits::new().force_content_length());
        assert_eq!(same, REQ, "an existing Content-Length is kept");
    }

    #[test]
    fn replies_copy_the_right_headers() {
        let m = msg();
        let r = text(ResponseBuilder::reply_to(&m, 180, "Ringing", Some("abc")).build());
        assert!(r.starts_with(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2"
        ));
        assert!(r.contains("To: Bob <sip:bob@biloxi.com>;tag=abc\r\n"));
        assert!(r.contains("Record-Route: <sip:rr1.example.com;lr>\r\n"));
        assert!(r.contains("CSeq: 314159 INVITE\r\n"));
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
        assert!(!r.contains("X-Unknown") && !r.contains("Max-Forwards"));
        let r = text(ResponseBuilder::reply_to(&m, 100, "Trying", Some("abc")).build());
        assert!(
            r.contains("To: Bob <sip:bob@biloxi.com>\r\n"),
            "no tag on 100"
        );
        assert!(!r.contains("Record-Route"));
        let r = text(
            ResponseBuilder::reply_to(&m, 486, "Busy Here", Some("t"))
                .header("Retry-After", "60")
                .build(),
        );
        let p = SipMessage::parse(Bytes::from(r)).unwrap();
        p.check().unwrap();
        assert_eq!(
            (p.status(), p.reason_phrase()),
            (Some(486), Some("Busy Here"))
        );
        assert_eq!(p.to_tag().unwrap(), Some("t"));
        assert_eq!(p.header(HeaderName::RetryAfter), Some("60"));
    }

    /// The range of the first occurrence of `needle` in [`REQ`].
    fn at(needle: &str) -> Range<usize> {
        let start = REQ
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        start..start + needle.len()
    }

    #[test]
    fn patches_rewrite_lines_and_the_body_with_its_length() {
        let m = msg();
        let mut e = Edits::new();
        assert!(e.patch(at("Bob <"), Bytes::from_static(b"Robert <")));
        let body_end = REQ.len();
        assert!(e.patch(body_end..body_end, Bytes::from_static(b"s=x\n")));
        assert!(e.patch(body_end - 4..body_end - 4, Bytes::from_static(b"x=1\n")));
        assert!(
            !e.is_empty(),
            "tm relays the edited reply only when edits exist"
        );
        let out = text(m.serialize(&e));
        assert!(out.starts_with("INVITE sip:bob@biloxi.com SIP/2.0\r\n"));
        assert!(
            out.contains("\r\nTo: Robert <sip:bob@biloxi.com>\r\n"),
            "{out}"
        );
        assert!(out.contains("X-Unknown:   kept  exactly ;; ,,\r\n"));
        assert!(out.ends_with("\r\n\r\nx=1\nv=0\ns=x\n"), "{out}");
        let p = SipMessage::parse(Bytes::from(out)).unwrap();
        assert_eq!(p.content_length().unwrap(), Some(12));
        assert_eq!(p.header_count(HeaderName::ContentLength), 1);
        // Header patches alone leave Content-Length as it was.
        let mut e = Edits::new();
        e.patch(at("70"), Bytes::from_static(b"7"));
        let out = text(m.serialize(&e));
        assert!(out.contains("\r\nMax-Forwards: 7\r\n"));
        assert!(out.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
    }

    #[test]
    fn patches_in_removed_or_replaced_lines_are_dropped() {
        let m = msg();
        let mut e = Edits::new();
        e.remove(3).replace_value(2, "69");
        e.insert_before(5, "X-Before", "b")
            .insert_after(5, "X-After", "a");
        assert!(e.patch(at("kept"), Bytes::from_static(b"gone")));
        assert!(e.patch(at("70"), Bytes::from_static(b"1")));
        // From the end of the removed line into the next one.
        assert!(e.patch(at(";; ,,\r\nTo: Bob"), Bytes::from_static(b"To: Eve")));
        // Inside a kept line that has lines inserted around it.
        assert!(e.patch(at("Alice"), Bytes::from_static(b"Carol")));
        // At the start of the removed line (the end of the one before).
        let x = at("X-Unknown").start;
        assert!(e.patch(x..x, Bytes::from_static(b"X-Kept: 1\r\n")));
        let out = text(m.serialize(&e));
        assert!(!out.contains("gone") && !out.contains("Eve"), "{out}");
        assert!(
            out.contains("\r\nMax-Forwards: 69\r\nX-Kept: 1\r\nTo: Bob <"),
            "{out}"
        );
        assert!(
            out.contains("\r\nX-Before: b\r\nFrom: Carol <sip:alice@atlanta.com>;tag=1928301774\r\nX-After: a\r\n"),
            "{out}"
        );
        assert!(out.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
    }

    #[test]
    fn overlapping_patches_are_refused() {
        let mut e = Edits::new();
        assert!(e.patch(10..20, Bytes::from_static(b"a")));
        assert!(!e.patch(15..25, Bytes::from_static(b"b")));
        assert!(!e.patch(5..11, Bytes::from_static(b"b")));
        assert!(!e.patch(10..20, Bytes::from_static(b"b")));
        assert!(!e.patch(12..12, Bytes::from_static(b"b")), "inside a range");
        let (start, end) = (30, 29);
        assert!(!e.patch(start..end, Bytes::from_static(b"b")), "reversed");
        assert!(
            e.patch(20..22, Bytes::from_static(b"c")),
            "touching is fine"
        );
        assert!(e.patch(10..10, Bytes::from_static(b"d")));
        assert!(e.patch(10..10, Bytes::from_static(b"e")));
        assert!(e.can_patch(0..10) && !e.can_patch(0..11));
        let m = SipMessage::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nX: 0123456789ABCDEFGHIJKLMN\r\n\r\n",
        ))
        .unwrap();
        let mut e = Edits::new();
        let base = 25 + 3;
        e.patch(base + 2..base + 4, Bytes::from_static(b"__"));
        e.patch(base + 2..base + 2, Bytes::from_static(b"<"));
        e.patch(base + 2..base + 2, Bytes::from_static(b"["));
        e.patch(base + 4..base + 4, Bytes::from_static(b">"));
        e.patch(base + 4..base + 6, Bytes::from_static(b""));
        let out = text(m.serialize(&e));
        assert!(out.contains("\r\nX: 01<[__>6789ABC"), "{out}");
    }

    #[test]
    fn a_new_body_wins_over_body_patches() {
        let m = msg();
        let mut e = Edits::new();
        let end = REQ.len();
        e.patch(end - 1..end, Bytes::from_static(b"!!"));
        e.set_body(Bytes::from_static(b"new"), None);
        let out = text(m.serialize(&e));
        assert!(out.ends_with("Content-Length: 3\r\n\r\nnew"), "{out}");
    }

    #[test]
    fn patches_keep_other_bytes_as_they_are() {
        let raw: &[u8] = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\nContent-Length: 6\r\n\r\ncaf\xe9\x00\x01";
        let m = SipMessage::parse(Bytes::from_static(raw)).unwrap();
        let mut e = Edits::new();
        e.patch(25..32, Bytes::from_static(b"Topic"));
        let out = m.serialize(&e);
        assert_eq!(
            out,
            b"MESSAGE sip:a@b SIP/2.0\r\nTopic: caf\xe9\r\nContent-Length: 6\r\n\r\ncaf\xe9\x00\x01"
        );
        let mut e = Edits::new();
        let end = raw.len();
        e.patch(end - 2..end - 1, Bytes::from_static(b"\xff\xfe"));
        let out = m.serialize(&e);
        assert!(out.ends_with(b"Content-Length: 7\r\n\r\ncaf\xe9\xff\xfe\x01"));
    }

    #[test]
    fn request_builder() {
        let b = RequestBuilder::new("OPTIONS", "sip:x@192.0.2.1")
            .header("Via", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb")
            .header("From", "<sip:y@z>;tag=1")
            .header("To", "<sip:x@192.0.2.1>")
            .header("Call-ID", "c1")
            .header("CSeq", "1 OPTIONS")
            .body(b"xyz");
        let m = SipMessage::parse(Bytes::from(b)).unwrap();
        m.check().unwrap();
        assert_eq!(m.body(), b"xyz");
        assert_eq!(m.content_length().unwrap(), Some(3));
    }
}
