//! The OpenSIPS `load_balancer` module: destinations from the `load_balancer` table offer
//! resources with capacities; `lb_start(group, "res1;res2")` sends a call (through `$du`) to
//! the destination with the most free capacity for every resource asked, `lb_next()` to the
//! next one after a failure. The dialog module counts the calls (the module creates the
//! dialog when the script has not), so a destination's load is the calls in progress on it.
//! Destinations are disabled by the script, the MI or failed OPTIONS probes, and reloaded at
//! runtime (`lb_reload`).
#![forbid(unsafe_code)]

pub mod dests;
pub mod mi;
pub mod probe;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};

use dests::{Mode, NoPick, Started, pick, started, store};

/// Opens the database and loads the destinations (a table that cannot be read stops the
/// start, as in OpenSIPS).
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("load_balancer") {
        return Ok(());
    }
    if !script.loads("dialog") {
        return Err(
            "load_balancer: needs the dialog module (loadmodule \"dialog.so\") to count calls"
                .into(),
        );
    }
    let url = script
        .modparam_str("load_balancer", "db_url")
        .or_else(|| script.global_str("db_default_url"))
        .ok_or("load_balancer: no db_url: the module has nowhere to load its destinations from")?;
    let table = script
        .modparam_str("load_balancer", "db_table")
        .unwrap_or_else(|| "load_balancer".to_owned());
    let db = db::open_for("load_balancer", &url, |m| script.loads(m), options)?;
    db::check_version(&*db, &table, dests::TABLE_VERSION)
        .map_err(|e| format!("load_balancer: {e}"))?;
    let n = dests::install(db, table)?;
    log::info!(
        "load_balancer: {n} destinations loaded from {}",
        db::redact(&url)
    );
    Ok(())
}

static FLAGS: ParamCheck = ParamCheck {
    what: "load_balancer flags",
    check: |t| Mode::parse(t).map(|_| ()),
};

const REQ_FAIL: Routes = Routes::REQUEST.or(Routes::FAILURE);

/// `lb_start`, `lb_start_or_next` and `load_balance`: `(group, resources[, flags[, attrs_var]])`.
const START_PARAMS: &[(Param, bool)] = &[
    (Param::Int, false),
    (Param::Str, false),
    (Param::Checked(&FLAGS), true),
    (Param::Var, true),
];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "load_balancer",
    functions: &[
        FnSpec {
            name: "lb_start",
            params: START_PARAMS,
            routes: REQ_FAIL,
            run: lb_start,
        },
        FnSpec {
            name: "lb_next",
            params: &[(Param::Var, true)],
            routes: REQ_FAIL,
            run: lb_next,
        },
        FnSpec {
            name: "lb_start_or_next",
            params: START_PARAMS,
            routes: REQ_FAIL,
            run: lb_start_or_next,
        },
        // The older name of lb_start_or_next, still exported by OpenSIPS 4.0.
        FnSpec {
            name: "load_balance",
            params: START_PARAMS,
            routes: REQ_FAIL,
            run: lb_start_or_next,
        },
        FnSpec {
            name: "lb_reset",
            params: &[],
            routes: REQ_FAIL,
            run: lb_reset,
        },
        FnSpec {
            name: "lb_is_started",
            params: &[],
            routes: REQ_FAIL,
            run: lb_is_started,
        },
        FnSpec {
            name: "lb_disable_dst",
            params: &[],
            routes: REQ_FAIL,
            run: lb_disable_dst,
        },
        FnSpec {
            name: "lb_is_destination",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, true),
                (Param::Int, true),
                (Param::Var, true),
            ],
            routes: Routes::ALL,
            run: lb_is_destination,
        },
        FnSpec {
            name: "lb_count_call",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, false),
                (Param::Str, false),
                (Param::Int, true),
            ],
            routes: Routes::REQUEST,
            run: lb_count_call,
        },
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("probing_interval", ParamType::Int),
        ("probing_method", ParamType::Str),
        ("probing_from", ParamType::Str),
        ("probing_reply_codes", ParamType::Str),
        ("probing_verbose", ParamType::Int),
        ("lb_define_blacklist", ParamType::Str),
        ("cluster_id", ParamType::Int),
        ("cluster_sharing_tag", ParamType::Str),
        ("fetch_freeswitch_stats", ParamType::Int),
        ("initial_freeswitch_load", ParamType::Int),
    ],
};

fn random(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    (h.finish() as usize) % n.max(1)
}

/// The resources a call asks for (`"res1;res2"`), each named once.
fn resources_arg(v: Option<&Value>) -> Option<Vec<String>> {
    let text = v?.to_text();
    let mut out: Vec<String> = Vec::new();
    for r in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        if !out.iter().any(|o| o == r) {
            out.push(r.to_owned());
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Chooses for a started call and sends it there: `$du`, the dialog in the resources'
/// profiles. 1, or -2 (no free capacity) / -3 (no destination).
fn route(f: &mut FnCtx<'_>, dialog: u64, st: &mut Started, attrs_var: Option<usize>) -> i64 {
    let Some(store) = store() else { return -1 };
    let chosen = {
        let dests = store.read();
        pick(&dests, st.group, &st.resources, st.mode, &st.tried, random)
    };
    let d = match chosen {
        Ok(d) => d,
        Err(NoPick::Full) => return -2,
        Err(NoPick::None) => return -3,
    };
    st.tried.push(d.id);
    st.current = Some(d.id);
    let value = d.id.to_string();
    for res in &st.resources {
        dialog::join_profile(dialog, &dests::profile(res), &value);
    }
    f.msg.dst_uri = Some(d.uri.clone());
    if let Some(p) = attrs_var {
        f.set_output(p, Value::from(d.attrs.clone()));
    }
    1
}

/// Takes the call off its current destination's load.
fn release(dialog: u64, st: &mut Started) {
    if let Some(id) = st.current.take() {
        let value = id.to_string();
        for res in &st.resources {
            dialog::leave_profile(dialog, &dests::profile(res), Some(&value));
        }
    }
}

/// `lb_start(group, resources[, flags[, attrs_var]])`.
fn lb_start(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let group = args.first().and_then(Value::as_int).unwrap_or(-1);
    let Some(resources) = resources_arg(args.get(1)) else {
        f.log.log(-1, "lb_start: no resources given\n");
        return -4;
    };
    let mode = match args.get(2).filter(|v| !matches!(v, Value::Null)) {
        Some(v) => match Mode::parse(&v.to_text()) {
            Ok(m) => m,
            Err(e) => {
                f.log.log(-1, &format!("lb_start: {e}\n"));
                return -1;
            }
        },
        None => Mode::default(),
    };
    let dialog = match dialog::create(f.msg, dialog::table::Flags::default()) {
        Ok(id) => id,
        Err(e) => {
            f.log
                .log(-1, &format!("lb_start: cannot create the dialog: {e}\n"));
            return -1;
        }
    };
    dests::sweep();
    let mut st = {
        let mut map = started();
        let mut st = map.remove(&dialog).unwrap_or(Started {
            group,
            resources: resources.clone(),
            mode,
            tried: Vec::new(),
            current: None,
        });
        // A new start drops what an earlier one counted.
        release(dialog, &mut st);
        drop(map);
        Started {
            group,
            resources,
            mode,
            tried: Vec::new(),
            current: None,
        }
    };
    let code = route(f, dialog, &mut st, Some(3));
    started().insert(dialog, st);
    code
}

/// `lb_next([attrs_var])`: the next destination for a started call.
fn lb_next(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(mark) = f.msg.dialog else {
        return -1;
    };
    let Some(mut st) = started().remove(&mark.id) else {
        f.log.log(-1, "lb_next: no lb_start for this call\n");
        return -1;
    };
    release(mark.id, &mut st);
    let code = route(f, mark.id, &mut st, Some(0));
    started().insert(mark.id, st);
    code
}

fn lb_start_or_next(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let is_started = f.msg.dialog.is_some_and(|m| started().contains_key(&m.id));
    if !is_started {
        return lb_start(f, args);
    }
    let Some(mark) = f.msg.dialog else { return -1 };
    let Some(mut st) = started().remove(&mark.id) else {
        return -1;
    };
    release(mark.id, &mut st);
    let code = route(f, mark.id, &mut st, Some(3));
    started().insert(mark.id, st);
    code
}

fn lb_reset(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(mark) = f.msg.dialog else { return -1 };
    // The table's lock is let go before the dialog's profiles are touched.
    let removed = started().remove(&mark.id);
    match removed {
        Some(mut st) => {
            release(mark.id, &mut st);
            1
        }
        None => -1,
    }
}

fn lb_is_started(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let on = f.msg.dialog.is_some_and(|m| started().contains_key(&m.id));
    if on { 1 } else { -1 }
}

/// `lb_disable_dst()`: the destination the call went to last is disabled (probing, when its
/// probe_mode asks for it, brings it back).
fn lb_disable_dst(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(mark) = f.msg.dialog else { return -1 };
    let Some(current) = started().get(&mark.id).and_then(|s| s.current) else {
        return -1;
    };
    let Some(store) = store() else { return -1 };
    let mut dests = store.write();
    match dests.iter_mut().find(|d| d.id == current) {
        Some(d) => {
            if d.enabled {
                log::warn!(
                    "load_balancer: destination {} ({}) disabled by the script",
                    d.id,
                    d.uri
                );
            }
            d.enabled = false;
            1
        }
        None => -1,
    }
}

/// The destinations at `ip:port` (of `group`, or any with -1 / none).
fn find_at(ip: &str, port: i64, group: Option<i64>, active: bool) -> Option<dests::Dest> {
    let ip = ip.trim().trim_matches(['[', ']']).to_ascii_lowercase();
    let store = store()?;
    let dests = store.read();
    dests
        .iter()
        .find(|d| {
            group.is_none_or(|g| g < 0 || d.group == g)
                && (!active || d.enabled)
                && d.host_port()
                    .is_some_and(|(h, p)| h == ip && (port == 0 || i64::from(p) == port))
        })
        .cloned()
}

/// `lb_is_destination(ip, port[, group[, active[, attrs_var]]])`.
fn lb_is_destination(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let ip = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let port = args.get(1).and_then(Value::as_int).unwrap_or(0);
    let group = args.get(2).and_then(Value::as_int);
    let active = args.get(3).and_then(Value::as_int).unwrap_or(0) != 0;
    match find_at(&ip, port, group, active) {
        Some(d) => {
            f.set_output(4, Value::from(d.attrs));
            1
        }
        None => -1,
    }
}

/// `lb_count_call(ip, port, group, resources[, undo])`: counts this call against the
/// destination at `ip:port` without routing it (calls that reach it another way).
fn lb_count_call(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let ip = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let port = args.get(1).and_then(Value::as_int).unwrap_or(0);
    let group = args.get(2).and_then(Value::as_int);
    let Some(resources) = resources_arg(args.get(3)) else {
        return -1;
    };
    let undo = args.get(4).and_then(Value::as_int).unwrap_or(0) != 0;
    let Some(d) = find_at(&ip, port, group, false) else {
        return -1;
    };
    if resources.iter().any(|r| d.capacity(r).is_none()) {
        return -1;
    }
    let dialog = match dialog::create(f.msg, dialog::table::Flags::default()) {
        Ok(id) => id,
        Err(e) => {
            f.log.log(
                -1,
                &format!("lb_count_call: cannot create the dialog: {e}\n"),
            );
            return -1;
        }
    };
    let value = d.id.to_string();
    for res in &resources {
        if undo {
            dialog::leave_profile(dialog, &dests::profile(res), Some(&value));
        } else {
            dialog::join_profile(dialog, &dests::profile(res), &value);
        }
    }
    1
}
