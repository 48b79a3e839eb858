//! avpops' database side: `avp_db_load`, `avp_db_store` and `avp_db_delete` on the
//! `usr_preferences` table (sqlops' implementation, with avpops' parameters: `avp_table`,
//! `use_domain` 0 by default), and `avp_db_query`, which differs from sqlops' `sql_query` in
//! its result list (`$avp(1)`, `$avp(2)` … when left out; `,`, `;` or spaces between names)
//! and in answering -2 for a statement that returns no result set.

use std::sync::{Arc, Mutex, OnceLock};

use db::Connection;
use engine::{FnCtx, Script, Value};
use sqlops::avp::Prefs;

/// The opened `db_url`s by id, and the id used when a call names none (id 0, or else the
/// first one declared).
#[derive(Default)]
struct Databases {
    by_id: Vec<(i64, Arc<dyn Connection>)>,
    default: Option<i64>,
}

fn databases() -> &'static Mutex<Databases> {
    static DBS: OnceLock<Mutex<Databases>> = OnceLock::new();
    DBS.get_or_init(Mutex::default)
}

static PREFS: OnceLock<Prefs> = OnceLock::new();

fn prefs() -> &'static Prefs {
    PREFS.get_or_init(|| Prefs::read(None, "avpops", "avp_table", 0))
}

/// `db_url` values as `(id, url)`: `"[id ]url"`; an id given twice is an error. Without any,
/// the core's `db_default_url`.
pub(crate) fn urls(script: &Script) -> Result<Vec<(i64, String)>, String> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for text in script.modparam_strs("avpops", "db_url") {
        let (id, url) = sqlops::db_url_id(&text);
        if out.iter().any(|(i, _)| *i == id) {
            return Err(format!(
                "avpops: db_url idx {id} overwritten (multiple definitions)"
            ));
        }
        out.push((id, url.to_owned()));
    }
    if out.is_empty()
        && let Some(url) = script.global_str("db_default_url")
    {
        out.push((0, url));
    }
    Ok(out)
}

/// Opens every database; one that cannot be opened stops the start.
pub(crate) fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    let _ = PREFS.set(Prefs::read(Some(script), "avpops", "avp_table", 0));
    let urls = urls(script)?;
    let mut opened = Databases {
        default: urls
            .iter()
            .find(|(id, _)| *id == 0)
            .or(urls.first())
            .map(|(id, _)| *id),
        by_id: Vec::new(),
    };
    for (id, url) in &urls {
        let conn = db::open_for("avpops", url, |m| script.loads(m), options)?;
        opened.by_id.push((*id, conn));
    }
    *databases()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = opened;
    Ok(())
}

/// The database argument `i` names (the default one when left out); logged when none.
fn db_arg(f: &mut FnCtx<'_>, args: &[Value], i: usize) -> Option<Arc<dyn Connection>> {
    let dbs = databases()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if dbs.by_id.is_empty() {
        drop(dbs);
        f.log
            .log(-1, "avpops: no DB URL provision into the module!\n");
        return None;
    }
    let id = args.get(i).and_then(Value::as_int).or(dbs.default)?;
    let found = dbs
        .by_id
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, c)| Arc::clone(c));
    drop(dbs);
    if found.is_none() {
        f.log.log(-1, &format!("avpops: no db_url with id {id}\n"));
    }
    found
}

/// `avp_db_load(source, name[, db_id[, prefix]])`: 1 when at least one AVP was loaded.
pub fn avp_db_load(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    sqlops::avp::load(f, args, prefs(), &|f, a| db_arg(f, a, 2))
}

/// `avp_db_store(source, name[, db_id])`: 1 when at least one row was written.
pub fn avp_db_store(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    sqlops::avp::store(f, args, prefs(), &|f, a| db_arg(f, a, 2))
}

/// `avp_db_delete(source, name[, db_id])`: 1 unless the source or name cannot be used.
pub fn avp_db_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    sqlops::avp::delete(f, args, prefs(), &|f, a| db_arg(f, a, 2))
}

/// The AVP names of `avp_db_query`'s result list: `$avp(..)` only, separated by any run of
/// spaces, `,` or `;`.
pub(crate) fn result_avps(text: &str) -> Result<Vec<String>, String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|t| !t.is_empty())
        .map(|t| crate::parse::avp(t).map(|(name, _)| name))
        .collect()
}

/// `avp_db_query(query[, "$avp(a);$avp(b)…"[, db_id]])`: column j of every row into the j-th
/// AVP (`$avp(j+1)` without a list), the first row on top; NULL as `<null>`. 1 with rows, -2
/// without (a statement with no result set included), -1 on an error.
pub fn avp_db_query(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let sql = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let names = match args.get(1).filter(|v| !v.is_null()) {
        Some(list) => match result_avps(&list.to_text()) {
            Ok(n) => Some(n),
            Err(e) => {
                f.log.log(-1, &format!("avpops: {e}\n"));
                return -1;
            }
        },
        None => None,
    };
    let Some(db) = db_arg(f, args, 2) else {
        return -1;
    };
    let rows = match db.raw(&sql) {
        Ok(Some(rows)) if rows.first().is_some_and(|r| !r.is_empty()) => rows,
        Ok(_) => return -2,
        Err(e) => {
            f.log.log(-1, &format!("avpops: raw_query failed: {e}\n"));
            return -1;
        }
    };
    for row in rows.iter().rev() {
        for (j, v) in row.iter().enumerate() {
            let name = match &names {
                Some(n) => match n.get(j) {
                    Some(n) => n.clone(),
                    None => break,
                },
                None => (j + 1).to_string(),
            };
            let v = match v {
                db::Value::Null => Value::from("<null>"),
                v => sqlops::script_value(v),
            };
            sqlops::avp::push(f, &name, v);
        }
    }
    1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn result_lists() {
        assert_eq!(
            result_avps("$avp(a);$avp(b), $avp(c)  $avp(d)").unwrap(),
            ["a", "b", "c", "d"]
        );
        assert!(result_avps("$avp(a);$var(b)").is_err());
        assert!(result_avps("").unwrap().is_empty());
    }
}
