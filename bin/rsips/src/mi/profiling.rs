//! `core:profiling_proc` (OpenSIPS 4.0): lists or sets the process profiling level of one
//! `core:ps` entry or of all (0 off, 1 SIP processing, 2 + extra processes, 3 + timer jobs);
//! the records go out as `E_PROFILING_PROC` events (`engine::profiling`).
//!
//! rsips' processes are threads of one OS process: every entry has the same `PID` (as in
//! `core:ps`), so `pid` selects all of them, and any other pid is unknown.

use std::sync::Arc;

use mi::{Command, Mi, MiError, Params};
use serde_json::{Value, json};

use super::{State, ok};

/// Adds `core:profiling_proc` (no alias: the command is new in 4.0).
pub fn commands(mi: &mut Mi, state: &Arc<State>) {
    let s = Arc::clone(state);
    mi.add(Command::new(
        "core:profiling_proc",
        &[],
        &[
            &[],
            &["id"],
            &["pid"],
            &["level"],
            &["id", "level"],
            &["pid", "level"],
        ],
        move |p| profiling_proc(&s.processes, p),
    ));
}

fn bad(why: &str) -> MiError {
    MiError::invalid_params(why)
}

fn profiling_proc(processes: &[String], p: &Params) -> Result<Value, MiError> {
    let count = processes.len();
    // `None`: every process.
    let target = match (p.int("id")?, p.int("pid")?) {
        (Some(id), _) => Some(
            usize::try_from(id)
                .ok()
                .filter(|i| *i < count)
                .ok_or_else(|| bad("Bad process ID"))?,
        ),
        (None, Some(pid)) if pid == i64::from(std::process::id()) => None,
        (None, Some(_)) => return Err(bad("Bad PID")),
        (None, None) => None,
    };
    if let Some(level) = p.int("level")? {
        engine::profiling::set_level(target, count, level);
        return ok();
    }
    let item = |id: usize| {
        json!({
            "ID": id,
            "PID": std::process::id(),
            "Profiling level": engine::profiling::level(id),
            "Type": processes.get(id).map_or("", String::as_str),
        })
    };
    let procs: Vec<Value> = match target {
        Some(id) => vec![item(id)],
        None => (0..count).map(item).collect(),
    };
    Ok(json!({ "Processes": procs }))
}
