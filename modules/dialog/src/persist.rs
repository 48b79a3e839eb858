//! The `dialog` table (version 12): with `db_mode` 1 (realtime: written within a second), 2
//! (delayed: every `db_update_period`) or 3 (at shutdown), confirmed dialogs are written to
//! the database and read back when the server starts, so calls in progress keep their state,
//! profiles, values and timeout across a restart. A write that fails is kept and retried.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use db::{Connection, Value as DbValue};
use engine::Script;

use crate::table::{CONFIRMED, CONFIRMED_NA, Dialog, Flags, Leg, dialogs, unix_now};

pub const TABLE_VERSION: i64 = 12;

struct Persist {
    db: Arc<dyn Connection>,
    table: String,
    mode: i64,
    period: Duration,
    next: Mutex<Instant>,
}

static PERSIST: OnceLock<Persist> = OnceLock::new();

/// Opens the database and loads the dialogs it kept.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    let s = crate::settings();
    if s.db_mode == 0 {
        return Ok(());
    }
    let Some(url) = s.db_url.clone() else {
        return Err(format!(
            "dialog: db_mode {} needs a db_url (the database the dialogs are kept in)",
            s.db_mode
        ));
    };
    let db = db::open_for("dialog", &url, |m| script.loads(m), options)?;
    db::check_version(&*db, &s.table, TABLE_VERSION).map_err(|e| format!("dialog: {e}"))?;
    dialogs().track = true;
    let n = load(&*db, &s.table)?;
    if n > 0 {
        log::info!("dialog: {n} dialog(s) loaded from {}", db::redact(&url));
    }
    let _ = PERSIST.set(Persist {
        db,
        table: s.table.clone(),
        mode: s.db_mode,
        period: s.db_update_period,
        next: Mutex::new(Instant::now() + s.db_update_period),
    });
    Ok(())
}

const COLUMNS: &[&str] = &[
    "dlg_id",
    "callid",
    "from_uri",
    "from_tag",
    "to_uri",
    "to_tag",
    "caller_cseq",
    "callee_cseq",
    "caller_route_set",
    "callee_route_set",
    "caller_contact",
    "callee_contact",
    "caller_sock",
    "callee_sock",
    "state",
    "start_time",
    "timeout",
    "vars",
    "profiles",
    "flags",
    "script_flags",
    "caller_ping_cseq",
    "callee_ping_cseq",
    "module_flags",
];

fn text(v: &DbValue) -> String {
    v.as_text().unwrap_or_default()
}

fn routes(v: &DbValue) -> Vec<String> {
    sip::split_values(&text(v))
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}

fn pairs(v: &DbValue) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<(String, String)>>(&text(v)).unwrap_or_default()
}

fn load(db: &dyn Connection, table: &str) -> Result<usize, String> {
    let rows = db
        .query(table, COLUMNS, &[])
        .map_err(|e| format!("dialog: cannot load the dialogs: {e}"))?;
    let (now, unix) = (Instant::now(), unix_now());
    let mut t = dialogs();
    let mut n = 0;
    let mut stale = Vec::new();
    let ping = crate::settings().ping_interval;
    for r in rows {
        let get = |i: usize| r.get(i).cloned().unwrap_or(DbValue::Null);
        let int = |i: usize| get(i).as_int().unwrap_or(0);
        let state = u8::try_from(int(14)).unwrap_or(0);
        let timeout = int(16);
        let id = u64::try_from(int(0)).unwrap_or(0);
        if !(CONFIRMED_NA..=CONFIRMED).contains(&state) || timeout <= unix {
            // Ended or timed out while the server was down: the row goes.
            stale.push(int(0));
            continue;
        }
        if id == 0 || t.by_id.contains_key(&id) {
            continue;
        }
        let socket = |i: usize| Some(text(&get(i))).filter(|s| !s.is_empty());
        let d = Dialog {
            id,
            state,
            callid: text(&get(1)),
            from_uri: text(&get(2)),
            to_uri: text(&get(4)),
            caller: Leg {
                tag: text(&get(3)),
                contact: text(&get(10)),
                cseq: u32::try_from(int(6)).unwrap_or(0),
                route_set: routes(&get(8)),
                socket: socket(12),
                gen_cseq: u32::try_from(int(21)).unwrap_or(0),
                ..Leg::default()
            },
            callee: Leg {
                tag: text(&get(5)),
                contact: text(&get(11)),
                cseq: u32::try_from(int(7)).unwrap_or(0),
                route_set: routes(&get(9)),
                socket: socket(13),
                gen_cseq: u32::try_from(int(22)).unwrap_or(0),
                ..Leg::default()
            },
            initial_cseq: u32::try_from(int(6)).unwrap_or(0),
            flags: Flags::from_bits(u32::try_from(int(19)).unwrap_or(0)),
            user_flags: crate::table::flag_bits(&text(&get(20))),
            routes: crate::table::Routes::default(),
            lifetime: u32::try_from(timeout.saturating_sub(int(15))).unwrap_or(0),
            start_unix: int(15),
            created_ms: int(15).saturating_mul(1000),
            start_ms: int(15).saturating_mul(1000),
            expires: Some(
                now + Duration::from_secs(u64::try_from(timeout.saturating_sub(unix)).unwrap_or(0)),
            ),
            gone_at: None,
            end_reason: None,
            profiles: pairs(&get(18)),
            vals: pairs(&get(17)),
            next_ping: None,
            pings: 0,
            stored: true,
            sst: None,
            next_reinvite: None,
            cancelled: false,
            race: false,
            // Topology hiding goes on for the call (its state is the dialog's).
            mod_flags: u32::try_from(int(23)).unwrap_or(0),
        };
        let mut d = d;
        if d.flags.ping_caller || d.flags.ping_callee {
            d.next_ping = Some(now + ping);
        }
        t.insert(d);
        engine::gauge!("dialog", "active_dialogs").inc();
        n += 1;
    }
    drop(t);
    for id in stale {
        if let Err(e) = db.delete(table, &[("dlg_id", DbValue::Int(id))]) {
            log::error!("dialog: cannot remove the ended dialog {id} from the database: {e}");
        }
    }
    Ok(n)
}

fn row(d: &Dialog) -> Vec<(&'static str, DbValue)> {
    let s = |v: &str| DbValue::Str(v.to_owned());
    // The socket columns are NOT NULL in OpenSIPS' SQL schema: empty when unknown.
    let sock = |v: &Option<String>| s(v.as_deref().unwrap_or(""));
    let json = |p: &Vec<(String, String)>| {
        DbValue::Str(serde_json::to_string(p).unwrap_or_else(|_| "[]".into()))
    };
    vec![
        ("dlg_id", DbValue::Int(d.id as i64)),
        ("callid", s(&d.callid)),
        ("from_uri", s(&d.from_uri)),
        ("from_tag", s(&d.caller.tag)),
        ("to_uri", s(&d.to_uri)),
        ("to_tag", s(&d.callee.tag)),
        ("caller_cseq", s(&d.caller.cseq.to_string())),
        ("callee_cseq", s(&d.callee.cseq.to_string())),
        ("caller_route_set", s(&d.caller.route_set.join(","))),
        ("callee_route_set", s(&d.callee.route_set.join(","))),
        ("caller_contact", s(&d.caller.contact)),
        ("callee_contact", s(&d.callee.contact)),
        ("caller_sock", sock(&d.caller.socket)),
        ("callee_sock", sock(&d.callee.socket)),
        ("state", DbValue::Int(i64::from(d.state))),
        ("start_time", DbValue::Int(d.start_unix)),
        (
            "timeout",
            DbValue::Int(d.start_unix + i64::from(d.lifetime)),
        ),
        ("vars", json(&d.vals)),
        ("profiles", json(&d.profiles)),
        ("flags", DbValue::Int(i64::from(d.flags.bits()))),
        (
            "script_flags",
            match d.user_flags {
                0 => DbValue::Null,
                bits => DbValue::Str(crate::table::flag_names(bits)),
            },
        ),
        // OpenSIPS keeps each side's `last_gen_cseq` in these.
        (
            "caller_ping_cseq",
            DbValue::Int(i64::from(d.caller.gen_cseq)),
        ),
        (
            "callee_ping_cseq",
            DbValue::Int(i64::from(d.callee.gen_cseq)),
        ),
        ("module_flags", DbValue::Int(i64::from(d.mod_flags))),
    ]
}

/// Writes what changed, when the mode says it is time (`force`: now, at shutdown).
pub fn flush(force: bool) {
    let Some(p) = PERSIST.get() else { return };
    if !force {
        let now = Instant::now();
        match p.mode {
            1 => {}
            2 => {
                let mut next = p.next.lock().unwrap_or_else(|e| e.into_inner());
                if now < *next {
                    return;
                }
                *next = now + p.period;
            }
            _ => return,
        }
    }
    let (writes, removes) = {
        let mut t = dialogs();
        let dirty = std::mem::take(&mut t.dirty);
        let removed = std::mem::take(&mut t.removed);
        let writes: Vec<Dialog> = dirty
            .iter()
            .filter_map(|id| t.by_id.get(id))
            .filter(|d| (CONFIRMED_NA..=CONFIRMED).contains(&d.state))
            .cloned()
            .collect();
        (writes, removed)
    };
    let mut failed = (Vec::new(), Vec::new());
    let mut first_error = None;
    for d in &writes {
        let key = [("dlg_id", DbValue::Int(d.id as i64))];
        let r =
            p.db.delete(&p.table, &key)
                .and_then(|_| p.db.insert(&p.table, &row(d)));
        match r {
            Ok(()) => {
                if let Some(live) = dialogs().by_id.get_mut(&d.id) {
                    live.stored = true;
                }
            }
            Err(e) if e.is_permanent() => {
                log::error!(
                    "dialog: the database refused dialog {} ({}): {e}",
                    d.id,
                    d.callid
                );
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
                failed.0.push(d.id);
            }
        }
    }
    for id in &removes {
        if let Err(e) =
            p.db.delete(&p.table, &[("dlg_id", DbValue::Int(*id as i64))])
        {
            first_error.get_or_insert(e.to_string());
            failed.1.push(*id);
        }
    }
    if let Some(e) = first_error {
        log::error!(
            "dialog: {} change(s) not written to the database, retried later: {e}",
            failed.0.len() + failed.1.len()
        );
        let mut t = dialogs();
        for id in failed.0 {
            t.mark_dirty(id);
        }
        t.removed.extend(failed.1);
    }
}
