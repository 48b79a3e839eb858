//! The OpenSIPS `sqlops` module: SQL from the script. `sql_query` runs a statement as written
//! on an SQL server, `sql_select`/`sql_update`/`sql_insert`/`sql_replace`/`sql_delete` build
//! one from JSON (columns as an array, the filter as an object) on any database, including
//! db_text. Results go to the variables the script lists (`"$avp(a);$avp(b)"`): every row
//! into AVPs for the many-row forms, the first row into any variables for the `_one` forms.
//! Return codes as OpenSIPS': 1 done, -2 no rows, -1 error.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, OnceLock};

use db::{Connection, Value as DbValue};
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use ParamType::{Int, Str};

const ALL: Routes = Routes::ALL;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "sqlops",
    functions: &[
        FnSpec {
            name: "sql_query",
            params: &[
                (Param::Str, false),
                (Param::VarList, true),
                (Param::Int, true),
            ],
            routes: ALL,
            run: sql_query,
        },
        FnSpec {
            name: "sql_query_one",
            params: &[
                (Param::Str, false),
                (Param::VarList, true),
                (Param::Int, true),
            ],
            routes: ALL,
            run: sql_query_one,
        },
        FnSpec {
            name: "sql_select",
            params: &[
                (Param::Str, true),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::VarList, true),
                (Param::Int, true),
            ],
            routes: ALL,
            run: sql_select,
        },
        FnSpec {
            name: "sql_select_one",
            params: &[
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, false),
                (Param::Str, true),
                (Param::VarList, false),
                (Param::Int, true),
            ],
            routes: ALL,
            run: sql_select_one,
        },
        FnSpec {
            name: "sql_update",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Int, true),
            ],
            routes: ALL,
            run: sql_update,
        },
        FnSpec {
            name: "sql_insert",
            params: &[(Param::Str, false), (Param::Str, false), (Param::Int, true)],
            routes: ALL,
            run: sql_insert,
        },
        FnSpec {
            name: "sql_replace",
            params: &[(Param::Str, false), (Param::Str, false), (Param::Int, true)],
            routes: ALL,
            run: sql_replace,
        },
        FnSpec {
            name: "sql_avp_load",
            params: &[
                (Param::StaticStr, false),
                (Param::StaticStr, false),
                (Param::Int, true),
                (Param::StaticStr, true),
            ],
            routes: ALL,
            run: avp::sql_avp_load,
        },
        FnSpec {
            name: "sql_avp_store",
            params: &[
                (Param::StaticStr, false),
                (Param::StaticStr, false),
                (Param::Int, true),
            ],
            routes: ALL,
            run: avp::sql_avp_store,
        },
        FnSpec {
            name: "sql_avp_delete",
            params: &[
                (Param::StaticStr, false),
                (Param::StaticStr, false),
                (Param::Int, true),
            ],
            routes: ALL,
            run: avp::sql_avp_delete,
        },
        FnSpec {
            name: "sql_delete",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Int, true)],
            routes: ALL,
            run: sql_delete,
        },
    ],
    params: &[
        ("db_url", Str),
        ("usr_table", Str),
        ("use_domain", Int),
        ("uuid_column", Str),
        ("attribute_column", Str),
        ("value_column", Str),
        ("type_column", Str),
        ("username_column", Str),
        ("domain_column", Str),
        ("db_scheme", Str),
        ("ps_id_max_buf_len", Int),
        ("bigint_to_str", Int),
    ],
};

pub mod avp;

static PREFS: OnceLock<avp::Prefs> = OnceLock::new();

/// The user preferences table and its columns (`usr_table`, `*_column`, `use_domain`).
fn prefs() -> &'static avp::Prefs {
    PREFS.get_or_init(|| avp::Prefs::of(None))
}

/// The databases by id (`modparam("sqlops", "db_url", "[id ]url")`, id 0 when left out).
type Databases = Mutex<Vec<(i64, Arc<dyn Connection>)>>;

fn databases() -> &'static Databases {
    static DBS: OnceLock<Databases> = OnceLock::new();
    DBS.get_or_init(Mutex::default)
}

/// Opens every `db_url` the script gives; one that cannot be opened stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("sqlops") {
        return Ok(());
    }
    let _ = PREFS.set(avp::Prefs::of(Some(script)));
    let mut opened = Vec::new();
    for text in script.modparam_strs("sqlops", "db_url") {
        let (id, url) = db_url_id(&text);
        let conn = db::open_for("sqlops", url, |m| script.loads(m), options)?;
        opened.retain(|(i, _)| *i != id);
        opened.push((id, conn));
    }
    *databases()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = opened;
    Ok(())
}

/// `"[id ]url"`: the id (0 when left out) and the URL.
pub fn db_url_id(text: &str) -> (i64, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((id, url)) if id.parse::<i64>().is_ok() => (id.parse().unwrap_or(0), url.trim()),
        _ => (0, text),
    }
}

/// Argument `i` as text (`None` when left out).
pub fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

/// The database argument `i` names (id 0 when left out); logged when there is none.
pub fn db_arg(f: &mut FnCtx<'_>, args: &[Value], i: usize) -> Option<Arc<dyn Connection>> {
    let id = args.get(i).and_then(Value::as_int).unwrap_or(0);
    let found = databases()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, c)| Arc::clone(c));
    if found.is_none() {
        f.log.log(-1, &format!("sqlops: no db_url with id {id}\n"));
    }
    found
}

fn fail(f: &mut FnCtx<'_>, what: impl std::fmt::Display) -> i64 {
    f.log.log(-1, &format!("sqlops: {what}\n"));
    -1
}

/// A database value as the script sees it.
pub fn script_value(v: &DbValue) -> Value {
    match v {
        DbValue::Null => Value::Null,
        DbValue::Int(n) | DbValue::DateTime(n) => Value::Int(*n),
        DbValue::Double(d) => Value::from(d.to_string()),
        DbValue::Str(s) => Value::from(s.clone()),
    }
}

/// Every row into the listed AVPs (the first row on top, as OpenSIPS pushes them; a NULL
/// as the text `<null>`).
fn store_rows(f: &mut FnCtx<'_>, param: usize, rows: &[Vec<DbValue>]) -> i64 {
    if rows.is_empty() {
        return -2;
    }
    let n = f.output_count(param);
    for row in rows.iter().rev() {
        for (k, v) in row.iter().enumerate().take(n) {
            let v = match v {
                DbValue::Null => Value::from("<null>"),
                v => script_value(v),
            };
            f.set_output_at(param, k, v);
        }
    }
    1
}

/// The first row into the listed variables (a NULL as NULL); every column needs one.
fn store_one(f: &mut FnCtx<'_>, param: usize, rows: &[Vec<DbValue>]) -> i64 {
    let Some(row) = rows.first() else {
        return -2;
    };
    let n = f.output_count(param);
    if row.len() > n {
        return fail(
            f,
            format!(
                "too few variables to store the result: {} columns, {n} variables",
                row.len()
            ),
        );
    }
    for (k, v) in row.iter().enumerate() {
        f.set_output_at(param, k, script_value(v));
    }
    1
}

fn query(f: &mut FnCtx<'_>, args: &[Value], one: bool) -> i64 {
    let sql = text_arg(args, 0).unwrap_or_default();
    let Some(db) = db_arg(f, args, 2) else {
        return -1;
    };
    match db.raw(&sql) {
        Ok(None) => 1,
        Ok(Some(rows)) if one => store_one(f, 1, &rows),
        Ok(Some(rows)) => store_rows(f, 1, &rows),
        Err(e) => fail(f, e),
    }
}

/// `sql_query(query[, "$avp(a);…"[, db_id]])`: the statement as written; every row of its
/// result into the AVPs. -2 when a SELECT returns nothing.
pub fn sql_query(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    query(f, args, false)
}

/// `sql_query_one(query[, "$var(a);…"[, db_id]])`: the first row into the variables.
pub fn sql_query_one(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    query(f, args, true)
}

/// A JSON value as a database value (a number, text, `null`, or a boolean as 1/0).
fn json_value(v: &serde_json::Value) -> Result<DbValue, String> {
    Ok(match v {
        serde_json::Value::Null => DbValue::Null,
        serde_json::Value::Bool(b) => DbValue::Int(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => DbValue::Int(i),
            None => DbValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => DbValue::Str(s.clone()),
        other => return Err(format!("{other} is not a column value")),
    })
}

/// `{"col": value, …}` (a filter: equality or `{"=": value}`; a `null` matches NULL).
fn json_pairs(text: &str, what: &str) -> Result<Vec<(String, DbValue)>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the {what} is not JSON: {e}"))?;
    let serde_json::Value::Object(map) = parsed else {
        return Err(format!("the {what} must be a JSON object"));
    };
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Object(op) if op.len() == 1 => match op.iter().next() {
                    Some((o, v)) if o == "=" => v,
                    Some((o, _)) => {
                        return Err(format!(
                            "operator \"{o}\" on column {k}: rsips' sqlops compares with = only"
                        ));
                    }
                    None => v,
                },
                v => v,
            };
            Ok((k.clone(), json_value(v)?))
        })
        .collect()
}

/// `["col", …]`.
fn json_columns(text: &str) -> Result<Vec<String>, String> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the columns are not JSON: {e}"))?;
    match parsed {
        serde_json::Value::Array(a) => a
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("column {c} is not a name"))
            })
            .collect(),
        _ => Err("the columns must be a JSON array of names".into()),
    }
}

fn select(f: &mut FnCtx<'_>, args: &[Value], one: bool) -> i64 {
    let table = text_arg(args, 1).unwrap_or_default();
    let columns = match json_columns(&text_arg(args, 0).unwrap_or_else(|| "[]".into())) {
        Ok(c) => c,
        Err(e) => return fail(f, e),
    };
    let filter = match json_pairs(&text_arg(args, 2).unwrap_or_default(), "filter") {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let Some(db) = db_arg(f, args, 5) else {
        return -1;
    };
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let filter: Vec<(&str, DbValue)> = filter
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    match db.query(&table, &cols, &filter) {
        Ok(mut rows) => {
            if let Some(order) = text_arg(args, 3).filter(|o| !o.trim().is_empty())
                && let Some(at) = cols.iter().position(|c| *c == order.trim())
            {
                rows.sort_by(|a, b| match (a[at].as_int(), b[at].as_int()) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => a[at].to_string().cmp(&b[at].to_string()),
                });
            }
            if one {
                store_one(f, 4, &rows)
            } else {
                store_rows(f, 4, &rows)
            }
        }
        Err(e) => fail(f, e),
    }
}

/// `sql_select([columns], table[, filter[, order[, "$avp(a);…"[, db_id]]]])`.
pub fn sql_select(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    select(f, args, false)
}

/// `sql_select_one([columns], [table], filter[, order], "$var(a);…"[, db_id])`.
pub fn sql_select_one(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    select(f, args, true)
}

/// `sql_update(columns, table[, filter[, db_id]])`: `columns` is `{"col": value, …}`.
pub fn sql_update(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let set = match json_pairs(&text_arg(args, 0).unwrap_or_default(), "columns") {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let table = text_arg(args, 1).unwrap_or_default();
    let filter = match json_pairs(&text_arg(args, 2).unwrap_or_default(), "filter") {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let Some(db) = db_arg(f, args, 3) else {
        return -1;
    };
    let set: Vec<(&str, DbValue)> = set.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let filter: Vec<(&str, DbValue)> = filter
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    match db.update(&table, &filter, &set) {
        Ok(_) => 1,
        Err(e) => fail(f, e),
    }
}

fn insert(f: &mut FnCtx<'_>, args: &[Value], replace: bool) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let values = match json_pairs(&text_arg(args, 1).unwrap_or_default(), "columns") {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let Some(db) = db_arg(f, args, 2) else {
        return -1;
    };
    let values: Vec<(&str, DbValue)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if replace {
        // REPLACE INTO (the row with the same unique key goes first) is MySQL's and
        // SQLite's; OpenSIPS' PostgreSQL and text drivers do not have it either.
        let dialect = match db::driver_module(db.url()) {
            Ok("db_mysql") => db::sql::Dialect::Mysql,
            Ok("db_sqlite") => db::sql::Dialect::Sqlite,
            _ => return fail(f, "sql_replace needs a mysql:// or sqlite:// database"),
        };
        let sql = match dialect.insert(&table, &values) {
            Ok(sql) => sql.replacen("INSERT", "REPLACE", 1),
            Err(e) => return fail(f, e),
        };
        return match db.raw(&sql) {
            Ok(_) => 1,
            Err(e) => fail(f, e),
        };
    }
    match db.insert(&table, &values) {
        Ok(()) => 1,
        Err(e) => fail(f, e),
    }
}

/// `sql_insert(table, columns[, db_id])`: `columns` is `{"col": value, …}`.
pub fn sql_insert(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    insert(f, args, false)
}

/// `sql_replace(table, columns[, db_id])`.
pub fn sql_replace(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    insert(f, args, true)
}

/// `sql_delete(table[, filter[, db_id]])`.
pub fn sql_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let filter = match json_pairs(&text_arg(args, 1).unwrap_or_default(), "filter") {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let Some(db) = db_arg(f, args, 2) else {
        return -1;
    };
    let filter: Vec<(&str, DbValue)> = filter
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    match db.delete(&table, &filter) {
        Ok(_) => 1,
        Err(e) => fail(f, e),
    }
}
