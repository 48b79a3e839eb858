//! `$rb`, `$(rb[i])` and `$(rb(content-type)[i])`: the message body and its parts
//! (RFC 2046 §5.1: parts between `--boundary` lines, each with its headers, a blank line, then
//! its content), as OpenSIPS pvar.c `pv_get_msg_body` reads them.

use crate::ctx::MsgCtx;
use crate::value::Value;

/// The body and its Content-Type as the script sees them: edited by the SDP variables once
/// they changed it (OpenSIPS' `get_body` returns the `sdp_ops` body), else received.
fn current(ctx: &MsgCtx) -> (Vec<u8>, Option<String>) {
    if ctx.sdp_ops.is_some() {
        let (body, ct) = super::sdp_body::current_body(ctx);
        (body.to_vec(), ct)
    } else {
        let ct = ctx.msg.header(sip::HeaderName::ContentType);
        (ctx.msg.body().to_vec(), ct.map(str::to_owned))
    }
}

/// The media type of a Content-Type value, lower case, without parameters.
fn media(t: &str) -> String {
    t.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `$rb` (`None`: the whole body) or `$(rb[i])` (the i-th part, counted back from the last
/// when negative; a body that is not multipart is its only part). NULL when empty or absent.
pub(super) fn body(ctx: &MsgCtx, at: Option<i64>) -> Value {
    let (body, ct) = current(ctx);
    if body.is_empty() {
        return Value::Null;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match at {
        None => Value::from(text),
        Some(i) => pick(parts(ct.as_deref(), text), i),
    }
}

/// `$(rb(want)[i])`: the i-th part of content type `want` (lower case); the whole body when
/// it has that type itself.
pub(super) fn body_part(ctx: &MsgCtx, want: &str, at: i64) -> Value {
    let (body, ct) = current(ctx);
    let text = String::from_utf8_lossy(&body).into_owned();
    let of_type: Vec<(String, String)> = match ct.as_deref().map(media) {
        Some(t) if t == want => vec![(t, text)],
        _ => parts(ct.as_deref(), text)
            .into_iter()
            .filter(|(t, _)| t == want)
            .collect(),
    };
    pick(of_type, at)
}

fn pick(parts: Vec<(String, String)>, at: i64) -> Value {
    let at = if at < 0 { parts.len() as i64 + at } else { at };
    usize::try_from(at)
        .ok()
        .and_then(|i| parts.into_iter().nth(i))
        .map_or(Value::Null, |(_, content)| Value::from(content))
}

/// The parts of a body, with their media types: those of a multipart body, else the body
/// itself (none when it is empty).
fn parts(ct: Option<&str>, body: String) -> Vec<(String, String)> {
    let ct = ct.map(str::trim).unwrap_or("");
    if !media(ct).starts_with("multipart/") {
        return if body.is_empty() {
            Vec::new()
        } else {
            vec![(media(ct), body)]
        };
    }
    let Some(boundary) = ct.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    }) else {
        return Vec::new();
    };
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        // No headers: the part starts with its empty line.
        let (head, content) = match part.strip_prefix("\r\n") {
            Some(content) => ("", content),
            None => part.split_once("\r\n\r\n").unwrap_or(("", part)),
        };
        let part_type = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| media(v))
        });
        // A part without Content-Type is text/plain (RFC 2046 §5.1.1).
        out.push((
            part_type.unwrap_or_else(|| "text/plain".to_owned()),
            content.strip_suffix("\r\n").unwrap_or(content).to_owned(),
        ));
    }
    out
}
