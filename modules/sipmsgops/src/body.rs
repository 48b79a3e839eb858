//! The message body as the script has changed it so far, its parts (RFC 2046 §5.1 multipart),
//! and the body-part functions: `has_body_part`, `add_body_part`, `remove_body_part`,
//! `get_updated_body_part`.
//!
//! Every body function reads the body *after* earlier edits (OpenSIPS: "modifications made to
//! the sdp will be visible to the codec functions") and stores a whole new body, so
//! Content-Length is always rewritten by the serializer.

use std::ops::Range;

use bytes::Bytes;
use engine::{FnCtx, MsgCtx, Value};
use sip::{HeaderName, SipMessage};

use crate::{code, text};

/// The boundary OpenSIPS uses when it turns a single body into a multipart one.
pub(crate) const OSS_BOUNDARY: &str = "OSS-unique-boundary-42";

/// The body and its Content-Type value, after the edits made so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Current {
    pub body: Vec<u8>,
    pub ct: Option<String>,
}

/// The body as it will be sent. The edit list cannot be read back, so when it is not empty
/// the message is serialized and parsed again.
pub(crate) fn current(ctx: &MsgCtx) -> Current {
    let of = |m: &SipMessage| Current {
        body: m.body().to_vec(),
        ct: m.header(HeaderName::ContentType).map(str::to_owned),
    };
    if ctx.edits.is_empty() {
        return of(&ctx.msg);
    }
    match SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))) {
        Ok(m) => of(&m),
        Err(_) => of(&ctx.msg),
    }
}

/// Stores a new body. The Content-Type header is rewritten only when `ct` differs from the
/// received one; `None` removes it.
pub(crate) fn store(f: &mut FnCtx<'_>, body: Vec<u8>, ct: Option<&str>) {
    store_in(f.msg, body, ct);
}

/// [`store`] on a message context.
pub(crate) fn store_in(msg: &mut MsgCtx, body: Vec<u8>, ct: Option<&str>) {
    let original = msg.msg.header(HeaderName::ContentType).map(str::to_owned);
    let ct_line = msg
        .msg
        .headers()
        .find(|h| h.name == HeaderName::ContentType)
        .map(|h| h.index);
    match ct {
        Some(ct) if original.as_deref() == Some(ct) => {
            msg.edits.set_body(Bytes::from(body), None);
        }
        Some(ct) => {
            msg.edits.set_body(Bytes::from(body), Some(ct));
        }
        None => {
            msg.edits.set_body(Bytes::from(body), None);
            if let Some(i) = ct_line {
                msg.edits.remove(i);
            }
        }
    }
}

/// `type/subtype` of a Content-Type value, lower case, parameters dropped.
pub(crate) fn mime(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn boundary(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// From its delimiter line to the next delimiter (the line end before it included).
    pub seg: Range<usize>,
    /// Its content.
    pub content: Range<usize>,
    /// Its Content-Type value (`text/plain` when absent, RFC 2045 §5.2).
    pub ct: String,
    /// Its other headers, as written (`Name: value`).
    pub headers: Vec<String>,
}

/// A multipart body cut into preamble, parts and closing delimiter (with the epilogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multipart {
    pub parts: Vec<Part>,
    /// Where the first delimiter starts.
    pub first: usize,
    /// Where the closing delimiter starts.
    pub close: usize,
}

fn line_end(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |i| from + i + 1)
}

/// Splits a multipart body at its `--boundary` lines.
pub(crate) fn split(body: &[u8], boundary: &str) -> Option<Multipart> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        if body.get(pos..).is_some_and(|r| r.starts_with(delim)) {
            starts.push(pos);
        }
        pos = line_end(body, pos);
    }
    let first = *starts.first()?;
    let mut parts = Vec::new();
    let mut close = body.len();
    for (i, &d) in starts.iter().enumerate() {
        let after = d + delim.len();
        if body.get(after..).is_some_and(|r| r.starts_with(b"--")) {
            close = d;
            break;
        }
        let Some(&next) = starts.get(i + 1) else {
            close = d;
            break;
        };
        parts.push(part(body, d, next));
    }
    Some(Multipart {
        parts,
        first,
        close,
    })
}

fn part(body: &[u8], d: usize, next: usize) -> Part {
    let mut pos = line_end(body, d).min(next);
    let mut ct = None;
    let mut headers = Vec::new();
    while pos < next {
        let end = line_end(body, pos).min(next);
        let line = String::from_utf8_lossy(body.get(pos..end).unwrap_or(&[]));
        let line = line.trim_end_matches(['\r', '\n']);
        pos = end;
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((n, v)) if n.trim().eq_ignore_ascii_case("Content-Type") => {
                ct = Some(v.trim().to_owned());
            }
            _ => headers.push(line.to_owned()),
        }
    }
    let mut end = next;
    if end > pos && body.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > pos && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    Part {
        seg: d..next,
        content: pos..end.max(pos),
        ct: ct.unwrap_or_else(|| "text/plain".to_owned()),
        headers,
    }
}

/// The parts of the current body: the parts of a multipart body, else the whole body as one.
pub(crate) fn parts(cur: &Current) -> Option<(Option<Multipart>, Vec<Part>)> {
    if cur.body.is_empty() {
        return None;
    }
    let ct = cur.ct.as_deref().unwrap_or("");
    if mime(ct).starts_with("multipart/")
        && let Some(m) = boundary(ct).and_then(|b| split(&cur.body, &b))
    {
        let parts = m.parts.clone();
        return Some((Some(m), parts));
    }
    let whole = Part {
        seg: 0..cur.body.len(),
        content: 0..cur.body.len(),
        ct: ct.to_owned(),
        headers: Vec::new(),
    };
    Some((None, vec![whole]))
}

/// Where the first SDP part's content lies in the current body.
pub(crate) fn sdp_range(cur: &Current) -> Option<Range<usize>> {
    let (_, parts) = parts(cur)?;
    parts
        .into_iter()
        .find(|p| mime(&p.ct) == "application/sdp")
        .map(|p| p.content)
}

/// `has_body([mime])` / `has_body_part([mime])` (one function in OpenSIPS): a body; with a
/// multipart type, the message's own Content-Type; with another, any part of that type.
pub fn has_body_part(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let cur = current(f.msg);
    let Some((_, parts)) = parts(&cur) else {
        return -1;
    };
    let Some(want) = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| mime(&v.to_text()))
    else {
        return 1;
    };
    if want.is_empty() {
        return 1;
    }
    if want.starts_with("multipart/") {
        return code(cur.ct.as_deref().map(mime) == Some(want));
    }
    code(parts.iter().any(|p| mime(&p.ct) == want))
}

/// `remove_body_part([mime[, "revert"]])`: parts of that type (or all but them, or all).
pub fn remove_body_part(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let cur = current(f.msg);
    let Some((multi, parts)) = parts(&cur) else {
        return -1;
    };
    let want = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| mime(&v.to_text()));
    let revert = text(args.get(1)) == "revert";
    let (gone, kept): (Vec<Part>, Vec<Part>) = parts.into_iter().partition(|p| match &want {
        None => true,
        Some(w) => (mime(&p.ct) == *w) != revert,
    });
    if gone.is_empty() {
        return -1;
    }
    match (multi, kept.as_slice()) {
        (_, []) => store(f, Vec::new(), None),
        (Some(_), [only]) => {
            // n → 1: the remaining part becomes the body, its headers the message's.
            let body = cur.body.get(only.content.clone()).unwrap_or(&[]).to_vec();
            for h in &only.headers {
                if let Some((n, v)) = h.split_once(':')
                    && !n.trim().eq_ignore_ascii_case("Content-Length")
                {
                    f.msg.edits.append(n.trim(), v.trim());
                }
            }
            store(f, body, Some(&only.ct));
        }
        (Some(m), kept) => {
            let b = &cur.body;
            let mut body = b.get(..m.first).unwrap_or(&[]).to_vec();
            for p in kept {
                body.extend_from_slice(b.get(p.seg.clone()).unwrap_or(&[]));
            }
            body.extend_from_slice(b.get(m.close..).unwrap_or(&[]));
            store(f, body, cur.ct.as_deref());
        }
        // A single body either goes whole or stays.
        (None, _) => return -1,
    }
    1
}

/// `get_updated_body_part([mime], var)`: the body as the script has changed it so far (or
/// the content of its first part of that type) into `var`; the message is left alone.
/// -1 without a body, -2 without such a part (OpenSIPS codes).
pub fn get_updated_body_part(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let cur = current(f.msg);
    let Some((_, parts)) = parts(&cur) else {
        return -1;
    };
    let want = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| mime(&v.to_text()))
        .filter(|m| !m.is_empty());
    let out = match want {
        None => &cur.body[..],
        Some(w) => match parts.iter().find(|p| mime(&p.ct) == w) {
            Some(p) => cur.body.get(p.content.clone()).unwrap_or(&[]),
            None => return -2,
        },
    };
    let out = String::from_utf8_lossy(out).into_owned();
    f.set_output(1, Value::from(out));
    1
}

/// One new part: delimiter, Content-Type, the caller's headers, blank line, content.
fn new_part(out: &mut Vec<u8>, boundary: &str, ct: &str, hdrs: &str, body: &[u8]) {
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ct}\r\n{hdrs}\r\n").as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// `add_body_part(body, mime[, headers])`: the first body, or one more part (a single body
/// becomes `multipart/mixed` with OpenSIPS' boundary).
pub fn add_body_part(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let new = text(args.first());
    let ct = text(args.get(1));
    let hdrs = text(args.get(2));
    if new.is_empty() || ct.trim().is_empty() {
        return -1;
    }
    let hdrs = match hdrs.as_str() {
        "" => String::new(),
        h if h.ends_with('\n') => h.to_owned(),
        h => format!("{h}\r\n"),
    };
    let cur = current(f.msg);
    match parts(&cur) {
        None => {
            if !hdrs.is_empty() {
                let Some(lines) = crate::header_lines(&hdrs) else {
                    return -1;
                };
                for (n, v) in lines {
                    f.msg.edits.append(&n, &v);
                }
            }
            store(f, new.into_bytes(), Some(&ct));
        }
        Some((None, _)) => {
            let old_ct = cur.ct.clone().unwrap_or_else(|| "text/plain".to_owned());
            let mut body = Vec::new();
            new_part(&mut body, OSS_BOUNDARY, &old_ct, "", &cur.body);
            new_part(&mut body, OSS_BOUNDARY, &ct, &hdrs, new.as_bytes());
            body.extend_from_slice(format!("--{OSS_BOUNDARY}--\r\n").as_bytes());
            let mixed = format!("multipart/mixed;boundary={OSS_BOUNDARY}");
            store(f, body, Some(&mixed));
        }
        Some((Some(m), _)) => {
            let b = cur.ct.as_deref().and_then(boundary).unwrap_or_default();
            let mut body = cur.body.get(..m.close).unwrap_or(&[]).to_vec();
            new_part(&mut body, &b, &ct, &hdrs, new.as_bytes());
            body.extend_from_slice(cur.body.get(m.close..).unwrap_or(&[]));
            store(f, body, cur.ct.as_deref());
        }
    }
    1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_parts_with_preamble_and_epilogue() {
        let body = b"pre\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1\r\nContent-Disposition: signal\r\n\r\nhello\r\n--b1--\r\nepi";
        let m = split(body, "b1").unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(&body[m.parts[0].content.clone()], b"v=0\r\n");
        assert_eq!(m.parts[0].ct, "application/sdp");
        assert_eq!(&body[m.parts[1].content.clone()], b"hello");
        assert_eq!(m.parts[1].ct, "text/plain");
        assert_eq!(m.parts[1].headers, ["Content-Disposition: signal"]);
        assert_eq!(&body[m.close..], b"--b1--\r\nepi");
        assert_eq!(m.first, 5);
        assert!(split(b"no delimiters", "b1").is_none());
        // A part with no closing delimiter is not a part.
        assert!(split(b"--b1\r\n\r\nx", "b1").unwrap().parts.is_empty());
    }
}
