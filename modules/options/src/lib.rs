//! The OpenSIPS `options` module: `options_reply()` answers an OPTIONS whose Request-URI has
//! no user part (one for the server itself) with `200 OK` and the `Accept` (`accept`, default
//! `*/*`), `Accept-Encoding` (`accept_encoding`, default none), `Accept-Language`
//! (`accept_language`, default `en`) and `Supported` (`support`, default none) headers; an
//! empty value leaves its header out. Like OpenSIPS it returns 0 (the script ends) once it
//! answered, -1 for another method or a Request-URI with a user.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use engine::{FnCtx, FnSpec, ModuleSpec, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "options",
    functions: &[FnSpec {
        name: "options_reply",
        params: &[],
        routes: Routes::REQUEST,
        run: options_reply,
    }],
    params: &[
        ("accept", ParamType::Str),
        ("accept_encoding", ParamType::Str),
        ("accept_language", ParamType::Str),
        ("support", ParamType::Str),
    ],
};

/// The reply's header lines.
static HEADERS: OnceLock<Vec<String>> = OnceLock::new();

/// Reads the parameters when the script loads the module.
pub fn start(script: &Script) {
    if !script.loads("options") {
        return;
    }
    let p = |n: &str, d: &str| {
        script
            .modparam_str("options", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let headers = [
        ("Accept", p("accept", "*/*")),
        ("Accept-Encoding", p("accept_encoding", "")),
        ("Accept-Language", p("accept_language", "en")),
        ("Supported", p("support", "")),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(n, v)| format!("{n}: {v}"))
    .collect();
    let _ = HEADERS.set(headers);
}

fn options_reply(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    if f.msg.msg.method() != Some(sip::Method::Options) {
        f.log.log(
            -1,
            "options_reply: called for a request other than OPTIONS\n",
        );
        return -1;
    }
    let has_user = f
        .msg
        .ruri()
        .and_then(|r| sip::Uri::parse(r).ok())
        .is_some_and(|u| u.user().is_some_and(|u| !u.is_empty()));
    if has_user {
        f.log
            .log(-1, "options_reply: the Request-URI has a user part\n");
        return -1;
    }
    let headers = HEADERS.get().cloned().unwrap_or_default();
    if sl::reply_with(f, 200, "OK", headers) < 0 {
        // OpenSIPS answers 500 when its 200 cannot be built.
        sl::reply_with(f, 500, "Server internal error", Vec::new());
    }
    0
}
