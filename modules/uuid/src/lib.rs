//! The OpenSIPS `uuid` module: `$uuid` / `$uuid(version)` (read in the engine) and
//! `uuid(out_var[, version][, namespace][, name])`: version 0 (4), 1, 3, 4, 5 or 7, the
//! name-based ones from a namespace UUID and a name. Returns 1, -1 for an unknown version or a
//! bad namespace (-2 when 3 or 5 lack their namespace or name). OpenSIPS' 2 for an "unsafe"
//! version 1 UUID does not occur: the node part is random and the clock is read per call.
#![forbid(unsafe_code)]

use engine::{FnCtx, FnSpec, ModuleSpec, Param, Routes, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "uuid",
    functions: &[FnSpec {
        name: "uuid",
        params: &[
            (Param::Var, false),
            (Param::Int, true),
            (Param::Str, true),
            (Param::Str, true),
        ],
        routes: Routes::ALL,
        run: uuid,
    }],
    params: &[],
};

fn uuid(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let version = args.get(1).and_then(Value::as_int).unwrap_or(0);
    let text = |i: usize| {
        args.get(i)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
    };
    let (namespace, name) = (text(2), text(3));
    if matches!(version, 3 | 5) && (namespace.is_none() || name.is_none()) {
        f.log
            .log(-1, "uuid: versions 3 and 5 need a namespace and a name\n");
        return -2;
    }
    match engine::pv::uuid::generate(version, namespace.as_deref(), name.as_deref()) {
        Some(u) => {
            f.set_output(0, Value::from(u));
            1
        }
        None => {
            f.log.log(
                -1,
                &format!("uuid: version {version} is not supported, or a bad namespace\n"),
            );
            -1
        }
    }
}
