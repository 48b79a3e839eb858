//! The clusterer's MI commands (OpenSIPS `clusterer_mod.c`, `sharing_tags.c`), with their
//! 3.x names as aliases.

use ::mi::{Command, Mi, MiError, Params};
use serde_json::{Value, json};

use crate::Clusterer;
use crate::node::Link;
use crate::state::SendRet;

fn running() -> Result<&'static Clusterer, MiError> {
    crate::get().ok_or_else(|| MiError::new(500, "clusterer not running"))
}

fn ok() -> Result<Value, MiError> {
    Ok(json!("OK"))
}

fn cluster_id(p: &Params) -> Result<i32, MiError> {
    let id = p
        .int("cluster_id")?
        .ok_or_else(|| MiError::invalid_params("missing cluster_id"))?;
    i32::try_from(id)
        .ok()
        .filter(|i| *i >= 1)
        .ok_or_else(|| MiError::new(400, "Bad value for 'cluster_id'"))
}

/// Runs an MI command of this node (`broadcast_mi`'s local run, commands from other nodes).
pub(crate) fn run_local(c: &Clusterer, name: &str, params: &[String]) -> Result<Value, MiError> {
    let mi =
        c.mi.get()
            .ok_or_else(|| MiError::new(500, "MI not ready"))?;
    mi.find(name)
        .map_err(|_| MiError::new(400, "Command to be run not found"))?;
    let mut req = json!({"jsonrpc": "2.0", "method": name, "id": 1});
    if !params.is_empty() {
        req["params"] = json!(params);
    }
    let answer = mi
        .handle(req.to_string().as_bytes())
        .ok_or_else(|| MiError::new(500, "no answer"))?;
    let v: Value = serde_json::from_str(&answer).map_err(|_| MiError::new(500, "bad answer"))?;
    if let Some(e) = v.get("error") {
        let mut err = MiError::new(
            e.get("code").and_then(Value::as_i64).unwrap_or(500),
            e.get("message").and_then(Value::as_str).unwrap_or("error"),
        );
        if let Some(d) = e.get("data").and_then(Value::as_str) {
            err = err.with_data(d);
        }
        return Err(err);
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

fn list(_: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let st = c.lock();
    let clusters: Vec<Value> = st
        .clusters
        .iter()
        .map(|cl| {
            let hops = st.next_hops(cl.id);
            let nodes: Vec<Value> = cl
                .nodes
                .iter()
                .map(|n| {
                    json!({
                        "node_id": n.desc.node_id,
                        "db_id": n.desc.db_id,
                        "url": n.desc.url,
                        "link_state": n.link.name(),
                        "state": if n.desc.enabled { "enabled" } else { "disabled" },
                        "next_hop": hops.get(&n.desc.node_id).map_or_else(|| "none".to_owned(), ToString::to_string),
                        "description": n.desc.description.clone().unwrap_or_else(|| "none".to_owned()),
                    })
                })
                .collect();
            json!({"cluster_id": cl.id, "Nodes": nodes})
        })
        .collect();
    Ok(json!({ "Clusters": clusters }))
}

fn list_topology(_: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let st = c.lock();
    let clusters: Vec<Value> = st
        .clusters
        .iter()
        .map(|cl| {
            let mine: Vec<i32> = cl
                .nodes
                .iter()
                .filter(|n| n.link == Link::Up)
                .map(|n| n.desc.node_id)
                .collect();
            let mut nodes = vec![json!({"node_id": st.me, "Neighbours": mine})];
            for n in &cl.nodes {
                let mut neigh = n.neighbours.clone();
                if n.link == Link::Up {
                    neigh.push(st.me);
                }
                nodes.push(json!({"node_id": n.desc.node_id, "Neighbours": neigh}));
            }
            json!({"cluster_id": cl.id, "Nodes": nodes})
        })
        .collect();
    Ok(json!({ "Clusters": clusters }))
}

fn set_status(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let cid = cluster_id(p)?;
    let me = c.lock().me;
    let node = match p.int("node_id")? {
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| MiError::new(400, "Bad value for 'node_id'"))?,
        None => me,
    };
    let status = p.int("status")?.unwrap_or(-1);
    if status != 0 && status != 1 {
        return Err(MiError::new(400, "Bad value for 'status'"));
    }
    let mut fx = Vec::new();
    let r = c.lock().set_status(cid, node, status == 1, &mut fx);
    c.carry_out(fx);
    match r {
        Ok(()) => ok(),
        Err(-1) => Err(MiError::new(404, "Cluster id not found")),
        Err(_) => Err(MiError::new(404, "Node id not found")),
    }
}

fn list_cap(_: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let st = c.lock();
    let clusters: Vec<Value> = st
        .clusters
        .iter()
        .map(|cl| {
            let caps: Vec<Value> = cl
                .caps
                .iter()
                .map(|cap| {
                    json!({
                        "name": cap.name,
                        "state": crate::api::cap_state(cap),
                        "enabled": if cap.enabled { "yes" } else { "no" },
                    })
                })
                .collect();
            json!({"cluster_id": cl.id, "Capabilities": caps})
        })
        .collect();
    Ok(json!({ "Clusters": clusters }))
}

fn set_cap_status(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let cid = cluster_id(p)?;
    let cap = p
        .str("capability")?
        .ok_or_else(|| MiError::invalid_params("missing capability"))?;
    let status = p.int("status")?.unwrap_or(-1);
    if status != 0 && status != 1 {
        return Err(MiError::new(400, "Bad value for 'status'"));
    }
    let mut fx = Vec::new();
    let r = c.lock().set_cap_status(cid, &cap, status == 1, &mut fx);
    c.carry_out(fx);
    match r {
        Ok(()) => ok(),
        Err(-1) => Err(MiError::new(404, "Cluster id not found")),
        Err(_) => Err(MiError::new(404, "Capability not found")),
    }
}

fn list_shtags(_: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let st = c.lock();
    Ok(Value::from(
        st.tags
            .iter()
            .map(|t| json!({"Tag": t.name, "Cluster": t.cluster, "State": if t.active { "active" } else { "backup" }}))
            .collect::<Vec<_>>(),
    ))
}

fn shtag_set_active(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let tag = p.str("tag")?.unwrap_or_default();
    let Some((name, cid)) = tag.split_once('/') else {
        return Err(MiError::new(400, "Bad tag format <name/cluster_id>"));
    };
    let cid = cid
        .trim()
        .parse::<i32>()
        .map_err(|_| MiError::new(400, "Bad cluster ID in tag"))?;
    let mut fx = Vec::new();
    let found = {
        let mut st = c.lock();
        st.cluster(cid).is_some() && st.activate(name.trim(), cid, "MI command", &mut fx)
    };
    if !found {
        return Err(MiError::new(404, "Cluster ID not found"));
    }
    c.carry_out(fx);
    ok()
}

/// Sends `cmd` to one node or (`dst` None) every node; how it went.
fn send_mi_cmd(c: &Clusterer, cid: i32, dst: Option<i32>, cmd: &str, params: &[String]) -> SendRet {
    let st = c.lock();
    let me = st.me;
    let build = |d: i32| crate::msg::mi_cmd(cid, me, d, cmd, params);
    match dst {
        Some(d) => {
            let s = st.to_node(cid, d, build);
            drop(st);
            match s {
                Ok(s) if c.send(&s) => SendRet::Success,
                Ok(_) => SendRet::SendErr,
                Err(e) => e,
            }
        }
        None => {
            let all = st.to_all(cid, build);
            drop(st);
            crate::script::send_all(c, all)
        }
    }
}

fn params_of(p: &Params) -> Result<Vec<String>, MiError> {
    Ok(p.array("cmd_params")?.unwrap_or_default())
}

fn send_mi(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let cid = cluster_id(p)?;
    let dst = p.int("destination")?.unwrap_or(0);
    let dst = i32::try_from(dst)
        .ok()
        .filter(|d| *d >= 1)
        .ok_or_else(|| MiError::new(400, "Bad value for 'destination'"))?;
    if dst == c.lock().me {
        return Err(MiError::new(400, "Local node specified as destination"));
    }
    let cmd = p.str("cmd_name")?.unwrap_or_default();
    let params = params_of(p)?;
    match send_mi_cmd(c, cid, Some(dst), &cmd, &params) {
        SendRet::Success => ok(),
        SendRet::CurrDisabled => Ok(json!("Local node disabled")),
        SendRet::DestDown => Err(MiError::new(400, "Destination down")),
        SendRet::SendErr => Err(MiError::new(400, "Send error")),
    }
}

fn broadcast_mi(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let cid = cluster_id(p)?;
    let cmd = p.str("cmd_name")?.unwrap_or_default();
    let params = params_of(p)?;
    match send_mi_cmd(c, cid, None, &cmd, &params) {
        SendRet::Success => {}
        SendRet::CurrDisabled => {
            log::info!("clusterer: local node disabled, MI command <{cmd}> not sent")
        }
        SendRet::DestDown => log::error!("clusterer: all nodes down, MI command <{cmd}> not sent"),
        SendRet::SendErr => log::error!("clusterer: error sending MI command <{cmd}>"),
    }
    run_local(c, &cmd, &params)
}

fn remove_node(p: &Params) -> Result<Value, MiError> {
    let c = running()?;
    if c.lock().db_mode {
        return Err(MiError::new(400, "Running in DB mode"));
    }
    let cid = cluster_id(p)?;
    if c.lock().cluster(cid).is_none() {
        return Err(MiError::new(400, "Unknown cluster id"));
    }
    let node = p.int("node_id")?.unwrap_or(0);
    let node = i32::try_from(node)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| MiError::new(400, "Bad value for 'node_id'"))?;
    let mut fx = Vec::new();
    let found = {
        let st = c.lock();
        let me = st.me;
        let known = st
            .cluster(cid)
            .is_some_and(|cl| cl.nodes.iter().any(|n| n.desc.node_id == node));
        if known {
            let all = st.to_all(cid, |d| crate::msg::remove_node(cid, me, d, node));
            drop(st);
            crate::script::send_all(c, all);
            c.lock().forget(cid, node, &mut fx);
        }
        known
    };
    c.carry_out(fx);
    if !found {
        return Err(MiError::new(400, "Unknown node id"));
    }
    ok()
}

fn reload(_: &Params) -> Result<Value, MiError> {
    let c = running()?;
    let Some(t) = &c.table else {
        return Err(MiError::new(400, "Non-DB mode"));
    };
    let mut fresh = {
        let st = c.lock();
        crate::state::State::new(st.me, true, st.timing, st.rerouting)
    };
    crate::setup::load_table(t, &mut fresh).map_err(|e| {
        log::error!("{e}");
        MiError::new(500, "Failed to reload")
    })?;
    let mut fx = Vec::new();
    c.lock().replace_clusters(fresh, &mut fx);
    c.carry_out(fx);
    log::info!("clusterer: reloaded DB info");
    ok()
}

/// Adds the commands (the script loads clusterer).
pub fn commands(m: &mut Mi) {
    m.add(Command::new(
        "clusterer:reload",
        &["clusterer_reload"],
        &[&[]],
        reload,
    ));
    m.add(Command::new(
        "clusterer:set_status",
        &["clusterer_set_status"],
        &[
            &["cluster_id", "status"],
            &["cluster_id", "node_id", "status"],
        ],
        set_status,
    ));
    m.add(Command::new(
        "clusterer:list",
        &["clusterer_list"],
        &[&[]],
        list,
    ));
    m.add(Command::new(
        "clusterer:list_topology",
        &["clusterer_list_topology"],
        &[&[]],
        list_topology,
    ));
    m.add(Command::new(
        "clusterer:send_mi",
        &["cluster_send_mi"],
        &[
            &["cluster_id", "destination", "cmd_name"],
            &["cluster_id", "destination", "cmd_name", "cmd_params"],
        ],
        send_mi,
    ));
    m.add(Command::new(
        "clusterer:broadcast_mi",
        &["cluster_broadcast_mi"],
        &[
            &["cluster_id", "cmd_name"],
            &["cluster_id", "cmd_name", "cmd_params"],
        ],
        broadcast_mi,
    ));
    m.add(Command::new(
        "clusterer:remove_node",
        &["clusterer_remove_node"],
        &[&["cluster_id", "node_id"]],
        remove_node,
    ));
    m.add(Command::new(
        "clusterer:list_cap",
        &["clusterer_list_cap"],
        &[&[]],
        list_cap,
    ));
    m.add(Command::new(
        "clusterer:set_cap_status",
        &["clusterer_set_cap_status"],
        &[&["cluster_id", "capability", "status"]],
        set_cap_status,
    ));
    m.add(Command::new(
        "clusterer:list_shtags",
        &["clusterer_list_shtags"],
        &[&[]],
        list_shtags,
    ));
    m.add(Command::new(
        "clusterer:shtag_set_active",
        &["clusterer_shtag_set_active"],
        &[&["tag"]],
        shtag_set_active,
    ));
}
