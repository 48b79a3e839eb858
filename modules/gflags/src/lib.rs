//! The OpenSIPS `gflags` module: 32 global flags every worker sees, `initial` as they start.
//! `set_gflag(n)`, `reset_gflag(n)`, `is_gflag(n)` (n in 0..=31; out of range is a load error
//! for a literal, -1 at run time), and MI `gflags:set`, `gflags:reset` (a bitmask, decimal or
//! `0x` hex; 0 is refused), `gflags:check` (true when every flag of the mask is set),
//! `gflags:get` (`hex` and `dec`), with the legacy names `set_gflag`, `reset_gflag`,
//! `is_gflag`, `get_gflags`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};

static FLAGS: AtomicU32 = AtomicU32::new(0);

static FLAG: ParamCheck = ParamCheck {
    what: "global flag",
    check: |t| engine::module::int_between(t, 0, 31),
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "gflags",
    functions: &[
        FnSpec {
            name: "set_gflag",
            params: &[(Param::CheckedInt(&FLAG), false)],
            routes: Routes::ALL,
            run: set_gflag,
        },
        FnSpec {
            name: "reset_gflag",
            params: &[(Param::CheckedInt(&FLAG), false)],
            routes: Routes::ALL,
            run: reset_gflag,
        },
        FnSpec {
            name: "is_gflag",
            params: &[(Param::CheckedInt(&FLAG), false)],
            routes: Routes::ALL,
            run: is_gflag,
        },
    ],
    params: &[("initial", ParamType::Int)],
};

/// Sets the flags to `initial` when the script loads the module.
pub fn start(script: &Script) {
    if script.loads("gflags") {
        let initial = script.modparam_int("gflags", "initial").unwrap_or(0);
        // The bitmap is 32 bits wide: a larger value keeps its low bits, as a C int does.
        FLAGS.store(initial as u32, Ordering::SeqCst);
    }
}

fn bit(args: &[Value]) -> Option<u32> {
    let n = args.first().and_then(Value::as_int)?;
    (0..32).contains(&n).then(|| 1u32 << n)
}

fn set_gflag(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(b) = bit(args) else { return -1 };
    FLAGS.fetch_or(b, Ordering::SeqCst);
    1
}

fn reset_gflag(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(b) = bit(args) else { return -1 };
    FLAGS.fetch_and(!b, Ordering::SeqCst);
    1
}

fn is_gflag(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    match bit(args) {
        Some(b) if FLAGS.load(Ordering::SeqCst) & b != 0 => 1,
        _ => -1,
    }
}

/// A bitmask as MI takes it: decimal or `0x` hex, 32 bits.
fn mask(p: &mi::Params) -> Result<u32, mi::MiError> {
    let text = p
        .str("bitmask")?
        .ok_or_else(|| mi::MiError::new(-32602, "Invalid params"))?;
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse::<u32>().ok(),
    };
    // A zero mask is refused too, as OpenSIPS does.
    parsed
        .filter(|m| *m != 0)
        .ok_or_else(|| mi::MiError::new(400, "Bad parameter value"))
}

/// The MI commands.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "gflags:set",
        &["set_gflag", "gflags:set_gflag"],
        &[&["bitmask"]],
        |p| {
            FLAGS.fetch_or(mask(p)?, Ordering::SeqCst);
            Ok(serde_json::json!("OK"))
        },
    ));
    mi.add(mi::Command::new(
        "gflags:reset",
        &["reset_gflag", "gflags:reset_gflag"],
        &[&["bitmask"]],
        |p| {
            FLAGS.fetch_and(!mask(p)?, Ordering::SeqCst);
            Ok(serde_json::json!("OK"))
        },
    ));
    mi.add(mi::Command::new(
        "gflags:check",
        &["is_gflag", "gflags:is_gflag"],
        &[&["bitmask"]],
        |p| {
            let m = mask(p)?;
            Ok(serde_json::json!(FLAGS.load(Ordering::SeqCst) & m == m))
        },
    ));
    mi.add(mi::Command::new(
        "gflags:get",
        &["get_gflags", "gflags:get_gflags"],
        &[&[]],
        |_| {
            let f = FLAGS.load(Ordering::SeqCst);
            Ok(serde_json::json!({ "hex": format!("0x{f:X}"), "dec": f.to_string() }))
        },
    ));
}
