//! uac_registrant's MI commands (OpenSIPS 4.0 names, `reg_*` aliases): `list` (all, or one by
//! aor, contact and registrar), `reload` (the table read again; registered records keep their
//! registration), `enable`, `disable` (a registered record unregisters), `force_register`.

use ::mi::{Command, Mi, MiError, Params};
use serde_json::{Map, Value as Json, json};

use crate::record::{Record, State};

fn ctime(secs: i64) -> String {
    engine::pv::time::strftime(secs, "%a %b %e %H:%M:%S %Y")
}

fn record_json(r: &Record) -> Json {
    let mut o = Map::new();
    o.insert("AOR".into(), json!(r.cfg.aor));
    o.insert("expires".into(), json!(r.expires));
    o.insert("state".into(), json!(r.state.name()));
    o.insert(
        "enabled".into(),
        json!(if r.cfg.enabled { "yes" } else { "no" }),
    );
    o.insert("last_register_sent".into(), json!(ctime(r.last_sent)));
    o.insert("registration_t_out".into(), json!(ctime(r.timeout)));
    o.insert("registrar".into(), json!(r.cfg.registrar));
    o.insert("binding".into(), json!(r.cfg.binding));
    if !r.cfg.binding_params.is_empty() {
        o.insert("binding_params".into(), json!(r.cfg.binding_params));
    }
    if let Some(t) = &r.cfg.third_party {
        o.insert("third_party_registrant".into(), json!(t));
    }
    if let Some(s) = &r.cfg.socket {
        o.insert("socket".into(), json!(s));
    }
    if let Some(p) = &r.cfg.proxy {
        o.insert("proxy".into(), json!(p));
    }
    Json::Object(o)
}

/// The (aor, contact, registrar) a command names.
fn key(p: &Params) -> Result<(String, String, String), MiError> {
    let get = |n: &str| -> Result<String, MiError> {
        p.str(n)?
            .ok_or_else(|| MiError::new(-32602, "Invalid params"))
    };
    Ok((get("aor")?, get("contact")?, get("registrar")?))
}

fn no_such() -> MiError {
    MiError::new(404, "No such registrant")
}

fn module() -> Result<&'static crate::Registrant, MiError> {
    crate::get().ok_or_else(|| MiError::new(500, "Internal error"))
}

/// Registers the commands; `script` gives a reload the sockets rows may name.
pub fn commands(
    mi: &mut Mi,
    script: std::sync::Arc<dyn Fn() -> std::sync::Arc<engine::Script> + Send + Sync>,
) {
    mi.add(Command::new(
        "uac_registrant:list",
        &["reg_list"],
        &[&[], &["aor", "contact", "registrar"]],
        |p| {
            let r = module()?;
            let records = r.records();
            if p.get("aor").is_some() {
                let k = key(p)?;
                let rec = records
                    .iter()
                    .find(|x| crate::record_key(x) == k)
                    .ok_or_else(no_such)?;
                return Ok(json!({ "Registrant": record_json(rec) }));
            }
            let list: Vec<Json> = records.iter().map(record_json).collect();
            Ok(json!({ "Records": list }))
        },
    ));
    mi.add(Command::new(
        "uac_registrant:reload",
        &["reg_reload"],
        &[&[]],
        move |_| {
            let r = module()?;
            let fresh = r
                .load(&script())
                .map_err(|e| MiError::new(500, "Failed to reload").with_data(e))?;
            let mut records = r.records();
            let mut next = Vec::with_capacity(fresh.len());
            for mut rec in fresh {
                let key = crate::record_key(&rec);
                if let Some(old) = records
                    .iter()
                    .find(|o| crate::record_key(o) == key && o.state == State::Registered)
                {
                    rec.state = old.state;
                    rec.call_id = old.call_id.clone();
                    rec.from_tag = old.from_tag.clone();
                    rec.cseq = old.cseq;
                    rec.last_sent = old.last_sent;
                    rec.timeout = old.timeout;
                    rec.expires = old.expires;
                }
                next.push(rec);
            }
            *records = next;
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "uac_registrant:enable",
        &["reg_enable"],
        &[&["aor", "contact", "registrar"]],
        |p| change(p, true),
    ));
    mi.add(Command::new(
        "uac_registrant:disable",
        &["reg_disable"],
        &[&["aor", "contact", "registrar"]],
        |p| change(p, false),
    ));
    mi.add(Command::new(
        "uac_registrant:force_register",
        &["reg_force_register"],
        &[&["aor", "contact", "registrar"]],
        |p| {
            let r = module()?;
            let k = key(p)?;
            let mut records = r.records();
            let rec = records
                .iter_mut()
                .find(|x| crate::record_key(x) == k)
                .ok_or_else(no_such)?;
            if rec.cfg.enabled {
                rec.timeout = 0;
            }
            Ok(json!("OK"))
        },
    ));
}

/// `enable` / `disable`: the state in memory and in the table; a REGISTER or unREGISTER
/// goes out at once when that changes anything.
fn change(p: &Params, enable: bool) -> Result<Json, MiError> {
    let r = module()?;
    let k = key(p)?;
    let send = {
        let mut records = r.records();
        let rec = records
            .iter_mut()
            .find(|x| crate::record_key(x) == k)
            .ok_or_else(no_such)?;
        if rec.cfg.enabled == enable {
            None
        } else if enable {
            rec.cfg.enabled = true;
            (rec.state == State::NotRegistered)
                .then(|| crate::register_now(r, rec))
                .flatten()
        } else {
            let ctx = crate::unregister_now(rec);
            rec.cfg.enabled = false;
            ctx
        }
    };
    crate::raise_pending();
    r.store_state((&k.0, &k.1, &k.2), enable);
    if let Some(ctx) = send {
        crate::send_now(r, k, ctx);
    }
    Ok(json!("OK"))
}
