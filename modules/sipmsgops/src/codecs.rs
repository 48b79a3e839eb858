//! The SDP functions of sipmsgops (OpenSIPS `codecs.c`, `sdp_ops.h`): `codec_exists`,
//! `codec_delete`, `codec_move_up`, `codec_move_down` and their `_re` forms,
//! `codec_delete_except_re`, `stream_exists`, `stream_delete`, `is_audio_on_hold`.
//!
//! Like OpenSIPS they work on the first SDP body (or multipart part) and only on one that
//! OpenSIPS' parser accepts; a payload's codec comes from its `rtpmap`, else from the static
//! RFC 3551 table. Names and clocks compare case-insensitively, regular expressions are
//! POSIX-extended-like and case-insensitive and search the encoding name.
//!
//! Where rsips differs on purpose: several payloads moved at once keep their relative order
//! (the README's promise; OpenSIPS 4.0 reverses those that have an `rtpmap`);
//! `codec_exists(name, clock)` honours the clock (OpenSIPS ignores it); the `fmtp` and other
//! per-payload lines of a removed static payload go with it; `stream_delete` of the last
//! stream of a multipart SDP part stays inside that part.

use engine::{FnCtx, Value};
use regex::Regex;
use sip::sdp::{Hold, Payload, Sdp, SdpEditor};

use crate::body::{current, sdp_range, store};
use crate::{code, text};

/// How a payload is picked.
enum Pick<'a> {
    Name(&'a str, Option<&'a str>),
    Re(&'a Regex),
    NotRe(&'a Regex),
}

impl Pick<'_> {
    fn matches(&self, p: &Payload<'_>) -> bool {
        let Some((name, clock)) = p.codec() else {
            return false;
        };
        match self {
            Pick::Name(n, c) => {
                name.eq_ignore_ascii_case(n) && c.is_none_or(|c| clock.eq_ignore_ascii_case(c))
            }
            Pick::Re(re) => re.is_match(name),
            Pick::NotRe(re) => !re.is_match(name),
        }
    }
}

/// What to do with the picked payloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Find,
    Delete,
    Front,
    Back,
}

/// Runs `edit` over the first acceptable SDP of the current body and stores the result when
/// it changed. `None` when there is no such SDP.
fn with_sdp(
    f: &mut FnCtx<'_>,
    edit: impl FnOnce(&Sdp<'_>, &mut SdpEditor<'_, '_>) -> bool,
) -> Option<bool> {
    let cur = current(f.msg);
    let range = sdp_range(&cur)?;
    let text = std::str::from_utf8(cur.body.get(range.clone())?).ok()?;
    let sdp = Sdp::parse(text);
    sdp.validate().ok()?;
    let mut ed = SdpEditor::new(&sdp);
    let hit = edit(&sdp, &mut ed);
    if ed.is_changed() {
        let mut body = cur.body.get(..range.start).unwrap_or(&[]).to_vec();
        body.extend_from_slice(ed.render().as_bytes());
        body.extend_from_slice(cur.body.get(range.end..).unwrap_or(&[]));
        store(f, body, cur.ct.as_deref());
    }
    Some(hit)
}

fn for_codecs(f: &mut FnCtx<'_>, pick: &Pick<'_>, op: Op) -> i64 {
    let hit = with_sdp(f, |sdp, ed| {
        let mut hit = false;
        for (i, m) in sdp.media.iter().enumerate() {
            let listed = ed.formats(i).to_vec();
            let pts: Vec<&str> = m
                .payloads
                .iter()
                .filter(|p| listed.contains(&p.pt) && pick.matches(p))
                .map(|p| p.pt)
                .collect();
            if pts.is_empty() {
                continue;
            }
            hit = true;
            match op {
                Op::Find => return true,
                Op::Delete => {
                    ed.remove_payloads(i, &pts);
                }
                Op::Front | Op::Back => {
                    ed.move_payloads(i, &pts, op == Op::Front);
                }
            }
        }
        hit
    });
    code(hit == Some(true))
}

/// A regular expression parameter, case-insensitive as OpenSIPS compiles them.
fn regex(f: &mut FnCtx<'_>, fname: &str, args: &[Value], i: usize) -> Option<std::rc::Rc<Regex>> {
    let re = text(args.get(i));
    match crate::regex(&re) {
        Ok(r) => Some(r),
        Err(e) => {
            f.log.log(
                -1,
                &format!("{fname}: bad regular expression `{re}`: {e}\n"),
            );
            None
        }
    }
}

fn by_name(f: &mut FnCtx<'_>, args: &[Value], op: Op) -> i64 {
    let name = text(args.first());
    let clock = args
        .get(1)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned());
    for_codecs(f, &Pick::Name(&name, clock.as_deref()), op)
}

fn by_re(f: &mut FnCtx<'_>, args: &[Value], op: Op, fname: &str, negate: bool) -> i64 {
    let Some(re) = regex(f, fname, args, 0) else {
        return -1;
    };
    let pick = if negate {
        Pick::NotRe(&re)
    } else {
        Pick::Re(&re)
    };
    for_codecs(f, &pick, op)
}

/// `codec_exists(name[, clock])`.
pub fn codec_exists(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_name(f, args, Op::Find)
}

/// `codec_exists_re(re)`.
pub fn codec_exists_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_re(f, args, Op::Find, "codec_exists_re", false)
}

/// `codec_delete(name[, clock])`: off the `m=` lines, with its `a=` lines.
pub fn codec_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_name(f, args, Op::Delete)
}

/// `codec_delete_re(re)`.
pub fn codec_delete_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_re(f, args, Op::Delete, "codec_delete_re", false)
}

/// `codec_delete_except_re(re)`: every codec whose name does not match.
pub fn codec_delete_except_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_re(f, args, Op::Delete, "codec_delete_except_re", true)
}

/// `codec_move_up(name[, clock])`: to the front of the `m=` line.
pub fn codec_move_up(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_name(f, args, Op::Front)
}

/// `codec_move_up_re(re)`.
pub fn codec_move_up_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_re(f, args, Op::Front, "codec_move_up_re", false)
}

/// `codec_move_down(name[, clock])`: to the back of the `m=` line.
pub fn codec_move_down(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_name(f, args, Op::Back)
}

/// `codec_move_down_re(re)`.
pub fn codec_move_down_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    by_re(f, args, Op::Back, "codec_move_down_re", false)
}

/// The stream `stream_exists`/`stream_delete` act on: OpenSIPS walks its stream list, which
/// its parser builds backwards, so the *last* stream whose media (and transport) match.
fn find_stream(f: &mut FnCtx<'_>, args: &[Value], fname: &str, delete: bool) -> i64 {
    let Some(media_re) = regex(f, fname, args, 0) else {
        return -1;
    };
    let transport_re = match args.get(1).filter(|v| !v.is_null()) {
        Some(_) => match regex(f, fname, args, 1) {
            Some(r) => Some(r),
            None => return -1,
        },
        None => None,
    };
    let hit = with_sdp(f, |sdp, ed| {
        let found = sdp.media.iter().enumerate().rev().find(|(i, m)| {
            ed.has_media(*i)
                && media_re.is_match(m.media)
                && transport_re
                    .as_ref()
                    .is_none_or(|t| t.is_match(m.transport))
        });
        match found {
            Some((i, _)) if delete => ed.remove_media(i),
            Some(_) => true,
            None => false,
        }
    });
    code(hit == Some(true))
}

/// `stream_exists(media_re[, transport_re])`.
pub fn stream_exists(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    find_stream(f, args, "stream_exists", false)
}

/// `stream_delete(media_re[, transport_re])`: one stream per call, with all its lines.
pub fn stream_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    find_stream(f, args, "stream_delete", true)
}

/// `is_audio_on_hold()`: 1 for an RFC 2543 hold (`c=0.0.0.0`), 2 for an RFC 3264 one
/// (`sendonly`/`inactive`), from the first audio stream on hold; -1 when none is.
/// (OpenSIPS 4.0.0 and its README return 1/2; 4.0.1 collapses both to 1.)
pub fn is_audio_on_hold(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let cur = current(f.msg);
    let Some(text) = sdp_range(&cur)
        .and_then(|r| cur.body.get(r))
        .and_then(|b| std::str::from_utf8(b).ok())
    else {
        return -1;
    };
    let sdp = Sdp::parse(text);
    if sdp.validate().is_err() {
        return -1;
    }
    sdp.media
        .iter()
        .filter(|m| m.media.eq_ignore_ascii_case("audio"))
        .find_map(|m| sdp.hold(m))
        .map_or(-1, |h| match h {
            Hold::Rfc2543 => 1,
            Hold::Rfc3264 => 2,
        })
}
