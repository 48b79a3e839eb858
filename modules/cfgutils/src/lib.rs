//! The OpenSIPS `cfgutils` module: random events with a settable probability, pauses,
//! time recurrence checks, time stamps and their differences, counting and weighted
//! selection over AVP values, shuffling AVPs, and named locks shared by all workers
//! (`get_static_lock`/`get_dynamic_lock` … `release_*`).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use engine::timerec::TimeRec;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

const ALL: Routes = Routes::ALL;

/// `shvset` / `varset`: `name=i:123` or `name=s:text`.
static VAR_SET: engine::ParamCheck = engine::ParamCheck {
    what: "variable setting",
    check: |s| engine::shv::parse_set(s).map(|_| ()),
};

static TIME_REC: engine::ParamCheck = engine::ParamCheck {
    what: "time recurrence",
    check: |s| TimeRec::parse(s).map(|_| ()),
};

macro_rules! f {
    ($name:literal, $params:expr, $run:expr) => {
        FnSpec {
            name: $name,
            params: $params,
            routes: ALL,
            run: $run,
        }
    };
}

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "cfgutils",
    functions: &[
        f!("rand_set_prob", &[(Param::Int, false)], rand_set_prob),
        f!("rand_reset_prob", &[], rand_reset_prob),
        f!("rand_get_prob", &[], rand_get_prob),
        f!("rand_event", &[(Param::Int, true)], rand_event),
        f!("sleep", &[(Param::Int, false)], sleep),
        f!("usleep", &[(Param::Int, false)], usleep),
        f!("pkg_status", &[], memory_status),
        f!("shm_status", &[], memory_status),
        f!(
            "set_count",
            &[(Param::Avp, false), (Param::Var, false)],
            set_count
        ),
        f!(
            "set_select_weight",
            &[(Param::Avp, false)],
            set_select_weight
        ),
        f!(
            "get_accurate_time",
            &[(Param::Var, false), (Param::Var, false), (Param::Var, true)],
            get_accurate_time
        ),
        f!(
            "ts_usec_delta",
            &[
                (Param::Int, false),
                (Param::Int, false),
                (Param::Int, false),
                (Param::Int, false),
                (Param::Var, true),
                (Param::Var, true),
            ],
            ts_usec_delta
        ),
        f!(
            "check_time_rec",
            &[(Param::Checked(&TIME_REC), false), (Param::Int, true)],
            check_time_rec
        ),
        f!("get_static_lock", &[(Param::Str, false)], get_lock),
        f!("release_static_lock", &[(Param::Str, false)], release_lock),
        f!("get_dynamic_lock", &[(Param::Str, false)], get_lock),
        f!("release_dynamic_lock", &[(Param::Str, false)], release_lock),
        f!("shuffle_avps", &[(Param::Avp, false)], shuffle_avps),
    ],
    params: &[
        ("initial_probability", ParamType::Int),
        ("hash_file", ParamType::Str),
        ("shv_hash_size", ParamType::Int),
        ("shvset", ParamType::CheckedStr(&VAR_SET)),
        ("varset", ParamType::CheckedStr(&VAR_SET)),
        ("lock_pool_size", ParamType::Int),
    ],
};

/// Sets the shared variables `shvset` gives (their start values; the script's own use of a
/// name makes it exist with 0 otherwise).
pub fn start(script: &Script) {
    for entry in script.modparam_strs("cfgutils", "shvset") {
        if let Ok((name, value)) = engine::shv::parse_set(&entry) {
            engine::shv::set(&name, value);
        }
    }
}

/// The `$var`s `varset` gives, set in `worker` (the state every worker starts from).
pub fn set_vars(script: &Script, worker: &mut engine::Worker) {
    for entry in script.modparam_strs("cfgutils", "varset") {
        if let Ok((name, value)) = engine::shv::parse_set(&entry) {
            script.set_var(worker, &name, value);
        }
    }
}

/// `shv_get [name]` and `shv_set name type value` (OpenSIPS' replies: `VARs` / `VAR`
/// objects with name, type "integer" or "string", value; 404 "Not found" for an unknown
/// name).
pub fn commands(mi: &mut mi::Mi) {
    fn item(name: &str, v: &Value) -> serde_json::Value {
        match v {
            Value::Int(n) => serde_json::json!({"name": name, "type": "integer", "value": n}),
            other => serde_json::json!({
                "name": name,
                "type": "string",
                "value": other.to_text().into_owned()
            }),
        }
    }
    mi.add(mi::Command::new(
        "cfgutils:shv_get",
        &["shv_get"],
        &[&[], &["name"]],
        |p| match p.str("name")? {
            None => {
                let all: Vec<serde_json::Value> =
                    engine::shv::all().iter().map(|(n, v)| item(n, v)).collect();
                Ok(serde_json::json!({ "VARs": all }))
            }
            Some(name) if engine::shv::exists(&name) => {
                Ok(serde_json::json!({ "VAR": item(&name, &engine::shv::get(&name)) }))
            }
            Some(_) => Err(mi::MiError::new(404, "Not found")),
        },
    ));
    mi.add(mi::Command::new(
        "cfgutils:shv_set",
        &["shv_set"],
        &[&["name", "type", "value"]],
        |p| {
            let name = p.str("name")?.unwrap_or_default();
            if !engine::shv::exists(&name) {
                return Err(mi::MiError::new(404, "Not found"));
            }
            let kind = p.str("type")?.unwrap_or_default();
            let value = p.str("value")?.unwrap_or_default();
            let value = if kind.starts_with(['s', 'S']) {
                Value::str(&value)
            } else {
                Value::Int(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| mi::MiError::new(500, "bad integer value"))?,
                )
            };
            engine::shv::set(&name, value);
            Ok(serde_json::json!("OK"))
        },
    ));
}

/// The probability of `rand_event` in percent (`initial_probability`, 10 by default).
static PROB: AtomicI64 = AtomicI64::new(-1);

fn initial(script: &Script) -> i64 {
    script
        .modparam_int("cfgutils", "initial_probability")
        .unwrap_or(10)
        .clamp(0, 100)
}

fn prob(script: &Script) -> i64 {
    match PROB.load(Ordering::Relaxed) {
        p if p < 0 => initial(script),
        p => p,
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn int_arg(args: &[Value], i: usize) -> Option<i64> {
    args.get(i).filter(|v| !v.is_null()).and_then(Value::as_int)
}

/// `rand_set_prob(percent)`: 1, or -1 outside 0..=100.
pub fn rand_set_prob(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    match int_arg(args, 0) {
        Some(p @ 0..=100) => {
            PROB.store(p, Ordering::Relaxed);
            1
        }
        _ => -1,
    }
}

pub fn rand_reset_prob(_f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    PROB.store(-1, Ordering::Relaxed);
    1
}

/// `rand_get_prob()`: logs the probability (OpenSIPS prints it).
pub fn rand_get_prob(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let p = prob(f.script);
    f.log
        .log(2, &format!("cfgutils: the probability is {p} percent\n"));
    1
}

/// `rand_event([percent])`: true with that probability (the set one when left out).
pub fn rand_event(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let p = int_arg(args, 0)
        .unwrap_or_else(|| prob(f.script))
        .clamp(0, 100);
    if (random_u64() % 100) < p as u64 {
        1
    } else {
        -1
    }
}

/// `sleep(seconds)`: pauses this worker (as OpenSIPS does; a debugging aid).
pub fn sleep(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let s = int_arg(args, 0).unwrap_or(0).clamp(0, 3600) as u64;
    std::thread::sleep(Duration::from_secs(s));
    1
}

/// `usleep(microseconds)`.
pub fn usleep(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let us = int_arg(args, 0).unwrap_or(0).clamp(0, 3_600_000_000) as u64;
    std::thread::sleep(Duration::from_micros(us));
    1
}

/// `pkg_status()` / `shm_status()`: the process's memory in the log (rsips has no separate
/// pools: one figure, the resident set).
pub fn memory_status(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    f.log.log(
        2,
        &format!("cfgutils: memory in use (resident): {rss} bytes\n"),
    );
    1
}

/// The values of the AVP argument `i`, newest first.
fn avp_values(f: &mut FnCtx<'_>, param: usize) -> Vec<Value> {
    f.read_output_avp(param)
}

/// `set_count($avp(x), $var(n))`: how many values the AVP holds.
pub fn set_count(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let n = avp_values(f, 0).len();
    f.set_output(1, Value::Int(n as i64));
    1
}

/// `set_select_weight($avp(weights))`: the index (newest first) of a value picked at random
/// with the values as weights; -1 when they sum to 0.
pub fn set_select_weight(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let weights: Vec<u64> = avp_values(f, 0)
        .iter()
        .map(|v| v.as_int().unwrap_or(0).max(0) as u64)
        .collect();
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return -1;
    }
    let mut r = random_u64() % total;
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return i as i64;
        }
        r -= w;
    }
    -1
}

/// `get_accurate_time($sec, $usec[, $text])`.
pub fn get_accurate_time(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    f.set_output(0, Value::Int(now.as_secs() as i64));
    f.set_output(1, Value::Int(i64::from(now.subsec_micros())));
    f.set_output(
        2,
        Value::from(format!("{}.{:06}", now.as_secs(), now.subsec_micros())),
    );
    1
}

/// `ts_usec_delta(s1, us1, s2, us2[, $delta_usec[, $delta_text]])`: |t1 − t2| in µs.
pub fn ts_usec_delta(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let at = |s: usize, us: usize| {
        i128::from(int_arg(args, s).unwrap_or(0)) * 1_000_000
            + i128::from(int_arg(args, us).unwrap_or(0))
    };
    let delta = (at(0, 1) - at(2, 3)).unsigned_abs();
    let Ok(delta) = i64::try_from(delta) else {
        return -1;
    };
    f.set_output(4, Value::Int(delta));
    f.set_output(5, Value::from(delta.to_string()));
    1
}

/// `check_time_rec(recurrence[, timestamp])`: whether the time (now, UTC) falls in it.
pub fn check_time_rec(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let rec = match TimeRec::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            f.log
                .log(-1, &format!("cfgutils: bad time recurrence: {e}\n"));
            return -2;
        }
    };
    let at = int_arg(args, 1).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    if rec.matches(at) { 1 } else { -1 }
}

/// Named locks shared by every worker: held from `get_*_lock` to `release_*_lock`, by the
/// name (the static and dynamic kinds of OpenSIPS behave the same here).
fn locks() -> &'static (Mutex<HashMap<String, bool>>, Condvar) {
    static LOCKS: OnceLock<(Mutex<HashMap<String, bool>>, Condvar)> = OnceLock::new();
    LOCKS.get_or_init(|| (Mutex::default(), Condvar::new()))
}

/// How long a worker waits for a lock another one holds before it gives up (a script that
/// never releases must not freeze the server).
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub fn get_lock(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (map, cv) = locks();
    let mut held = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    while held.get(&name).copied().unwrap_or(false) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            f.log.log(
                -1,
                &format!("cfgutils: lock \"{name}\" still held after {LOCK_WAIT:?}\n"),
            );
            return -1;
        }
        held = cv
            .wait_timeout(held, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    held.insert(name, true);
    1
}

pub fn release_lock(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (map, cv) = locks();
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&name);
    cv.notify_all();
    1
}

/// `shuffle_avps($avp(x))`: the AVP's values in a random order.
pub fn shuffle_avps(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let mut values = avp_values(f, 0);
    let mut seed = random_u64() | 1;
    for i in (1..values.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        values.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    f.replace_output_avp(0, values);
    1
}
