//! The OpenSIPS `mqueue` module: named FIFO queues of (key, value) pairs shared by every
//! worker, each defined by a `mqueue` parameter (`name=q;size=N;addmode=M;dbmode=D`), so one
//! worker (a request) can hand work to another (a timer route).
//!
//! - `mq_add(q, key, value)`: 1, or -1 for an unknown queue. A bounded queue drops its oldest
//!   pair when full; `addmode` 1 keeps a key's queued pair, 2 replaces it.
//! - `mq_fetch(q)`: takes the oldest pair into this worker's `$mqk(q)` / `$mqv(q)` (1); -2 when
//!   the queue is empty, -1 when there is no such queue.
//! - `mq_pv_free(q)`: forgets the fetched pair (1).
//! - `mq_size(q)`: the number of pairs; -1 when empty, -2 for an unknown queue.
//! - `$mqk(q)`, `$mqv(q)`: the pair this worker fetched last (NULL when none or empty);
//!   `$mq_size(q)`: the queue's length. An unknown queue reads NULL and logs an error.
//! - MI `mqueue:get_size`, `mqueue:get_sizes`, `mqueue:fetch` (one pair, or up to `limit`),
//!   with the legacy names `mq_get_size`, `mq_get_sizes`, `mq_fetch`.
//! - `db_url` with `dbmode`: see [`db`].
//!
//! The fetched pair is per worker, as it is per process in OpenSIPS; the queues are shared.
#![forbid(unsafe_code)]

pub mod db;
pub mod queue;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use engine::hooks::ModulePv;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};
use queue::{Definition, Queue};
use serde_json::json;

static DEFINITION: ParamCheck = ParamCheck {
    what: "mqueue definition",
    check: |text| Definition::parse(text).map(|_| ()),
};

const ONE: &[(Param, bool)] = &[(Param::Str, false)];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "mqueue",
    functions: &[
        FnSpec {
            name: "mq_add",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
            ],
            routes: Routes::ALL,
            run: mq_add,
        },
        FnSpec {
            name: "mq_fetch",
            params: ONE,
            routes: Routes::ALL,
            run: mq_fetch,
        },
        FnSpec {
            name: "mq_pv_free",
            params: ONE,
            routes: Routes::ALL,
            run: mq_pv_free,
        },
        FnSpec {
            name: "mq_size",
            params: ONE,
            routes: Routes::ALL,
            run: mq_size,
        },
    ],
    params: &[
        ("mqueue", ParamType::CheckedStr(&DEFINITION)),
        ("db_url", ParamType::Str),
    ],
};

/// The queues the script defined, newest definition first (the order OpenSIPS lists them).
#[derive(Debug, Default)]
pub struct Queues {
    list: Vec<Arc<Queue>>,
}

impl Queues {
    /// Builds the queues from their definitions; a name defined twice is refused.
    pub fn new(defs: Vec<Definition>) -> Result<Queues, String> {
        let mut list: Vec<Arc<Queue>> = Vec::with_capacity(defs.len());
        for def in defs {
            if list.iter().any(|q| q.def.name == def.name) {
                return Err(format!("mqueue: queue `{}` is defined twice", def.name));
            }
            list.insert(0, Arc::new(Queue::new(def)));
        }
        Ok(Queues { list })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Queue>> {
        self.list.iter().find(|q| q.def.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.list.iter()
    }
}

static QUEUES: OnceLock<Queues> = OnceLock::new();

fn queues() -> &'static Queues {
    static EMPTY: Queues = Queues { list: Vec::new() };
    QUEUES.get().unwrap_or(&EMPTY)
}

thread_local! {
    /// The pair this worker fetched last, by queue.
    static FETCHED: RefCell<HashMap<String, (String, String)>> = RefCell::new(HashMap::new());
}

/// Makes the queues the script defines and installs the `$mq*` readers; the queues with a
/// `dbmode` that reads are filled from the database.
pub fn start(script: &Script, options: &::db::Options) -> Result<(), String> {
    if !script.loads("mqueue") {
        return Ok(());
    }
    let defs = script
        .modparam_strs("mqueue", "mqueue")
        .iter()
        .map(|t| Definition::parse(t).map_err(|e| format!("mqueue: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if defs.is_empty() {
        log::warn!("no mqueue defined");
    }
    let built = Queues::new(defs)?;
    db::start(script, options, &built)?;
    if QUEUES.set(built).is_err() {
        return Err("mqueue: started twice".into());
    }
    for pv in [ModulePv::MqKey, ModulePv::MqValue, ModulePv::MqSize] {
        engine::hooks::set_module_pv_reader(pv, Box::new(read_pv));
    }
    Ok(())
}

/// Writes the queues whose `dbmode` saves back to the database (at shutdown).
pub fn stop() {
    if let Some(q) = QUEUES.get() {
        db::save(q);
    }
}

fn read_pv(pv: ModulePv, name: &str) -> Value {
    let Some(q) = queues().get(name) else {
        log::error!("mqueue not found: {name}");
        return Value::Null;
    };
    match pv {
        ModulePv::MqSize => Value::Int(q.len() as i64),
        _ => FETCHED.with_borrow(|f| {
            let text = f.get(name).map(|(k, v)| {
                if pv == ModulePv::MqKey {
                    k.as_str()
                } else {
                    v.as_str()
                }
            });
            match text {
                Some(t) if !t.is_empty() => Value::from(t.to_owned()),
                _ => Value::Null,
            }
        }),
    }
}

fn text(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

fn mq_add(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args, 0);
    match queues().get(&name) {
        Some(q) => {
            q.add(&text(args, 1), &text(args, 2));
            1
        }
        None => {
            f.log.log(-1, &format!("mqueue not found: {name}\n"));
            -1
        }
    }
}

/// Takes the oldest pair of `name` into this worker's `$mqk`/`$mqv`: `Ok(true)` fetched,
/// `Ok(false)` empty, `Err` no such queue. The previous pair is forgotten either way.
fn fetch(name: &str) -> Result<Option<(String, String)>, ()> {
    let q = queues().get(name).ok_or(())?;
    let got = q.fetch();
    FETCHED.with_borrow_mut(|f| match &got {
        Some(pair) => {
            f.insert(name.to_owned(), pair.clone());
        }
        None => {
            f.remove(name);
        }
    });
    Ok(got)
}

fn mq_fetch(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    match fetch(&text(args, 0)) {
        Ok(Some(_)) => 1,
        Ok(None) => -2,
        Err(()) => -1,
    }
}

fn mq_pv_free(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args, 0);
    FETCHED.with_borrow_mut(|f| f.remove(&name));
    1
}

fn mq_size(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args, 0);
    match queues().get(&name) {
        Some(q) => match q.len() as i64 {
            0 => -1,
            n => n,
        },
        None => {
            f.log.log(-1, &format!("mqueue {name} not found\n"));
            -2
        }
    }
}

fn name_param(p: &mi::Params) -> Result<String, mi::MiError> {
    p.str("name")?
        .ok_or_else(|| mi::MiError::invalid_params("missing name"))
}

fn no_such_queue() -> mi::MiError {
    mi::MiError::new(404, "No such queue")
}

fn mi_fetch(p: &mi::Params) -> Result<serde_json::Value, mi::MiError> {
    let name = name_param(p)?;
    if p.get("limit").is_some() {
        let limit = p
            .int("limit")?
            .filter(|l| *l >= 1)
            .ok_or_else(|| mi::MiError::invalid_params("Bad limit"))?;
        let q = queues().get(&name).ok_or_else(no_such_queue)?;
        let items: Vec<_> = (0..limit)
            .map_while(|_| q.fetch())
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        return Ok(json!(items));
    }
    match fetch(&name) {
        Err(()) => Err(no_such_queue()),
        Ok(None) => Err(mi::MiError::new(404, "Empty queue")),
        // OpenSIPS reads the pair back through `$mqk`/`$mqv`, which are NULL when empty.
        Ok(Some((k, v))) if k.is_empty() || v.is_empty() => {
            Err(mi::MiError::new(404, "Unexpected error (result)"))
        }
        Ok(Some((k, v))) => Ok(json!({ "Item": { "key": k, "value": v } })),
    }
}

/// The MI commands.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "mqueue:get_sizes",
        &["mq_get_sizes", "mqueue:mq_get_sizes"],
        &[&[]],
        |_| {
            let list: Vec<_> = queues()
                .iter()
                .map(|q| json!({ "name": q.def.name, "size": q.len() }))
                .collect();
            Ok(json!({ "Queue": list }))
        },
    ));
    mi.add(mi::Command::new(
        "mqueue:get_size",
        &["mq_get_size", "mqueue:mq_get_size"],
        &[&["name"]],
        |p| {
            let name = name_param(p)?;
            let q = queues().get(&name).ok_or_else(no_such_queue)?;
            Ok(json!({ "Queue": { "name": name, "size": q.len() } }))
        },
    ));
    mi.add(mi::Command::new(
        "mqueue:fetch",
        &["mq_fetch", "mqueue:mq_fetch"],
        &[&["name"], &["name", "limit"]],
        mi_fetch,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_listed_newest_first_and_unique() {
        let defs = ["name=a", "name=b;size=3"]
            .iter()
            .map(|t| Definition::parse(t).unwrap())
            .collect();
        let qs = Queues::new(defs).unwrap();
        let names: Vec<_> = qs.iter().map(|q| q.def.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(qs.get("b").unwrap().def.size, 3);
        let twice = ["name=a", "name=a"]
            .iter()
            .map(|t| Definition::parse(t).unwrap())
            .collect();
        assert!(Queues::new(twice).unwrap_err().contains("twice"));
    }
}
