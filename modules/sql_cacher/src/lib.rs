//! The OpenSIPS `sql_cacher` module: rows of SQL tables kept in memory and read in the
//! script through `$sql_cached_value(id:column:key)`.
//!
//! - `cache_table` (set once per entry) names the database, table, key column and the
//!   columns to keep; see [`spec`]. With `on_demand=0` the whole table is read at start and
//!   again every `full_caching_expire - reload_interval` seconds; a row lives
//!   `full_caching_expire` seconds after it was read, so a reload that fails (the database
//!   down) keeps serving the rows read before until then. With `on_demand=1` a key is read
//!   from the database the first time it is asked for and kept `expire` seconds (a key the
//!   table lacks too).
//! - `$sql_cached_value(id{sep}col{sep}key)`: the key part may hold variables. NULL for an
//!   unknown entry or column, a key the table lacks, a NULL column, or a failed query.
//!   Integer columns read as integers, text ones as strings.
//! - `sql_cache_dump(id, columns, avps)` pushes the columns of every cached row into the
//!   AVPs; MI `sql_cacher:reload` (`sql_cacher_reload`) rereads a table, a key, or drops an
//!   on-demand entry's keys.
//!
//! The cache lives in rsips' own memory: the `cachedb_url` of an entry must name the
//! in-process engine (`local://`, with `cachedb_local` loaded), as the data is not shared
//! with other servers. `sql_fetch_nr_rows` is accepted; rsips' drivers return whole results.
#![forbid(unsafe_code)]

pub mod cache;
pub mod spec;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};

use cache::{Cache, Convert, Miss};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "sql_cacher",
    functions: &[FnSpec {
        name: "sql_cache_dump",
        params: &[
            (Param::Str, false),
            (Param::Str, false),
            (Param::Checked(&AVP_LIST), false),
        ],
        routes: Routes::ALL,
        run: sql_cache_dump,
    }],
    params: &[
        ("cache_table", ParamType::Str),
        ("spec_delimiter", ParamType::Str),
        ("pvar_delimiter", ParamType::Str),
        ("columns_delimiter", ParamType::Str),
        ("sql_fetch_nr_rows", ParamType::Int),
        ("full_caching_expire", ParamType::Int),
        ("reload_interval", ParamType::Int),
        ("bigint_to_str", ParamType::Int),
    ],
};

/// `sql_cache_dump`'s third parameter: `$avp(a),$avp(b)…`.
static AVP_LIST: ParamCheck = ParamCheck {
    what: "AVP list",
    check: |text| avp_names(text).map(|_| ()),
};

const DEFAULT_FULL_CACHING_EXPIRE: i64 = 86_400;
const DEFAULT_RELOAD_INTERVAL: i64 = 60;

#[derive(Debug)]
struct State {
    caches: HashMap<String, Arc<Cache>>,
    pvar_delim: char,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Reads every `cache_table`, checks each against its database (the table, key and columns
/// must exist) and reads the fully cached tables; any failure stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("sql_cacher") {
        return Ok(());
    }
    let param = |p: &str| script.modparam_str("sql_cacher", p);
    let spec_delim = spec::delimiter("spec_delimiter", param("spec_delimiter"), '\n')?;
    let pvar_delim = spec::delimiter("pvar_delimiter", param("pvar_delimiter"), ':')?;
    let columns_delim = spec::delimiter("columns_delimiter", param("columns_delimiter"), ' ')?;
    let int = |p: &str| script.modparam_int("sql_cacher", p);
    let mut full_expire = int("full_caching_expire").unwrap_or(DEFAULT_FULL_CACHING_EXPIRE);
    if full_expire <= 0 {
        log::warn!(
            "invalid full_caching_expire {full_expire}, using {DEFAULT_FULL_CACHING_EXPIRE} s"
        );
        full_expire = DEFAULT_FULL_CACHING_EXPIRE;
    }
    let mut interval = int("reload_interval").unwrap_or(DEFAULT_RELOAD_INTERVAL);
    if interval <= 0 || interval >= full_expire {
        log::warn!("invalid reload_interval {interval}, using {DEFAULT_RELOAD_INTERVAL} s");
        interval = DEFAULT_RELOAD_INTERVAL;
    }
    let convert = Convert {
        bigint_to_str: int("bigint_to_str").unwrap_or(0) != 0,
    };
    let mut caches = HashMap::new();
    for text in script.modparam_strs("sql_cacher", "cache_table") {
        let spec = spec::parse(&text, spec_delim, columns_delim)
            .map_err(|e| format!("sql_cacher: invalid cache_table: {e}"))?;
        if caches.contains_key(&spec.id) {
            return Err(format!(
                "sql_cacher: cache entry `{}` is defined twice",
                spec.id
            ));
        }
        let cache = connect(script, options, spec, full_expire.unsigned_abs(), convert)?;
        caches.insert(cache.spec.id.clone(), Arc::new(cache));
    }
    if caches.is_empty() {
        log::warn!("no cache_table given, nothing is cached");
    }
    let full: Vec<Arc<Cache>> = caches.values().filter(|c| c.is_full()).cloned().collect();
    if STATE.set(State { caches, pvar_delim }).is_err() {
        return Ok(());
    }
    engine::hooks::set_sql_cache_reader(Box::new(cached_value));
    if !full.is_empty() {
        let period = Duration::from_secs((full_expire - interval).max(1).unsigned_abs());
        std::thread::Builder::new()
            .name("sql_cacher reload".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(period);
                    for c in &full {
                        if let Err(e) = c.load_all() {
                            log::error!(
                                "cannot reload table {} of entry {}: {e}",
                                c.spec.table,
                                c.spec.id
                            );
                        }
                    }
                }
            })
            .map_err(|e| format!("sql_cacher: cannot start the reload timer: {e}"))?;
    }
    Ok(())
}

/// Opens an entry's database, checks the table with a query for a key no row should have,
/// and reads the table when it is fully cached.
fn connect(
    script: &Script,
    options: &db::Options,
    spec: spec::Spec,
    full_expire: u64,
    convert: Convert,
) -> Result<Cache, String> {
    let id = spec.id.clone();
    let fail = |e: String| format!("sql_cacher: cache entry `{id}`: {e}");
    check_cachedb_url(&spec.cachedb_url, |m| script.loads(m)).map_err(fail)?;
    let db = db::open_for("sql_cacher", &spec.db_url, |m| script.loads(m), options)?;
    let columns = match &spec.columns {
        Some(c) => c.clone(),
        None => table_columns(&*db, &spec.db_url, &spec.table, options).map_err(fail)?,
    };
    let probe = match spec.key_type {
        spec::KeyType::String => db::Value::Str("sql_cacher_test_query_key".into()),
        spec::KeyType::Int => db::Value::Int(555_666_555),
    };
    let mut cols: Vec<&str> = vec![spec.key.as_str()];
    cols.extend(columns.iter().map(String::as_str));
    db.query(&spec.table, &cols, &[(spec.key.as_str(), probe)])
        .map_err(|e| {
            fail(format!(
                "the test query on table {} failed: {e}",
                spec.table
            ))
        })?;
    let cache = Cache::new(spec, db, columns, full_expire, convert);
    if cache.is_full() {
        let n = cache
            .load_all()
            .map_err(|e| fail(format!("cannot read table {}: {e}", cache.spec.table)))?;
        log::info!(
            "{n} records loaded from table {} for entry {id}",
            cache.spec.table
        );
    }
    Ok(cache)
}

/// Only the in-process engine keeps sql_cacher's rows in rsips.
fn check_cachedb_url(url: &str, loaded: impl Fn(&str) -> bool) -> Result<(), String> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let engine = scheme.split(':').next().unwrap_or_default();
    if engine != "local" {
        return Err(format!(
            "cachedb_url \"{url}\": rsips keeps sql_cacher's rows in its own memory and takes only the local cachedb engine (e.g. cachedb_url=local://)"
        ));
    }
    if !loaded("cachedb_local") {
        return Err(format!(
            "cachedb_url \"{url}\" needs loadmodule \"cachedb_local.so\""
        ));
    }
    Ok(())
}

/// Every column of `table`, in table order, when the entry names none.
fn table_columns(
    db: &dyn db::Connection,
    url: &str,
    table: &str,
    options: &db::Options,
) -> Result<Vec<String>, String> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let quoted = table.replace('\'', "''");
    let sql = match db::driver_module(url).map_err(|e| e.to_string())? {
        "db_text" => {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            let dir = std::path::Path::new(rest);
            let dir = if dir.is_absolute() {
                dir.to_owned()
            } else {
                options.cfg_dir.join(dir)
            };
            let path = dir.join(table);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let t = db::text::parse(&path, &bytes, options.text.buffer_size)
                .map_err(|e| e.to_string())?;
            return Ok(t.columns.into_iter().map(|c| c.name).collect());
        }
        "db_sqlite" => format!("SELECT name FROM pragma_table_info('{quoted}')"),
        "db_mysql" => format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{quoted}' ORDER BY ordinal_position"
        ),
        _ => format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{quoted}' ORDER BY ordinal_position"
        ),
    };
    let rows = db
        .raw(&sql)
        .map_err(|e| format!("cannot list the columns of table {table} ({scheme}): {e}"))?
        .unwrap_or_default();
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.first().and_then(db::Value::as_text))
        .collect();
    if names.is_empty() {
        return Err(format!("no table \"{table}\" (no columns found)"));
    }
    Ok(names)
}

/// `$sql_cached_value(id:col:key)` with its name expanded.
fn cached_value(name: &str) -> Value {
    let Some(st) = STATE.get() else {
        return Value::Null;
    };
    let mut parts = name.splitn(3, st.pvar_delim);
    let (Some(id), Some(col), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        log::error!("invalid syntax for $sql_cached_value({name})");
        return Value::Null;
    };
    let Some(cache) = st.caches.get(id) else {
        log::warn!("unknown caching id {id}");
        return Value::Null;
    };
    let Some(at) = cache.column(col) else {
        log::warn!("unknown column {col} in caching id {id}");
        return Value::Null;
    };
    match cache.get(key) {
        Ok(row) => row.get(at).cloned().unwrap_or(Value::Null),
        Err(Miss::NotFound) => Value::Null,
        Err(Miss::Db(e)) => {
            log::error!("cannot load key {key} of entry {id}: {e}");
            Value::Null
        }
    }
}

/// The AVP names of `$avp(a),$avp(b)…`.
fn avp_names(text: &str) -> Result<Vec<&str>, String> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            item.strip_prefix("$avp(")
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(['$', '(', ')']))
                .ok_or_else(|| format!("`{item}` is not an `$avp(name)`"))
        })
        .collect()
}

/// `sql_cache_dump(caching_id, columns, result_avps)`: the number of rows dumped, -2 for
/// none, -1 for an error.
fn sql_cache_dump(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (id, columns, avps) = (text(0), text(1), text(2));
    let Some(cache) = STATE.get().and_then(|st| st.caches.get(&id)) else {
        f.log
            .log(-1, &format!("sql_cacher: caching id not found: '{id}'\n"));
        return -1;
    };
    let mut wanted = Vec::new();
    for col in columns.split(',').map(str::trim) {
        match cache.column(col) {
            Some(i) => wanted.push(i),
            None => {
                f.log.log(
                    -1,
                    &format!("sql_cacher: unknown column '{col}' in caching id '{id}'\n"),
                );
                return -1;
            }
        }
    }
    let Ok(names) = avp_names(&avps) else {
        return -1;
    };
    if names.len() != wanted.len() {
        f.log.log(
            -1,
            &format!(
                "sql_cacher: number of columns ({}) differs from number of AVPs ({})\n",
                wanted.len(),
                names.len()
            ),
        );
        return -1;
    }
    let ids: Vec<Option<usize>> = names.iter().map(|n| f.script.avp_id(n)).collect();
    let rows = cache.rows();
    for row in &rows {
        for (col, avp) in wanted.iter().zip(&ids) {
            let Some(avp) = *avp else { continue };
            let v = match row.get(*col) {
                Some(Value::Null) | None => Value::str("<null>"),
                Some(v) => v.clone(),
            };
            if f.msg.avps.len() <= avp {
                f.msg.avps.resize(avp + 1, Vec::new());
            }
            f.msg.avps[avp].push(v);
        }
    }
    if rows.is_empty() {
        -2
    } else {
        rows.len() as i64
    }
}

/// MI `sql_cacher:reload` (`sql_cacher_reload`): `id` rereads a fully cached table or drops
/// an on-demand entry's keys; `id, key` rereads one key.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "sql_cacher:reload",
        &["sql_cacher_reload"],
        &[&["id"], &["id", "key"]],
        |p| {
            let id = p.str("id")?.unwrap_or_default();
            let Some(cache) = STATE.get().and_then(|st| st.caches.get(&id)) else {
                log::error!("entry {id} not found");
                return Err(mi::MiError::new(500, "ERROR Cache entry not found"));
            };
            match p.str("key")? {
                Some(key) => cache.reload_key(&key).map_err(|e| match e {
                    Miss::NotFound => mi::MiError::new(
                        500,
                        "ERROR Reloading key from SQL database, key not found",
                    ),
                    Miss::Db(e) => {
                        log::error!("cannot reload key {key} of entry {id}: {e}");
                        mi::MiError::new(500, "ERROR Reloading key from SQL database").with_data(e)
                    }
                })?,
                None => cache.reload().map_err(|e| {
                    log::error!(
                        "cannot reload table {} of entry {id}: {e}",
                        cache.spec.table
                    );
                    mi::MiError::new(500, "ERROR Reloading SQL database").with_data(e)
                })?,
            }
            Ok(serde_json::json!("OK"))
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avp_lists() {
        assert_eq!(avp_names("$avp(a), $avp(b)").unwrap(), vec!["a", "b"]);
        assert!(avp_names("$avp(a),$var(b)").is_err());
        assert!(avp_names("$avp($var(x))").is_err());
    }

    #[test]
    fn every_column_of_a_text_table() {
        let dir = std::env::temp_dir().join(format!("rsips-sqlc-cols-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t"), "k(string) a(int,null) b(str)\nx:1:y\n").unwrap();
        let url = format!("text://{}", dir.display());
        let options = db::Options::default();
        let conn = db::connect(&url, &options).unwrap();
        assert_eq!(
            table_columns(&*conn, &url, "t", &options).unwrap(),
            ["k", "a", "b"]
        );
        assert!(table_columns(&*conn, &url, "none", &options).is_err());
    }

    #[test]
    fn only_the_local_engine() {
        assert!(check_cachedb_url("local://", |_| true).is_ok());
        assert!(check_cachedb_url("local:grp://", |_| true).is_ok());
        let e = check_cachedb_url("local://", |_| false).unwrap_err();
        assert!(e.contains("cachedb_local.so"), "{e}");
        let e = check_cachedb_url("redis://127.0.0.1:6379/", |_| true).unwrap_err();
        assert!(e.contains("local"), "{e}");
    }
}
