//! Two small OpenSIPS modules over user tables of any database: `group` (membership in the
//! `grp` table, `db_is_user_in`; groups by regular expression in `re_grp`,
//! `db_get_user_group`) and `alias_db` (`alias_db_lookup` turns an alias in the Request-URI
//! into the user it stands for, from the `dbaliases` table; `alias_db_find` into a variable).
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use db::{Connection, Value as DbValue};
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use ParamType::{Int, Str};

const REQ_FAIL: Routes = Routes::REQUEST.or(Routes::FAILURE);
const LOOKUPS: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

pub static GROUP: ModuleSpec = ModuleSpec {
    name: "group",
    functions: &[
        FnSpec {
            name: "db_is_user_in",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: LOOKUPS,
            run: db_is_user_in,
        },
        FnSpec {
            name: "db_get_user_group",
            params: &[(Param::Str, false), (Param::Avp, false)],
            routes: LOOKUPS,
            run: db_get_user_group,
        },
    ],
    params: &[
        ("db_url", Str),
        ("table", Str),
        ("user_column", Str),
        ("domain_column", Str),
        ("group_column", Str),
        ("use_domain", Int),
        ("re_table", Str),
        ("re_exp_column", Str),
        ("re_gid_column", Str),
        ("multiple_gid", Int),
        ("aaa_url", Str),
    ],
};

pub static ALIAS_DB: ModuleSpec = ModuleSpec {
    name: "alias_db",
    functions: &[
        FnSpec {
            name: "alias_db_lookup",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: REQ_FAIL,
            run: alias_db_lookup,
        },
        FnSpec {
            name: "alias_db_find",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false),
                (Param::Str, true),
            ],
            routes: LOOKUPS.or(Routes::ONREPLY).or(Routes::STARTUP),
            run: alias_db_find,
        },
    ],
    params: &[
        ("db_url", Str),
        ("user_column", Str),
        ("domain_column", Str),
        ("alias_user_column", Str),
        ("alias_domain_column", Str),
        ("domain_prefix", Str),
        ("append_branches", Int),
    ],
};

static GROUP_DB: OnceLock<Arc<dyn Connection>> = OnceLock::new();
static ALIAS_DB_CONN: OnceLock<Arc<dyn Connection>> = OnceLock::new();

fn open(
    script: &Script,
    module: &str,
    options: &db::Options,
) -> Result<Arc<dyn Connection>, String> {
    let url = script
        .modparam_str(module, "db_url")
        .unwrap_or_else(|| "mysql://opensips:opensipsrw@localhost/opensips".into());
    db::open_for(module, &url, |m| script.loads(m), options)
}

/// Opens the modules' databases when the script loads them; one that cannot be opened stops
/// the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if script.loads("group") {
        let _ = GROUP_DB.set(open(script, "group", options)?);
    }
    if script.loads("alias_db") {
        let _ = ALIAS_DB_CONN.set(open(script, "alias_db", options)?);
    }
    Ok(())
}

fn param(script: &Script, module: &str, name: &str, default: &str) -> String {
    script
        .modparam_str(module, name)
        .unwrap_or_else(|| default.to_owned())
}

fn text_arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// The user and domain the `uri` argument names: `Request-URI`, `To`, `From`,
/// `Credentials`, or a SIP URI itself.
fn user_of(f: &FnCtx<'_>, which: &str) -> Option<(String, String)> {
    let m = &f.msg.msg;
    let from_uri = |u: &str| -> Option<(String, String)> {
        let u = sip::Uri::parse(u.trim()).ok()?;
        Some((u.user()?.to_owned(), u.host()?.as_str().to_owned()))
    };
    match which.trim() {
        "Request-URI" => from_uri(f.msg.ruri()?),
        "To" => from_uri(m.to_header().ok()?.uri().as_str()),
        "From" => from_uri(m.from_header().ok()?.uri().as_str()),
        "Credentials" => {
            let h = [
                sip::HeaderName::ProxyAuthorization,
                sip::HeaderName::Authorization,
            ]
            .into_iter()
            .find_map(|n| m.auth_headers(n).find_map(Result::ok))?;
            let username = h.username()?.into_owned();
            let realm = h.realm().map(|r| r.into_owned()).unwrap_or_default();
            Some(match username.split_once('@') {
                Some((u, d)) => (u.to_owned(), d.to_owned()),
                None => (username, realm),
            })
        }
        other => from_uri(other),
    }
}

/// `db_is_user_in(uri, group)`: whether the user is in the group (table `grp`).
pub fn db_is_user_in(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(db) = GROUP_DB.get() else {
        return -1;
    };
    let Some((user, domain)) = user_of(f, &text_arg(args, 0)) else {
        return -1;
    };
    let s = f.script;
    let (table, user_col, domain_col, group_col) = (
        param(s, "group", "table", "grp"),
        param(s, "group", "user_column", "username"),
        param(s, "group", "domain_column", "domain"),
        param(s, "group", "group_column", "grp"),
    );
    let mut filter = vec![
        (user_col.as_str(), DbValue::Str(user)),
        (group_col.as_str(), DbValue::Str(text_arg(args, 1))),
    ];
    if s.modparam_int("group", "use_domain").is_none_or(|n| n != 0) {
        filter.push((domain_col.as_str(), DbValue::Str(domain)));
    }
    match db.query(&table, &[group_col.as_str()], &filter) {
        Ok(rows) if !rows.is_empty() => 1,
        Ok(_) => -1,
        Err(e) => {
            f.log.log(-1, &format!("group: {e}\n"));
            -1
        }
    }
}

/// `db_get_user_group(uri, $avp)`: the groups whose regular expression (table `re_grp`)
/// matches `sip:user@domain` — all of them with `multiple_gid` (the default), else the first.
pub fn db_get_user_group(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(db) = GROUP_DB.get() else {
        return -1;
    };
    let Some((user, domain)) = user_of(f, &text_arg(args, 0)) else {
        return -1;
    };
    let s = f.script;
    let (table, exp_col, gid_col) = (
        param(s, "group", "re_table", "re_grp"),
        param(s, "group", "re_exp_column", "reg_exp"),
        param(s, "group", "re_gid_column", "group_id"),
    );
    let multiple = s
        .modparam_int("group", "multiple_gid")
        .is_none_or(|n| n != 0);
    let rows = match db.query(&table, &[exp_col.as_str(), gid_col.as_str()], &[]) {
        Ok(rows) => rows,
        Err(e) => {
            f.log.log(-1, &format!("group: {e}\n"));
            return -1;
        }
    };
    let target = format!("sip:{user}@{domain}");
    let mut found = 0;
    // OpenSIPS tries the rows in reverse order of the result.
    for row in rows.iter().rev() {
        let (Some(exp), Some(gid)) = (
            row.first().and_then(DbValue::as_text),
            row.get(1).and_then(DbValue::as_int),
        ) else {
            continue;
        };
        let Ok(re) = regex::RegexBuilder::new(&exp)
            .case_insensitive(true)
            .build()
        else {
            f.log
                .log(-1, &format!("group: bad regular expression \"{exp}\"\n"));
            continue;
        };
        if re.is_match(&target) {
            f.set_output(1, Value::Int(gid));
            found += 1;
            if !multiple {
                break;
            }
        }
    }
    if found > 0 { 1 } else { -1 }
}

/// alias_db's flags: `d` matches the alias by user only, `r` finds the alias of a user.
#[derive(Debug, Default, Clone, Copy)]
struct AliasFlags {
    no_domain: bool,
    reverse: bool,
}

fn alias_flags(text: &str) -> AliasFlags {
    let mut fl = AliasFlags::default();
    for c in text.chars() {
        match c.to_ascii_lowercase() {
            'd' => fl.no_domain = true,
            'r' => fl.reverse = true,
            _ => {}
        }
    }
    fl
}

/// The URIs `uri` stands for in the alias table (one per row, in table order).
fn aliases(f: &mut FnCtx<'_>, table: &str, uri: &str, fl: AliasFlags) -> Option<Vec<String>> {
    let db = ALIAS_DB_CONN.get()?;
    let u = sip::Uri::parse(uri.trim()).ok()?;
    let (user, mut host) = (u.user()?.to_owned(), u.host()?.as_str().to_owned());
    let s = f.script;
    let prefix = param(s, "alias_db", "domain_prefix", "");
    if !prefix.is_empty()
        && host.len() > prefix.len()
        && host[..prefix.len()].eq_ignore_ascii_case(&prefix)
    {
        host = host[prefix.len()..].to_owned();
    }
    let cols = [
        param(s, "alias_db", "alias_user_column", "alias_username"),
        param(s, "alias_db", "alias_domain_column", "alias_domain"),
        param(s, "alias_db", "user_column", "username"),
        param(s, "alias_db", "domain_column", "domain"),
    ];
    let (keys, outs) = if fl.reverse {
        ((&cols[2], &cols[3]), (&cols[0], &cols[1]))
    } else {
        ((&cols[0], &cols[1]), (&cols[2], &cols[3]))
    };
    let mut filter = vec![(keys.0.as_str(), DbValue::Str(user))];
    if !fl.no_domain {
        filter.push((keys.1.as_str(), DbValue::Str(host)));
    }
    match db.query(table, &[outs.0.as_str(), outs.1.as_str()], &filter) {
        Ok(rows) => Some(
            rows.iter()
                .filter_map(|r| {
                    Some(format!(
                        "sip:{}@{}",
                        r.first()?.as_text()?,
                        r.get(1)?.as_text()?
                    ))
                })
                .collect(),
        ),
        Err(e) => {
            f.log.log(-1, &format!("alias_db: {e}\n"));
            None
        }
    }
}

/// `alias_db_lookup(table[, flags])`: the Request-URI becomes the user its alias stands for
/// (with `append_branches`, every further match a branch). -1 when it is no alias.
pub fn alias_db_lookup(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let fl = alias_flags(&text_arg(args, 1));
    let Some(found) = aliases(f, &text_arg(args, 0), &ruri, fl) else {
        return -1;
    };
    let Some(first) = found.first() else {
        return -1;
    };
    if !f.msg.set_ruri(first) {
        return -1;
    }
    if f.script
        .modparam_int("alias_db", "append_branches")
        .is_some_and(|n| n != 0)
    {
        for uri in &found[1..] {
            // OpenSIPS appends them with the lowest q.
            f.msg.branches.push(engine::ctx::MsgBranch {
                uri: uri.clone(),
                q: 0,
                ..Default::default()
            });
        }
    }
    1
}

/// `alias_db_find(table, uri, $out[, flags])`: what `uri` stands for, into `$out`.
pub fn alias_db_find(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let fl = alias_flags(&text_arg(args, 3));
    let uri = text_arg(args, 1);
    match aliases(f, &text_arg(args, 0), &uri, fl) {
        Some(found) if !found.is_empty() => {
            f.set_output(2, Value::from(found[0].clone()));
            1
        }
        _ => -1,
    }
}
