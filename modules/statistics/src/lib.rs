//! The OpenSIPS `statistics` module: statistics the script defines and updates
//! (`variable` declares them, `update_stat` creates any other on first use), in the `dynamic`
//! group unless a name says `group:name` for a group `stat_groups` declares; `reset_stat`;
//! `stat_iter_init`/`stat_iter_next` walk a group. `$stat(name)` (read, and reset by assigning)
//! is the engine's. They are listed by MI `get_statistics` with every other statistic.
//! Statistic series (`stat_series_profile`, `update_stat_series`) are in [`series`].
#![forbid(unsafe_code)]

pub mod series;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::BRANCH)
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::LOCAL)
    .or(Routes::TIMER)
    .or(Routes::EVENT)
    .or(Routes::STARTUP);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "statistics",
    functions: &[
        FnSpec {
            name: "update_stat",
            params: &[(Param::Str, false), (Param::Int, false)],
            routes: ROUTES,
            run: update_stat,
        },
        FnSpec {
            name: "update_stat_series",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Int, false),
            ],
            routes: Routes::ALL,
            run: update_stat_series,
        },
        FnSpec {
            name: "reset_stat",
            params: &[(Param::Str, false)],
            routes: ROUTES,
            run: reset_stat,
        },
        FnSpec {
            name: "stat_iter_init",
            params: &[(Param::Str, false), (Param::StaticStr, false)],
            routes: ROUTES,
            run: stat_iter_init,
        },
        FnSpec {
            name: "stat_iter_next",
            params: &[
                (Param::Var, false),
                (Param::Var, false),
                (Param::StaticStr, false),
            ],
            routes: ROUTES,
            run: stat_iter_next,
        },
    ],
    params: &[
        ("variable", ParamType::Str),
        ("stat_groups", ParamType::Str),
        ("stat_series_profile", ParamType::Str),
    ],
};

/// The group a statistic without one belongs to.
pub const DYNAMIC: &str = "dynamic";

/// The groups `stat_groups` declares.
fn groups() -> &'static OnceLock<Vec<String>> {
    static GROUPS: OnceLock<Vec<String>> = OnceLock::new();
    &GROUPS
}

/// `group:name` split; `Err` for a group `stat_groups` does not declare.
fn split(spec: &str) -> Result<(&str, &str), String> {
    match spec.split_once(':') {
        Some((g, n)) => {
            let known = groups().get().is_some_and(|gs| gs.iter().any(|x| x == g));
            if known {
                Ok((g, n))
            } else {
                Err(format!("statistic group `{g}` is not in stat_groups"))
            }
        }
        None => Ok((DYNAMIC, spec)),
    }
}

/// Declares the groups and the `variable` statistics; a bad one stops the start.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("statistics") {
        return Ok(());
    }
    let mut declared = Vec::new();
    for text in script.modparam_strs("statistics", "stat_groups") {
        for g in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            declared.push(g.to_owned());
        }
    }
    let _ = groups().set(declared);
    series::configure(&script.modparam_strs("statistics", "stat_series_profile"))?;
    for v in script.modparam_strs("statistics", "variable") {
        let (spec, flag) = match v.split_once('/') {
            Some((s, f)) => (s.trim(), Some(f.trim())),
            None => (v.trim(), None),
        };
        let no_reset = match flag {
            None => false,
            Some(f) if f.eq_ignore_ascii_case("no_reset") => true,
            Some(f) => return Err(format!("statistics: unsupported flag `{f}` in `{v}`")),
        };
        if spec.is_empty() {
            return Err("statistics: empty variable".into());
        }
        let (group, name) = split(spec).map_err(|e| format!("statistics: {e}"))?;
        engine::stats::named(group, name, no_reset);
    }
    Ok(())
}

fn text(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default()
}

/// `update_stat_series(profile, name, value)`: feeds a value to a series.
fn update_stat_series(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (profile, name) = (text(args, 0), text(args, 1));
    let value = args.get(2).and_then(Value::as_int).unwrap_or(0);
    match series::update(&profile, &name, value) {
        Ok(()) => 1,
        Err(e) => {
            f.log.log(-1, &format!("update_stat_series: {e}\n"));
            -1
        }
    }
}

/// `update_stat(name, value)`: adds `value` (negative too), making the statistic first if
/// it does not exist.
pub fn update_stat(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let spec = text(args, 0);
    let n = args.get(1).and_then(Value::as_int).unwrap_or(0);
    let stat = match engine::stats::find(&spec) {
        Some(s) => s,
        None => match split(&spec) {
            Ok((g, name)) if !name.is_empty() => engine::stats::named(g, name, false),
            Ok(_) => return -1,
            Err(e) => {
                f.log.log(-1, &format!("update_stat: {e}\n"));
                return -1;
            }
        },
    };
    stat.add(n);
    1
}

/// `reset_stat(name)`: -1 when there is no such statistic.
pub fn reset_stat(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let spec = text(args, 0);
    match engine::stats::find(&spec) {
        Some(s) => {
            s.reset();
            1
        }
        None => {
            f.log
                .log(-1, &format!("reset_stat: no statistic `{spec}`\n"));
            -1
        }
    }
}

thread_local! {
    /// The worker's iterators by name: the group and the next position in it.
    static ITERATORS: RefCell<HashMap<String, (String, usize)>> = RefCell::new(HashMap::new());
}

/// `stat_iter_init(group, iter)`.
pub fn stat_iter_init(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (group, iter) = (text(args, 0), text(args, 1));
    ITERATORS.with(|it| it.borrow_mut().insert(iter, (group, 0)));
    1
}

/// `stat_iter_next($name, $val, iter)`: the next statistic of the group (its name without the
/// group, and its value); -1 past the last.
pub fn stat_iter_next(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let iter = text(args, 2);
    let next = ITERATORS.with(|it| {
        let mut it = it.borrow_mut();
        let (group, pos) = it.get_mut(&iter)?;
        let stat = engine::stats::all()
            .into_iter()
            .filter(|s| s.group == group.as_str())
            .nth(*pos)?;
        *pos += 1;
        Some(stat)
    });
    match next {
        Some(s) => {
            f.set_output(0, Value::from(s.name.to_owned()));
            f.set_output(1, Value::Int(s.get()));
            1
        }
        None => -1,
    }
}
