//! The OpenSIPS `maxfwd` module: `mf_process_maxfwd_header(max)` and `is_maxfwd_lt(max)`
//! (RFC 3261 §16.6 step 3, driven from the script as OpenSIPS does).
#![forbid(unsafe_code)]

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Value};
use sip::HeaderName;

/// The Max-Forwards value of `mf_process_maxfwd_header` / `is_maxfwd_lt`: 1 to 256 (OpenSIPS
/// refuses anything else when the script loads).
static MAXFWD: engine::ParamCheck = engine::ParamCheck {
    what: "Max-Forwards value",
    check: |text| engine::module::int_between(text, 1, 256),
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "maxfwd",
    functions: &[
        FnSpec {
            name: "mf_process_maxfwd_header",
            params: &[(Param::CheckedInt(&MAXFWD), false)],
            routes: Routes::REQUEST,
            run: process,
        },
        FnSpec {
            name: "is_maxfwd_lt",
            params: &[(Param::CheckedInt(&MAXFWD), false)],
            routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::BRANCH),
            run: is_lt,
        },
    ],
    params: &[("max_limit", ParamType::Int)],
};

/// `max_limit` (default 256): a larger received value is lowered to it.
fn max_limit(f: &FnCtx<'_>) -> u32 {
    f.script
        .modparams("maxfwd")
        .find_map(|(p, v)| match (p, v) {
            ("max_limit", cfg::ast::ParamValue::Int(n)) => u32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(256)
}

/// A Max-Forwards value read as OpenSIPS reads it (`str2s`): digits only, at most five; an
/// empty value is 0 (the request has no hops left). Larger values are kept (OpenSIPS wraps
/// them at 65536); they are lowered to `max_limit` anyway.
fn parse_value(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(0))
}

/// The Max-Forwards value of header line `index` as the script has left it: what
/// `mf_process_maxfwd_header` wrote (OpenSIPS rewrites it in the message, so later checks and
/// a second call see it), else the received one. `None` when it is not a number.
fn current(ctx: &engine::MsgCtx, index: usize, received: &str) -> Option<u32> {
    parse_value(ctx.edits.replaced_value(index).unwrap_or(received))
}

/// Absent: add `Max-Forwards: max` above the received headers (as OpenSIPS; the Via the
/// proxy adds when it relays still goes on top), 2. Zero: -1 (the script answers 483).
/// Otherwise decrement (capped at `max_limit`), 1. Unparsable: -2.
fn process(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(max) = args.first().and_then(Value::as_int).filter(|m| *m > 0) else {
        return -2;
    };
    let limit = max_limit(f);
    let msg = &f.msg.msg;
    let Some((index, received)) = msg
        .headers()
        .find(|h| h.name == HeaderName::MaxForwards)
        .map(|h| (h.index, h.value.to_owned()))
    else {
        f.msg.edits.add_top("Max-Forwards", &max.to_string());
        return 2;
    };
    match current(f.msg, index, &received) {
        Some(0) => -1,
        Some(n) => {
            let next = (n - 1).min(limit);
            f.msg.edits.replace_value(index, next.to_string());
            1
        }
        None => -2,
    }
}

/// 1 when Max-Forwards is below `max`, -1 when not, -2 when absent, -3 when unparsable.
fn is_lt(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(max) = args.first().and_then(Value::as_int) else {
        return -3;
    };
    let Some(h) = f
        .msg
        .msg
        .headers()
        .find(|h| h.name == HeaderName::MaxForwards)
    else {
        return -2;
    };
    match current(f.msg, h.index, h.value) {
        Some(n) if i64::from(n) < max => 1,
        Some(_) => -1,
        None => -3,
    }
}
