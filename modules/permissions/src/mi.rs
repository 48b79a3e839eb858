//! permissions' MI commands: `address_reload`, `address_dump` (single addresses) and
//! `subnet_dump` (the rest), with OpenSIPS' JSON keys and errors.

use ::mi::{Command, Mi, MiError};
use serde_json::{Map, Value, json};

use crate::{Address, Partition, partition, partitions};

fn row_json(a: &Address) -> Value {
    let mut o = Map::new();
    o.insert("grp".into(), json!(a.group));
    o.insert("ip".into(), json!(a.ip.to_string()));
    o.insert("mask".into(), json!(a.mask.to_string()));
    o.insert("port".into(), json!(a.port));
    o.insert("proto".into(), json!(a.proto.as_deref().unwrap_or("any")));
    o.insert("pattern".into(), json!(a.pattern.as_deref().unwrap_or("")));
    o.insert(
        "context_info".into(),
        json!(a.info.as_deref().unwrap_or("")),
    );
    Value::Object(o)
}

fn dump(p: &Partition, hosts: bool) -> Vec<Value> {
    p.rows()
        .iter()
        .filter(|a| a.is_host() == hosts)
        .map(row_json)
        .collect()
}

fn dump_command(name: &str, hosts: bool) -> Command {
    Command::new(
        &format!("permissions:{name}"),
        &[],
        &[&[], &["partition"]],
        move |p| match p.str("partition")? {
            Some(name) => {
                let part =
                    partition(Some(&name)).ok_or_else(|| MiError::new(404, "No such partition"))?;
                Ok(json!({"part": part.name, "Destinations": dump(&part, hosts)}))
            }
            None => {
                let parts: Vec<Value> = partitions()
                    .iter()
                    .map(|x| json!({"name": x.name, "Destinations": dump(x, hosts)}))
                    .collect();
                Ok(json!({ "Partitions": parts }))
            }
        },
    )
}

/// Adds the commands (when the script loads permissions).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "permissions:address_reload",
        &[],
        &[&[], &["partition"]],
        |p| {
            let list = match p.str("partition")? {
                Some(name) => vec![
                    partition(Some(&name))
                        .ok_or_else(|| MiError::new(400, "Trusted table reload failed"))?,
                ],
                None => partitions(),
            };
            for part in list {
                part.reload().map_err(|e| {
                    log::error!("{e}");
                    MiError::new(400, format!("failed to reload partition  {}!", part.name))
                        .with_data(e)
                })?;
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(dump_command("address_dump", true));
    mi.add(dump_command("subnet_dump", false));
}
