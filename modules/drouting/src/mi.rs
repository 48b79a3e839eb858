//! drouting's MI commands: `drouting:reload` (`dr_reload`), `drouting:gw_status`
//! (`dr_gw_status`) and `drouting:carrier_status` (`dr_carrier_status`), with OpenSIPS' JSON
//! keys and errors.

use ::mi::{Command, Mi, MiError, Params};
use serde_json::{Map, Value, json};

use crate::data::Gateway;
use crate::router;

fn state(g: &Gateway) -> &'static str {
    if g.disabled {
        "Disabled MI"
    } else if g.probing {
        "Probing"
    } else {
        "Active"
    }
}

/// "0"/"1" (or no/yes) as the MI gives a status.
fn status(p: &Params) -> Result<Option<bool>, MiError> {
    Ok(match p.str("status")? {
        None => None,
        Some(s) => Some(match s.trim() {
            "1" | "yes" | "on" => true,
            "0" | "no" | "off" => false,
            _ => return Err(MiError::invalid_params("status is 0 or 1")),
        }),
    })
}

fn no_data() -> MiError {
    MiError::new(404, "No Data available yet")
}

pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "drouting:reload",
        &["dr_reload"],
        &[&[], &["inherit_state"]],
        |p| {
            let r = router().ok_or_else(no_data)?;
            let inherit = !matches!(
                p.str("inherit_state")?.as_deref().map(str::trim),
                Some("0" | "n" | "no")
            );
            r.reload(inherit).map_err(|e| {
                log::error!("{e}");
                MiError::new(500, "Failed to reload").with_data(e)
            })?;
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "drouting:gw_status",
        &["dr_gw_status"],
        &[&[], &["gw_id"], &["gw_id", "status"]],
        |p| {
            let r = router().ok_or_else(no_data)?;
            let Some(id) = p.str("gw_id")? else {
                let list: Vec<Value> = r
                    .data()
                    .gateways
                    .iter()
                    .map(|g| {
                        let mut o = Map::new();
                        o.insert("ID".into(), json!(g.id));
                        o.insert("IP".into(), json!(g.address));
                        if let Some(a) = &g.attrs {
                            o.insert("ATTRS".into(), json!(a));
                        }
                        o.insert("State".into(), json!(state(g)));
                        Value::Object(o)
                    })
                    .collect();
                return Ok(json!({ "Gateways": list }));
            };
            match status(p)? {
                None => {
                    let data = r.data();
                    let g = data
                        .gateway(&id)
                        .ok_or_else(|| MiError::new(404, "GW ID not found"))?;
                    let mut o = Map::new();
                    if let Some(a) = &g.attrs {
                        o.insert("ATTRS".into(), json!(a));
                    }
                    o.insert("State".into(), json!(state(g)));
                    Ok(Value::Object(o))
                }
                Some(on) => {
                    let found = r.update(|d| match d.gateway_mut(&id) {
                        Some(g) => {
                            g.disabled = !on;
                            g.probing = false;
                            true
                        }
                        None => false,
                    });
                    if found {
                        Ok(json!("OK"))
                    } else {
                        Err(MiError::new(404, "GW ID not found"))
                    }
                }
            }
        },
    ));
    mi.add(Command::new(
        "drouting:carrier_status",
        &["dr_carrier_status"],
        &[&[], &["carrier_id"], &["carrier_id", "status"]],
        |p| {
            let r = router().ok_or_else(no_data)?;
            let enabled = |on: bool| if on { "yes" } else { "no " };
            let Some(id) = p.str("carrier_id")? else {
                let list: Vec<Value> = r
                    .data()
                    .carriers
                    .iter()
                    .map(|c| {
                        let mut o = Map::new();
                        o.insert("ID".into(), json!(c.id));
                        if let Some(a) = &c.attrs {
                            o.insert("ATTRS".into(), json!(a));
                        }
                        o.insert("Enabled".into(), json!(enabled(!c.disabled)));
                        Value::Object(o)
                    })
                    .collect();
                return Ok(json!({ "Carriers": list }));
            };
            match status(p)? {
                None => {
                    let data = r.data();
                    let c = data
                        .carriers
                        .iter()
                        .find(|c| c.id == id)
                        .ok_or_else(|| MiError::new(404, "Carrier ID not found"))?;
                    let mut o = Map::new();
                    if let Some(a) = &c.attrs {
                        o.insert("ATTRS".into(), json!(a));
                    }
                    o.insert("Enabled".into(), json!(enabled(!c.disabled)));
                    Ok(Value::Object(o))
                }
                Some(on) => {
                    let found = r.update(|d| match d.carrier_mut(&id) {
                        Some(c) => {
                            c.disabled = !on;
                            true
                        }
                        None => false,
                    });
                    if found {
                        Ok(json!("OK"))
                    } else {
                        Err(MiError::new(404, "Carrier ID not found"))
                    }
                }
            }
        },
    ));
}
