//! The database modules as the script loads them: `db_text` (its parameters, its MI commands,
//! and its tables written back at shutdown), `db_sqlite`, `db_postgres`, `db_mysql`, and the start of the modules that load their
//! data from a database (dispatcher, auth_db, sqlops, permissions, domain, group, alias_db, drouting, dialplan, usrloc, dialog, load_balancer, mqueue).

use std::path::Path;

use ::mi::{Command, Mi, MiError};
use engine::{ModuleSpec, ParamType, Script};
use serde_json::json;

pub static DB_TEXT: ModuleSpec = ModuleSpec {
    name: "db_text",
    functions: &[],
    params: &[("db_mode", ParamType::Int), ("buffer_size", ParamType::Int)],
};

pub static DB_SQLITE: ModuleSpec = ModuleSpec {
    name: "db_sqlite",
    functions: &[],
    params: &[
        ("alloc_limit", ParamType::Int),
        ("busy_timeout", ParamType::Int),
        ("load_extension", ParamType::Str),
        ("exec_pragma", ParamType::Str),
    ],
};

pub static DB_POSTGRES: ModuleSpec = ModuleSpec {
    name: "db_postgres",
    functions: &[],
    params: &[
        ("exec_query_threshold", ParamType::Int),
        ("max_db_queries", ParamType::Int),
        ("timeout", ParamType::Int),
        ("use_tls", ParamType::Int),
    ],
};

pub static DB_MYSQL: ModuleSpec = ModuleSpec {
    name: "db_mysql",
    functions: &[],
    params: &[
        ("exec_query_threshold", ParamType::Int),
        ("timeout_interval", ParamType::Int),
        ("max_db_queries", ParamType::Int),
        ("max_db_retries", ParamType::Int),
        ("ps_max_col_count", ParamType::Int),
        ("use_tls", ParamType::Int),
    ],
};

pub static DB_VIRTUAL: ModuleSpec = ModuleSpec {
    name: "db_virtual",
    functions: &[],
    params: &[
        ("db_urls", ParamType::Str),
        ("db_probe_time", ParamType::Int),
        ("db_max_consec_retries", ParamType::Int),
    ],
};

/// `db_virtual`'s sets, from its `db_urls`; each real URL's driver must be loaded.
fn virtual_sets(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("db_virtual") {
        return Ok(());
    }
    let probe = script
        .modparam_int("db_virtual", "db_probe_time")
        .filter(|t| *t > 0)
        .unwrap_or(10);
    db::virtual_db::configure(
        &script.modparam_strs("db_virtual", "db_urls"),
        std::time::Duration::from_secs(probe.unsigned_abs()),
        options,
    )
    .map_err(|e| format!("db_virtual: {e}"))?;
    for url in db::virtual_db::member_urls() {
        let driver = db::driver_module(&url).map_err(|e| format!("db_virtual: {e}"))?;
        if !script.loads(driver) {
            return Err(format!(
                "db_virtual: {} needs loadmodule \"{driver}.so\"",
                db::redact(&url)
            ));
        }
    }
    Ok(())
}

/// The drivers' settings: `db_text`'s and `db_sqlite`'s parameters, and the directory a
/// relative `text://` URL is under (the config file's, as OpenSIPS' CFG_DIR).
pub fn options(script: &Script, cfg_file: Option<&str>) -> db::Options {
    let cfg_dir = cfg_file
        .and_then(|f| Path::new(f).parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| Path::new(".").to_owned(), Path::to_owned);
    db::Options {
        cfg_dir,
        text: db::text::Settings {
            reread: script.modparam_int("db_text", "db_mode") == Some(1),
            buffer_size: script
                .modparam_int("db_text", "buffer_size")
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(4096),
        },
        sqlite: db::sqlite::Settings {
            busy_timeout_ms: script
                .modparam_int("db_sqlite", "busy_timeout")
                .unwrap_or(500),
            pragmas: script.modparam_strs("db_sqlite", "exec_pragma"),
            extensions: script.modparam_strs("db_sqlite", "load_extension"),
        },
    }
}

/// Loads what the database-backed modules need before the server serves: a database that
/// cannot be read stops the start, as in OpenSIPS.
pub fn start(script: &Script, cfg_file: Option<&str>) -> Result<(), String> {
    let options = options(script, cfg_file);
    virtual_sets(script, &options)?;
    acc::db::start(script, &options)?;
    auth::start(script, &options)?;
    sqlops::start(script, &options)?;
    avpops::start(script, &options)?;
    permissions::start(script, &options)?;
    domain::start(script, &options)?;
    userdb::start(script, &options)?;
    drouting::start(script, &options)?;
    dialplan::start(script, &options)?;
    rtpengine::start(script, &options)?;
    rtpproxy::start(script, &options)?;
    presence::start(script, &options)?;
    pua::start(script, &options)?;
    topology_hiding::start(script)?;
    registrar::persist::start(script, &options)?;
    mid_registrar::start(script)?;
    b2b::start(script)?;
    dialog::start(script, &options)?;
    fraud_detection::start(script, &options)?;
    path::start(script)?;
    options::start(script);
    gflags::start(script);
    cfgutils::start(script);
    nathelper::traversal::start(script);
    mi_script::start(script);
    diversion::start(script);
    regex_module::start(script)?;
    load_balancer::start(script, &options)?;
    sockets_mgm::start(script, &options)?;
    tcp_mgm::start(script, &options)?;
    ratelimit::start(script)?;
    pike::start(script)?;
    uac::start(script)?;
    uac_registrant::start(script, &options)?;
    statistics::start(script)?;
    exec::start(script)?;
    engine::evi::configure(script)?;
    engine::cachedb::configure(script)?;
    engine::rabbitmq::configure(script)?;
    tracer::start(script, &options)?;
    userblacklist::start(script, &options)?;
    msilo::start(script, &options)?;
    sql_cacher::start(script, &options)?;
    benchmark::start(script)?;
    mqueue::start(script, &options)?;
    enum_module::start(script)?;
    uac_redirect::start(script)?;
    stir_shaken::start(script)?;
    rest_client::tls::start(script)?;
    clusterer::start(script, &options)?;
    opentelemetry::start(script)?;
    dispatcher::start(script, &options)
}

/// Writes what waits to be written at shutdown: usrloc's changed contacts, db_text's tables.
pub fn flush() {
    // usrloc's last changes first, then db_text's files (usrloc may write into db_text).
    registrar::persist::flush();
    dialog::persist::flush(true);
    presence::flush();
    pua::flush();
    acc::db::flush(std::time::Duration::from_secs(3));
    opentelemetry::flush();
    mqueue::stop();
    match db::text::dump_all() {
        Ok(0) => {}
        Ok(n) => crate::logging::core(2, &format!("db_text: {n} changed table(s) written")),
        Err(e) => crate::logging::core(-1, &format!("db_text: cannot write back: {e}")),
    }
}

/// `db_virtual:get` (`db_get`): each set, its mode, and whether each database is usable;
/// `db_virtual:set` (`db_set`): whether a database may be used (`ignore_retries` is taken and
/// has nothing to do: rsips retries a failed database after `db_probe_time`).
pub fn virtual_commands(mi: &mut Mi) {
    mi.add(Command::new("db_virtual:get", &["db_get"], &[&[]], |_| {
        let sets: Vec<serde_json::Value> = db::virtual_db::state()
            .into_iter()
            .enumerate()
            .map(|(i, (name, mode, dbs))| {
                let dbs: Vec<serde_json::Value> = dbs
                    .into_iter()
                    .enumerate()
                    .map(|(j, (url, up, allowed))| {
                        let flags = match (up, allowed) {
                            (true, true) => "CAN_USE, MAY_USE",
                            (false, true) => "MAY_USE",
                            (true, false) => "CAN_USE",
                            (false, false) => "",
                        };
                        json!({"index": j, "url": url, "flags": flags})
                    })
                    .collect();
                json!({"index": i, "name": name, "mode": mode, "DBs": dbs})
            })
            .collect();
        Ok(json!({ "SETS": sets }))
    }));
    mi.add(Command::new(
        "db_virtual:set",
        &["db_set"],
        &[
            &["set_index", "db_url_index", "may_use_db_flag"],
            &[
                "set_index",
                "db_url_index",
                "may_use_db_flag",
                "ignore_retries",
            ],
        ],
        |p| {
            let index = |name: &str| -> Result<usize, MiError> {
                p.int(name)?
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| MiError::new(400, "Bad parameter value"))
            };
            let (set, db) = (index("set_index")?, index("db_url_index")?);
            let allowed = p.int("may_use_db_flag")?.unwrap_or(1) != 0;
            db::virtual_db::set_allowed(set, db, allowed)
                .map_err(|e| MiError::new(400, "Bad parameter value").with_data(e))?;
            Ok(json!("OK"))
        },
    ));
}

/// `db_text:dump` (`dbt_dump`) and `db_text:reload` (`dbt_reload`).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new("db_text:dump", &["dbt_dump"], &[&[]], |_| {
        db::text::dump_all()
            .map_err(|e| MiError::new(500, "Internal error").with_data(e.to_string()))?;
        Ok(json!("OK"))
    }));
    mi.add(Command::new(
        "db_text:reload",
        &["dbt_reload"],
        &[&[], &["db_name"], &["db_name", "table_name"]],
        |p| {
            let name = p.str("db_name")?;
            let table = p.str("table_name")?;
            let all = db::text::databases();
            let dbs: Vec<_> = match &name {
                None => all,
                Some(n) => {
                    let dir = n.trim().strip_prefix("text://").unwrap_or(n.trim());
                    let found: Vec<_> = all
                        .into_iter()
                        .filter(|d| d.dir().to_string_lossy().eq_ignore_ascii_case(dir))
                        .collect();
                    if found.is_empty() {
                        return Err(MiError::new(400, "Bad parameter value"));
                    }
                    found
                }
            };
            for d in dbs {
                d.reload(table.as_deref()).map_err(|e| match e {
                    db::DbError::NoTable { .. } => MiError::new(400, "Bad parameter value"),
                    e => MiError::new(500, "Internal error").with_data(e.to_string()),
                })?;
            }
            Ok(json!("OK"))
        },
    ));
}
