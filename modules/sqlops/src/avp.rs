//! sqlops' user preferences: `sql_avp_load`, `sql_avp_store` and `sql_avp_delete` move AVPs
//! between the script and the `usr_preferences` table (version 3: uuid, username, domain,
//! attribute, type, value), as OpenSIPS' avpops did before them.
//!
//! The source (`"$fu"`, `"$ru/username"`, `"$avp(id)/uuid"`, a literal uuid) selects the rows:
//! by uuid, or by the username and (with `use_domain`, default 1, or `/domain`) the domain of
//! a SIP URI. The name (`"$avp(fwd)"`, optionally `/table`) is the attribute; a name without
//! `$avp(…)` (`"s"`, `"i"`, `"*"`, `""`) stands for every attribute, each loaded into the AVP of
//! its own name.

use db::{Connection, Value as DbValue};
use engine::{FnCtx, Value};

use super::text_arg;

/// Finds the database a call names (its arguments given); `None` has been logged.
pub type DbLookup<'d> =
    &'d dyn Fn(&mut FnCtx<'_>, &[Value]) -> Option<std::sync::Arc<dyn Connection>>;

/// The table and its columns (`usr_table`, `*_column`), and the module that names them (avpops
/// reads the same from its own parameters, `avp_table` for the table).
#[derive(Debug)]
pub struct Prefs {
    /// The module the parameters come from, for log lines.
    pub module: &'static str,
    pub table: String,
    pub uuid: String,
    pub username: String,
    pub domain: String,
    pub attribute: String,
    pub value: String,
    pub kind: String,
    pub use_domain: bool,
}

impl Prefs {
    /// From the script's `sqlops` parameters (the defaults without a script).
    pub fn of(script: Option<&engine::Script>) -> Prefs {
        Prefs::read(script, "sqlops", "usr_table", 1)
    }

    /// From `module`'s parameters: the table is `table_param`, `use_domain` defaults to
    /// `use_domain` (sqlops 4.0 has 1, avpops 0).
    pub fn read(
        script: Option<&engine::Script>,
        module: &'static str,
        table_param: &str,
        use_domain: i64,
    ) -> Prefs {
        let param = |n: &str, d: &str| {
            script
                .and_then(|s| s.modparam_str(module, n))
                .unwrap_or_else(|| d.to_owned())
        };
        Prefs {
            module,
            table: param(table_param, "usr_preferences"),
            uuid: param("uuid_column", "uuid"),
            username: param("username_column", "username"),
            domain: param("domain_column", "domain"),
            attribute: param("attribute_column", "attribute"),
            value: param("value_column", "value"),
            kind: param("type_column", "type"),
            use_domain: script
                .and_then(|s| s.modparam_int(module, "use_domain"))
                .unwrap_or(use_domain)
                != 0,
        }
    }

    fn fail(&self, f: &mut FnCtx<'_>, what: impl std::fmt::Display) -> i64 {
        f.log.log(-1, &format!("{}: {what}\n", self.module));
        -1
    }
}

/// The key rows are selected by.
struct Key {
    uuid: Option<String>,
    username: Option<String>,
    domain: Option<String>,
}

impl Key {
    /// The rows of this key (and of attribute `avp`, when given).
    fn filter<'a>(&self, p: &'a Prefs, avp: Option<&str>) -> Vec<(&'a str, DbValue)> {
        let mut out = Vec::new();
        if let Some(u) = &self.uuid {
            out.push((p.uuid.as_str(), DbValue::Str(u.clone())));
        } else {
            if let Some(u) = &self.username {
                out.push((p.username.as_str(), DbValue::Str(u.clone())));
            }
            if let Some(d) = &self.domain {
                out.push((p.domain.as_str(), DbValue::Str(d.clone())));
            }
        }
        if let Some(a) = avp {
            out.push((p.attribute.as_str(), DbValue::Str(a.to_owned())));
        }
        out
    }
}

/// Evaluates the source parameter into a key; `Err` for the log.
fn key(f: &mut FnCtx<'_>, source: &str, prefs: &Prefs) -> Result<Key, String> {
    let (what, flag) = match source.split_once('/') {
        Some((w, fl)) => (w.trim(), Some(fl.trim().to_ascii_lowercase())),
        None => (source.trim(), None),
    };
    let (value, implicit) = if what.starts_with('$') {
        let spec = cfg::pv::parse(what).map_err(|e| format!("bad source `{what}`: {e}"))?;
        let uri_pv = ["ru", "fu", "tu", "ou"].contains(&spec.name.as_str());
        let v = f.read_pv(&spec);
        let text = if v.is_null() {
            String::new()
        } else {
            v.to_text().into_owned()
        };
        (text, if uri_pv { "uri" } else { "uuid" })
    } else {
        (what.to_owned(), "uuid")
    };
    if value.is_empty() {
        return Err(format!("source `{what}` is empty"));
    }
    let flag = flag.unwrap_or_else(|| implicit.to_owned());
    if flag == "uuid" {
        return Ok(Key {
            uuid: Some(value),
            username: None,
            domain: None,
        });
    }
    if !["uri", "username", "domain"].contains(&flag.as_str()) {
        return Err(format!("unknown source flag `/{flag}`"));
    }
    let uri = sip::Uri::parse(&value).map_err(|_| format!("`{value}` is not a SIP URI"))?;
    let user = uri.user().map(str::to_owned).filter(|u| !u.is_empty());
    let host = uri
        .host()
        .map(|h| h.as_str().to_owned())
        .filter(|h| !h.is_empty());
    let username = match flag.as_str() {
        "domain" => None,
        _ => Some(user.ok_or_else(|| format!("no user in `{value}`"))?),
    };
    let domain = match flag.as_str() {
        "username" => None,
        "domain" => Some(host.ok_or_else(|| format!("no host in `{value}`"))?),
        _ if prefs.use_domain => Some(host.ok_or_else(|| format!("no host in `{value}`"))?),
        _ => None,
    };
    Ok(Key {
        uuid: None,
        username,
        domain,
    })
}

/// The name parameter: the AVP (`None`: every attribute) and the table.
fn name(text: &str, prefs: &Prefs) -> Result<(Option<String>, String), String> {
    let (spec, table) = match text.split_once('/') {
        Some((s, t)) => (s.trim(), t.trim().to_owned()),
        None => (text.trim(), prefs.table.clone()),
    };
    if table.starts_with('$') {
        return Err("db_scheme names are not supported by rsips".into());
    }
    if let Some(inner) = spec.strip_prefix("$avp(").and_then(|s| s.strip_suffix(')')) {
        if inner.is_empty() || inner.contains('$') {
            return Err(format!("`{spec}` is not an AVP with a name"));
        }
        return Ok((Some(inner.to_owned()), table));
    }
    let rest = spec.trim_start_matches(['s', 'S', 'i', 'I', 'a', 'A', '*']);
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{spec}` is neither $avp(name) nor an AVP type"));
    }
    Ok((None, table))
}

/// Checks a name parameter as the script wrote it (`$avp(x)[/table]`, an AVP type).
pub fn check_name(text: &str) -> Result<(), String> {
    name(text, &Prefs::of(None)).map(|_| ())
}

/// Pushes `v` onto `$avp(name)` (newest), if the script uses that AVP.
pub fn push(f: &mut FnCtx<'_>, name: &str, v: Value) -> bool {
    let Some(id) = f.script.avp_id(name) else {
        return false;
    };
    if f.msg.avps.len() <= id {
        f.msg.avps.resize(id + 1, Vec::new());
    }
    f.msg.avps[id].push(v);
    true
}

/// What a call works on: the rows' key, the AVP (`None`: every attribute), the table and the
/// database.
struct Call {
    key: Key,
    avp: Option<String>,
    table: String,
    db: std::sync::Arc<dyn Connection>,
}

/// The call's arguments evaluated; `Err` is the return code (the reason logged).
fn prepare(
    f: &mut FnCtx<'_>,
    args: &[Value],
    prefs: &Prefs,
    db: DbLookup<'_>,
) -> Result<Call, i64> {
    let source = text_arg(args, 0).unwrap_or_default();
    let key = key(f, &source, prefs).map_err(|e| prefs.fail(f, e))?;
    let (avp, table) =
        name(&text_arg(args, 1).unwrap_or_default(), prefs).map_err(|e| prefs.fail(f, e))?;
    let db = db(f, args).ok_or(-1)?;
    Ok(Call {
        key,
        avp,
        table,
        db,
    })
}

/// `sql_avp_load(source, name[, db_id[, prefix]])`: 1 when at least one AVP was loaded (the
/// last row on top), -1 otherwise.
pub fn sql_avp_load(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    load(f, args, super::prefs(), &|f, args| {
        super::db_arg(f, args, 2)
    })
}

/// The `load` of [`sql_avp_load`] on `prefs`' table in the database `db` finds.
pub fn load(f: &mut FnCtx<'_>, args: &[Value], prefs: &Prefs, db: DbLookup<'_>) -> i64 {
    let Call {
        key,
        avp,
        table,
        db,
    } = match prepare(f, args, prefs, db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let prefix = text_arg(args, 3).unwrap_or_default();
    let filter = key.filter(prefs, avp.as_deref());
    let cols = [
        prefs.value.as_str(),
        prefs.attribute.as_str(),
        prefs.kind.as_str(),
    ];
    let rows = match db.query(&table, &cols, &filter) {
        Ok(r) => r,
        Err(e) => return prefs.fail(f, e),
    };
    let mut loaded = 0;
    for row in rows {
        let (Some(value), Some(attr), Some(kind)) = (
            row.first().and_then(DbValue::as_text),
            row.get(1).and_then(DbValue::as_text),
            row.get(2).and_then(DbValue::as_int),
        ) else {
            continue;
        };
        // Type bit 0: an integer value, read as OpenSIPS' str2int reads it (unsigned
        // decimal digits only, 32 bits); one that does not convert is skipped.
        let v = if kind & 1 != 0 {
            match value.parse::<u32>() {
                Ok(n) => Value::Int(i64::from(n)),
                Err(_) => continue,
            }
        } else {
            Value::from(value)
        };
        let target = format!("{prefix}{}", avp.as_deref().unwrap_or(&attr));
        if push(f, &target, v) {
            loaded += 1;
        }
    }
    if loaded > 0 { 1 } else { -1 }
}

/// `sql_avp_store(source, name[, db_id])`: a row for each value of the AVP (newest first),
/// or with an AVP type instead of a name for every AVP the script has; 1 when at least one
/// row was written.
pub fn sql_avp_store(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    store(f, args, super::prefs(), &|f, args| {
        super::db_arg(f, args, 2)
    })
}

/// The `store` of [`sql_avp_store`] on `prefs`' table in the database `db` finds.
pub fn store(f: &mut FnCtx<'_>, args: &[Value], prefs: &Prefs, db: DbLookup<'_>) -> i64 {
    let Call {
        key,
        avp,
        table,
        db,
    } = match prepare(f, args, prefs, db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let names: Vec<String> = match avp {
        Some(a) => vec![a],
        None => f.script.avp_names(),
    };
    let mut stored = 0;
    for name in names {
        let values: Vec<Value> = f
            .script
            .avp_id(&name)
            .and_then(|id| f.msg.avps.get(id))
            .map(|v| v.iter().rev().cloned().collect())
            .unwrap_or_default();
        for v in values {
            let (text, kind) = match &v {
                Value::Int(n) => (n.to_string(), 3),
                other => (other.to_text().into_owned(), 2),
            };
            let row = [
                (
                    prefs.uuid.as_str(),
                    DbValue::Str(key.uuid.clone().unwrap_or_default()),
                ),
                (prefs.attribute.as_str(), DbValue::Str(name.clone())),
                (prefs.value.as_str(), DbValue::Str(text)),
                (prefs.kind.as_str(), DbValue::Int(kind)),
                (
                    prefs.username.as_str(),
                    DbValue::Str(key.username.clone().unwrap_or_default()),
                ),
                (
                    prefs.domain.as_str(),
                    DbValue::Str(key.domain.clone().unwrap_or_default()),
                ),
            ];
            match db.insert(&table, &row) {
                Ok(()) => stored += 1,
                Err(e) => {
                    prefs.fail(f, e);
                }
            }
        }
    }
    if stored > 0 { 1 } else { -1 }
}

/// `sql_avp_delete(source, name[, db_id])`: removes the rows of the attribute (every
/// attribute for an AVP type); 1, -1 only when the source or name cannot be used.
pub fn sql_avp_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    delete(f, args, super::prefs(), &|f, args| {
        super::db_arg(f, args, 2)
    })
}

/// The `delete` of [`sql_avp_delete`] on `prefs`' table in the database `db` finds.
pub fn delete(f: &mut FnCtx<'_>, args: &[Value], prefs: &Prefs, db: DbLookup<'_>) -> i64 {
    let Call {
        key,
        avp,
        table,
        db,
    } = match prepare(f, args, prefs, db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let filter = key.filter(prefs, avp.as_deref());
    // OpenSIPS answers 1 even when the database refuses the delete; the failure is logged.
    if let Err(e) = db.delete(&table, &filter) {
        prefs.fail(f, e);
    }
    1
}
