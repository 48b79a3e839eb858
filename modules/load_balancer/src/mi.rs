//! The module's MI commands: `load_balancer:list` (`lb_list`), `load_balancer:reload`
//! (`lb_reload`), `load_balancer:status` (`lb_status`) and `load_balancer:resize`
//! (`lb_resize`).

use ::mi::{Command, Mi, MiError};
use serde_json::json;

use crate::dests::{load, store};

fn not_loaded() -> MiError {
    MiError::new(500, "load_balancer is not running")
}

pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "load_balancer:list",
        &["lb_list"],
        &[&[]],
        |_| {
            let store = store().ok_or_else(not_loaded)?;
            let dests: Vec<_> = store
                .read()
                .iter()
                .map(|d| {
                    let resources: Vec<_> = d
                    .resources
                    .iter()
                    .map(|(name, max)| json!({ "name": name, "max": max, "load": load(d, name) }))
                    .collect();
                    json!({
                        "id": d.id,
                        "group": d.group,
                        "uri": d.uri,
                        "enabled": if d.enabled { "yes" } else { "no" },
                        "auto-re": if d.probe_mode > 0 { "on" } else { "off" },
                        "Resources": resources,
                    })
                })
                .collect();
            Ok(json!({ "Destinations": dests }))
        },
    ));
    mi.add(Command::new(
        "load_balancer:reload",
        &["lb_reload"],
        &[&[]],
        |_| {
            let store = store().ok_or_else(not_loaded)?;
            store
                .reload()
                .map_err(|e| MiError::new(500, "Failed to reload").with_data(e))?;
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "load_balancer:status",
        &["lb_status"],
        &[&["destination_id"], &["destination_id", "new_status"]],
        |p| {
            let store = store().ok_or_else(not_loaded)?;
            let id = p
                .int("destination_id")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let status = p.int("new_status")?;
            let mut dests = store.write();
            let d = dests
                .iter_mut()
                .find(|d| d.id == id)
                .ok_or_else(|| MiError::new(404, "Destination ID not found"))?;
            match status {
                None => Ok(json!({ "enable": if d.enabled { "yes" } else { "no" } })),
                Some(0) => {
                    d.enabled = false;
                    Ok(json!("OK"))
                }
                Some(1) => {
                    d.enabled = true;
                    Ok(json!("OK"))
                }
                Some(_) => Err(MiError::new(400, "Bad parameter value")),
            }
        },
    ));
    mi.add(Command::new(
        "load_balancer:resize",
        &["lb_resize"],
        &[&["destination_id", "res_name", "new_capacity"]],
        |p| {
            let store = store().ok_or_else(not_loaded)?;
            let id = p
                .int("destination_id")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let res = p
                .str("res_name")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let cap = p
                .int("new_capacity")?
                .filter(|c| *c >= 0)
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let mut dests = store.write();
            let d = dests
                .iter_mut()
                .find(|d| d.id == id)
                .ok_or_else(|| MiError::new(404, "Destination ID not found"))?;
            let slot = d
                .resources
                .iter_mut()
                .find(|(r, _)| *r == res)
                .ok_or_else(|| MiError::new(404, "Resource not found"))?;
            slot.1 = cap;
            Ok(json!("OK"))
        },
    ));
}
