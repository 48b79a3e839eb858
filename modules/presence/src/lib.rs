//! The OpenSIPS `presence`, `presence_xml` and `xcap` modules: a presence server (RFC 3856,
//! RFC 3903, RFC 6665).
//!
//! - `handle_publish([sender])`: PUBLISH with entity tags (`SIP-ETag` / `SIP-If-Match`): new,
//!   refreshed, modified and removed publications, 412 for an unknown tag, 489 with
//!   `Allow-Events` for an event nobody handles, 415 for a body that is not XML.
//! - `handle_subscribe([force_active])`: SUBSCRIBE dialogs: 200 (202 while pending) with our
//!   To tag, `Contact` and `Expires`; refreshes, unsubscribes and fetches; 481 for an unknown
//!   dialog; a NOTIFY with the aggregated PIDF document after each, and to every watcher when
//!   a publication changes, expires or goes; `presence.winfo` watchers told of the others.
//! - The `presentity`, `active_watchers` and `watchers` tables (versions 5, 12 and 4), the
//!   `clean_period` and `db_update_period` timers, MI `presence:*`, `E_PRESENCE_PUBLISH`.
//!
//! presence_xml registers the `presence` and `presence.winfo` events (not `dialog;sla`) and
//! aggregates PIDF documents. With `force_active` 0 a new watcher is authorized by the
//! presentity's pres-rules document in the `xcap` table (`integrated_xcap_server` 1; an XCAP
//! server over HTTP is not supported), see [`rules`].
#![forbid(unsafe_code)]

pub mod dialoginfo;
mod handlers;
mod notify;
pub mod pidf;
pub mod reginfo;
pub mod rules;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};
use mi::{Command, Mi, MiError};
use serde_json::json;
use state::{State, Tables};

pub use notify::{Done, Sender};

pub static PRESENCE: ModuleSpec = ModuleSpec {
    name: "presence",
    functions: &[
        FnSpec {
            name: "handle_publish",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST,
            run: handlers::handle_publish,
        },
        FnSpec {
            name: "handle_subscribe",
            params: &[(Param::Int, true), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: handlers::handle_subscribe,
        },
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("presentity_table", ParamType::Str),
        ("active_watchers_table", ParamType::Str),
        ("watchers_table", ParamType::Str),
        ("clean_period", ParamType::Int),
        ("db_update_period", ParamType::Int),
        ("expires_offset", ParamType::Int),
        ("max_expires_subscribe", ParamType::Int),
        ("max_expires_publish", ParamType::Int),
        ("contact_user", ParamType::Str),
        ("subs_htable_size", ParamType::Int),
        ("pres_htable_size", ParamType::Int),
        ("fallback2db", ParamType::Int),
        ("enable_sphere_check", ParamType::Int),
        ("waiting_subs_daysno", ParamType::Int),
        ("mix_dialog_presence", ParamType::Int),
        ("bla_presentity_spec", ParamType::Str),
        ("bla_fix_remote_target", ParamType::Int),
        ("notify_offline_body", ParamType::Int),
        ("end_sub_on_timeout", ParamType::Int),
        ("cluster_id", ParamType::Int),
        ("cluster_federation_mode", ParamType::Str),
        ("cluster_be_active_shtag", ParamType::Str),
        ("cluster_pres_events", ParamType::Str),
    ],
};

pub static PRESENCE_XML: ModuleSpec = ModuleSpec {
    name: "presence_xml",
    functions: &[],
    params: &[
        ("force_active", ParamType::Int),
        ("pidf_manipulation", ParamType::Int),
        ("xcap_server", ParamType::Str),
        ("pres_rules_auid", ParamType::Str),
        ("pres_rules_filename", ParamType::Str),
        ("generate_offline_body", ParamType::Int),
    ],
};

pub static PRESENCE_DIALOGINFO: ModuleSpec = ModuleSpec {
    name: "presence_dialoginfo",
    functions: &[],
    params: &[("force_single_dialog", ParamType::Int)],
};

pub static PRESENCE_REGINFO: ModuleSpec = ModuleSpec {
    name: "presence_reginfo",
    functions: &[],
    params: &[
        ("default_expires", ParamType::Int),
        ("aggregate_presentities", ParamType::Int),
    ],
};

pub static PRESENCE_MWI: ModuleSpec = ModuleSpec {
    name: "presence_mwi",
    functions: &[],
    params: &[],
};

pub static XCAP: ModuleSpec = ModuleSpec {
    name: "xcap",
    functions: &[],
    params: &[
        ("db_url", ParamType::Str),
        ("xcap_table", ParamType::Str),
        ("integrated_xcap_server", ParamType::Int),
    ],
};

/// How an event's NOTIFY body is made from the presentity's publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// presence_xml: the PIDF documents aggregated ([`pidf::aggregate`]).
    Pidf,
    /// `presence.winfo`: watcher information about the `presence` event.
    Winfo,
    /// presence_dialoginfo: the dialog-info documents merged ([`dialoginfo::aggregate`]),
    /// an empty document when there are none.
    DialogInfo,
    /// presence_mwi: the newest publication's body as it is.
    Newest,
    /// presence_reginfo: the newest publication (or all merged, `aggregate_presentities`)
    /// with the watcher's version ([`reginfo`]).
    Reginfo,
}

/// An event package a module handles (presence_xml's, presence_dialoginfo's,
/// presence_mwi's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDef {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: BodyKind,
    /// New watchers need authorization.
    pub req_auth: bool,
}

impl EventDef {
    fn winfo(&self) -> bool {
        self.body == BodyKind::Winfo
    }

    /// Whether a PUBLISH body must be XML (a 415 otherwise).
    fn xml(&self) -> bool {
        matches!(
            self.body,
            BodyKind::Pidf | BodyKind::DialogInfo | BodyKind::Reginfo
        )
    }
}

/// presence_dialoginfo's event (RFC 4235): anyone may watch, as in OpenSIPS.
const DIALOG_EVENT: EventDef = EventDef {
    name: "dialog",
    content_type: "application/dialog-info+xml",
    body: BodyKind::DialogInfo,
    req_auth: false,
};

/// presence_reginfo's event (RFC 3680).
const REG_EVENT: EventDef = EventDef {
    name: "reg",
    content_type: "application/reginfo+xml",
    body: BodyKind::Reginfo,
    req_auth: false,
};

/// presence_mwi's event (RFC 3842).
const MWI_EVENT: EventDef = EventDef {
    name: "message-summary",
    content_type: "application/simple-message-summary",
    body: BodyKind::Newest,
    req_auth: false,
};

/// presence_xml's events, newest registration first (the order of `Allow-Events`).
const XML_EVENTS: [EventDef; 2] = [
    EventDef {
        name: "presence.winfo",
        content_type: "application/watcherinfo+xml",
        body: BodyKind::Winfo,
        req_auth: false,
    },
    EventDef {
        name: "presence",
        content_type: "application/pidf+xml",
        body: BodyKind::Pidf,
        req_auth: true,
    },
];

/// Every event lasts this long when the request says nothing (OpenSIPS' default for them).
const DEFAULT_EXPIRES: u32 = 3600;

/// Where presence_xml reads pres-rules documents (`integrated_xcap_server`).
struct Xcap {
    db: std::sync::Arc<dyn db::Connection>,
    table: String,
}

impl Xcap {
    /// The pres-rules document of a presentity (`doc_type` 2), if it has one.
    fn rules(&self, user: &str, domain: &str) -> Result<Option<String>, String> {
        let rows = self
            .db
            .query(
                &self.table,
                &["doc"],
                &[
                    ("username", db::Value::Str(user.to_owned())),
                    ("domain", db::Value::Str(domain.to_owned())),
                    ("doc_type", db::Value::Int(2)),
                ],
            )
            .map_err(|e| format!("xcap: cannot read {}: {e}", self.table))?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(db::Value::as_text)
            .filter(|d| !d.trim().is_empty()))
    }
}

struct Config {
    tables: Tables,
    /// Set when new watchers are authorized by pres-rules (`force_active` 0).
    xcap: Option<Xcap>,
    expires_offset: i64,
    max_expires_subscribe: u32,
    max_expires_publish: u32,
    contact_user: String,
    fallback2db: bool,
    notify_offline_body: bool,
    end_sub_on_timeout: bool,
    clean_period: i64,
    db_update_period: i64,
    force_active: bool,
    generate_offline_body: bool,
    /// presence_dialoginfo's `force_single_dialog`.
    single_dialog: bool,
    /// presence_reginfo's `aggregate_presentities` and `default_expires`.
    reginfo_aggregate: bool,
    reginfo_expires: u32,
    events: Vec<EventDef>,
    started: i64,
    etags: AtomicU64,
    /// Seconds since start when each timer last ran.
    last_clean: AtomicU64,
    last_update: AtomicU64,
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn config() -> Option<&'static Config> {
    CONFIG.get()
}

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

impl Config {
    fn event(&self, name: &str) -> Option<EventDef> {
        self.events
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .copied()
    }

    fn allow_events(&self) -> String {
        self.events
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A new entity tag: `a.<start>.<pid>.<counter>.<count>`.
    fn etag(&self, count: u32) -> String {
        format!(
            "a.{}.{}.{}.{count}",
            self.started,
            std::process::id(),
            self.etags.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The events the loaded modules register, newest registration first (presence_xml's,
/// presence_mwi's, presence_dialoginfo's, in the order of their `loadmodule` lines).
fn events(script: &Script) -> Vec<EventDef> {
    let mut modules: Vec<(usize, &[EventDef])> = Vec::new();
    for (module, events) in [
        ("presence_xml", &XML_EVENTS[..]),
        ("presence_mwi", &[MWI_EVENT][..]),
        ("presence_dialoginfo", &[DIALOG_EVENT][..]),
        ("presence_reginfo", &[REG_EVENT][..]),
    ] {
        if let Some(at) = script.load_position(module) {
            modules.push((at, events));
        }
    }
    modules.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    modules
        .into_iter()
        .flat_map(|(_, e)| e.iter().copied())
        .collect()
}

/// Reads the parameters and the tables when the script loads presence.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("presence") {
        for m in [
            "presence_xml",
            "presence_dialoginfo",
            "presence_mwi",
            "presence_reginfo",
        ] {
            if script.loads(m) {
                return Err(format!("{m} needs the presence module"));
            }
        }
        return Ok(());
    }
    let int = |m: &str, n: &str, d: i64| script.modparam_int(m, n).unwrap_or(d);
    let text =
        |m: &str, n: &str, d: &str| script.modparam_str(m, n).unwrap_or_else(|| d.to_owned());
    for (param, what) in [
        ("enable_sphere_check", "sphere checks"),
        ("mix_dialog_presence", "mixing dialog state into presence"),
        ("cluster_id", "clustering"),
    ] {
        if int("presence", param, 0) != 0 {
            return Err(format!(
                "presence: {param} ({what}) is not supported by rsips yet"
            ));
        }
    }
    for needed in ["tm", "signaling"] {
        if !script.loads(needed) {
            return Err(format!(
                "presence needs the {needed} module (its replies and NOTIFYs go through it)"
            ));
        }
    }
    let url = script.modparam_str("presence", "db_url").ok_or(
        "presence: db_url is not set: rsips' presence server keeps its tables in a database",
    )?;
    let db = db::open_for("presence", &url, |m| script.loads(m), options)?;
    let tables = Tables {
        db,
        presentity: text("presence", "presentity_table", "presentity"),
        active_watchers: text("presence", "active_watchers_table", "active_watchers"),
        watchers: text("presence", "watchers_table", "watchers"),
    };
    for (table, version) in [
        (&tables.presentity, 5),
        (&tables.active_watchers, 12),
        (&tables.watchers, 4),
    ] {
        db::check_version(tables.db.as_ref(), table, version)
            .map_err(|e| format!("presence: {e}"))?;
    }
    let force_active = int("presence_xml", "force_active", 0) != 0;
    let mut xcap = None;
    if script.loads("xcap") {
        let xurl = script
            .modparam_str("xcap", "db_url")
            .or_else(|| script.global_text("db_default_url").map(str::to_owned))
            .ok_or("xcap: db_url is not set")?;
        let xdb = db::open_for("xcap", &xurl, |m| script.loads(m), options)?;
        let table = text("xcap", "xcap_table", "xcap");
        db::check_version(xdb.as_ref(), &table, 4).map_err(|e| format!("xcap: {e}"))?;
        if !force_active && int("xcap", "integrated_xcap_server", 0) != 0 {
            xcap = Some(Xcap { db: xdb, table });
        }
    }
    if script.loads("presence_xml") {
        if !script.loads("xcap") {
            return Err("presence_xml needs the xcap module".into());
        }
        if int("presence_xml", "pidf_manipulation", 0) != 0 {
            return Err("presence_xml: pidf_manipulation is not supported by rsips yet".into());
        }
        if !force_active && int("xcap", "integrated_xcap_server", 0) == 0 {
            return Err(
                "presence_xml: with force_active 0 it reads pres-rules from an XCAP server \
                 (xcap_client), which rsips does not have; set force_active 1, or \
                 integrated_xcap_server 1 to read them from the xcap table"
                    .into(),
            );
        }
    }
    let positive = |n: &str| {
        let v = int("presence", n, 3600);
        u32::try_from(if v <= 0 { 3600 } else { v }).unwrap_or(3600)
    };
    let now = now();
    let cfg = Config {
        expires_offset: int("presence", "expires_offset", 0).max(0),
        max_expires_subscribe: positive("max_expires_subscribe"),
        max_expires_publish: positive("max_expires_publish"),
        contact_user: text("presence", "contact_user", "presence"),
        fallback2db: int("presence", "fallback2db", 0) != 0,
        notify_offline_body: int("presence", "notify_offline_body", 0) != 0,
        end_sub_on_timeout: int("presence", "end_sub_on_timeout", 1) != 0,
        clean_period: int("presence", "clean_period", 100),
        db_update_period: int("presence", "db_update_period", 100),
        force_active,
        xcap,
        generate_offline_body: int("presence_xml", "generate_offline_body", 1) != 0,
        single_dialog: int("presence_dialoginfo", "force_single_dialog", 0) != 0,
        reginfo_aggregate: int("presence_reginfo", "aggregate_presentities", 0) != 0,
        reginfo_expires: u32::try_from(int("presence_reginfo", "default_expires", 3600))
            .ok()
            .filter(|e| *e > 0)
            .unwrap_or(3600),
        events: events(script),
        started: now,
        etags: AtomicU64::new(0),
        last_clean: AtomicU64::new(0),
        last_update: AtomicU64::new(0),
        tables,
    };
    let presentities = cfg.tables.load_presentities(now)?;
    let subs = cfg.tables.load_subs(now, cfg.fallback2db)?;
    // OpenSIPS starts with an empty watchers table.
    cfg.tables
        .db
        .delete(&cfg.tables.watchers, &[])
        .map_err(|e| format!("presence: cannot clear {}: {e}", cfg.tables.watchers))?;
    *state() = Some(State {
        presentities,
        subs,
        gone: Vec::new(),
        gone_publications: Vec::new(),
    });
    let _ = CONFIG.set(cfg);
    Ok(())
}

/// Hands the module the server's sender: NOTIFYs can go out from now on.
pub fn serve(sender: Box<dyn Sender>) {
    notify::set_sender(sender);
}

/// The server's one-second tick: expired publications (every `clean_period`) and
/// subscriptions with the database update (every `db_update_period`).
pub fn tick() {
    let Some(cfg) = config() else { return };
    let up = u64::try_from(now() - cfg.started).unwrap_or(0);
    let due = |last: &AtomicU64, period: i64| {
        period > 0 && up >= last.load(Ordering::Relaxed) + u64::try_from(period).unwrap_or(u64::MAX)
    };
    if due(&cfg.last_clean, cfg.clean_period) {
        cfg.last_clean.store(up, Ordering::Relaxed);
        handlers::clean_publications(cfg);
    }
    if due(&cfg.last_update, cfg.db_update_period) {
        cfg.last_update.store(up, Ordering::Relaxed);
        handlers::expire_subscriptions(cfg);
        sync(cfg);
    }
}

/// Writes the subscriptions' changes to the database.
fn sync(cfg: &Config) {
    let mut guard = state();
    if let Some(st) = guard.as_mut() {
        st.persist(&cfg.tables);
        let State { subs, gone, .. } = st;
        cfg.tables.sync_subs(subs, gone);
    }
}

/// At shutdown: the subscriptions are written so that a restart finds them.
pub fn flush() {
    if let Some(cfg) = config() {
        sync(cfg);
    }
}

fn mi_err(code: i64, text: &str) -> MiError {
    MiError::new(code, text)
}

/// OpenSIPS' numeric event codes, as `phtable_list` prints them.
fn event_code(name: &str) -> i64 {
    match name {
        "presence" => 1,
        "presence.winfo" => 2,
        "dialog" => 5,
        "message-summary" => 6,
        "reg" => 12,
        _ => 0,
    }
}

/// MI `presence:refresh_watchers`, `cleanup`, `phtable_list`, `subs_phtable_list`, `expose`.
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "presence:refresh_watchers",
        &[],
        &[&["presentity_uri", "event", "refresh_type"]],
        |p| {
            let cfg = config().ok_or_else(|| mi_err(500, "Internal error"))?;
            let uri = p.str("presentity_uri")?.unwrap_or_default();
            if uri.trim().is_empty() {
                return Err(mi_err(404, "Empty presentity URI"));
            }
            let event = p.str("event")?.unwrap_or_default();
            if event.trim().is_empty() {
                return Err(mi_err(400, "Empty event parameter"));
            }
            let ev = cfg
                .event(event.trim())
                .ok_or_else(|| mi_err(400, "Wrong event parameter"))?;
            let kind = p.int("refresh_type")?.unwrap_or(0);
            if kind == 0 {
                handlers::reauthorize(cfg, uri.trim(), &ev).map_err(|e| {
                    log::error!("presence: refresh_watchers: {e}");
                    mi_err(500, "Failed to refresh watchers").with_data(e)
                })?;
            } else {
                handlers::notify_watchers(cfg, uri.trim(), &ev, None, None);
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new("presence:cleanup", &[], &[&[]], |_| {
        let cfg = config().ok_or_else(|| mi_err(500, "Internal error"))?;
        handlers::clean_publications(cfg);
        handlers::expire_subscriptions(cfg);
        sync(cfg);
        Ok(json!("OK"))
    }));
    mi.add(Command::new(
        "presence:phtable_list",
        &["pres_phtable_list"],
        &[&[]],
        |_| {
            let guard = state();
            let st = guard
                .as_ref()
                .ok_or_else(|| mi_err(500, "Internal error"))?;
            let mut out = Vec::new();
            let mut keys: Vec<_> = st.presentities.keys().collect();
            keys.sort();
            for key in keys {
                for p in st.presentities.get(key).into_iter().flatten() {
                    out.push(json!({
                        "pres_uri": handlers::uri_of(&key.0, &key.1),
                        "event": event_code(&key.2),
                        "etag_count": p.etag_count,
                        "etag": p.etag,
                    }));
                }
            }
            Ok(serde_json::Value::Array(out))
        },
    ));
    mi.add(Command::new(
        "presence:subs_phtable_list",
        &["subs_phtable_list"],
        &[&[], &["from", "to"]],
        |p| {
            let from = p.str("from")?;
            let to = p.str("to")?;
            let guard = state();
            let st = guard
                .as_ref()
                .ok_or_else(|| mi_err(500, "Internal error"))?;
            let matches = |pattern: &Option<String>, uri: &str| {
                pattern
                    .as_deref()
                    .is_none_or(|pat| engine::fnmatch(pat, uri))
            };
            let out: Vec<serde_json::Value> = st
                .subs
                .iter()
                .filter(|s| matches(&from, &s.watcher_uri()) && matches(&to, &s.pres_uri))
                .map(|s| {
                    json!({
                        "pres_uri": s.pres_uri,
                        "event": s.event,
                        "expires": engine::pv::time::strftime(s.expires, "%Y-%m-%d %H:%M:%S"),
                        "db_flag": s.db as i64,
                        "version": s.version,
                        "to_user": s.to_user,
                        "to_domain": s.to_domain,
                        "to_tag": s.to_tag,
                        "from_user": s.watcher_user,
                        "from_domain": s.watcher_domain,
                        "from_tag": s.from_tag,
                        "contact": s.contact,
                        "callid": s.callid,
                        "local_cseq": s.local_cseq,
                        "remote_cseq": s.remote_cseq,
                    })
                })
                .collect();
            Ok(serde_json::Value::Array(out))
        },
    ));
    mi.add(Command::new(
        "presence:expose",
        &["pres_expose"],
        &[&["event"], &["event", "filter"]],
        |p| {
            let cfg = config().ok_or_else(|| mi_err(500, "Internal error"))?;
            let event = p.str("event")?.unwrap_or_default();
            if event.trim().is_empty() {
                return Err(mi_err(404, "Invalid event"));
            }
            let ev = cfg
                .event(event.trim())
                .ok_or_else(|| mi_err(404, "unknown event"))?;
            let filter = match p.str("filter")? {
                Some(f) => Some(regex::Regex::new(&f).map_err(|_| mi_err(400, "Invalid filter"))?),
                None => None,
            };
            handlers::expose(ev.name, filter.as_ref());
            Ok(json!("OK"))
        },
    ));
}

/// `Value` of a text, for event parameters.
fn v(s: &str) -> Value {
    Value::from(s.to_owned())
}

/// Sends what a reply pushed into the message's outbox now (a stateless reply leaves after
/// the script otherwise, and the NOTIFY that follows it must not overtake it).
fn flush_outbox(ctx: &mut MsgCtx, from: usize) {
    if from >= ctx.outbox.len() {
        return;
    }
    let Some(tm) = tm::global() else { return };
    for out in ctx.outbox.drain(from..) {
        tm.send_out(out);
    }
}
