//! usrloc's MI commands (OpenSIPS 4.0 names and their `ul_*` aliases): `usrloc:dump`,
//! `usrloc:show_contact`, `usrloc:rm`, `usrloc:rm_contact`, `usrloc:add`, `usrloc:flush`,
//! `usrloc:sync`, `usrloc:cluster_sync`, with OpenSIPS' JSON keys and errors.

use std::sync::Arc;

use ::mi::{Command, Mi, MiError, Params};
use engine::Script;
use serde_json::{Map, Value, json};

use crate::save::{parse_q, q_text};
use crate::usrloc::{self, Contact};

/// What the commands need of the running script.
pub type Current = Arc<dyn Fn() -> Arc<Script> + Send + Sync>;

/// One contact as `ul_dump` shows it.
fn contact_json(c: &Contact, now: u64, script: &Script) -> Value {
    let mut o = Map::new();
    o.insert("Contact".into(), json!(c.uri));
    o.insert("ContactID".into(), json!(c.id.to_string()));
    let expires = match c.expires {
        None => json!("permanent"),
        Some(at) if now > at => json!("expired"),
        Some(at) => json!(at - now),
    };
    o.insert("Expires".into(), expires);
    o.insert(
        "Q".into(),
        json!(if c.q < 0 { String::new() } else { q_text(c.q) }),
    );
    o.insert("Callid".into(), json!(c.callid));
    o.insert("Cseq".into(), json!(c.cseq));
    if !c.user_agent.is_empty() {
        o.insert("User-agent".into(), json!(c.user_agent));
    }
    if let Some(r) = &c.received {
        o.insert("Received".into(), json!(r));
    }
    if let Some(p) = &c.path {
        o.insert("Path".into(), json!(p));
    }
    o.insert("State".into(), json!("CS_NEW"));
    o.insert("Flags".into(), json!(c.flags));
    let names: Vec<&str> = (0..64)
        .filter(|b| c.cflags & (1u64 << b) != 0)
        .filter_map(|b| script.flag_name(b))
        .collect();
    o.insert("Cflags".into(), json!(names.join(" ")));
    if let Some(s) = &c.socket {
        o.insert("Socket".into(), json!(s));
    }
    o.insert("Methods".into(), json!(c.methods));
    if let Some(i) = &c.instance {
        o.insert("SIP_instance".into(), json!(i));
    }
    Value::Object(o)
}

fn aor_json(aor: &str, contacts: &[Contact], now: u64, script: &Script) -> Value {
    json!({
        "AOR": aor,
        "Contacts": contacts.iter().map(|c| contact_json(c, now, script)).collect::<Vec<_>>(),
    })
}

fn need(p: &Params, name: &str) -> Result<String, MiError> {
    p.str(name)?
        .ok_or_else(|| MiError::invalid_params(&format!("missing parameter '{name}'")))
}

/// The AOR as the MI takes it: with `use_domain` it must name a domain; without, the domain
/// is dropped.
fn fix_aor(aor: &str, script: &Script) -> Result<String, MiError> {
    let use_domain = crate::Settings::of(script).use_domain;
    match (use_domain, aor.split_once('@')) {
        (true, None) => Err(MiError::new(400, "Domain missing in AOR")),
        (false, Some((user, _))) => Ok(user.to_owned()),
        _ => Ok(aor.to_owned()),
    }
}

fn table_missing() -> MiError {
    MiError::new(404, "Table not found")
}

/// Adds the usrloc commands.
pub fn commands(mi: &mut Mi, current: Current) {
    let cur = Arc::clone(&current);
    mi.add(Command::new(
        "usrloc:dump",
        &["ul_dump"],
        &[&[], &["brief"]],
        move |p| {
            let brief = p.int("brief")?.is_some_and(|b| b != 0);
            let script = cur();
            // usrloc `hash_size` is a power of two (default 2^9).
            let bits = script.modparam_int("usrloc", "hash_size").unwrap_or(9);
            let hash_size = 1u64 << bits.clamp(1, 16);
            let now = usrloc::now();
            let tables = usrloc::tables();
            let domains: Vec<Value> = tables
                .all()
                .into_iter()
                .map(|(name, t)| {
                    let aors: Vec<Value> = t
                        .all_aors()
                        .into_iter()
                        .map(|(aor, list)| {
                            if brief {
                                json!({ "AOR": aor })
                            } else {
                                aor_json(aor, list, now, &script)
                            }
                        })
                        .collect();
                    json!({"name": name, "hash_size": hash_size, "AORs": aors})
                })
                .collect();
            Ok(json!({ "Domains": domains }))
        },
    ));
    let cur = Arc::clone(&current);
    mi.add(Command::new(
        "usrloc:show_contact",
        &["ul_show_contact"],
        &[&["table_name", "aor"]],
        move |p| {
            let script = cur();
            let aor = fix_aor(&need(p, "aor")?, &script)?;
            let table = need(p, "table_name")?;
            let tables = usrloc::tables();
            let t = tables.get(&table).ok_or_else(table_missing)?;
            let list = t
                .all_contacts(&aor)
                .ok_or_else(|| MiError::new(404, "AOR not found"))?;
            Ok(aor_json(&aor, list, usrloc::now(), &script))
        },
    ));
    let cur = Arc::clone(&current);
    mi.add(Command::new(
        "usrloc:rm",
        &["ul_rm"],
        &[&["table_name", "aor"]],
        move |p| {
            let aor = fix_aor(&need(p, "aor")?, &cur())?;
            let table = need(p, "table_name")?;
            let mut tables = usrloc::tables();
            let t = tables.get_mut(&table).ok_or_else(table_missing)?;
            t.remove_aor(&aor);
            Ok(json!("OK"))
        },
    ));
    let cur = Arc::clone(&current);
    mi.add(Command::new(
        "usrloc:rm_contact",
        &["ul_rm_contact"],
        &[&["table_name", "aor", "contact"]],
        move |p| {
            let aor = fix_aor(&need(p, "aor")?, &cur())?;
            let (table, contact) = (need(p, "table_name")?, need(p, "contact")?);
            let mut tables = usrloc::tables();
            let t = tables.get_mut(&table).ok_or_else(table_missing)?;
            let list = t
                .all_contacts(&aor)
                .ok_or_else(|| MiError::new(404, "AOR not found"))?;
            let Some(found) = list
                .iter()
                .find(|c| crate::save::same_uri(&c.uri, &contact))
                .cloned()
            else {
                return Err(MiError::new(404, "Contact not found"));
            };
            t.remove_contact(&aor, &found.uri, Some(&found.callid));
            Ok(json!("OK"))
        },
    ));
    let cur = Arc::clone(&current);
    mi.add(Command::new(
        "usrloc:add",
        &["ul_add"],
        &[&[
            "table_name",
            "aor",
            "contact",
            "expires",
            "q",
            "flags",
            "cflags",
            "methods",
        ]],
        move |p| {
            let script = cur();
            let aor = fix_aor(&need(p, "aor")?, &script)?;
            let (table, uri) = (need(p, "table_name")?, need(p, "contact")?);
            let int = |name: &str| -> Result<i64, MiError> {
                p.int(name)?
                    .ok_or_else(|| MiError::invalid_params(&format!("missing parameter '{name}'")))
            };
            let expires = int("expires")?;
            let q =
                parse_q(&need(p, "q")?).ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let (flags, cflags, methods) = (int("flags")?, int("cflags")?, int("methods")?);
            let now = usrloc::now();
            let mut tables = usrloc::tables();
            let t = tables.get_mut(&table).ok_or_else(table_missing)?;
            let existing = t.all_contacts(&aor).and_then(|l| {
                l.iter()
                    .find(|c| crate::save::same_uri(&c.uri, &uri))
                    .cloned()
            });
            let contact = Contact {
                uri: existing.as_ref().map_or(uri, |c| c.uri.clone()),
                expires: (expires > 0).then(|| now + expires as u64),
                q,
                callid: "dfjrewr12386fd6-343@opensips.mi".into(),
                cseq: existing.as_ref().map_or(1, |c| c.cseq),
                cflags: cflags as u64,
                flags: flags as u32,
                user_agent: "OpenSIPS MI Server".into(),
                received: None,
                path: None,
                socket: None,
                methods: methods as u32,
                instance: None,
                reg_id: 0,
                last_modified: 0,
                id: existing.as_ref().map_or(0, |c| c.id),
            };
            t.upsert(&aor, contact, false, false);
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new("usrloc:flush", &["ul_flush"], &[&[]], |_| {
        usrloc::tables().sweep_all(usrloc::now());
        Ok(json!("OK"))
    }));
    mi.add(Command::new(
        "usrloc:sync",
        &["ul_sync"],
        &[&["table_name"], &["table_name", "aor"]],
        |p| {
            let table = need(p, "table_name")?;
            if usrloc::tables().get(&table).is_none() {
                return Err(table_missing());
            }
            // With SQL persistence, what waits to be written goes now.
            crate::persist::flush();
            Err(MiError::new(200, "Contacts already synced"))
        },
    ));
    mi.add(Command::new(
        "usrloc:cluster_sync",
        &["ul_cluster_sync"],
        &[&[]],
        |_| match crate::cluster::request_sync() {
            None => Err(MiError::new(400, "Clustering not enabled")),
            Some(Err(_)) => Err(MiError::new(400, "Failed to send sync request")),
            Some(Ok(())) => Ok(json!("OK")),
        },
    ));
}
