//! The OpenSIPS `sipmsgops` module (digest §2.6), header functions: `append_hf`, `insert_hf`,
//! `remove_hf`, `is_present_hf`, `is_method`, `has_totag`, `has_body`, `append_to_reply`;
//! (in `more`) the pattern, Request-URI parameter and Privacy functions; (in `glob`) the shell
//! patterns; (in `body`) the body-part functions; (in `codecs`) the SDP codec and stream
//! functions; (in `validate` and `header_bodies`) `sipmsg_validate`; (in `lists`) the
//! comma-list header functions, `append_time`, `get_glob_headers_values` and `sip_to_json`.
//! Edits are recorded in the message context and applied when the message is serialized, so
//! (as in OpenSIPS) a header added by the script is not visible to later reads of the message.
#![forbid(unsafe_code)]

mod body;
mod codecs;
mod glob;
mod header_bodies;
mod lists;
mod more;
mod validate;

pub use lists::{glob_headers_values, imf_date, sip_to_json};

/// What the current body (the script's edits applied) holds for a media module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpBody {
    /// The message has no body.
    Empty,
    /// It has one, with no `application/sdp` part.
    NotSdp,
    /// The first SDP part (the whole body, or one part of a multipart body).
    Sdp(String),
}

/// The SDP of the message as it will be sent, for media modules (rtpproxy).
pub fn current_sdp(ctx: &engine::MsgCtx) -> SdpBody {
    let cur = body::current(ctx);
    if cur.body.is_empty() {
        return SdpBody::Empty;
    }
    match body::sdp_range(&cur).and_then(|r| cur.body.get(r)) {
        Some(b) => SdpBody::Sdp(String::from_utf8_lossy(b).into_owned()),
        None => SdpBody::NotSdp,
    }
}

/// Replaces the first SDP part of the current body with `sdp` (the other parts kept as they
/// are). False when the body has no SDP part.
pub fn replace_sdp(msg: &mut engine::MsgCtx, sdp: &str) -> bool {
    let cur = body::current(msg);
    let Some(range) = body::sdp_range(&cur) else {
        return false;
    };
    let mut out = cur.body.get(..range.start).unwrap_or(&[]).to_vec();
    out.extend_from_slice(sdp.as_bytes());
    out.extend_from_slice(cur.body.get(range.end..).unwrap_or(&[]));
    body::store_in(msg, out, cur.ct.as_deref());
    true
}

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, Routes, Value};
use sip::{HeaderName, HeaderRef, SipMessage};

/// Where the header functions may run (OpenSIPS 4.0 sipmsgops route masks).
const HEADERS: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);
/// `sipmsg_validate`: not in local routes.
const VALIDATE: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::FAILURE)
    .or(Routes::BRANCH);
/// `append_time` adds to the reply the script sends.
const TIME: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);
/// `append_to_reply` prepares a reply: not in reply or local routes.
const REPLYING: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::ERROR);
/// The Request-URI parameter functions and `ruri_tel2sip` (local routes included, as in
/// OpenSIPS).
const RURI: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

/// A regular expression parameter, case-insensitive as OpenSIPS compiles them (REG_ICASE).
pub(crate) fn regex(re: &str) -> Result<std::rc::Rc<regex::Regex>, String> {
    engine::regex_cache::icase(re, false)
        .map_err(|e| e.to_string().lines().last().unwrap_or("").trim().to_owned())
}

/// A literal regular expression that does not compile stops the script from loading, as
/// OpenSIPS' `CMD_PARAM_REGEX` fixup does.
static REGEX: ParamCheck = ParamCheck {
    what: "regular expression",
    check: |re| regex(re).map(|_| ()),
};

/// The module as the engine sees it. String arguments are format strings, their variables read
/// at each call, as OpenSIPS' `CMD_PARAM_STR` (whose fixups, such as the method list of
/// `is_method` or the flags of `sipmsg_validate`, then run on the value); only the regular
/// expressions (`CMD_PARAM_REGEX`) are taken literally, and checked when the script loads.
pub static MODULE: ModuleSpec = ModuleSpec {
    name: "sipmsgops",
    // OpenSIPS 4.0 sipmsgops has no modparams.
    params: &[],
    functions: &[
        FnSpec {
            name: "append_hf",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: append_hf,
        },
        FnSpec {
            name: "insert_hf",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: insert_hf,
        },
        FnSpec {
            name: "remove_hf",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: remove_hf,
        },
        FnSpec {
            name: "is_present_hf",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: is_present_hf,
        },
        FnSpec {
            name: "is_method",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: is_method,
        },
        FnSpec {
            name: "has_totag",
            params: &[],
            routes: HEADERS,
            run: has_totag,
        },
        FnSpec {
            name: "has_body",
            params: &[(Param::Str, true)],
            routes: HEADERS,
            run: has_body,
        },
        FnSpec {
            name: "remove_hf_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: more::remove_hf_re,
        },
        FnSpec {
            name: "remove_hf_glob",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: more::remove_hf_glob,
        },
        FnSpec {
            name: "ruri_has_param",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: RURI,
            run: more::ruri_has_param,
        },
        FnSpec {
            name: "ruri_add_param",
            params: &[(Param::Str, false)],
            routes: RURI,
            run: more::ruri_add_param,
        },
        FnSpec {
            name: "ruri_del_param",
            params: &[(Param::Str, false)],
            routes: RURI,
            run: more::ruri_del_param,
        },
        FnSpec {
            name: "is_uri_user_e164",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: more::is_uri_user_e164,
        },
        FnSpec {
            name: "ruri_tel2sip",
            params: &[],
            routes: RURI,
            run: more::ruri_tel2sip,
        },
        FnSpec {
            name: "is_privacy",
            params: &[(Param::Str, false)],
            routes: HEADERS,
            run: more::is_privacy,
        },
        FnSpec {
            name: "append_body_to_reply",
            params: &[(Param::Str, false)],
            routes: REPLYING,
            run: append_body_to_reply,
        },
        FnSpec {
            name: "append_urihf",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::BRANCH),
            run: append_urihf,
        },
        FnSpec {
            name: "change_reply_status",
            params: &[(Param::Int, false), (Param::Str, false)],
            routes: Routes::ONREPLY,
            run: change_reply_status,
        },
        FnSpec {
            name: "append_to_reply",
            params: &[(Param::Str, false)],
            routes: REPLYING,
            run: append_to_reply,
        },
        FnSpec {
            name: "has_body_part",
            params: &[(Param::Str, true)],
            routes: HEADERS,
            run: body::has_body_part,
        },
        FnSpec {
            name: "remove_body_part",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: HEADERS,
            run: body::remove_body_part,
        },
        FnSpec {
            name: "add_body_part",
            params: &[(Param::Str, false), (Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: body::add_body_part,
        },
        FnSpec {
            name: "codec_exists",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: codecs::codec_exists,
        },
        FnSpec {
            name: "codec_delete",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: codecs::codec_delete,
        },
        FnSpec {
            name: "codec_move_up",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: codecs::codec_move_up,
        },
        FnSpec {
            name: "codec_move_down",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: HEADERS,
            run: codecs::codec_move_down,
        },
        FnSpec {
            name: "codec_exists_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: codecs::codec_exists_re,
        },
        FnSpec {
            name: "codec_delete_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: codecs::codec_delete_re,
        },
        FnSpec {
            name: "codec_delete_except_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: codecs::codec_delete_except_re,
        },
        FnSpec {
            name: "codec_move_up_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: codecs::codec_move_up_re,
        },
        FnSpec {
            name: "codec_move_down_re",
            params: &[(Param::Checked(&REGEX), false)],
            routes: HEADERS,
            run: codecs::codec_move_down_re,
        },
        FnSpec {
            name: "stream_exists",
            params: &[
                (Param::Checked(&REGEX), false),
                (Param::Checked(&REGEX), true),
            ],
            routes: HEADERS,
            run: codecs::stream_exists,
        },
        FnSpec {
            name: "stream_delete",
            params: &[
                (Param::Checked(&REGEX), false),
                (Param::Checked(&REGEX), true),
            ],
            routes: HEADERS,
            run: codecs::stream_delete,
        },
        FnSpec {
            name: "is_audio_on_hold",
            params: &[],
            routes: HEADERS,
            run: codecs::is_audio_on_hold,
        },
        FnSpec {
            name: "sipmsg_validate",
            params: &[(Param::Str, true), (Param::Var, true)],
            routes: VALIDATE,
            run: validate::sipmsg_validate,
        },
        FnSpec {
            name: "get_updated_body_part",
            params: &[(Param::Str, true), (Param::Var, false)],
            routes: HEADERS,
            run: body::get_updated_body_part,
        },
        FnSpec {
            name: "get_glob_headers_values",
            params: &[
                (Param::Str, false),
                (Param::Avp, false),
                (Param::Avp, false),
            ],
            routes: HEADERS,
            run: lists::get_glob_headers_values,
        },
        FnSpec {
            name: "sip_to_json",
            params: &[(Param::Var, false)],
            routes: HEADERS,
            run: lists::sip_to_json_into,
        },
        FnSpec {
            name: "list_hdr_has_option",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: HEADERS,
            run: lists::list_hdr_has_option,
        },
        FnSpec {
            name: "list_hdr_add_option",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: HEADERS,
            run: lists::list_hdr_add_option,
        },
        FnSpec {
            name: "list_hdr_remove_option",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: HEADERS,
            run: lists::list_hdr_remove_option,
        },
        FnSpec {
            name: "append_time",
            params: &[],
            routes: TIME,
            run: lists::append_time,
        },
    ],
};

pub(crate) fn code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

/// An argument as text; an omitted optional one (`Value::Null`) is empty.
pub(crate) fn text(v: Option<&Value>) -> String {
    v.filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// Whether a header line has this name (compact forms and case ignored).
fn named(h: &HeaderRef<'_>, name: &str) -> bool {
    match HeaderName::parse(name) {
        HeaderName::Other => h.name == HeaderName::Other && h.name_str.eq_ignore_ascii_case(name),
        known => h.name == known,
    }
}

fn first_index(msg: &SipMessage, name: &str) -> Option<usize> {
    msg.headers().find(|h| named(h, name)).map(|h| h.index)
}

/// Splits header text (`"Name: value\r\n"`, possibly several lines) into (name, value) pairs.
/// OpenSIPS requires the caller to include the trailing CRLF; a missing one is tolerated. A
/// folded line (RFC 3261 §7.3.1, starting with white space) continues the value before it.
/// Empty text gives no pairs: OpenSIPS adds it and succeeds, which changes nothing. `None`
/// for a line that is not a header: OpenSIPS would send it as it is and break the message.
fn header_lines(txt: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in txt
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
    {
        if line.starts_with([' ', '\t']) {
            let (_, value) = out.last_mut()?;
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || name.contains([' ', '\t']) {
            return None;
        }
        out.push((name.to_owned(), value.trim().to_owned()));
    }
    Some(out)
}

/// Where `append_hf` / `insert_hf` put their headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// After the last header, or after the first anchor header.
    After,
    /// Before the first header, or before the first anchor header.
    Before,
}

/// Adds the header lines of `args[0]` at `place`, relative to the optional anchor `args[1]`.
fn add_headers(f: &mut FnCtx<'_>, args: &[Value], place: Place) -> i64 {
    let Some(lines) = header_lines(&text(args.first())) else {
        return -1;
    };
    // An anchor header the message does not have: the default place, as in OpenSIPS.
    let anchor = args
        .get(1)
        .filter(|v| !v.is_null())
        .and_then(|a| first_index(&f.msg.msg, &a.to_text()));
    let edits = &mut f.msg.edits;
    // Lines keep their order, within a call and across calls.
    match (place, anchor) {
        (Place::After, Some(i)) => lines.iter().for_each(|(n, v)| {
            edits.insert_after(i, n, v);
        }),
        (Place::After, None) => lines.iter().for_each(|(n, v)| {
            edits.append(n, v);
        }),
        (Place::Before, Some(i)) => lines.iter().for_each(|(n, v)| {
            edits.insert_before(i, n, v);
        }),
        (Place::Before, None) => lines.iter().for_each(|(n, v)| {
            edits.add_top(n, v);
        }),
    }
    1
}

/// `append_hf(txt[, hdr])`: after the last header, or after the first `hdr`.
fn append_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    add_headers(f, args, Place::After)
}

/// `insert_hf(txt[, hdr])`: before the first header, or before the first `hdr`.
fn insert_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    add_headers(f, args, Place::Before)
}

/// `remove_hf(name)`: every instance; true when at least one was removed.
fn remove_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args.first());
    let found: Vec<usize> = f
        .msg
        .msg
        .headers()
        .filter(|h| named(h, &name) && !f.msg.edits.is_removed(h.index))
        .map(|h| h.index)
        .collect();
    // Only lines not removed before count: a second remove_hf of a header is false (OpenSIPS).
    for i in &found {
        f.msg.edits.remove(*i);
    }
    code(!found.is_empty())
}

fn is_present_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(first_index(&f.msg.msg, &text(args.first())).is_some())
}

/// The methods OpenSIPS knows by id (`parse_method`); a `|` list may name only these.
const STANDARD_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// `is_method("INVITE|BYE")`: the request method, or for replies the CSeq method.
///
/// OpenSIPS turns a list into method ids, so an extension method in a list is an error: at
/// load time for a literal, -1 for a value read from a variable. rsips cannot refuse the
/// literal at load time and fails the call the same way (logged).
fn is_method(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let msg = &f.msg.msg;
    let cseq;
    let method = match msg.method_str() {
        Some(m) => m,
        None => match msg.cseq() {
            Ok(c) => {
                cseq = c;
                cseq.method_str
            }
            Err(_) => return -1,
        },
    };
    let wanted = match args.first() {
        Some(v) if !v.is_null() => v.to_text(),
        _ => return -1,
    };
    let standard = |m: &str| STANDARD_METHODS.iter().any(|s| s.eq_ignore_ascii_case(m));
    if wanted.contains('|') && !wanted.split('|').all(|m| standard(m.trim())) {
        f.log.log(
            -1,
            &format!("is_method: `{wanted}`: a list may name only the standard methods\n"),
        );
        return -1;
    }
    code(
        wanted
            .split('|')
            .any(|m| m.trim().eq_ignore_ascii_case(method)),
    )
}

fn has_totag(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    code(f.msg.msg.to_tag().ok().flatten().is_some())
}

/// `has_body([content_type])`: a non-empty body; with a type, a part of that type (OpenSIPS
/// runs `has_body` and `has_body_part` through one function).
fn has_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    body::has_body_part(f, args)
}

/// `change_reply_status(code, reason)` in an onreply route: the relayed reply's status line.
/// The class cannot change from or to 1xx/2xx (a provisional or a success stays one), as in
/// OpenSIPS.
fn change_reply_status(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(code) = args
        .first()
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=699).contains(c))
    else {
        return -1;
    };
    let Some(old) = f.msg.msg.status() else {
        return -1;
    };
    let class = |c: u16| {
        if c < 200 {
            1
        } else if c < 300 {
            2
        } else {
            3
        }
    };
    if class(old) != class(code) {
        f.log.log(
            -1,
            &format!("change_reply_status: {old} cannot become {code}\n"),
        );
        return -1;
    }
    f.msg.edits.set_status(code, text(args.get(1)));
    1
}

/// `append_body_to_reply(body)`: the body of the reply the script sends next.
fn append_body_to_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    // The last call wins, as in OpenSIPS (the reply has one body).
    f.msg.reply_body = Some(text(args.first()));
    1
}

/// `append_urihf(prefix, suffix)`: a header made of `prefix`, the Request-URI as received
/// (OpenSIPS copies the request line's, not a rewritten `$ru`) and `suffix` (which ends the
/// line: `"\r\n"`).
fn append_urihf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let line = format!(
        "{}{}{}",
        text(args.first()),
        f.msg.msg.request_uri_str().unwrap_or(""),
        text(args.get(1))
    );
    let Some(lines) = header_lines(&line) else {
        return -1;
    };
    for (n, v) in lines {
        f.msg.edits.append(&n, &v);
    }
    1
}

/// `append_to_reply(txt)`: headers for the reply the script sends later.
fn append_to_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(lines) = header_lines(&text(args.first())) else {
        return -1;
    };
    f.msg
        .reply_headers
        .extend(lines.into_iter().map(|(n, v)| format!("{n}: {v}")));
    1
}
