//! The OpenSIPS `maxfwd` module: `mf_process_maxfwd_header(max)` and `is_maxfwd_lt(max)`
//! (RFC 3261 §16.6 step 3, driven from the script as OpenSIPS does).
#![forbid(unsafe_code)]

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Value};
use sip::HeaderName;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "maxfwd",
    functions: &[
        FnSpec {
            name: "mf_process_maxfwd_header",
            params: &[(Param::Int, false)],
            routes: Routes::REQUEST,
            run: process,
        },
        FnSpec {
            name: "is_maxfwd_lt",
            params: &[(Param::Int, false)],
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

/// The Max-Forwards value as the script has left it: what `mf_process_maxfwd_header` wrote
/// (OpenSIPS rewrites it in the message, so later checks and a second call see it), else the
/// received one.
fn current(ctx: &engine::MsgCtx, index: usize) -> Result<Option<u32>, ()> {
    match ctx.edits.replaced_value(index) {
        Some(v) => v.trim().parse().map(Some).map_err(|_| ()),
        None => ctx.msg.max_forwards().map_err(|_| ()),
    }
}

/// Absent: add `Max-Forwards: max`, 2. Zero: -1 (the script answers 483). Otherwise decrement
/// (capped at `max_limit`), 1. Unparsable: -2.
fn process(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(max) = args.first().and_then(Value::as_int).filter(|m| *m > 0) else {
        return -2;
    };
    let limit = max_limit(f);
    let msg = &f.msg.msg;
    let Some(h) = msg.headers().find(|h| h.name == HeaderName::MaxForwards) else {
        f.msg.edits.append("Max-Forwards", &max.to_string());
        return 2;
    };
    let index = h.index;
    match current(f.msg, index) {
        Ok(Some(0)) => -1,
        Ok(Some(n)) => {
            let next = (n - 1).min(limit);
            f.msg.edits.replace_value(index, next.to_string());
            1
        }
        _ => -2,
    }
}

/// 1 when Max-Forwards is below `max`, -1 when not, -2 when absent, -3 when unparsable.
fn is_lt(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(max) = args.first().and_then(Value::as_int) else {
        return -3;
    };
    let current = match f
        .msg
        .msg
        .headers()
        .find(|h| h.name == HeaderName::MaxForwards)
    {
        Some(h) => current(f.msg, h.index),
        None => Ok(None),
    };
    match current {
        Ok(Some(n)) if i64::from(n) < max => 1,
        Ok(Some(_)) => -1,
        Ok(None) => -2,
        Err(_) => -3,
    }
}
