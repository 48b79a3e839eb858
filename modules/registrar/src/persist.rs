//! usrloc's SQL persistence (OpenSIPS `restart_persistency` "load-from-sql" and
//! `sql_write_mode` "write-through" / "write-back", or the `single-instance-sql-write-*`
//! presets): the location tables are read from the database when the server starts (and a
//! table the script names later, when first used), and what changes is written back per
//! address-of-record — at once in write-through, every `timer_interval` in write-back, and at
//! shutdown. The tables in memory stay the truth while the database is away: a failed write
//! is retried, never lost.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use db::{Connection, Value as DbValue};
use engine::Script;

use crate::usrloc::{self, Contact, Table};

/// The version of the `location` table (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 1013;

/// How the tables reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Nothing is written (the tables are only read at start).
    None,
    Through,
    Back,
}

struct Persist {
    db: Arc<dyn Connection>,
    mode: WriteMode,
    use_domain: bool,
    /// The script's branch flags by bit, for the `cflags` column (written as names).
    flag_names: Vec<(u32, String)>,
    /// Our listening sockets as contacts name them (`udp:127.0.0.1:5060`), and the
    /// (protocol, port) of those bound to every address.
    sockets: Sockets,
    /// (table, AOR) changed since written.
    dirty: Mutex<HashSet<(String, String)>>,
    wake: Condvar,
    interval: Duration,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

static PERSIST: OnceLock<Persist> = OnceLock::new();

/// The persistence the script asks for: (load at start, write mode).
fn modes(script: &Script) -> (bool, WriteMode) {
    let p = |n: &str| {
        script
            .modparam_str("usrloc", n)
            .map(|v| v.trim().to_owned())
    };
    let (mut load, mut mode) = match p("working_mode_preset").as_deref() {
        Some("single-instance-sql-write-through") => (true, WriteMode::Through),
        Some("single-instance-sql-write-back") => (true, WriteMode::Back),
        _ => (false, WriteMode::None),
    };
    if let Some(r) = p("restart_persistency") {
        load = r == "load-from-sql";
    }
    match p("sql_write_mode").as_deref() {
        Some("write-through") => mode = WriteMode::Through,
        Some("write-back") => mode = WriteMode::Back,
        Some("none") => mode = WriteMode::None,
        _ => {}
    }
    (load, mode)
}

/// Whether a change to `aor` of `table` must be written (and, in write-through, now).
pub(crate) fn changed(table: &str, aor: &str) {
    let Some(p) = PERSIST.get() else {
        return;
    };
    if p.mode == WriteMode::None {
        return;
    }
    lock(&p.dirty).insert((table.to_owned(), aor.to_owned()));
    if p.mode == WriteMode::Through {
        p.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens the database and loads the `location` table when the script asks for SQL
/// persistence; a database that cannot be read stops the start. The location cluster starts
/// here too (usrloc's start in the server's order, before the clusterer's).
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    crate::cluster::start(script)?;
    let (load, mode) = modes(script);
    if !script.loads("usrloc") || (!load && mode == WriteMode::None) {
        return Ok(());
    }
    let url = script
        .modparam_str("usrloc", "db_url")
        .unwrap_or_else(|| "mysql://opensips:opensipsrw@localhost/opensips".into());
    let db = db::open_for("usrloc", &url, |m| script.loads(m), options)?;
    // An embedded SQLite file gets its table on first start (the default configuration).
    if db::schema::ensure(db.as_ref(), &url, "location").map_err(|e| format!("usrloc: {e}"))? {
        log::info!(
            "usrloc: created table location (version {TABLE_VERSION}) in {}",
            db::redact(&url)
        );
    }
    db::check_version(db.as_ref(), "location", TABLE_VERSION)
        .map_err(|e| format!("usrloc: {e}"))?;
    let interval = script
        .modparam_int("usrloc", "timer_interval")
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(60)
        .max(1);
    let p = Persist {
        db,
        mode,
        use_domain: crate::Settings::of(script).use_domain,
        flag_names: (0..64)
            .filter_map(|b| script.flag_name(b).map(|n| (b, n.to_owned())))
            .collect(),
        sockets: local_sockets(script),
        dirty: Mutex::default(),
        wake: Condvar::new(),
        interval: Duration::from_secs(interval),
    };
    if PERSIST.set(p).is_err() {
        return Ok(());
    }
    if load {
        let n = usrloc::tables().load("location")?;
        log::info!("usrloc: {n} contacts loaded from table location");
    }
    if mode != WriteMode::None {
        std::thread::Builder::new()
            .name("usrloc-sql".into())
            .spawn(flusher)
            .map_err(|e| format!("usrloc: cannot start the writer: {e}"))?;
    }
    Ok(())
}

/// Our listening sockets as contacts name them (`udp:127.0.0.1:5060`), and the (protocol,
/// port) of those bound to every address.
pub(crate) type Sockets = (Vec<String>, Vec<(&'static str, u16)>);

pub(crate) fn local_sockets(script: &Script) -> Sockets {
    let mut named = Vec::new();
    let mut wildcard = Vec::new();
    for s in script.listen_sockets() {
        match s.addr {
            Some(a) if !a.ip().is_unspecified() => named.push(format!(
                "{}:{}:{}",
                s.proto,
                engine::pv::ip_uri_text(a.ip()),
                a.port()
            )),
            _ => wildcard.push((s.proto, s.port)),
        }
    }
    (named, wildcard)
}

/// Whether a stored socket is one of ours (a contact keeps it only then, as OpenSIPS drops
/// a non-local socket when it loads the table).
fn is_local(p: &Persist, socket: &str) -> bool {
    is_local_socket(&p.sockets, socket)
}

/// Whether `socket` (`proto:ip:port`) is one of `ours`.
pub(crate) fn is_local_socket(ours: &Sockets, socket: &str) -> bool {
    let socket = socket.to_ascii_lowercase();
    ours.0.contains(&socket)
        || ours.1.iter().any(|(proto, port)| {
            socket.starts_with(&format!("{proto}:")) && socket.ends_with(&format!(":{port}"))
        })
}

/// Whether tables are read from the database when first used.
pub(crate) fn loads_tables() -> bool {
    PERSIST.get().is_some()
}

fn flusher() {
    let Some(p) = PERSIST.get() else {
        return;
    };
    loop {
        {
            let dirty = lock(&p.dirty);
            let wait = match p.mode {
                WriteMode::Through => Duration::from_secs(1),
                _ => p.interval,
            };
            let _ = p.wake.wait_timeout(dirty, wait);
        }
        flush();
    }
}

/// Writes every changed address-of-record now (the timer, shutdown, the MI's `ul_sync`).
/// What fails stays to be written next time.
pub fn flush() {
    let Some(p) = PERSIST.get() else {
        return;
    };
    let todo: Vec<(String, String)> = lock(&p.dirty).drain().collect();
    if todo.is_empty() {
        return;
    }
    for (table, aor) in todo {
        let contacts: Vec<Contact> = usrloc::tables()
            .get(&table)
            .and_then(|t| t.all_contacts(&aor).map(<[Contact]>::to_vec))
            .unwrap_or_default();
        if let Err(e) = write_aor(p, &table, &aor, &contacts) {
            log::error!("usrloc: cannot write {aor} to table {table}: {e}; retrying later");
            lock(&p.dirty).insert((table, aor));
        }
    }
}

/// The key columns of an address-of-record.
fn key(p: &Persist, aor: &str) -> Vec<(&'static str, DbValue)> {
    match aor.split_once('@').filter(|_| p.use_domain) {
        Some((user, domain)) => vec![
            ("username", DbValue::Str(user.to_owned())),
            ("domain", DbValue::Str(domain.to_owned())),
        ],
        None => vec![("username", DbValue::Str(aor.to_owned()))],
    }
}

fn write_aor(p: &Persist, table: &str, aor: &str, contacts: &[Contact]) -> Result<(), db::DbError> {
    let key = key(p, aor);
    p.db.delete(table, &key)?;
    for c in contacts {
        let opt = |v: &Option<String>| v.clone().map_or(DbValue::Null, DbValue::Str);
        let cflags: Vec<&str> = p
            .flag_names
            .iter()
            .filter(|(b, _)| c.cflags & (1u64 << b) != 0)
            .map(|(_, n)| n.as_str())
            .collect();
        let mut row = key.clone();
        if !p.use_domain {
            row.push(("domain", DbValue::Null));
        }
        row.extend([
            (
                "contact_id",
                DbValue::Int(i64::try_from(c.id).unwrap_or(i64::MAX)),
            ),
            ("contact", DbValue::Str(c.uri.clone())),
            ("received", opt(&c.received)),
            ("path", opt(&c.path)),
            (
                "expires",
                DbValue::Int(
                    c.expires
                        .map_or(0, |e| i64::try_from(e).unwrap_or(i64::MAX)),
                ),
            ),
            ("q", DbValue::Double(f64::from(c.q) / 1000.0)),
            ("callid", DbValue::Str(c.callid.clone())),
            ("cseq", DbValue::Int(i64::from(c.cseq))),
            (
                "last_modified",
                DbValue::DateTime(i64::try_from(c.last_modified).unwrap_or(0)),
            ),
            ("flags", DbValue::Int(i64::from(c.flags))),
            (
                "cflags",
                if cflags.is_empty() {
                    DbValue::Null
                } else {
                    DbValue::Str(cflags.join(" "))
                },
            ),
            ("user_agent", DbValue::Str(c.user_agent.clone())),
            ("socket", opt(&c.socket)),
            ("methods", DbValue::Int(i64::from(c.methods as i32))),
            ("sip_instance", opt(&c.instance)),
        ]);
        p.db.insert(table, &row)?;
    }
    Ok(())
}

/// Reads `name` from the database into `table`; how many live contacts it held.
pub(crate) fn load_into(name: &str, table: &mut Table) -> Result<usize, String> {
    let Some(p) = PERSIST.get() else {
        return Ok(0);
    };
    let cols = [
        "username",
        "domain",
        "contact",
        "received",
        "path",
        "expires",
        "q",
        "callid",
        "cseq",
        "last_modified",
        "flags",
        "cflags",
        "user_agent",
        "socket",
        "methods",
        "sip_instance",
        "contact_id",
    ];
    let rows =
        p.db.query(name, &cols, &[])
            .map_err(|e| format!("usrloc: cannot load table {name}: {e}"))?;
    let now = usrloc::now();
    let mut n = 0;
    for r in rows {
        let text = |i: usize| {
            r.get(i)
                .and_then(DbValue::as_text)
                .filter(|s| !s.is_empty())
        };
        let int = |i: usize| r.get(i).and_then(DbValue::as_int);
        let (Some(user), Some(uri)) = (text(0), text(2)) else {
            continue;
        };
        let aor = match text(1).filter(|_| p.use_domain) {
            Some(domain) => format!("{user}@{domain}"),
            None => user,
        };
        let expires = int(5)
            .filter(|e| *e > 0)
            .and_then(|e| u64::try_from(e).ok());
        let q = r
            .get(6)
            .and_then(|v| v.as_text())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map_or(-1, |q| (q * 1000.0).round() as i32);
        let cflags = text(11).map_or(0, |names| {
            names
                .split([' ', ','])
                .filter_map(|n| p.flag_names.iter().find(|(_, f)| f == n.trim()))
                .fold(0u64, |acc, (b, _)| acc | (1u64 << b))
        });
        let contact = Contact {
            uri,
            expires,
            q: q.clamp(-1, 1000),
            callid: text(7).unwrap_or_default(),
            cseq: int(8).and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
            cflags,
            flags: int(10).and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
            user_agent: text(12).unwrap_or_default(),
            received: text(3),
            path: text(4),
            socket: text(13).filter(|s| {
                let ours = is_local(p, s);
                if !ours {
                    log::warn!(
                        "usrloc: {s} is not a socket of this server; the contact keeps none"
                    );
                }
                ours
            }),
            methods: int(14).map_or(usrloc::ALL_METHODS, |m| m as u32),
            instance: text(15),
            reg_id: 0,
            last_modified: int(9).and_then(|t| u64::try_from(t).ok()).unwrap_or(now),
            id: int(16).and_then(|i| u64::try_from(i).ok()).unwrap_or(0),
        };
        if contact.alive(now) {
            table.restore(&aor, contact);
            n += 1;
        }
    }
    Ok(n)
}
