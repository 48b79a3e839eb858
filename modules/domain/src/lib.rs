//! The OpenSIPS `domain` module: the domains this server is responsible for, from the
//! `domain` table of any database (cached with `db_mode` 1 and reloaded by MI `domain:reload`,
//! read on every check with `db_mode` 0), `is_from_local`, `is_uri_host_local`,
//! `is_domain_local` (with the domain's attributes), and those domains counting for
//! `is_myself`, as OpenSIPS registers them as aliases.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, OnceLock};

use ::mi::{Command, Mi, MiError};
use db::{Connection, Value as DbValue};
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};
use serde_json::json;

/// The version of the `domain` table (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 4;

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::BRANCH)
    .or(Routes::FAILURE)
    .or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "domain",
    functions: &[
        FnSpec {
            name: "is_from_local",
            params: &[(Param::Var, true)],
            routes: ROUTES,
            run: is_from_local,
        },
        FnSpec {
            name: "is_uri_host_local",
            params: &[(Param::Var, true)],
            routes: ROUTES,
            run: is_uri_host_local,
        },
        FnSpec {
            name: "is_domain_local",
            params: &[(Param::Str, false), (Param::Var, true)],
            routes: ROUTES,
            run: is_domain_local,
        },
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("db_mode", ParamType::Int),
        ("domain_table", ParamType::Str),
        ("domain_col", ParamType::Str),
        ("attrs_col", ParamType::Str),
        ("subdomain_col", ParamType::Str),
    ],
};

/// One domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub attrs: Option<String>,
    pub accept_subdomain: bool,
}

impl Domain {
    /// OpenSIPS' match: the same name, or with `accept_subdomain` a host ending in `.name`.
    fn matches(&self, host: &str) -> bool {
        let (d, h) = (self.name.as_str(), host);
        if !self.accept_subdomain {
            return d.eq_ignore_ascii_case(h);
        }
        if h.len() < d.len() || !h.is_char_boundary(h.len() - d.len()) {
            return false;
        }
        let offset = h.len() - d.len();
        h[offset..].eq_ignore_ascii_case(d) && (offset == 0 || h.as_bytes()[offset - 1] == b'.')
    }
}

/// The module's table: where it is, and the cached domains (`db_mode` 1).
#[derive(Debug)]
pub struct Table {
    db: Arc<dyn Connection>,
    table: String,
    columns: [String; 3],
    cached: Option<Mutex<Arc<Vec<Domain>>>>,
}

impl Table {
    fn read(&self) -> Result<Vec<Domain>, String> {
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.table, &cols, &[])
            .map_err(|e| format!("domain: {e}"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Domain {
                    name: r.first()?.as_text()?.trim().to_owned(),
                    attrs: r.get(1).and_then(DbValue::as_text),
                    accept_subdomain: r.get(2).and_then(DbValue::as_int).is_some_and(|n| n != 0),
                })
            })
            .filter(|d| !d.name.is_empty())
            .collect())
    }

    /// The domains now: the cache, or (`db_mode` 0) the table read again.
    pub fn domains(&self) -> Result<Arc<Vec<Domain>>, String> {
        match &self.cached {
            Some(c) => Ok(Arc::clone(
                &c.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            )),
            None => self.read().map(Arc::new),
        }
    }

    /// Reads the table into the cache; a failed read keeps the old one.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(c) = &self.cached else {
            return Err("DB is disabled (db_mode=0)".into());
        };
        let fresh = self.read()?;
        let n = fresh.len();
        *c.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(n)
    }

    /// The domain `host` falls under, if any.
    pub fn find(&self, host: &str) -> Result<Option<Domain>, String> {
        Ok(self.domains()?.iter().find(|d| d.matches(host)).cloned())
    }
}

fn table() -> &'static OnceLock<Table> {
    static TABLE: OnceLock<Table> = OnceLock::new();
    &TABLE
}

/// Opens the database (and with `db_mode` 1 loads the table), as the module does when
/// OpenSIPS starts; the domains then count for `is_myself`.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("domain") {
        return Ok(());
    }
    let param = |n: &str, d: &str| {
        script
            .modparam_str("domain", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let url = param("db_url", "mysql://opensips:opensipsrw@localhost/opensips");
    let db = db::open_for("domain", &url, |m| script.loads(m), options)?;
    let cache = script
        .modparam_int("domain", "db_mode")
        .is_some_and(|n| n != 0);
    let t = Table {
        table: param("domain_table", "domain"),
        columns: [
            param("domain_col", "domain"),
            param("attrs_col", "attrs"),
            param("subdomain_col", "accept_subdomain"),
        ],
        cached: cache.then(Mutex::default),
        db,
    };
    if cache {
        db::check_version(t.db.as_ref(), &t.table, TABLE_VERSION)
            .map_err(|e| format!("domain: {e}"))?;
        let n = t.reload()?;
        log::info!("domain: {n} domains loaded");
    }
    if table().set(t).is_ok() {
        engine::hooks::set_alias_check(Box::new(|host| {
            table()
                .get()
                .is_some_and(|t| matches!(t.find(host), Ok(Some(_))))
        }));
    }
    Ok(())
}

/// 1 (the attributes into `$var`, when given) when `host` is local, -1 when not, -2 on a
/// database error.
fn check(f: &mut FnCtx<'_>, host: &str, out: usize) -> i64 {
    let Some(t) = table().get() else {
        return -2;
    };
    match t.find(host.trim()) {
        Ok(Some(d)) => {
            if let Some(a) = d.attrs {
                f.set_output(out, Value::from(a));
            }
            1
        }
        Ok(None) => -1,
        Err(e) => {
            f.log.log(-1, &format!("{e}\n"));
            -2
        }
    }
}

/// `is_from_local([$attrs])`: whether the From URI's host is a local domain.
pub fn is_from_local(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let host = match f.msg.msg.from_header() {
        Ok(from) => from.uri().host().map(|h| h.as_str().to_owned()),
        Err(_) => None,
    };
    match host {
        Some(h) => check(f, &h, 0),
        None => -2,
    }
}

/// `is_uri_host_local([$attrs])`: whether the Request-URI's host is a local domain.
pub fn is_uri_host_local(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let host = f.msg.ruri().and_then(|u| {
        sip::Uri::parse(u)
            .ok()?
            .host()
            .map(|h| h.as_str().to_owned())
    });
    match host {
        Some(h) => check(f, &h, 0),
        None => -1,
    }
}

/// `is_domain_local(domain[, $attrs])`.
pub fn is_domain_local(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let host = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    check(f, &host, 1)
}

/// `domain:reload` and `domain:dump` (both refused with `db_mode` 0, as in OpenSIPS).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new("domain:reload", &[], &[&[]], |_| {
        let t = table()
            .get()
            .ok_or_else(|| MiError::new(500, "Domain table reload failed"))?;
        match t.reload() {
            Ok(_) => Ok(json!("OK")),
            Err(e) if e.starts_with("DB is disabled") => Err(MiError::new(500, e)),
            Err(e) => Err(MiError::new(500, "Domain table reload failed").with_data(e)),
        }
    }));
    mi.add(Command::new("domain:dump", &[], &[&[]], |_| {
        let t = table()
            .get()
            .ok_or_else(|| MiError::new(500, "DB is disabled (db_mode=0)"))?;
        if t.cached.is_none() {
            return Err(MiError::new(500, "DB is disabled (db_mode=0)"));
        }
        let domains = t.domains().map_err(|e| MiError::new(500, e))?;
        let list: Vec<serde_json::Value> = domains
            .iter()
            .map(|d| match &d.attrs {
                Some(a) => json!({"name": d.name, "attributes": a}),
                None => json!({"name": d.name}),
            })
            .collect();
        Ok(json!({ "Domains": list }))
    }));
}
