//! The SDP of a message as the SDP variables see it: the body after the edits made so far, its
//! `application/sdp` part (the whole body, or the first such part of a multipart body, RFC
//! 2046 §5.1), and storing an edited SDP back into the body the message leaves with.
//!
//! OpenSIPS keeps the edited SDP beside the message (`msg->sdp_ops`) and sends it instead of
//! the body; here every write stores a whole new body in the edit list (so Content-Length is
//! rewritten) and remembers it in [`crate::ctx::SdpOps`] so reads need not re-serialize. Where
//! OpenSIPS drops the other parts of a multipart body, only the SDP part changes here.

use std::ops::Range;

use bytes::Bytes;
use sip::{HeaderName, SipMessage};

use super::sdp::{EditError, LineOp, Lines, Selector, edit};
use crate::ctx::{MsgCtx, SdpOps};

const SDP: &str = "application/sdp";

/// `type/subtype` of a Content-Type value, lower case, parameters dropped.
fn mime(ct: &str) -> String {
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

/// The body (and its Content-Type) the message would leave with now.
pub(crate) fn current_body(ctx: &MsgCtx) -> (Bytes, Option<String>) {
    let of = |m: &SipMessage| {
        (
            m.body_bytes(),
            m.header(HeaderName::ContentType).map(str::to_owned),
        )
    };
    if let Some(ops) = &ctx.sdp_ops
        && ops.edits == ctx.edits
    {
        return (ops.body.clone(), ops.ct.clone());
    }
    if ctx.edits.is_empty() {
        return of(&ctx.msg);
    }
    match SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))) {
        Ok(m) => of(&m),
        Err(_) => of(&ctx.msg),
    }
}

/// Where the SDP is in a body: its content, and for a multipart body the whole part (from its
/// delimiter line to the next delimiter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub content: Range<usize>,
    pub part: Option<Range<usize>>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Starts of the `--boundary` delimiter lines of a multipart body.
fn delimiters(body: &[u8], delim: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = body.get(at..).and_then(|rest| find(rest, delim)) {
        let pos = at + i;
        if pos == 0 || body.get(pos - 1) == Some(&b'\n') {
            out.push(pos);
        }
        at = pos + delim.len();
    }
    out
}

/// The content of the part of a multipart body between `start` (its delimiter line) and
/// `end` (the next delimiter), when its Content-Type is SDP.
fn sdp_part(body: &[u8], start: usize, end: usize) -> Option<Range<usize>> {
    let seg = body.get(start..end)?;
    let head_start = seg.iter().position(|&c| c == b'\n')? + 1;
    // The line break before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    let mut stop = seg.len();
    if seg.get(..stop).is_some_and(|s| s.ends_with(b"\n")) {
        stop -= 1;
        if seg.get(..stop).is_some_and(|s| s.ends_with(b"\r")) {
            stop -= 1;
        }
    }
    let part = seg.get(head_start..stop.max(head_start))?;
    let (headers, content_at) = if part.starts_with(b"\r\n") {
        (&part[..0], 2)
    } else if part.starts_with(b"\n") {
        (&part[..0], 1)
    } else if let Some(i) = find(part, b"\r\n\r\n") {
        (&part[..i], i + 4)
    } else {
        let i = find(part, b"\n\n")?;
        (&part[..i], i + 2)
    };
    let is_sdp = String::from_utf8_lossy(headers).lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            let n = n.trim();
            (n.eq_ignore_ascii_case("content-type") || n.eq_ignore_ascii_case("c"))
                && mime(v) == SDP
        })
    });
    is_sdp.then(|| start + head_start + content_at..start + stop.max(head_start))
}

/// The SDP of a body of type `ct`: the whole body when it is `application/sdp`, else the first
/// SDP part of a multipart body.
pub(crate) fn find_sdp(body: &[u8], ct: Option<&str>) -> Option<Found> {
    let ct = ct?;
    let m = mime(ct);
    if m == SDP {
        return Some(Found {
            content: 0..body.len(),
            part: None,
        });
    }
    if !m.starts_with("multipart/") {
        return None;
    }
    let delim = format!("--{}", boundary(ct)?);
    let starts = delimiters(body, delim.as_bytes());
    for pair in starts.windows(2) {
        let &[s, e] = pair else { continue };
        if body
            .get(s + delim.len()..)
            .is_some_and(|r| r.starts_with(b"--"))
        {
            break;
        }
        if let Some(content) = sdp_part(body, s, e) {
            return Some(Found {
                content,
                part: Some(s..e),
            });
        }
    }
    None
}

/// The SDP text of the message now; `None` without one (or when it is not UTF-8).
pub(crate) fn current_sdp(ctx: &MsgCtx) -> Option<String> {
    let (body, ct) = current_body(ctx);
    let found = find_sdp(&body, ct.as_deref())?;
    let text = std::str::from_utf8(body.get(found.content)?).ok()?;
    Some(text.to_owned())
}

/// Runs `f` over the current SDP, cut into lines.
pub(crate) fn with_lines<T>(ctx: &MsgCtx, f: impl FnOnce(&Lines<'_>) -> Option<T>) -> Option<T> {
    let sdp = current_sdp(ctx)?;
    f(&Lines::parse(&sdp)?)
}

/// Replaces the SDP with `sdp` (`None` removes it) and stores the new body.
fn store(ctx: &mut MsgCtx, sdp: Option<&str>) -> Result<(), String> {
    let (body, ct) = current_body(ctx);
    let found = find_sdp(&body, ct.as_deref());
    let (new, want_ct) = match (found, sdp) {
        (Some(Found { part: Some(p), .. }), None) => {
            let mut b = body.get(..p.start).unwrap_or_default().to_vec();
            b.extend_from_slice(body.get(p.end..).unwrap_or_default());
            (b, ct)
        }
        (Some(Found { content, part }), Some(s)) => {
            let mut b = body.get(..content.start).unwrap_or_default().to_vec();
            b.extend_from_slice(s.as_bytes());
            b.extend_from_slice(body.get(content.end..).unwrap_or_default());
            (b, if part.is_some() { ct } else { Some(SDP.into()) })
        }
        (Some(Found { part: None, .. }), None) => (Vec::new(), None),
        (None, None) => return Ok(()),
        (None, Some(s)) if body.is_empty() => (s.as_bytes().to_vec(), Some(SDP.into())),
        (None, Some(_)) => {
            return Err(format!(
                "the body ({}) has no SDP part to replace",
                ct.as_deref().map_or("no Content-Type".into(), mime)
            ));
        }
    };
    let original = ctx.msg.header(HeaderName::ContentType).map(str::to_owned);
    let mut ct_removed = ctx.sdp_ops.as_ref().is_some_and(|o| o.ct_removed);
    if want_ct.is_none()
        && let Some(h) = ctx
            .msg
            .headers()
            .find(|h| h.name == HeaderName::ContentType)
    {
        if !ct_removed {
            ctx.edits.remove(h.index);
        }
        ct_removed = true;
    }
    let ct_arg = match &want_ct {
        Some(c) if ct_removed || original.as_deref() != Some(c.as_str()) => Some(c.as_str()),
        _ => None,
    };
    let new = Bytes::from(new);
    ctx.edits.set_body(new.clone(), ct_arg);
    ctx.sdp_ops = Some(Box::new(SdpOps {
        edits: ctx.edits.clone(),
        body: new,
        ct: want_ct,
        ct_removed,
    }));
    Ok(())
}

/// `$sdp = value`: a new SDP, accepted when OpenSIPS' parser would take it (it starts with
/// `v=`, has an `o=`, media and connections) and its lines end; `$sdp = NULL` removes it (only
/// the SDP part of a multipart body; with the Content-Type header otherwise).
pub(crate) fn set_sdp(ctx: &mut MsgCtx, value: Option<&str>) -> Result<(), String> {
    if let Some(v) = value {
        if v.is_empty() {
            return Err("an empty SDP body".into());
        }
        sip::sdp::Sdp::parse(v)
            .validate()
            .map_err(|e| format!("bad SDP ({e})"))?;
        if Lines::parse(v).is_none() {
            return Err("no line separator in the SDP".into());
        }
    }
    store(ctx, value)
}

/// An assignment to `$sdp.line/.session/.stream(...)`.
pub(crate) fn set_line(
    ctx: &mut MsgCtx,
    sel: &Selector<i64>,
    op: LineOp,
    value: Option<&str>,
) -> Result<(), String> {
    let sdp = current_sdp(ctx).ok_or("the message has no SDP body")?;
    let mut lines = Lines::parse(&sdp).ok_or("the SDP body has no line separator")?;
    edit(&mut lines, sel, op, value).map_err(|e: EditError| e.to_string())?;
    let new = lines.render();
    store(ctx, Some(&new))
}
