//! The OpenSIPS `userblacklist` module: numbers a user (or everybody) must not call, by
//! longest prefix, with whitelist entries that lift a shorter blacklisted prefix.
//!
//! - `check_user_blacklist(user, domain[, number[, table]])` reads the user's rows from
//!   `db_table` (default `userblacklist`, version 2; columns username, domain, prefix,
//!   whitelist) at every call; the domain counts only with `use_domain`.
//! - `check_blacklist(table)` looks the R-URI user up in a global table (`globalblacklist`
//!   shape: prefix, whitelist), read once and kept in memory until MI `reload_blacklist`.
//!
//! The number (the R-URI user unless given) loses every non-digit first; more than 31
//! characters is an error. No matching prefix, or a longest match that is a whitelist entry,
//! is 1; a longest match that is a blacklist entry is -1, as are errors. A prefix holding a
//! non-digit never matches; an empty one matches every number.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "userblacklist",
    functions: &[
        FnSpec {
            name: "check_user_blacklist",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST.or(Routes::FAILURE),
            run: check_user_blacklist,
        },
        FnSpec {
            name: "check_blacklist",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST.or(Routes::FAILURE),
            run: check_blacklist,
        },
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("use_domain", ParamType::Int),
    ],
};

/// A list's (prefix, whitelist) rows.
type Rows = Arc<Vec<(String, bool)>>;

struct State {
    db: Arc<dyn db::Connection>,
    table: String,
    use_domain: bool,
    /// The global tables read so far, by name: (prefix, whitelist) rows.
    globals: Mutex<HashMap<String, Rows>>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Connects to the database and checks the user table's version; a failure stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("userblacklist") {
        return Ok(());
    }
    let url = script
        .modparam_str("userblacklist", "db_url")
        .or_else(|| script.global_str("db_default_url"))
        .unwrap_or_else(|| "mysql://opensipsro:opensipsro@localhost/opensips".into());
    let db = db::open_for("userblacklist", &url, |m| script.loads(m), options)?;
    let table = script
        .modparam_str("userblacklist", "db_table")
        .unwrap_or_else(|| "userblacklist".into());
    db::check_version(&*db, &table, 2).map_err(|e| format!("userblacklist: {e}"))?;
    let _ = STATE.set(State {
        db,
        table,
        use_domain: script
            .modparam_int("userblacklist", "use_domain")
            .unwrap_or(0)
            != 0,
        globals: Mutex::default(),
    });
    Ok(())
}

/// MI `userblacklist:reload_blacklist` (`reload_blacklist`): reads every global table again.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "userblacklist:reload_blacklist",
        &["reload_blacklist"],
        &[&[]],
        |_| {
            let Some(st) = STATE.get() else {
                return Err(mi::MiError::new(500, "cannot reload blacklist"));
            };
            let names: Vec<String> = lock(&st.globals).keys().cloned().collect();
            let mut fresh = HashMap::new();
            for name in names {
                let rows = read_global(st, &name)
                    .map_err(|_| mi::MiError::new(500, "cannot reload blacklist"))?;
                fresh.insert(name, Arc::new(rows));
            }
            *lock(&st.globals) = fresh;
            Ok(serde_json::json!("OK"))
        },
    ));
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A (prefix, whitelist) row; `None` when the whitelist column is not an integer.
fn entry(prefix: &db::Value, whitelist: &db::Value) -> Option<(String, bool)> {
    Some((
        prefix.as_text().unwrap_or_default(),
        whitelist.as_int()? != 0,
    ))
}

fn read_global(st: &State, table: &str) -> Result<Vec<(String, bool)>, db::DbError> {
    Ok(st
        .db
        .query(table, &["prefix", "whitelist"], &[])?
        .iter()
        .filter_map(|r| entry(r.first()?, r.get(1)?))
        .collect())
}

/// The number to check: the given one or the R-URI user, digits only; `None` when there is
/// none or it is longer than 31 characters.
fn number(f: &FnCtx<'_>, given: Option<&Value>) -> Option<String> {
    let raw = match given {
        Some(Value::Null) | None => f.msg.ruri_user()?,
        Some(v) => v.to_text().into_owned(),
    };
    if raw.len() > 31 {
        return None;
    }
    Some(raw.chars().filter(char::is_ascii_digit).collect())
}

/// 1 when `number` may be called under `rows`, -1 when its longest matching prefix is a
/// blacklist entry.
fn decide(rows: &[(String, bool)], number: &str) -> i64 {
    let best = rows
        .iter()
        .filter(|(p, _)| p.bytes().all(|b| b.is_ascii_digit()) && number.starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len());
    match best {
        Some((_, false)) => -1,
        _ => 1,
    }
}

fn check_user_blacklist(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(st) = STATE.get() else { return -1 };
    if !f.msg.msg.is_request() {
        return -1;
    }
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (user, domain) = (text(0), text(1));
    let Some(number) = number(f, args.get(2)) else {
        return -1;
    };
    let table = match args.get(3) {
        Some(Value::Null) | None => st.table.clone(),
        Some(v) => v.to_text().into_owned(),
    };
    let mut filter = vec![("username", db::Value::Str(user))];
    if st.use_domain {
        filter.push(("domain", db::Value::Str(domain)));
    }
    let rows = match st.db.query(&table, &["prefix", "whitelist"], &filter) {
        Ok(rows) => rows,
        Err(e) => {
            f.log.log(-1, &format!("userblacklist: {table}: {e}\n"));
            return -1;
        }
    };
    let rows: Vec<(String, bool)> = rows
        .iter()
        .filter_map(|r| entry(r.first()?, r.get(1)?))
        .collect();
    decide(&rows, &number)
}

fn check_blacklist(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(st) = STATE.get() else { return -1 };
    if !f.msg.msg.is_request() {
        return -1;
    }
    let table = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let Some(number) = number(f, None) else {
        return -1;
    };
    let cached = lock(&st.globals).get(&table).cloned();
    let rows = match cached {
        Some(r) => r,
        None => match read_global(st, &table) {
            Ok(r) => {
                let r = Arc::new(r);
                lock(&st.globals).insert(table, Arc::clone(&r));
                r
            }
            Err(e) => {
                f.log.log(-1, &format!("userblacklist: {table}: {e}\n"));
                return -1;
            }
        },
    };
    decide(&rows, &number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_decides() {
        let rows = vec![
            ("49".to_owned(), false),
            ("4915".to_owned(), true),
            ("49151".to_owned(), false),
            ("1x".to_owned(), false),
        ];
        assert_eq!(decide(&rows, "4930123"), -1);
        assert_eq!(decide(&rows, "49150123"), 1);
        assert_eq!(decide(&rows, "491510"), -1);
        assert_eq!(decide(&rows, "33"), 1);
        assert_eq!(decide(&rows, "1x2"), 1);
        assert_eq!(decide(&[(String::new(), false)], "123"), -1);
        assert_eq!(decide(&[], "123"), 1);
    }
}
