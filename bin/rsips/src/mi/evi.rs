//! The Event Interface's MI commands: `evi:list`, `evi:subscribe`, `evi:subscribers`,
//! `evi:raise` and event_flatstore's rotate (the subscribers themselves are in
//! `engine::evi`).

use std::sync::Arc;

use engine::Script;
use mi::{Command, Mi, MiError};
use serde_json::{Value, json};

use super::ok;

/// The events the core publishes, in OpenSIPS' order (their ids are these positions).
const CORE_EVENTS: &[&str] = &[
    "E_CORE_THRESHOLD",
    "E_CORE_SHM_THRESHOLD",
    "E_CORE_PKG_THRESHOLD",
    "E_CORE_PROC_AUTO_SCALE",
    "E_CORE_TCP_DISCONNECT",
    engine::profiling::E_SCRIPT,
    engine::profiling::E_PROC,
];

/// The events the modules publish, when the script loads them.
const MODULE_EVENTS: &[(&str, &str)] = &[
    ("acc", acc::evi::EVENT),
    ("acc", acc::evi::CDR),
    ("acc", acc::evi::MISSED),
    ("dispatcher", "E_DISPATCHER_STATUS"),
    ("dialog", "E_DLG_STATE_CHANGED"),
    ("fraud_detection", "E_FRD_WARNING"),
    ("fraud_detection", "E_FRD_CRITICAL"),
    ("usrloc", "E_UL_AOR_INSERT"),
    ("usrloc", "E_UL_AOR_DELETE"),
    ("usrloc", "E_UL_CONTACT_INSERT"),
    ("usrloc", "E_UL_CONTACT_UPDATE"),
    ("usrloc", "E_UL_CONTACT_DELETE"),
    ("pike", "E_PIKE_BLOCKED"),
    ("uac_registrant", "E_REGISTRANT_REGISTERING"),
    ("uac_registrant", "E_REGISTRANT_AUTHENTICATING"),
    ("uac_registrant", "E_REGISTRANT_REGISTERED"),
    ("uac_registrant", "E_REGISTRANT_REGISTER_TIMEOUT"),
    ("uac_registrant", "E_REGISTRANT_INTERNAL_ERROR"),
    ("uac_registrant", "E_REGISTRANT_WRONG_CREDENTIALS"),
    ("uac_registrant", "E_REGISTRANT_REGISTRAR_ERROR"),
    ("uac_registrant", "E_REGISTRANT_UNREGISTERING"),
    ("uac_registrant", "E_REGISTRANT_AUTHENTICATING_UNREGISTER"),
];

/// The events known: the core's, the loaded modules', those only an `event_route` names, those
/// the script raises or subscribes to by a literal name (published at load, as OpenSIPS'
/// fixups do), then those published at run time (`subscribe_event`, `raise_event` of a name
/// made at run time).
fn events(script: &Script) -> Vec<String> {
    let mut v: Vec<String> = CORE_EVENTS.iter().map(|e| (*e).to_owned()).collect();
    v.extend(
        MODULE_EVENTS
            .iter()
            .filter(|(m, _)| script.loads(m))
            .map(|(_, e)| (*e).to_owned()),
    );
    for name in script
        .event_route_names()
        .into_iter()
        .chain(script.literal_event_names().iter().cloned())
        .chain(engine::evi::published())
    {
        if !v.contains(&name) {
            v.push(name);
        }
    }
    v
}

/// An event's subscribers as OpenSIPS lists them, newest first: the external ones, then its
/// `event_route` (socket `route:E_NAME`, subscribed at start).
fn subscribers_of(script: &Script, event: &str) -> Vec<Value> {
    let mut subs: Vec<Value> = engine::evi::subscribers(event)
        .into_iter()
        .map(|s| match s.expire {
            None => json!({"socket": s.socket, "expire": "never"}),
            Some(e) => json!({
                "socket": s.socket,
                "expire": e,
                "ttl": s.ttl.map_or_else(|| json!("expired"), |t| json!(t)),
            }),
        })
        .collect();
    if script.event_route_names().iter().any(|r| r == event) {
        subs.push(json!({"socket": format!("route:{event}"), "expire": "never"}));
    }
    subs
}

/// `evi:list` (`events_list`), `evi:subscribe` (`event_subscribe`), `evi:subscribers`
/// (`subscribers_list`) and `evi:raise` (`raise_event`); with event_flatstore,
/// `event_flatstore:rotate` (`evi_flat_rotate`).
pub fn evi_commands(mi: &mut Mi, scripts: Arc<crate::server::Scripts>) {
    let s = Arc::clone(&scripts);
    mi.add(Command::new(
        "evi:list",
        &["events_list"],
        &[&[]],
        move |_| {
            let list: Vec<Value> = events(&s.load())
                .into_iter()
                .enumerate()
                .map(|(id, name)| json!({"name": name, "id": id}))
                .collect();
            Ok(json!({ "Events": list }))
        },
    ));
    let s = Arc::clone(&scripts);
    mi.add(Command::new(
        "evi:subscribe",
        &["event_subscribe"],
        &[&["event", "socket"], &["event", "socket", "expire"]],
        move |p| {
            let (Some(event), Some(socket)) = (p.str("event")?, p.str("socket")?) else {
                return Err(MiError::invalid_params("Too few or too many parameters"));
            };
            if event.is_empty() || socket.is_empty() {
                return Err(MiError::new(-32602, "Invalid params"));
            }
            let expire = p.int("expire")?.unwrap_or(3600);
            if expire < 0 {
                return Err(
                    MiError::new(-32602, "Invalid params").with_data("Negative expire value")
                );
            }
            if !events(&s.load()).contains(&event) {
                crate::logging::core(-1, &format!("evi:subscribe: invalid event name <{event}>"));
                return Err(MiError::new(400, "Bad parameter value"));
            }
            // Through MI an expire of 0 is an unsubscribe: the subscriber is gone a second on.
            match engine::evi::subscribe(&event, &socket, Some(expire.unsigned_abs())) {
                Ok(()) => ok(),
                Err(e) => {
                    crate::logging::core(-1, &format!("evi:subscribe: {e}"));
                    Err(MiError::new(400, "Bad parameter value"))
                }
            }
        },
    ));
    let s = Arc::clone(&scripts);
    mi.add(Command::new(
        "evi:subscribers",
        &["subscribers_list"],
        &[&[], &["event"], &["event", "socket"]],
        move |p| {
            let script = s.load();
            let known = events(&script);
            let id = |name: &str| known.iter().position(|e| e == name).unwrap_or(0);
            match p.str("event")? {
                None => {
                    let list: Vec<Value> = known
                        .iter()
                        .filter_map(|name| {
                            let subs = subscribers_of(&script, name);
                            (!subs.is_empty())
                                .then(|| json!({"name": name, "id": id(name), "Subscribers": subs}))
                        })
                        .collect();
                    Ok(json!({ "Events": list }))
                }
                Some(ev) => {
                    if !known.contains(&ev) {
                        return Err(MiError::new(404, "Event not published"));
                    }
                    let subs = subscribers_of(&script, &ev);
                    match p.str("socket")? {
                        None if subs.is_empty() => Ok(json!({"Event": {}})),
                        None => {
                            Ok(json!({"Event": {"name": ev, "id": id(&ev), "Subscribers": subs}}))
                        }
                        Some(wanted) => {
                            let found = subs
                                .into_iter()
                                .find(|s| s["socket"].as_str() == Some(wanted.as_str()))
                                .ok_or_else(|| MiError::new(404, "Subscriber does not exist"))?;
                            Ok(json!({"Event": {"name": ev, "id": id(&ev), "Subscriber": found}}))
                        }
                    }
                }
            }
        },
    ));
    if scripts.load().loads("event_flatstore") {
        mi.add(Command::new(
            "event_flatstore:rotate",
            &["evi_flat_rotate"],
            &[&["path_to_file"]],
            |p| {
                let Some(path) = p.str("path_to_file")? else {
                    return Err(MiError::invalid_params("Too few or too many parameters"));
                };
                if engine::evi::rotate(&path) {
                    ok()
                } else {
                    Err(MiError::new(400, "File not found"))
                }
            },
        ));
    }
    mi.add(Command::new(
        "evi:raise",
        &["raise_event"],
        &[&["event"], &["event", "params"]],
        move |p| {
            let script = scripts.load();
            let Some(event) = p.str("event")? else {
                return Err(MiError::new(400, "Bad param"));
            };
            if !events(&script).contains(&event) {
                return Err(MiError::new(404, "Event not registered"));
            }
            if !script.event_route_names().contains(&event) && !engine::evi::has_subscribers(&event) {
                return Err(MiError::new(480, "Temporarily Unavailable"));
            }
            // An array gives unnamed parameters; a JSON object (as a string) named ones.
            let params: Vec<(Option<String>, engine::Value)> = match p.get("params") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok((None, engine::Value::from(s.clone()))),
                        Value::Number(n) => Ok((None, engine::Value::from(n.to_string()))),
                        _ => Err(MiError::new(400, "Bad Params")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(map)) => map
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::Number(n) => n
                                    .as_i64()
                                    .map_or_else(|| engine::Value::from(n.to_string()), engine::Value::Int),
                                Value::String(s) => engine::Value::from(s),
                                other => engine::Value::from(other.to_string()),
                            };
                            (Some(k), v)
                        })
                        .collect(),
                    _ => return Err(MiError::new(400, "Bad Params")),
                },
                Some(_) => return Err(MiError::new(400, "Bad Params")),
            };
            let mut worker = engine::Worker::default();
            match script.raise_core_event(&event, &mut worker, &mut crate::logging::ScriptLog, params) {
                Some(Ok(outs)) => {
                    for out in outs {
                        match tm::global() {
                            Some(tm) => tm.send_out(out),
                            None => crate::logging::core(
                                -1,
                                "evi:raise: the event route's message is dropped (no transport here without tm)",
                            ),
                        }
                    }
                    ok()
                }
                Some(Err(e)) => Err(MiError::new(500, "Cannot Raise Event").with_data(e.to_string())),
                None => Err(MiError::new(480, "Temporarily Unavailable")),
            }
        },
    ));
}
