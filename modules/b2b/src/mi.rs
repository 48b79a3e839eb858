//! MI: `b2b_logic:list` (`b2b_list`), `b2b_logic:terminate_call` (`b2b_terminate_call`) and
//! `b2b_entities:list` (`b2be_list`), with OpenSIPS' keys.

use ::mi::{Command, Mi, MiError};
use serde_json::{Value as Json, json};

use crate::leg::Side;
use crate::table::{Entity, Tuple, table, unix_now};

fn entity_json(t: &Tuple, i: usize, e: &Entity) -> Json {
    let mut o = json!({
        "index": i,
        "key": e.key,
        "disconnected": u8::from(!e.live()),
        "state": e.state.code(),
        "no": i,
        "type": match e.side { Side::Server => 0, Side::Client => 1 },
    });
    if !e.id.is_empty() {
        o["scenario_id"] = json!(e.id);
    }
    if let Some(peer) = e.peer.and_then(|p| t.entities.get(p)) {
        o["peer"] = json!(peer.key);
    }
    let (from, to) = match e.side {
        Side::Server => (&e.leg.remote_uri, &e.leg.local_uri),
        Side::Client => (&e.leg.local_uri, &e.leg.remote_uri),
    };
    o["to_uri"] = json!(to);
    o["from_uri"] = json!(from);
    o
}

fn tuple_json(t: &Tuple, id: usize) -> Json {
    let live = |side: Side| -> Vec<Json> {
        t.entities
            .iter()
            .enumerate()
            .filter(|(_, e)| e.side == side && !e.deleted)
            .map(|(i, e)| entity_json(t, i, e))
            .collect()
    };
    let bridged: Vec<Json> = t
        .entities
        .iter()
        .enumerate()
        .filter(|(_, e)| e.peer.is_some() && e.live())
        .map(|(i, e)| entity_json(t, i, e))
        .collect();
    json!({
        "id": id,
        "key": t.key,
        "scenario": t.scenario,
        "state": u8::from(t.entities.iter().any(|e| e.state == crate::leg::State::Confirmed)),
        "lifetime": unix_now().saturating_sub(t.created),
        "db_flag": 0,
        "SERVERS": live(Side::Server),
        "CLIENTS": live(Side::Client),
        "BRIDGE_ENTITIES": bridged,
    })
}

fn entities_json() -> Json {
    let t = table();
    let mut out = Vec::new();
    for tuple in t.tuples.values() {
        for e in tuple.entities.iter().filter(|e| !e.deleted) {
            let (from, to, from_tag, to_tag) = match e.side {
                Side::Server => (
                    &e.leg.remote_uri,
                    &e.leg.local_uri,
                    &e.leg.remote_tag,
                    &e.leg.local_tag,
                ),
                Side::Client => (
                    &e.leg.local_uri,
                    &e.leg.remote_uri,
                    &e.leg.local_tag,
                    &e.leg.remote_tag,
                ),
            };
            out.push(json!({
                "dlg": out.len(),
                "param": e.key,
                "logic_key": tuple.key,
                "mod_name": "b2b_logic",
                "state": e.state.code(),
                "ruri": e.leg.remote_target,
                "callid": e.leg.callid,
                "from": from,
                "from_tag": from_tag,
                "to": to,
                "to_tag": to_tag,
                "cseq": {"local": e.leg.local_cseq, "remote": e.leg.remote_cseq},
                "contact": {"local": e.leg.contact, "remote": e.leg.remote_target},
                "type": e.side.as_str(),
            }));
        }
    }
    json!({ "Dialogs": out })
}

/// Adds the commands.
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "b2b_logic:list",
        &["b2b_list"],
        &[&[]],
        |_| {
            let t = table();
            let mut tuples: Vec<&Tuple> = t.tuples.values().collect();
            tuples.sort_by(|a, b| a.key.cmp(&b.key));
            let list: Vec<Json> = tuples
                .into_iter()
                .enumerate()
                .map(|(i, t)| tuple_json(t, i))
                .collect();
            Ok(json!({ "Tuples": list }))
        },
    ));
    mi.add(Command::new(
        "b2b_logic:terminate_call",
        &["b2b_terminate_call"],
        &[&["key"]],
        |p| {
            let key = p
                .str("key")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let places: Vec<(String, usize)> = {
                let t = table();
                let Some(tuple) = t.tuples.get(key.trim()) else {
                    return Err(MiError::new(404, "No such key"));
                };
                (0..tuple.entities.len())
                    .filter(|i| tuple.entities[*i].live())
                    .map(|i| (tuple.key.clone(), i))
                    .collect()
            };
            for p in &places {
                crate::session::end_leg(p);
            }
            if let Some(p) = places.first() {
                table().remove_if_finished(&p.0);
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "b2b_entities:list",
        &["b2be_list"],
        &[&[]],
        |_| Ok(entities_json()),
    ));
}
