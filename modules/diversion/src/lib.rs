//! The OpenSIPS `diversion` module (RFC 5806): `add_diversion(reason[, uri][, counter])` puts
//! `Diversion: <URI>;reason=R[;counter=N]` (and the `suffix` parameter) above the request's
//! Diversion headers, or after its headers when it has none; the URI is the Request-URI as
//! received unless given. Called again for the same request, the newer goes on top.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::sync::OnceLock;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "diversion",
    functions: &[FnSpec {
        name: "add_diversion",
        params: &[(Param::Str, false), (Param::Str, true), (Param::Int, true)],
        routes: Routes::REQUEST.or(Routes::FAILURE),
        run: add_diversion,
    }],
    params: &[("suffix", ParamType::Str)],
};

static SUFFIX: OnceLock<String> = OnceLock::new();

/// Reads `suffix` when the script loads the module.
pub fn start(script: &Script) {
    if script.loads("diversion") {
        let _ = SUFFIX.set(
            script
                .modparam_str("diversion", "suffix")
                .unwrap_or_default(),
        );
    }
}

thread_local! {
    /// (message, position among the appended headers) of the first Diversion this worker
    /// appended to a request without one: the next go above it.
    static APPENDED: Cell<Option<(u64, usize)>> = const { Cell::new(None) };
}

fn add_diversion(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let reason = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let uri = match args.get(1).filter(|v| !v.is_null()) {
        Some(v) => v.to_text().into_owned(),
        None => match f.msg.msg.request_uri_str() {
            Some(u) => u.to_owned(),
            None => return -1,
        },
    };
    let mut value = format!("<{uri}>;reason={reason}");
    if let Some(n) = args.get(2).and_then(Value::as_int).filter(|n| *n > 0) {
        value.push_str(&format!(";counter={n}"));
    }
    value.push_str(SUFFIX.get().map_or("", String::as_str));
    let first = f
        .msg
        .msg
        .headers()
        .find(|h| h.name_str.eq_ignore_ascii_case("Diversion"))
        .map(|h| h.index);
    match first {
        Some(i) => {
            f.msg.edits.insert_before_first(i, "Diversion", &value);
        }
        None => {
            let id = f.msg.id;
            let at = match APPENDED.get() {
                Some((msg, at)) if msg == id => at,
                _ => {
                    let at = f.msg.edits.appended();
                    APPENDED.set(Some((id, at)));
                    at
                }
            };
            f.msg.edits.append_at(at, "Diversion", &value);
        }
    }
    1
}
