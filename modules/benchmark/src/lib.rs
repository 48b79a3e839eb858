//! The OpenSIPS `benchmark` module: named timers measuring, in microseconds, the time a
//! worker spends between `bm_start_timer(name)` and `bm_log_timer(name)` in one route.
//!
//! - `enable`: -1 or 0 measure only the timers switched on by `benchmark:enable_timer`, 1 all
//!   of them (a switched-on timer is measured even at -1, as in OpenSIPS' code).
//! - `granularity` (100): every that many measures of a timer, one line at `loglevel` (3,
//!   INFO) with the interval's and the whole run's `msgs/total/min/max/avg`, and a new
//!   interval; 0 logs nothing and leaves the results to `benchmark:poll_results`. A negative
//!   value stops the start.
//! - `$BM_time_diff`: this worker's last measure (0 before any).
//! - MI `benchmark:enable_global`, `enable_timer`, `granularity`, `loglevel`, `poll_results`,
//!   with their legacy `bm_*` names. `poll_results` keeps OpenSIPS' labels: `global` holds the
//!   interval's figures and `local` the whole run's. `loglevel` sets the log level (OpenSIPS
//!   4.0's code stores it into `enable` instead, which its documentation does not say).
//!
//! Timer names are registered when the script loads, in the order it names them (their ids,
//! in the log line); a name that is empty or longer than 31 characters is a load error.
//! Start times are per worker, like OpenSIPS' per process.
#![forbid(unsafe_code)]

pub mod timer;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use engine::hooks::ModulePv;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};
use serde_json::json;
use timer::{Registry, Timer};

/// What `modparam` sets and MI changes at run time.
#[derive(Debug)]
struct Settings {
    enable: AtomicI64,
    granularity: AtomicI64,
    loglevel: AtomicI64,
}

static SETTINGS: Settings = Settings {
    enable: AtomicI64::new(0),
    granularity: AtomicI64::new(100),
    loglevel: AtomicI64::new(3),
};

static TIMERS: Registry = Registry::new();

thread_local! {
    /// When this worker started each timer, by id.
    static STARTS: RefCell<Vec<Option<Instant>>> = const { RefCell::new(Vec::new()) };
    /// `$BM_time_diff`.
    static LAST_DIFF: Cell<i64> = const { Cell::new(0) };
}

/// A literal timer name is registered when the script loads, as OpenSIPS' fixup does.
static TIMER_NAME: ParamCheck = ParamCheck {
    what: "benchmark timer name",
    check: |name| TIMERS.register(name).map(|_| ()),
};

const ROUTES: Routes = Routes(Routes::ALL.0 & !Routes::ERROR.0);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "benchmark",
    functions: &[
        FnSpec {
            name: "bm_start_timer",
            params: &[(Param::Checked(&TIMER_NAME), false)],
            routes: ROUTES,
            run: bm_start_timer,
        },
        FnSpec {
            name: "bm_log_timer",
            params: &[(Param::Checked(&TIMER_NAME), false)],
            routes: ROUTES,
            run: bm_log_timer,
        },
    ],
    params: &[
        ("enable", ParamType::Int),
        ("granularity", ParamType::Int),
        ("loglevel", ParamType::Int),
    ],
};

/// Takes the parameters and installs `$BM_time_diff`.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("benchmark") {
        return Ok(());
    }
    let granularity = script
        .modparam_int("benchmark", "granularity")
        .unwrap_or(100);
    if granularity < 0 {
        return Err("benchmark: granularity cannot be negative".into());
    }
    SETTINGS.granularity.store(granularity, Ordering::Relaxed);
    let enable = script.modparam_int("benchmark", "enable").unwrap_or(0);
    SETTINGS.enable.store(enable, Ordering::Relaxed);
    let level = script.modparam_int("benchmark", "loglevel").unwrap_or(3);
    SETTINGS.loglevel.store(level, Ordering::Relaxed);
    engine::hooks::set_module_pv_reader(
        ModulePv::BmTimeDiff,
        Box::new(|_, _| Value::Int(LAST_DIFF.get())),
    );
    Ok(())
}

fn timer_of(f: &mut FnCtx<'_>, args: &[Value]) -> Option<std::sync::Arc<Timer>> {
    let name = args.first().map(|v| v.to_text().into_owned())?;
    match TIMERS.register(&name) {
        Ok(t) => Some(t),
        Err(e) => {
            f.log.log(-1, &format!("benchmark: {e}\n"));
            None
        }
    }
}

fn active(t: &Timer) -> bool {
    SETTINGS.enable.load(Ordering::Relaxed) > 0 || t.is_enabled()
}

fn bm_start_timer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(t) = timer_of(f, args) else {
        return -1;
    };
    if active(&t) {
        STARTS.with_borrow_mut(|s| {
            if s.len() <= t.id {
                s.resize(t.id + 1, None);
            }
            s[t.id] = Some(Instant::now());
        });
    }
    1
}

/// Microseconds since this worker started timer `id`. Never started: since the epoch, the
/// zero time OpenSIPS' unset start holds.
fn elapsed_us(id: usize) -> u64 {
    match STARTS.with_borrow(|s| s.get(id).copied().flatten()) {
        Some(start) => start.elapsed().as_micros() as u64,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
    }
}

fn bm_log_timer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(t) = timer_of(f, args) else {
        return -1;
    };
    if !active(&t) {
        return 1;
    }
    let diff = elapsed_us(t.id);
    // OpenSIPS keeps it in a C int.
    LAST_DIFF.set(i64::from(diff as i32));
    let granularity = SETTINGS.granularity.load(Ordering::Relaxed);
    let line = {
        let mut stats = t.stats();
        stats.record(diff);
        if granularity > 0 && stats.calls as i64 >= granularity {
            let line = stats.log_line(&t.name, t.id, diff, granularity as u64);
            stats.soft_reset();
            Some(line)
        } else {
            None
        }
    };
    if let Some(line) = line {
        let level = SETTINGS.loglevel.load(Ordering::Relaxed) as i32;
        engine::hooks::gen_line(level, None, &line);
    }
    1
}

fn int_param(p: &mi::Params, name: &str) -> Result<i64, mi::MiError> {
    p.int(name)?
        .ok_or_else(|| mi::MiError::invalid_params(&format!("missing {name}")))
}

fn bad(message: &str) -> mi::MiError {
    mi::MiError::new(400, message)
}

fn ok() -> Result<serde_json::Value, mi::MiError> {
    Ok(json!("OK"))
}

fn poll_results() -> Result<serde_json::Value, mi::MiError> {
    if SETTINGS.granularity.load(Ordering::Relaxed) != 0 {
        return Err(bad("Call not valid for granularity!=0"));
    }
    let timers: Vec<_> = TIMERS
        .newest_first()
        .iter()
        .map(|t| {
            let mut stats = t.stats();
            let (interval, total) = stats.poll();
            stats.soft_reset();
            json!({ "name": t.name, "global": interval, "local": total })
        })
        .collect();
    Ok(json!({ "Timers": timers }))
}

/// The MI commands.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "benchmark:enable_global",
        &["bm_enable_global", "benchmark:bm_enable_global"],
        &[&["enable"]],
        |p| {
            let v = int_param(p, "enable")?;
            if !(-1..=1).contains(&v) {
                return Err(bad("Bad parameter value"));
            }
            SETTINGS.enable.store(v, Ordering::Relaxed);
            ok()
        },
    ));
    mi.add(mi::Command::new(
        "benchmark:enable_timer",
        &["bm_enable_timer", "benchmark:bm_enable_timer"],
        &[&["timer", "enable"]],
        |p| {
            let name = p.str("timer")?.unwrap_or_default();
            let t = TIMERS
                .find(&name)
                .ok_or_else(|| bad("Failed to register timer"))?;
            let v = int_param(p, "enable")?;
            if !(0..=1).contains(&v) {
                return Err(bad("Bad parameter value"));
            }
            t.enabled.store(v == 1, Ordering::Relaxed);
            ok()
        },
    ));
    mi.add(mi::Command::new(
        "benchmark:granularity",
        &["bm_granularity", "benchmark:bm_granularity"],
        &[&["granularity"]],
        |p| {
            let v = int_param(p, "granularity")?;
            if v < 0 {
                return Err(bad("Bad value for parameter"));
            }
            SETTINGS.granularity.store(v, Ordering::Relaxed);
            ok()
        },
    ));
    mi.add(mi::Command::new(
        "benchmark:loglevel",
        &["bm_loglevel", "benchmark:bm_loglevel"],
        &[&["log_level"]],
        |p| {
            let v = int_param(p, "log_level")?;
            if !(-3..=4).contains(&v) {
                return Err(bad("Bad value for parameter"));
            }
            SETTINGS.loglevel.store(v, Ordering::Relaxed);
            ok()
        },
    ));
    mi.add(mi::Command::new(
        "benchmark:poll_results",
        &["bm_poll_results", "benchmark:bm_poll_results"],
        &[&[]],
        |_| poll_results(),
    ));
}
