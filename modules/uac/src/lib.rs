//! The OpenSIPS `uac` module (and `uac_auth`, which holds its credentials): the proxy acting
//! as a UAC towards the next hop.
//!
//! - `uac_replace_from([display,] uri)` / `uac_replace_to(…)` rewrite From/To in the request
//!   that goes on; with `restore_mode` `auto` (default) or `manual` the original comes back in
//!   every reply, and is kept in our Record-Route (`vsf`/`vst`, OpenSIPS' encoding) so the
//!   dialog's later requests get it too: automatically in `auto` when `loose_route()` takes
//!   them, on `uac_restore_from()`/`uac_restore_to()` in `manual`.
//! - `uac_auth([algorithms])` answers the 401/407 a failure route got with the credentials of
//!   its realm (`credential` "user:realm:password", or the `auth_*_avp` AVPs), raising CSeq by
//!   one for the next hop (and back in the replies, and in the dialog's later requests towards
//!   the callee through an `aci` Record-Route parameter); the script then calls `t_relay()`.
//! - `uac_inc_cseq(n)`.
//!
//! Unlike OpenSIPS, the restore data stays in Record-Route even when the dialog module is
//! loaded (OpenSIPS keeps it in the dialog then): what the endpoints see is the same.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use engine::{
    FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, ReplyFixup, Routes, Script, Value,
};
use sip::HeaderName;

pub mod auth;
pub mod codec;

use codec::NameAddr;

const ROUTES: Routes = Routes::REQUEST.or(Routes::BRANCH).or(Routes::FAILURE);

pub static UAC: ModuleSpec = ModuleSpec {
    name: "uac",
    functions: &[
        FnSpec {
            name: "uac_replace_from",
            params: &[(Param::Str, true), (Param::Str, false)],
            routes: ROUTES,
            run: uac_replace_from,
        },
        FnSpec {
            name: "uac_replace_to",
            params: &[(Param::Str, true), (Param::Str, false)],
            routes: ROUTES,
            run: uac_replace_to,
        },
        FnSpec {
            name: "uac_restore_from",
            params: &[],
            routes: ROUTES,
            run: uac_restore_from,
        },
        FnSpec {
            name: "uac_restore_to",
            params: &[],
            routes: ROUTES,
            run: uac_restore_to,
        },
        FnSpec {
            name: "uac_auth",
            params: &[(Param::Checked(&auth::ALGORITHMS), true)],
            routes: ROUTES,
            run: auth::uac_auth,
        },
        FnSpec {
            name: "uac_inc_cseq",
            params: &[(Param::Int, false)],
            routes: ROUTES,
            run: auth::uac_inc_cseq,
        },
    ],
    params: &[
        ("rr_from_store_param", ParamType::Str),
        ("rr_to_store_param", ParamType::Str),
        ("restore_mode", ParamType::Str),
        ("restore_passwd", ParamType::Str),
        ("force_dialog", ParamType::Int),
    ],
};

pub static UAC_AUTH: ModuleSpec = ModuleSpec {
    name: "uac_auth",
    functions: &[],
    params: &[
        ("credential", ParamType::Str),
        ("auth_username_avp", ParamType::Str),
        ("auth_realm_avp", ParamType::Str),
        ("auth_password_avp", ParamType::Str),
    ],
};

/// `restore_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Auto,
    Manual,
}

struct Settings {
    mode: Mode,
    from_param: String,
    to_param: String,
    password: String,
}

fn settings() -> &'static OnceLock<Settings> {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    &SETTINGS
}

/// Reads the parameters (an unknown `restore_mode` or bad `credential` stops the start) and
/// hooks the sequential requests `loose_route` takes.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("uac") {
        return Ok(());
    }
    let param = |n: &str, d: &str| {
        script
            .modparam_str("uac", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let mode = match param("restore_mode", "auto").to_ascii_lowercase().as_str() {
        "none" => Mode::None,
        "auto" => Mode::Auto,
        "manual" => Mode::Manual,
        other => {
            return Err(format!(
                "uac: bad restore_mode `{other}` (none, auto, manual)"
            ));
        }
    };
    let s = Settings {
        mode,
        from_param: param("rr_from_store_param", "vsf"),
        to_param: param("rr_to_store_param", "vst"),
        password: param("restore_passwd", ""),
    };
    if mode != Mode::None && (s.from_param.is_empty() || s.to_param.is_empty()) {
        return Err("uac: rr_from_store_param and rr_to_store_param cannot be empty".into());
    }
    // Restoring in auto mode tells the directions apart by rr's `ftag` (OpenSIPS refuses
    // to start without it too).
    if mode == Mode::Auto && script.modparam_int("rr", "append_fromtag") == Some(0) {
        return Err("uac: restore_mode auto needs rr's append_fromtag".into());
    }
    auth::start(script)?;
    if settings().set(s).is_ok() {
        engine::hooks::set_routed_hook(Box::new(routed));
    }
    Ok(())
}

fn header_of(ctx: &MsgCtx, name: HeaderName) -> Option<(usize, String)> {
    ctx.msg.headers().find(|h| h.name == name).map(|h| {
        let value = ctx
            .edits
            .replaced_value(h.index)
            .map_or_else(|| h.value.to_owned(), str::to_owned);
        (h.index, value)
    })
}

fn replace(f: &mut FnCtx<'_>, args: &[Value], to: bool) -> i64 {
    let Some(s) = settings().get() else {
        return -1;
    };
    let name = if to { HeaderName::To } else { HeaderName::From };
    let Some((index, value)) = header_of(f.msg, name) else {
        return -1;
    };
    let display = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned());
    let uri = args
        .get(1)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default();
    if !uri.is_empty() && s.mode == Mode::Auto && f.msg.msg.to_tag().ok().flatten().is_some() {
        f.log.log(
            -1,
            "decline FROM/TO replacing in sequential request in auto mode\n",
        );
        return -1;
    }
    let old = NameAddr::split(&value);
    let shown = match &display {
        Some(d) => codec::display(d),
        None => old.display.to_owned(),
    };
    let new_uri = if uri.is_empty() {
        old.uri.to_owned()
    } else {
        uri.clone()
    };
    let addr = if uri.is_empty() && !old.bracketed && shown.is_empty() {
        new_uri.clone()
    } else {
        format!("<{new_uri}>")
    };
    let new_value = match shown.is_empty() {
        true => format!("{addr}{}", old.params),
        false => format!("{shown} {addr}{}", old.params),
    };
    f.msg.edits.replace_value(index, new_value);
    if uri.is_empty() || s.mode == Mode::None {
        return 1;
    }
    // The original comes back in every reply to this request…
    let original = NameAddr::split(
        f.msg
            .msg
            .headers()
            .find(|h| h.name == name)
            .map_or("", |h| h.value),
    )
    .prefix();
    let fix = ReplyFixup::Header { to, original };
    if !f.msg.reply_fixups.contains(&fix) {
        f.msg.reply_fixups.push(fix);
    }
    // … and in the dialog's later requests, by our Record-Route.
    let param = if to { &s.to_param } else { &s.from_param };
    let stored = codec::encode(old.uri, &uri, &s.password);
    f.msg
        .record_route
        .get_or_insert_with(Default::default)
        .params
        .push_str(&format!(";{param}={stored}"));
    1
}

/// `uac_replace_from([display,] uri)`.
pub fn uac_replace_from(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace(f, args, false)
}

/// `uac_replace_to([display,] uri)`.
pub fn uac_replace_to(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace(f, args, true)
}

/// The value of our Route's parameter `name` (`loose_route` recorded the parameters).
fn route_param<'a>(ctx: &'a MsgCtx, name: &str) -> Option<&'a str> {
    ctx.rr_params.as_deref()?.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Restores a sequential request from our Route's parameter: towards the callee the header
/// that held the original gets the new URI again; towards the caller the header holding the
/// new URI gets the original back. `true` when something was restored.
fn restore(ctx: &mut MsgCtx, from_param: bool) -> bool {
    let Some(s) = settings().get() else {
        return false;
    };
    let param = if from_param {
        &s.from_param
    } else {
        &s.to_param
    };
    let Some(stored) = route_param(ctx, param).map(str::to_owned) else {
        return false;
    };
    let upstream = ctx.is_upstream();
    // Downstream the original is where it was replaced (From for vsf); upstream the other
    // header holds the new value.
    let in_to = from_param == upstream;
    let name = if in_to {
        HeaderName::To
    } else {
        HeaderName::From
    };
    let Some((index, value)) = header_of(ctx, name) else {
        return false;
    };
    let parts = NameAddr::split(&value);
    let new_value = if upstream {
        let key = format!("<{}>", parts.uri);
        let Some(original) = codec::decode(&stored, &key, &s.password) else {
            return false;
        };
        let addr = format!("<{original}>");
        match parts.display.is_empty() {
            true => format!("{addr}{}", parts.params),
            false => format!("{} {addr}{}", parts.display, parts.params),
        }
    } else {
        let Some(new_addr) = codec::decode(&stored, parts.uri, &s.password) else {
            return false;
        };
        match parts.display.is_empty() {
            true => format!("{new_addr}{}", parts.params),
            false => format!("{} {new_addr}{}", parts.display, parts.params),
        }
    };
    let fix = ReplyFixup::Header {
        to: in_to,
        original: NameAddr::split(
            ctx.msg
                .headers()
                .find(|h| h.name == name)
                .map_or("", |h| h.value),
        )
        .prefix(),
    };
    ctx.edits.replace_value(index, new_value);
    if !ctx.reply_fixups.contains(&fix) {
        ctx.reply_fixups.push(fix);
    }
    true
}

/// `uac_restore_from()` (manual mode): 1 when restored.
pub fn uac_restore_from(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    if f.msg.msg.is_request() && restore(f.msg, true) {
        1
    } else {
        -1
    }
}

/// `uac_restore_to()` (manual mode).
pub fn uac_restore_to(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    if f.msg.msg.is_request() && restore(f.msg, false) {
        1
    } else {
        -1
    }
}

/// A sequential request `loose_route` took by our Route: in `auto` mode what was replaced is
/// restored; a dialog `uac_auth` answered gets its CSeq raised towards the callee.
fn routed(ctx: &mut MsgCtx) {
    if settings().get().is_some_and(|s| s.mode == Mode::Auto) {
        restore(ctx, true);
        restore(ctx, false);
    }
    if route_param(ctx, auth::CSEQ_PARAM).is_some() && !ctx.is_upstream() {
        auth::raise_cseq(ctx, 1);
    }
}
