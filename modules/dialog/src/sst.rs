//! OpenSIPS' `sst` module (SIP Session Timers, RFC 4028) on top of the dialog: an INVITE the
//! script flags with `sst_flag` before `create_dialog()` gets a session interval (the
//! caller's `Session-Expires`, or one the proxy asks for itself), the dialog's lifetime
//! follows that interval and every refresh (re-INVITE, UPDATE, their 2xx, PRACK, ACK) starts
//! it again, so a call whose ends stopped refreshing is ended. `sstCheckMin([send_reply])`
//! answers `422 Session Timer Too Small` to an INVITE asking less than `min_se`.
//!
//! A 2xx without `Session-Expires` to a caller that supports timers gets
//! `Session-Expires: N;refresher=uac` and `timer` in `Require` on its way: the caller
//! refreshes. Not done: keeping the session data of a dialog across a restart.

use std::sync::OnceLock;
use std::time::Instant;

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};
use sip::{HeaderName, Method, SipMessage};

use crate::table::Dialog;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "sst",
    functions: &[FnSpec {
        name: "sstCheckMin",
        params: &[(Param::Int, true)],
        routes: Routes::REQUEST,
        run: sst_check_min,
    }],
    params: &[
        ("enable_stats", ParamType::Int),
        ("min_se", ParamType::Int),
        ("sst_interval", ParamType::Int),
        ("reject_to_small", ParamType::Int),
        ("sst_flag", ParamType::Str),
    ],
};

/// Who asked for or supports session timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Nobody,
    Caller,
    Callee,
    Proxy,
}

/// A dialog's session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The session interval (seconds): the dialog's lifetime after each refresh.
    pub interval: u32,
    pub supported: Side,
    pub requester: Side,
}

#[derive(Debug)]
struct Settings {
    min_se: u32,
    /// `sst_interval`, never below `min_se`.
    interval: u32,
    reject: bool,
    /// The bit of `sst_flag`.
    flag: u32,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Reads the module's parameters when the script loads it: `sst_flag` must name a flag, and
/// the dialog module must be loaded.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("sst") {
        return Ok(());
    }
    if !script.loads("dialog") {
        return Err("sst: the dialog module must be loaded".into());
    }
    let name = script
        .modparam_str("sst", "sst_flag")
        .ok_or("sst: no sst_flag set (modparam(\"sst\", \"sst_flag\", \"NAME\"))")?;
    let name = name.trim().trim_matches('"');
    let flag = script
        .flag_bit(name)
        .ok_or_else(|| format!("sst: sst_flag `{name}` is not a flag the script can set"))?;
    let secs = |n: &str, d: i64| {
        u32::try_from(script.modparam_int("sst", n).unwrap_or(d).max(0)).unwrap_or(u32::MAX)
    };
    let min_se = secs("min_se", 90);
    let _ = SETTINGS.set(Settings {
        min_se,
        interval: secs("sst_interval", 0).max(min_se),
        reject: secs("reject_to_small", 1) != 0,
        flag,
    });
    let _ = engine::stats::counter("sst", "expired_sst");
    Ok(())
}

/// What a message says of session timers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MsgInfo {
    /// `Supported: timer`.
    supported: bool,
    /// `Min-SE` (0: none).
    min_se: u32,
    /// `Session-Expires` delta-seconds (0: none).
    se: u32,
}

/// The number a `Session-Expires`/`Min-SE` value starts with (its parameters left).
fn delta(v: &str) -> Option<u32> {
    v.split(';').next()?.trim().parse().ok()
}

fn parse(msg: &SipMessage) -> MsgInfo {
    MsgInfo {
        supported: msg
            .values(HeaderName::Supported)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("timer")),
        min_se: msg.values(HeaderName::MinSe).find_map(delta).unwrap_or(0),
        se: msg
            .values(HeaderName::SessionExpires)
            .find_map(delta)
            .unwrap_or(0),
    }
}

/// The interval a refresh sets: `sst_interval` when it is above the message's Min-SE,
/// else the message's Session-Expires, not below `min_se` (OpenSIPS' rule).
fn refreshed(s: &Settings, m: &MsgInfo) -> u32 {
    if s.interval > m.min_se {
        s.interval
    } else {
        m.se.max(s.min_se)
    }
}

/// A new dialog for `ctx`'s INVITE: when flagged, its session interval (with the `Min-SE` and
/// `Session-Expires` the proxy adds to the INVITE on its way). `Some(min_se)`: the request
/// asks too little, supports timers, and `reject_to_small` wants a 422 with that Min-SE.
pub(crate) fn created(ctx: &mut MsgCtx, d: &mut Dialog) -> Option<u32> {
    let s = SETTINGS.get()?;
    if ctx.flags & (1u64 << s.flag) == 0 || ctx.msg.method() != Some(Method::Invite) {
        return None;
    }
    let m = parse(&ctx.msg);
    let mut info = Info {
        interval: s.interval.max(90),
        supported: if m.supported {
            Side::Caller
        } else {
            Side::Nobody
        },
        requester: if m.se != 0 {
            Side::Caller
        } else {
            Side::Nobody
        },
    };
    if m.se != 0 {
        if m.se >= s.min_se {
            info.interval = m.se;
        } else if !m.supported {
            // The caller cannot take a 422: our Min-SE goes on with the request instead.
            info.interval = s.min_se.max(m.min_se);
            replace_min_se(ctx, info.interval);
        } else if s.reject {
            return Some(s.min_se.max(m.min_se).max(90));
        }
    } else {
        info.interval = m.min_se.max(s.min_se);
        if m.min_se != 0 && m.min_se < s.min_se {
            replace_min_se(ctx, info.interval);
        }
        info.interval = info.interval.max(s.interval);
        info.requester = Side::Proxy;
        ctx.edits
            .append("Session-Expires", &info.interval.to_string());
    }
    d.lifetime = info.interval;
    d.sst = Some(info);
    None
}

/// Every `Min-SE` of the request out, ours in.
fn replace_min_se(ctx: &mut MsgCtx, value: u32) {
    let old: Vec<usize> = ctx
        .msg
        .headers()
        .filter(|h| h.name == HeaderName::MinSe)
        .map(|h| h.index)
        .collect();
    for i in old {
        ctx.edits.remove(i);
    }
    ctx.edits.append("Min-SE", &value.to_string());
}

/// The dialog's lifetime set to `secs`: from now for a confirmed one, from its confirmation
/// for one not yet answered.
fn set_lifetime(d: &mut Dialog, secs: u32, now: Instant) {
    d.lifetime = secs;
    if d.expires.is_some() {
        d.expires = Some(now + std::time::Duration::from_secs(u64::from(secs)));
        let gone = crate::table::unix_now() - d.start_unix;
        d.lifetime = u32::try_from(gone.max(0)).unwrap_or(0).saturating_add(secs);
    }
}

/// A sequential request of a dialog with a session timer: a re-INVITE or UPDATE may bring a
/// new interval; it, a PRACK and an ACK start the interval again.
pub(crate) fn request_within(d: &mut Dialog, msg: &SipMessage, now: Instant) {
    let (Some(s), Some(mut info)) = (SETTINGS.get(), d.sst) else {
        return;
    };
    match msg.method() {
        Some(Method::Invite | Method::Update) => {
            let m = parse(msg);
            if m.se > 0 {
                info.interval = refreshed(s, &m);
            }
            info.supported = if m.supported {
                Side::Caller
            } else {
                Side::Nobody
            };
        }
        Some(Method::Prack | Method::Ack) => {}
        _ => return,
    }
    d.sst = Some(info);
    set_lifetime(d, info.interval, now);
}

/// A reply relayed for a dialog with a session timer: a 422's Min-SE raises the interval, a
/// 2xx to an INVITE or UPDATE settles it (no timer at all: the dialog's default lifetime).
pub(crate) fn reply(d: &mut Dialog, code: u16, msg: &SipMessage, now: Instant) {
    let (Some(s), Some(mut info)) = (SETTINGS.get(), d.sst) else {
        return;
    };
    let m = parse(msg);
    if code == 422 {
        info.interval = info.interval.max(m.min_se);
        d.sst = Some(info);
        return;
    }
    let refresh = msg
        .cseq()
        .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
    if !(200..300).contains(&code) || !refresh {
        return;
    }
    if info.supported != Side::Caller {
        info.supported = if m.supported {
            Side::Callee
        } else {
            Side::Nobody
        };
    }
    if m.se != 0 || info.supported == Side::Caller {
        info.interval = refreshed(s, &m);
    } else {
        info.interval = crate::settings().default_timeout;
    }
    d.sst = Some(info);
    set_lifetime(d, info.interval, now);
}

/// A 2xx to an INVITE or UPDATE about to be relayed to a caller that supports timers when the
/// callee asked for none: the caller is made the refresher (`Session-Expires: N;refresher=uac`,
/// `timer` required), as OpenSIPS does.
pub(crate) fn reply_out(ctx: &mut MsgCtx, d: &Dialog) {
    let (Some(s), Some(info)) = (SETTINGS.get(), d.sst) else {
        return;
    };
    let msg = &ctx.msg;
    let code = msg.status().unwrap_or(0);
    let refresh = msg
        .cseq()
        .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
    if !(200..300).contains(&code) || !refresh || info.supported != Side::Caller {
        return;
    }
    let m = parse(msg);
    if m.se != 0 {
        return;
    }
    let interval = refreshed(s, &m);
    ctx.edits
        .append("Session-Expires", &format!("{interval};refresher=uac"));
    let require = msg
        .headers()
        .find(|h| h.name == HeaderName::Require)
        .map(|h| (h.index, h.value.to_owned()));
    match require {
        Some((_, v)) if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")) => {}
        Some((index, v)) => {
            ctx.edits.replace_value(index, format!("{v}, timer"));
        }
        None => {
            ctx.edits.append("Require", "timer");
        }
    }
}

/// A dialog with a session timer timed out (`expired_sst`).
pub(crate) fn expired(d: &Dialog) {
    if d.sst.is_some() {
        engine::stat!("sst", "expired_sst").inc();
    }
}

/// `sstCheckMin([send_reply])`: true when the INVITE's Session-Expires (or Min-SE, 90 when
/// absent) is below `min_se`, answered 422 with our Min-SE when asked to.
fn sst_check_min(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = SETTINGS.get() else {
        return -1;
    };
    if f.msg.msg.method() != Some(Method::Invite) {
        return -1;
    }
    let m = parse(&f.msg.msg);
    if m.se == 0 {
        return -1;
    }
    let min_se = if m.min_se == 0 { 90 } else { m.min_se };
    if s.min_se <= min_se.min(m.se) {
        return -1;
    }
    if args.first().and_then(Value::as_int).unwrap_or(0) != 0 {
        send_422(f, s.min_se);
    }
    1
}

/// `422 Session Timer Too Small` with our `Min-SE`.
pub(crate) fn send_422(f: &mut FnCtx<'_>, min_se: u32) {
    if sl::reply_with(
        f,
        422,
        "Session Timer Too Small",
        vec![format!("Min-SE: {min_se}")],
    ) < 0
    {
        f.log.log(-1, "sst: the 422 reply could not be sent\n");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    fn msg(extra: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\
             From: <sip:a@x>;tag=a\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn session_timer_headers_are_read_in_any_form() {
        assert_eq!(parse(&msg("")), MsgInfo::default());
        assert_eq!(
            parse(&msg(
                "Supported: 100rel, Timer\r\nSession-Expires: 1800;refresher=uac\r\nMin-SE: 120\r\n"
            )),
            MsgInfo {
                supported: true,
                min_se: 120,
                se: 1800
            }
        );
        assert_eq!(parse(&msg("k: timer\r\nx: 600\r\n")).se, 600);
        assert_eq!(parse(&msg("Session-Expires: soon\r\n")).se, 0);
    }

    #[test]
    fn refreshes_follow_opensips_rule() {
        let s = Settings {
            min_se: 90,
            interval: 300,
            reject: true,
            flag: 0,
        };
        let m = |se, min_se| MsgInfo {
            supported: true,
            se,
            min_se,
        };
        assert_eq!(refreshed(&s, &m(1800, 0)), 300, "sst_interval above Min-SE");
        assert_eq!(refreshed(&s, &m(1800, 600)), 1800);
        assert_eq!(refreshed(&s, &m(60, 600)), 90);
    }
}
