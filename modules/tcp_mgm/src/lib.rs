//! The OpenSIPS `tcp_mgm` module: TCP connection profiles from a database table (`tcp_mgm`,
//! version 2). Each row ("path") matches connections by protocol (`any`, tcp, tls, ws, wss),
//! remote network and port, local listener and port; a TCP, TLS, WS or WSS connection, when it
//! is accepted or about to be opened, takes the settings of the first matching row (in
//! [`path::order`]) instead of the core `tcp_*` globals, and keeps them for its life.
//!
//! The table is read when the server starts (a failure stops the start) and again on MI
//! `tcp_mgm:reload` (`tcp_reload`); a reload that cannot read the table keeps the rows in use
//! and answers an error. Rows are held in memory behind an `ArcSwap`: the I/O threads look a
//! connection's profile up without a lock and never wait on the database.
//!
//! Applied per connection: `connect_timeout` (ms, connections rsips opens), `con_lifetime`
//! (s, idle time before the connection closes), `msg_read_timeout` (s, a message that has
//! started must be complete within it), `no_new_conn` (no connection is opened to the peer: a
//! send with no open connection fails), `alias_mode` (0/1/2 in place of
//! `tcp_accept_aliases`), `keepalive`, `keepcount`, `keepidle`, `keepinterval`. Read and
//! checked, but with no effect in rsips: `send_threshold` (rsips has no send-latency warning)
//! and `attrs` (`max_msg_chunks`; rsips bounds a message by size, not by read chunks).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ::mi::{Command, Mi, MiError};
use arc_swap::ArcSwap;
use db::Connection;
use engine::{ModuleSpec, ParamType, Script};
use serde_json::json;
use transport::Proto;
use transport::stream::{Profile, Profiles};

pub mod path;

pub use path::Path;

/// The version of the `tcp_mgm` table (OpenSIPS 3.x/4.0).
pub const TABLE_VERSION: i64 = 2;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "tcp_mgm",
    functions: &[],
    params: &[
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("id_col", ParamType::Str),
        ("proto_col", ParamType::Str),
        ("remote_addr_col", ParamType::Str),
        ("remote_port_col", ParamType::Str),
        ("local_addr_col", ParamType::Str),
        ("local_port_col", ParamType::Str),
        // OpenSIPS exports it, but the 4.0 table has no such column: accepted, ignored.
        ("direction_col", ParamType::Str),
        ("priority_col", ParamType::Str),
        ("attrs_col", ParamType::Str),
        ("connect_timeout_col", ParamType::Str),
        ("con_lifetime_col", ParamType::Str),
        ("msg_read_timeout_col", ParamType::Str),
        ("send_threshold_col", ParamType::Str),
        ("no_new_conn_col", ParamType::Str),
        ("alias_mode_col", ParamType::Str),
        ("keepalive_col", ParamType::Str),
        ("keepcount_col", ParamType::Str),
        ("keepidle_col", ParamType::Str),
        ("keepinterval_col", ParamType::Str),
    ],
};

/// The table, and the rows in use.
#[derive(Debug)]
pub struct Manager {
    db: Arc<dyn Connection>,
    table: String,
    columns: Vec<String>,
    /// The stream listeners of the script, which a `local_addr` must name.
    listeners: Vec<(Proto, SocketAddr)>,
    paths: ArcSwap<Vec<Path>>,
}

fn manager() -> &'static OnceLock<Arc<Manager>> {
    static MANAGER: OnceLock<Arc<Manager>> = OnceLock::new();
    &MANAGER
}

impl Manager {
    /// Reads and checks every row; unusable ones are logged and left out. The result is in
    /// lookup order.
    fn read(&self) -> Result<Vec<Path>, String> {
        db::check_version(self.db.as_ref(), &self.table, TABLE_VERSION)
            .map_err(|e| e.to_string())?;
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.table, &cols, &[])
            .map_err(|e| e.to_string())?;
        let mut paths = Vec::with_capacity(rows.len());
        for row in &rows {
            match Path::parse(row, &self.listeners) {
                Ok(p) => {
                    if let path::ProtoSel::Unserved(name) = &p.proto {
                        log::warn!(
                            "TCP path with id: {}: rsips serves no {name} connections, it never matches",
                            p.id
                        );
                    }
                    paths.push(p);
                }
                Err(e) => {
                    let id = row.first().and_then(db::Value::as_text);
                    log::error!(
                        "failed to validate TCP path with id: {}: {e}, skipping",
                        id.as_deref().unwrap_or("NULL")
                    );
                }
            }
        }
        paths.sort_by(path::order);
        log::info!("{} records found in {} table", paths.len(), self.table);
        Ok(paths)
    }

    /// The rows in use, in lookup order.
    pub fn paths(&self) -> Arc<Vec<Path>> {
        self.paths.load_full()
    }
}

impl Profiles for Manager {
    fn lookup(&self, proto: Proto, remote: SocketAddr, local: SocketAddr) -> Option<Profile> {
        let paths = self.paths.load();
        let found = path::lookup(&paths, proto, remote, local)?;
        log::debug!(
            "{proto} connection {local} <-> {remote}: TCP path id {}",
            found.id
        );
        Some(found.profile.clone())
    }
}

/// Opens the database and loads the table, as the module does when OpenSIPS starts: a
/// database or table that cannot be read stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("tcp_mgm") {
        return Ok(());
    }
    let url = script
        .modparam_str("tcp_mgm", "db_url")
        .or_else(|| script.global_str("db_default_url"))
        .ok_or("tcp_mgm: db_url is not set")?;
    let db = db::open_for("tcp_mgm", &url, |m| script.loads(m), options)?;
    let table = script
        .modparam_str("tcp_mgm", "db_table")
        .unwrap_or_else(|| "tcp_mgm".to_owned());
    if script.modparam_str("tcp_mgm", "direction_col").is_some() {
        log::warn!("tcp_mgm: direction_col is ignored (the tcp_mgm table has no such column)");
    }
    let columns = path::COLUMNS
        .iter()
        .map(|c| {
            script
                .modparam_str("tcp_mgm", &format!("{c}_col"))
                .unwrap_or_else(|| (*c).to_owned())
        })
        .collect();
    let listeners = script
        .listen_sockets()
        .iter()
        .filter_map(|s| Some((Proto::parse(s.proto)?, s.addr?)))
        .filter(|(p, _)| p.is_stream())
        .collect();
    let m = Manager {
        db,
        table,
        columns,
        listeners,
        paths: ArcSwap::from_pointee(Vec::new()),
    };
    let paths = m.read().map_err(|e| format!("tcp_mgm: {e}"))?;
    m.paths.store(Arc::new(paths));
    let _ = manager().set(Arc::new(m));
    Ok(())
}

/// The profiles for the stream transports (`None` when the module is not started).
pub fn profiles() -> Option<Arc<dyn Profiles>> {
    manager().get().map(|m| Arc::clone(m) as Arc<dyn Profiles>)
}

/// The module's table handle, once started.
pub fn get() -> Option<Arc<Manager>> {
    manager().get().cloned()
}

/// Reads the table again and puts its rows in use for connections from now on (open ones
/// keep their settings). `Err` when it cannot be read: the rows in use stay. Returns how many
/// rows are in use.
pub fn reload() -> Result<usize, String> {
    let m = manager().get().ok_or("tcp_mgm is not loaded")?;
    let paths = m.read()?;
    let n = paths.len();
    m.paths.store(Arc::new(paths));
    Ok(n)
}

/// `tcp_mgm:reload` (`tcp_reload`).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "tcp_mgm:reload",
        &["tcp_reload"],
        &[&[]],
        |_| {
            log::info!("reload data MI command received!");
            match reload() {
                Ok(_) => Ok(json!("OK")),
                Err(e) => {
                    log::error!("failed to load TCP data: {e}");
                    Err(MiError::new(500, "Failed to reload").with_data(e))
                }
            }
        },
    ));
}

#[cfg(test)]
mod tests;
