//! The OpenSIPS `sockets_mgm` module: SIP sockets defined in a database table (`sockets`,
//! version 1) and opened or closed while the server runs. The table is read when the server
//! starts and again on MI `sockets_mgm:reload` (`sockets_reload`), which compares it with what
//! is open: a row no longer there closes its socket, a new or changed row opens one.
//! `sockets_mgm:list` (`sockets_list`) shows the open ones. The server does the opening and
//! closing ([`Opener`]); forwarding, `is_myself`, `$socket_in` and `force_send_socket` see the
//! sockets through [`engine::forward::DynamicSockets`].
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use ::mi::{Command, Mi, MiError};
use db::Connection;
use engine::forward::DynamicSockets;
use engine::{ModuleSpec, ParamType, Script};
use serde_json::json;

mod row;
pub use row::Spec;

/// The version of the `sockets` table (OpenSIPS 3.6/4.0).
pub const TABLE_VERSION: i64 = 1;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "sockets_mgm",
    functions: &[],
    params: &[
        ("db_url", ParamType::Str),
        ("table_name", ParamType::Str),
        ("socket_column", ParamType::Str),
        ("advertised_column", ParamType::Str),
        ("tag_column", ParamType::Str),
        ("flags_column", ParamType::Str),
        ("tos_column", ParamType::Str),
        ("processes", ParamType::Int),
        ("max_sockets", ParamType::Int),
    ],
};

/// What opens and closes sockets: the server's transports.
pub trait Opener: Send + Sync {
    /// Opens a listener for `spec`; returns the bound address.
    fn open(&self, spec: &Spec) -> Result<SocketAddr, String>;
    /// Closes the listener of `spec`.
    fn close(&self, spec: &Spec);
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub opened: usize,
    pub closed: usize,
    /// Rows skipped (unusable, over `max_sockets`, or their socket could not open).
    pub failed: usize,
}

/// The table and what is open from it.
struct Manager {
    db: Arc<dyn Connection>,
    table: String,
    /// socket, advertised, tag, flags, tos.
    columns: [String; 5],
    max_sockets: usize,
    /// The open sockets, in the order they were opened; and the server's side.
    running: Mutex<Vec<Spec>>,
    server: OnceLock<(Box<dyn Opener>, Arc<DynamicSockets>)>,
}

fn manager() -> &'static OnceLock<Manager> {
    static MANAGER: OnceLock<Manager> = OnceLock::new();
    &MANAGER
}

/// `processes` (default 8): the workers shared by every dynamic UDP socket.
pub fn processes(script: &Script) -> usize {
    script
        .modparam_int("sockets_mgm", "processes")
        .map_or(8, |n| n.clamp(1, 1024) as usize)
}

/// Opens the database and checks the table's version, as the module does when OpenSIPS
/// starts; a failure stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("sockets_mgm") {
        return Ok(());
    }
    let param = |n: &str, d: &str| {
        script
            .modparam_str("sockets_mgm", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let url = param("db_url", "mysql://opensips:opensipsrw@localhost/opensips");
    let db = db::open_for("sockets_mgm", &url, |m| script.loads(m), options)?;
    let table = param("table_name", "sockets");
    db::check_version(db.as_ref(), &table, TABLE_VERSION)
        .map_err(|e| format!("sockets_mgm: {e}"))?;
    let max_sockets = script
        .modparam_int("sockets_mgm", "max_sockets")
        .unwrap_or(100);
    if max_sockets < 1 {
        return Err(format!(
            "sockets_mgm: max_sockets must be at least 1, not {max_sockets}"
        ));
    }
    let m = Manager {
        db,
        table,
        columns: [
            param("socket_column", "socket"),
            param("advertised_column", "advertised"),
            param("tag_column", "tag"),
            param("flags_column", "flags"),
            param("tos_column", "tos"),
        ],
        max_sockets: usize::try_from(max_sockets).unwrap_or(usize::MAX),
        running: Mutex::new(Vec::new()),
        server: OnceLock::new(),
    };
    let _ = manager().set(m);
    Ok(())
}

/// Hands the module the server's transports and opens the table's sockets (a table that
/// cannot be read now is logged; the server runs on its configured sockets).
pub fn serve(opener: Box<dyn Opener>, dynamic: Arc<DynamicSockets>) {
    let Some(m) = manager().get() else {
        return;
    };
    if m.server.set((opener, dynamic)).is_err() {
        return;
    }
    if let Err(e) = reload() {
        log::error!("could not load the sockets: {e}");
    }
}

impl Manager {
    /// Every usable row; unusable ones are logged and counted.
    fn read(&self) -> Result<(Vec<Spec>, usize), String> {
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.table, &cols, &[])
            .map_err(|e| e.to_string())?;
        let (mut specs, mut bad) = (Vec::new(), 0);
        for r in &rows {
            let text = |i: usize| r.get(i).and_then(db::Value::as_text);
            let Some(socket) = text(0).filter(|s| !s.trim().is_empty()) else {
                log::error!("NULL or empty socket - skipping");
                bad += 1;
                continue;
            };
            let (adv, tag, flags, tos) = (text(1), text(2), text(3), text(4));
            match Spec::parse(
                &socket,
                adv.as_deref(),
                tag.as_deref(),
                flags.as_deref(),
                tos.as_deref(),
            ) {
                Ok(s) => specs.extend(s),
                Err(e) => {
                    log::error!("skipping `{socket}`: {e}");
                    bad += 1;
                }
            }
        }
        Ok((specs, bad))
    }
}

/// Reads the table again and makes the open sockets match it: those whose row is gone or
/// changed are closed, new and changed rows are opened (up to `max_sockets` open at once).
/// `Err` when the table cannot be read; the open sockets then stay as they are.
pub fn reload() -> Result<Changes, String> {
    let m = manager().get().ok_or("sockets_mgm is not loaded")?;
    let (opener, dynamic) = m.server.get().ok_or("the server is not running")?;
    let (wanted, bad) = m.read()?;
    let mut changes = Changes {
        failed: bad,
        ..Changes::default()
    };
    let mut running = m
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A row that changed is a new socket: the old one closes first (it may hold the address).
    let (keep, gone): (Vec<Spec>, Vec<Spec>) = running.drain(..).partition(|s| wanted.contains(s));
    // What the script sees follows each step: the sockets that go are not chosen to send
    // from before they close, a new one is ours as soon as it receives.
    dynamic.set(keep.iter().map(Spec::socket).collect());
    for s in &gone {
        opener.close(s);
        log::info!("closed {}", s.text);
        changes.closed += 1;
    }
    *running = keep;
    for s in wanted {
        if running.contains(&s) {
            continue;
        }
        // Two rows for one address: the first wins.
        if running
            .iter()
            .any(|r| r.proto == s.proto && r.addr == s.addr)
        {
            log::error!("skipping `{}`: its address is already open", s.text);
            changes.failed += 1;
            continue;
        }
        if running.len() >= m.max_sockets {
            log::error!(
                "skipping `{}`: max_sockets ({}) are open",
                s.text,
                m.max_sockets
            );
            changes.failed += 1;
            continue;
        }
        match opener.open(&s) {
            Ok(addr) => {
                log::info!("listening on {}:{addr}", s.proto);
                running.push(s);
                dynamic.set(running.iter().map(Spec::socket).collect());
                changes.opened += 1;
            }
            Err(e) => {
                log::error!("cannot open `{}`: {e}", s.text);
                changes.failed += 1;
            }
        }
    }
    dynamic.set(running.iter().map(Spec::socket).collect());
    Ok(changes)
}

/// The open sockets as `sockets_list` shows them (empty fields left out).
pub fn list() -> serde_json::Value {
    let Some(m) = manager().get() else {
        return json!([]);
    };
    let running = m
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let items: Vec<serde_json::Value> = running
        .iter()
        .map(|s| {
            let mut o = serde_json::Map::new();
            o.insert("socket".into(), json!(s.text));
            if let Some((h, p)) = &s.advertised {
                o.insert("advertised".into(), json!(format!("{h}:{p}")));
            }
            if let Some(t) = &s.tag {
                o.insert("tag".into(), json!(t));
            }
            let flags = s.flags_text();
            if !flags.is_empty() {
                o.insert("flags".into(), json!(flags));
            }
            if s.tos != 0 {
                o.insert("tos".into(), json!(s.tos));
            }
            serde_json::Value::Object(o)
        })
        .collect();
    json!(items)
}

/// `sockets_mgm:reload` (`sockets_reload`) and `sockets_mgm:list` (`sockets_list`).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "sockets_mgm:reload",
        &["sockets_reload"],
        &[&[]],
        |_| match reload() {
            Ok(_) => Ok(json!("OK")),
            Err(e) => Err(MiError::new(500, "Could not reload sockets").with_data(e)),
        },
    ));
    mi.add(Command::new(
        "sockets_mgm:list",
        &["sockets_list"],
        &[&[]],
        |_| Ok(list()),
    ));
}
