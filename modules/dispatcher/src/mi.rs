//! The dispatcher's MI commands with OpenSIPS 4.0 names, legacy aliases, JSON and errors:
//! `dispatcher:list`, `dispatcher:set_state`, `dispatcher:reload`,
//! `dispatcher:push_script_attrs`.

use std::sync::Arc;

use ::mi::{Command, Mi, MiError, Params};
use engine::Script;
use serde_json::{Map, Value, json};

use crate::partition::{NewState, Partition, Settings, partition, partitions};

/// The running script (the settings may change with `core:reload_routes`).
pub type Current = Arc<dyn Fn() -> Arc<Script> + Send + Sync>;

fn unknown_partition() -> MiError {
    MiError::new(500, "ERROR Unknown partition")
}

/// Whether an MI value reads as yes (`1`, `y`, `yes`, `true`, `on`); `default` when absent.
fn bool_like(p: &Params, name: &str, default: bool) -> Result<bool, MiError> {
    Ok(match p.str(name)? {
        None => default,
        Some(v) => matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "y" | "yes" | "true" | "on"
        ),
    })
}

fn partition_json(p: &Partition, full: bool) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(p.name));
    let sets = p.sets();
    if !sets.sets.is_empty() {
        let list: Vec<Value> = sets
            .sets
            .iter()
            .map(|s| {
                let dests: Vec<Value> = s
                    .dests
                    .iter()
                    .map(|d| {
                        let mut o = Map::new();
                        o.insert("URI".into(), json!(d.uri));
                        o.insert("state".into(), json!(d.state_name()));
                        o.insert("first_hit_counter".into(), json!(d.chosen));
                        if let Some(s) = &d.socket {
                            o.insert("socket".into(), json!(s));
                        }
                        if let Some(a) = &d.attrs {
                            o.insert("attr".into(), json!(a));
                        }
                        if let Some(a) = &d.script_attrs {
                            o.insert("script_attr".into(), json!(a));
                        }
                        if full {
                            o.insert("weight".into(), json!(d.weight));
                            o.insert("priority".into(), json!(d.priority));
                            if let Some(desc) = &d.description {
                                o.insert("description".into(), json!(desc));
                            }
                        }
                        let addrs: Vec<String> = d
                            .addrs
                            .iter()
                            .map(|a| format!("{}:{}", a.ip(), a.port()))
                            .collect();
                        o.insert("resolved_addresses".into(), json!(addrs));
                        Value::Object(o)
                    })
                    .collect();
                json!({"id": s.id, "Destinations": dests})
            })
            .collect();
        o.insert("SETS".into(), Value::Array(list));
    }
    Value::Object(o)
}

/// Adds the commands (only when the script loads the dispatcher, as in OpenSIPS).
pub fn commands(mi: &mut Mi, current: Current) {
    mi.add(Command::new(
        "dispatcher:list",
        &["ds_list"],
        &[&[], &["partition"], &["full"], &["full", "partition"]],
        |p| {
            let full = bool_like(p, "full", false)?;
            let list: Vec<Arc<Partition>> = match p.str("partition")? {
                Some(name) => vec![partition(Some(&name)).ok_or_else(unknown_partition)?],
                None => partitions(),
            };
            let parts: Vec<Value> = list.iter().map(|x| partition_json(x, full)).collect();
            Ok(json!({ "PARTITIONS": parts }))
        },
    ));
    let now = Arc::clone(&current);
    mi.add(Command::new(
        "dispatcher:set_state",
        &["ds_set_state"],
        &[&["state", "group", "address"]],
        move |p| {
            let need = |n: &str| -> Result<String, MiError> {
                p.str(n)?
                    .ok_or_else(|| MiError::invalid_params(&format!("missing parameter '{n}'")))
            };
            let to = NewState::parse(&need("state")?)
                .ok_or_else(|| MiError::new(500, "Bad state value"))?;
            let group = need("group")?;
            let (part, id) = match group.rsplit_once(':') {
                Some((part, id)) => (Some(part.trim().to_owned()), id),
                None => (None, group.as_str()),
            };
            let part = partition(part.as_deref())
                .ok_or_else(|| MiError::new(404, "ERROR Unknown partition"))?;
            let id: i64 = id
                .trim()
                .parse()
                .map_err(|_| MiError::new(500, "bad group value"))?;
            let address = need("address")?;
            if !part.set_state(&Settings::of(&now()), id, address.trim(), to, "MI command") {
                return Err(MiError::new(404, "destination not found"));
            }
            Ok(json!("OK"))
        },
    ));
    let now = Arc::clone(&current);
    mi.add(Command::new(
        "dispatcher:reload",
        &["ds_reload"],
        &[
            &[],
            &["inherit_state"],
            &["partition"],
            &["partition", "inherit_state"],
        ],
        move |p| {
            let inherit = bool_like(p, "inherit_state", true)?;
            let list = match p.str("partition")? {
                Some(name) => vec![partition(Some(&name)).ok_or_else(unknown_partition)?],
                None => partitions(),
            };
            let settings = Settings::of(&now());
            for part in list {
                part.reload(&settings, inherit).map_err(|e| {
                    log::error!("{e}");
                    MiError::new(500, "ERROR Reloading data").with_data(e)
                })?;
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "dispatcher:push_script_attrs",
        &["ds_push_script_attrs"],
        &[
            &["attrs", "ip", "port", "set"],
            &["attrs", "ip", "port", "set", "partition"],
        ],
        |p| {
            let bad = |n: &str| MiError::invalid_params(&format!("bad or missing parameter '{n}'"));
            let attrs = p.str("attrs")?.ok_or_else(|| bad("attrs"))?;
            let ip = p
                .str("ip")?
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| bad("ip"))?;
            let port = p
                .int("port")?
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad("port"))?;
            let set = p.int("set")?.ok_or_else(|| bad("set"))?;
            let part = partition(p.str("partition")?.as_deref()).ok_or_else(unknown_partition)?;
            if crate::script::push_script_attrs(&part, &attrs, ip, port, set) == 0 {
                return Err(MiError::new(404, "destination not found"));
            }
            Ok(json!("OK"))
        },
    ));
}
