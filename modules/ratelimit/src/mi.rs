//! ratelimit's MI commands, OpenSIPS 4.0 names with their `rl_*` aliases: `ratelimit:list`
//! (all pipes, one `pipe`, or those a `filter` glob matches or `filter_out` does not),
//! `dump_pipe`, `reset_pipe`, `set_pid`, `get_pid`.

use ::mi::{Command, Mi, MiError, Params};
use serde_json::{Map, Value as Json, json};

use crate::pipe::Pipe;

fn pipe_json(name: &str, p: &Pipe) -> Json {
    json!({"id": name, "algorithm": p.algo.name(), "limit": p.limit, "counter": p.last_counter})
}

fn not_loaded() -> MiError {
    MiError::new(500, "Internal error")
}

fn list(params: &Params) -> Result<Json, MiError> {
    let rl = crate::get().ok_or_else(not_loaded)?;
    let st = rl.lock();
    let drop_rate = st.pid.drop_rate;
    if let Some(name) = params.str("pipe")?.filter(|n| !n.is_empty()) {
        let p = st
            .pipes
            .get(name.as_str())
            .ok_or_else(|| MiError::new(404, "Pipe Not Found"))?;
        return Ok(json!({"Pipe": pipe_json(&name, p), "drop_rate": drop_rate}));
    }
    let (pattern, keep) = match (params.str("filter")?, params.str("filter_out")?) {
        (Some(f), _) => (Some(f), true),
        (None, Some(f)) => (Some(f), false),
        (None, None) => (None, true),
    };
    let mut names: Vec<&String> = st
        .pipes
        .keys()
        .filter(|n| match pattern.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => engine::fnmatch(p, n) == keep,
            None => true,
        })
        .collect();
    names.sort();
    let pipes: Vec<Json> = names
        .into_iter()
        .filter_map(|n| st.pipes.get(n).map(|p| pipe_json(n, p)))
        .collect();
    Ok(json!({"Pipes": pipes, "drop_rate": drop_rate}))
}

fn dump_pipe(params: &Params) -> Result<Json, MiError> {
    let rl = crate::get().ok_or_else(not_loaded)?;
    let name = params.str("pipe")?.unwrap_or_default();
    let st = rl.lock();
    let p = st
        .pipes
        .get(name.as_str())
        .ok_or_else(|| MiError::new(404, "Pipe not found"))?;
    let mut out = Map::new();
    let mut total = p.counter;
    if let Some(w) = &p.window {
        let mut window = Map::new();
        if w.used() {
            let buckets: Vec<Json> = w
                .slots
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"Index": i, "Count": c}))
                .collect();
            let sum: i64 = w.slots.iter().sum();
            window.insert("Window Size".into(), json!(w.slots.len()));
            window.insert("Buckets".into(), json!(buckets));
            window.insert("Status".into(), json!("OK"));
            window.insert("Bucket Total".into(), json!(sum));
            total = sum;
        } else {
            window.insert("Buckets".into(), json!([]));
            window.insert("Status".into(), json!("Unitialized (?)"));
            total = 0;
        }
        out.insert("Window".into(), Json::Object(window));
    }
    out.insert("Pipe".into(), json!(name));
    out.insert("Algorithm".into(), json!(p.algo.name()));
    out.insert("Counter".into(), json!(p.counter));
    let nodes: Vec<Json> = p
        .remote
        .iter()
        .map(|r| json!({"MachineID": r.id, "NodeCounter": r.counter}))
        .collect();
    total += p.remote.iter().map(|r| r.counter).sum::<i64>();
    out.insert("Replication Nodes".into(), json!(nodes));
    out.insert("Total".into(), json!(total));
    Ok(Json::Object(out))
}

fn reset_pipe(params: &Params) -> Result<Json, MiError> {
    let rl = crate::get().ok_or_else(not_loaded)?;
    let name = params.str("pipe")?.unwrap_or_default();
    let mut st = rl.lock();
    let p = st.pipes.get_mut(name.as_str()).ok_or_else(not_loaded)?;
    p.reset();
    Ok(json!("OK"))
}

fn set_pid(params: &Params) -> Result<Json, MiError> {
    let rl = crate::get().ok_or_else(not_loaded)?;
    let mut gains = [0.0f64; 3];
    for (i, key) in ["ki", "kp", "kd"].into_iter().enumerate() {
        let text = params.str(key)?.unwrap_or_default();
        let text = text.trim();
        if text.is_empty() || text.len() > 4 {
            return Err(MiError::new(400, "Bad parameter value"));
        }
        // OpenSIPS keeps the whole part only.
        gains[i] = text
            .parse::<f64>()
            .map_err(|_| MiError::new(400, "Bad parameter value"))?
            .trunc();
    }
    let mut st = rl.lock();
    (st.pid.ki, st.pid.kp, st.pid.kd) = (gains[0], gains[1], gains[2]);
    Ok(json!("OK"))
}

fn get_pid(_: &Params) -> Result<Json, MiError> {
    let rl = crate::get().ok_or_else(not_loaded)?;
    let st = rl.lock();
    Ok(json!({"PID": {
        "ki": format!("{:.3}", st.pid.ki),
        "kp": format!("{:.3}", st.pid.kp),
        "kd": format!("{:.3}", st.pid.kd),
    }}))
}

/// Registers the commands.
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "ratelimit:list",
        &["rl_list"],
        &[&[], &["pipe"], &["filter"], &["filter_out"]],
        list,
    ));
    mi.add(Command::new(
        "ratelimit:dump_pipe",
        &["rl_dump_pipe"],
        &[&["pipe"]],
        dump_pipe,
    ));
    mi.add(Command::new(
        "ratelimit:reset_pipe",
        &["rl_reset_pipe"],
        &[&["pipe"]],
        reset_pipe,
    ));
    mi.add(Command::new(
        "ratelimit:set_pid",
        &["rl_set_pid"],
        &[&["ki", "kp", "kd"]],
        set_pid,
    ));
    mi.add(Command::new(
        "ratelimit:get_pid",
        &["rl_get_pid"],
        &[&[]],
        get_pid,
    ));
}
