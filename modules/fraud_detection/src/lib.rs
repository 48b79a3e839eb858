//! The OpenSIPS `fraud_detection` module: `check_fraud(user, number, profile_id)` counts a new
//! call of `user` to `number` under the rule of `profile_id` that matches the number now
//! (longest prefix, time of day, day of week), for that user and the rule's prefix: calls in
//! the last minute, in the current interval (a day, while the same rule matches), going on,
//! and in a row to the same number; the call's dialog (created when missing) lowers the
//! concurrent count when it ends and has its duration checked. A figure at or above a rule's
//! threshold raises `E_FRD_WARNING` / `E_FRD_CRITICAL`.
//!
//! Returns: 2 no rule matched, 1 nothing above a threshold, -1 a warning, -2 a critical
//! threshold reached, -3 an internal error. MI `fraud_detection:show_stats` (user, prefix) and
//! `fraud_detection:reload` (`show_fraud_stats`, `fraud_reload`).
#![forbid(unsafe_code)]

mod rules;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use rules::{Rule, Threshold};
use stats::Stats;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "fraud_detection",
    functions: &[FnSpec {
        name: "check_fraud",
        params: &[
            (Param::Str, false),
            (Param::Str, false),
            (Param::Int, false),
        ],
        routes: Routes::REQUEST.or(Routes::ONREPLY),
        run: check_fraud,
    }],
    params: &[
        ("db_url", ParamType::Str),
        ("use_utc_time", ParamType::Int),
        ("table_name", ParamType::Str),
        ("rid_col", ParamType::Str),
        ("pid_col", ParamType::Str),
        ("prefix_col", ParamType::Str),
        ("start_h", ParamType::Str),
        ("end_h", ParamType::Str),
        ("days_col", ParamType::Str),
        ("cpm_thresh_warn_col", ParamType::Str),
        ("cpm_thresh_crit_col", ParamType::Str),
        ("calldur_thresh_warn_col", ParamType::Str),
        ("calldur_thresh_crit_col", ParamType::Str),
        ("totalc_thresh_warn_col", ParamType::Str),
        ("totalc_thresh_crit_col", ParamType::Str),
        ("concalls_thresh_warn_col", ParamType::Str),
        ("concalls_thresh_crit_col", ParamType::Str),
        ("seqcalls_thresh_warn_col", ParamType::Str),
        ("seqcalls_thresh_crit_col", ParamType::Str),
    ],
};

/// The table's columns, in the order rows are read, with their parameter names and defaults.
const COLUMNS: [(&str, &str); 16] = [
    ("rid_col", "ruleid"),
    ("pid_col", "profileid"),
    ("prefix_col", "prefix"),
    ("start_h", "start_hour"),
    ("end_h", "end_hour"),
    ("days_col", "daysoftheweek"),
    ("cpm_thresh_warn_col", "cpm_warning"),
    ("cpm_thresh_crit_col", "cpm_critical"),
    ("calldur_thresh_warn_col", "call_duration_warning"),
    ("calldur_thresh_crit_col", "call_duration_critical"),
    ("totalc_thresh_warn_col", "total_calls_warning"),
    ("totalc_thresh_crit_col", "total_calls_critical"),
    ("concalls_thresh_warn_col", "concurrent_calls_warning"),
    ("concalls_thresh_crit_col", "concurrent_calls_critical"),
    ("seqcalls_thresh_warn_col", "sequential_calls_warning"),
    ("seqcalls_thresh_crit_col", "sequential_calls_critical"),
];

pub const WARNING: &str = "E_FRD_WARNING";
pub const CRITICAL: &str = "E_FRD_CRITICAL";

struct State {
    db: Arc<dyn db::Connection>,
    table: String,
    columns: Vec<String>,
    utc: bool,
    rules: RwLock<Arc<Vec<Rule>>>,
    /// (user, prefix) → its figures.
    stats: Mutex<HashMap<(String, String), Stats>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Connects, checks the table's version (1) and loads the rules; a failure stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("fraud_detection") {
        return Ok(());
    }
    if !script.loads("dialog") {
        return Err("fraud_detection: the dialog module must be loaded".into());
    }
    let p = |n: &str| script.modparam_str("fraud_detection", n);
    let url = p("db_url")
        .or_else(|| script.global_str("db_default_url"))
        .ok_or("fraud_detection: no db_url set")?;
    let db = db::open_for("fraud_detection", &url, |m| script.loads(m), options)?;
    let table = p("table_name").unwrap_or_else(|| "fraud_detection".into());
    db::check_version(&*db, &table, 1).map_err(|e| format!("fraud_detection: {e}"))?;
    let columns = COLUMNS
        .iter()
        .map(|(param, default)| p(param).unwrap_or_else(|| (*default).to_owned()))
        .collect();
    let st = State {
        db,
        table,
        columns,
        utc: script
            .modparam_int("fraud_detection", "use_utc_time")
            .unwrap_or(0)
            != 0,
        rules: RwLock::default(),
        stats: Mutex::default(),
    };
    let rules = load(&st)?;
    *st.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
    let _ = STATE.set(st);
    Ok(())
}

/// The rules of the table; a row that does not parse fails the whole load.
fn load(st: &State) -> Result<Vec<Rule>, String> {
    let cols: Vec<&str> = st.columns.iter().map(String::as_str).collect();
    let rows = st
        .db
        .query(&st.table, &cols, &[])
        .map_err(|e| format!("fraud_detection: cannot load the rules: {e}"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let int = |i: usize| r.get(i).and_then(db::Value::as_int).unwrap_or(0);
        let text = |i: usize, d: &str| {
            r.get(i)
                .and_then(db::Value::as_text)
                .unwrap_or_else(|| d.to_owned())
        };
        let uint = |i: usize| u32::try_from(int(i).max(0)).unwrap_or(u32::MAX);
        let thr = |i: usize| Threshold {
            warning: uint(i),
            critical: uint(i + 1),
        };
        let id = uint(0);
        let (start, end, days) = (text(3, "00:00"), text(4, "23:59"), text(5, "Mon-Sun"));
        let bad = |e: String| format!("fraud_detection: rule {id}: {e}");
        let hours = (
            rules::parse_hour(&start).map_err(bad)?,
            rules::parse_hour(&end).map_err(bad)?,
        );
        out.push(Rule {
            id,
            profile: int(1),
            prefix: text(2, ""),
            hours: (hours != (0, 23 * 60 + 59)).then_some(hours),
            days: rules::parse_days(&days).map_err(bad)?,
            cpm: thr(6),
            call_duration: thr(8),
            total_calls: thr(10),
            concurrent_calls: thr(12),
            seq_calls: thr(14),
        });
    }
    Ok(out)
}

/// (weekday 0 Sunday … 6, minute of the day, day number) of `now`, local or UTC.
fn when(utc: bool, now: i64) -> (u32, u32, i64) {
    let text = if utc {
        engine::pv::time::strftime_in(None, now, "%a %H %M %Y %j")
    } else {
        engine::pv::time::strftime(now, "%a %H %M %Y %j")
    };
    let mut it = text.split(' ');
    let wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let weekday = it
        .next()
        .and_then(|d| wd.iter().position(|w| *w == d))
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0);
    let mut num = || it.next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
    let (h, m, y, yd) = (num(), num(), num(), num());
    let minute = u32::try_from(h * 60 + m).unwrap_or(0);
    (weekday, minute, y * 1000 + yd)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// An event about figure `param` of a call.
#[allow(clippy::too_many_arguments)]
fn raise(
    name: &str,
    param: &str,
    value: u64,
    threshold: u32,
    user: &str,
    number: &str,
    rule: u32,
    profile: i64,
) {
    if !engine::hooks::event_wanted(name) {
        return;
    }
    let s = |n: &str, v: &str| (Some(n.to_owned()), Value::from(v.to_owned()));
    let i = |n: &str, v: i64| (Some(n.to_owned()), Value::Int(v));
    engine::hooks::raise_event(
        name,
        vec![
            s("param", param),
            i("value", i64::try_from(value).unwrap_or(i64::MAX)),
            i("threshold", i64::from(threshold)),
            s("user", user),
            s("called_number", number),
            i("rule_id", i64::from(rule)),
            i("profile_id", profile),
        ],
    );
}

/// `check_fraud(user, number, profile_id)`.
fn check_fraud(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    const ERROR: i64 = -3;
    let Some(st) = STATE.get() else {
        return ERROR;
    };
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (user, number) = (text(0), text(1));
    let profile = args.get(2).and_then(Value::as_int).unwrap_or(0);
    let now = unix_now();
    let (weekday, minute, day) = when(st.utc, now);
    let rules = Arc::clone(&st.rules.read().unwrap_or_else(PoisonError::into_inner));
    let Some(rule) = rules::best(&rules, profile, &number, weekday, minute) else {
        return 2;
    };
    let key = (user.clone(), rule.prefix.clone());
    let (figures, interval) = {
        let mut all = lock(&st.stats);
        let s = all.entry(key.clone()).or_default();
        s.call(&number, rule.id, now, day);
        (
            [
                ("calls-per-minute", s.cpm, rule.cpm),
                ("total-calls", s.total_calls, rule.total_calls),
                (
                    "concurrent-calls",
                    s.concurrent_calls,
                    rule.concurrent_calls,
                ),
                ("sequential-calls", s.seq_calls, rule.seq_calls),
            ],
            s.interval,
        )
    };
    // The first figure at a critical threshold, else the first at a warning one.
    let over = |critical: bool| {
        figures.iter().find(|(_, v, t)| {
            let limit = if critical { t.critical } else { t.warning };
            limit != 0 && *v >= limit
        })
    };
    let mut rc = 1;
    if let Some((param, v, t)) = over(true) {
        raise(
            CRITICAL,
            param,
            u64::from(*v),
            t.critical,
            &user,
            &number,
            rule.id,
            profile,
        );
        rc = -2;
    } else if let Some((param, v, t)) = over(false) {
        raise(
            WARNING,
            param,
            u64::from(*v),
            t.warning,
            &user,
            &number,
            rule.id,
            profile,
        );
        rc = -1;
    }
    // The call's dialog tells when it ends: its duration, one call less going on.
    let dialog = match f.msg.dialog {
        Some(m) => m.id,
        None => match dialog::create(f.msg, dialog::table::Flags::default()) {
            Ok(id) => id,
            Err(e) => {
                f.log.log(-1, &format!("fraud_detection: no dialog: {e}\n"));
                return ERROR;
            }
        },
    };
    let (dur, rule_id) = (rule.call_duration, rule.id);
    let armed = dialog::on_gone(
        dialog,
        Box::new(move |gone| {
            if gone.answered {
                if dur.critical != 0 && gone.duration >= u64::from(dur.critical) {
                    raise(
                        CRITICAL,
                        "call-duration",
                        gone.duration,
                        dur.critical,
                        &key.0,
                        &number,
                        rule_id,
                        profile,
                    );
                } else if dur.warning != 0 && gone.duration >= u64::from(dur.warning) {
                    raise(
                        WARNING,
                        "call-duration",
                        gone.duration,
                        dur.warning,
                        &key.0,
                        &number,
                        rule_id,
                        profile,
                    );
                }
            }
            if let Some(st) = STATE.get()
                && let Some(s) = lock(&st.stats).get_mut(&key)
            {
                s.ended(interval);
            }
        }),
    );
    if !armed {
        f.log
            .log(-1, "fraud_detection: the call's dialog is gone already\n");
        return ERROR;
    }
    rc
}

/// MI `fraud_detection:show_stats` and `fraud_detection:reload`.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "fraud_detection:show_stats",
        &["show_fraud_stats"],
        &[&["user", "prefix"]],
        |p| {
            let user = p.str("user")?.unwrap_or_default();
            let prefix = p.str("prefix")?.unwrap_or_default();
            let Some(st) = STATE.get() else {
                return Err(mi::MiError::new(500, "Internal error"));
            };
            let all = lock(&st.stats);
            let Some(s) = all.get(&(user, prefix)) else {
                return Err(mi::MiError::new(404, "No data for this user+number yet!"));
            };
            Ok(serde_json::json!({
                "cpm": s.cpm,
                "total_calls": s.total_calls,
                "concurrent_calls": s.concurrent_calls,
                "seq_calls": s.seq_calls,
            }))
        },
    ));
    mi.add(mi::Command::new(
        "fraud_detection:reload",
        &["fraud_reload"],
        &[&[]],
        |_| {
            let Some(st) = STATE.get() else {
                return Err(mi::MiError::new(500, "Failed to reload"));
            };
            let rules = load(st).map_err(|e| {
                log::error!("{e}");
                mi::MiError::new(500, "Failed to reload")
            })?;
            *st.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
            Ok(serde_json::json!("OK"))
        },
    ));
}
