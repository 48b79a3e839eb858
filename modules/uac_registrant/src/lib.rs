//! The OpenSIPS `uac_registrant` module: rsips registering itself at upstream registrars
//! (a carrier's, a PBX's) from the `registrant` table (version 3), keeping each registration
//! fresh, answering digest challenges with the row's credentials, following `423 Interval Too
//! Brief`, retrying failures, and unregistering a record MI disables. MI
//! `uac_registrant:list`/`reload`/`enable`/`disable`/`force_register` (aliases `reg_*`);
//! each state entered raises its `E_REGISTRANT_*` event.
//!
//! Unlike OpenSIPS, the first REGISTERs go out when the server starts (OpenSIPS waits for the
//! timer to reach each record's hash bucket, up to `timer_interval`), records are checked every
//! second rather than bucket by bucket (the refresh and retry times are OpenSIPS'), and the next
//! hop is looked up for every request.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use db::{Connection, Value as DbValue};
use engine::{ModuleSpec, MsgCtx, ParamType, Script, Value};

pub mod mi;
pub mod record;

use record::{Config, Record, State, Timing};

/// The version of the `registrant` table (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 3;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "uac_registrant",
    functions: &[],
    params: &[
        ("hash_size", ParamType::Int),
        ("default_expires", ParamType::Int),
        ("timer_interval", ParamType::Int),
        ("failure_retry_interval", ParamType::Int),
        ("reregister_expiry_percentage", ParamType::Int),
        ("enable_clustering", ParamType::Int),
        ("db_url", ParamType::Str),
        ("table_name", ParamType::Str),
        ("registrar_column", ParamType::Str),
        ("proxy_column", ParamType::Str),
        ("aor_column", ParamType::Str),
        ("third_party_registrant_column", ParamType::Str),
        ("username_column", ParamType::Str),
        ("password_column", ParamType::Str),
        ("binding_URI_column", ParamType::Str),
        ("binding_params_column", ParamType::Str),
        ("expiry_column", ParamType::Str),
        ("forced_socket_column", ParamType::Str),
        ("cluster_shtag_column", ParamType::Str),
        ("state_column", ParamType::Str),
    ],
};

/// What the final reply to a REGISTER was: its code and the reply (none for tm's own 408).
pub type Done = Box<dyn FnOnce(u16, Option<sip::SipMessage>) + Send>;

/// Sends a request rsips builds (the server runs `local_route`, then tm).
pub trait Sender: Send + Sync {
    fn send(&self, ctx: MsgCtx, done: Done) -> Result<(), String>;
}

pub(crate) struct Registrant {
    db: Arc<dyn Connection>,
    table: String,
    /// The column names, in [`COLUMNS`] order.
    columns: Vec<String>,
    pub timing: Timing,
    records: Mutex<Vec<Record>>,
    sender: OnceLock<Box<dyn Sender>>,
}

const COLUMNS: [(&str, &str); 12] = [
    ("registrar_column", "registrar"),
    ("proxy_column", "proxy"),
    ("aor_column", "aor"),
    ("third_party_registrant_column", "third_party_registrant"),
    ("username_column", "username"),
    ("password_column", "password"),
    ("binding_URI_column", "binding_URI"),
    ("binding_params_column", "binding_params"),
    ("expiry_column", "expiry"),
    ("forced_socket_column", "forced_socket"),
    ("cluster_shtag_column", "cluster_shtag"),
    ("state_column", "state"),
];

fn module() -> &'static OnceLock<Registrant> {
    static MODULE_STATE: OnceLock<Registrant> = OnceLock::new();
    &MODULE_STATE
}

pub(crate) fn get() -> Option<&'static Registrant> {
    module().get()
}

impl Registrant {
    pub(crate) fn records(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A new Call-ID and From tag for a record.
fn ids(aor: &str) -> (String, String) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{aor}{}{}{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let hex = sip::digest::ha1(sip::digest::Algorithm::Md5, &seed, "", "");
    (hex[..27].to_owned(), hex[27..].to_owned())
}

/// Opens the table, checks its version and loads it (a bad `timer_interval` or an unreadable
/// table stops the start; unusable rows are logged and skipped).
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("uac_registrant") {
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("uac_registrant", n).unwrap_or(d);
    let str_param = |n: &str, d: &str| {
        script
            .modparam_str("uac_registrant", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let timer_interval = int("timer_interval", 100);
    if timer_interval < 10 {
        return Err(format!(
            "uac_registrant: timer_interval must be at least 10, not {timer_interval}"
        ));
    }
    let percentage = int("reregister_expiry_percentage", 100);
    if !(1..=100).contains(&percentage) {
        return Err("uac_registrant: reregister_expiry_percentage must be 1..100".into());
    }
    let url = script
        .modparam_str("uac_registrant", "db_url")
        .or_else(|| script.global_str("db_default_url"))
        .unwrap_or_else(|| "mysql://opensips:opensipsrw@localhost/opensips".into());
    let db = db::open_for("uac_registrant", &url, |m| script.loads(m), options)?;
    let table = str_param("table_name", "registrant");
    db::check_version(db.as_ref(), &table, TABLE_VERSION)
        .map_err(|e| format!("uac_registrant: {e}"))?;
    let r = Registrant {
        db,
        table,
        columns: COLUMNS.iter().map(|(p, d)| str_param(p, d)).collect(),
        timing: Timing {
            timer_interval,
            retry_interval: int("failure_retry_interval", 0).max(0),
            percentage,
        },
        records: Mutex::new(Vec::new()),
        sender: OnceLock::new(),
    };
    let loaded = r.load(script)?;
    *r.records() = loaded;
    let _ = module().set(r);
    Ok(())
}

/// The server's sender: the registrations start (the server calls [`tick`] every second).
pub fn serve(sender: Box<dyn Sender>) {
    if let Some(r) = get() {
        let _ = r.sender.set(sender);
        tick();
    }
}

impl Registrant {
    /// Every usable row of the table.
    pub(crate) fn load(&self, script: &Script) -> Result<Vec<Record>, String> {
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.table, &cols, &[])
            .map_err(|e| format!("uac_registrant: {e}"))?;
        let mut out = Vec::new();
        for row in rows {
            match config(&row, script, self.timing.timer_interval) {
                Ok(cfg) => {
                    let ids = ids(&cfg.aor);
                    out.push(Record::new(cfg, ids));
                }
                Err(e) => log::error!("skipping a registrant row: {e}"),
            }
        }
        Ok(out)
    }

    /// Writes the enabled state of a record back to the table (a failure is only logged).
    pub(crate) fn store_state(&self, key: (&str, &str, &str), enabled: bool) {
        let filter = [
            (self.columns[2].as_str(), DbValue::Str(key.0.to_owned())),
            (self.columns[6].as_str(), DbValue::Str(key.1.to_owned())),
            (self.columns[0].as_str(), DbValue::Str(key.2.to_owned())),
        ];
        let set = [(self.columns[11].as_str(), DbValue::Int(i64::from(!enabled)))];
        if let Err(e) = self.db.update(&self.table, &filter, &set) {
            log::error!("cannot store the registrant's state: {e}");
        }
    }
}

/// A row as a record's configuration; `Err` says why it cannot be one.
fn config(row: &[DbValue], script: &Script, timer_interval: i64) -> Result<Config, String> {
    let text = |i: usize| {
        row.get(i)
            .and_then(DbValue::as_text)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let uri = |i: usize, what: &str, user_allowed: bool| -> Result<Option<String>, String> {
        let Some(t) = text(i) else { return Ok(None) };
        let u = sip::Uri::parse(&t).map_err(|_| format!("bad {what} URI `{t}`"))?;
        if !user_allowed && u.user().is_some() {
            return Err(format!("the {what} URI `{t}` has a user part"));
        }
        Ok(Some(t))
    };
    let registrar = uri(0, "registrar", false)?.ok_or("no registrar")?;
    let aor = uri(2, "aor", true)?.ok_or("no aor")?;
    let binding = uri(6, "binding", true)?.ok_or("no binding_URI")?;
    let expiry = row.get(8).and_then(DbValue::as_int).unwrap_or(0);
    if expiry <= timer_interval {
        return Err(format!(
            "expiry {expiry} of {aor} is not above timer_interval ({timer_interval}): please decrease timer_interval"
        ));
    }
    let binding_params = text(7).unwrap_or_default();
    if !binding_params.is_empty() && !binding_params.starts_with(';') {
        return Err(format!(
            "binding_params `{binding_params}` must start with `;`"
        ));
    }
    let socket = text(9);
    if let Some(s) = &socket
        && !script.has_socket(&s.to_ascii_lowercase())
    {
        return Err(format!("forced_socket `{s}` is not a configured socket"));
    }
    Ok(Config {
        registrar,
        proxy: uri(1, "proxy", false)?,
        aor,
        third_party: uri(3, "third_party_registrant", true)?,
        username: text(4),
        password: text(5),
        binding,
        binding_params,
        expiry: u32::try_from(expiry).unwrap_or(u32::MAX),
        socket: socket.map(|s| s.to_ascii_lowercase()),
        enabled: row.get(11).and_then(DbValue::as_int).unwrap_or(0) == 0,
    })
}

/// The REGISTER of a record, ready for tm.
fn request(r: &Record, send: &record::Send) -> Result<MsgCtx, String> {
    let c = &r.cfg;
    let mut headers = format!(
        "To: <{aor}>\r\nFrom: <{from}>;tag={tag}\r\nCSeq: {cseq} REGISTER\r\nCall-ID: {cid}\r\n\
         Max-Forwards: 70\r\nContact: <{binding}>{params};expires={exp}\r\n",
        aor = c.aor,
        from = c.third_party.as_deref().unwrap_or(&c.aor),
        tag = r.from_tag,
        cseq = r.cseq,
        cid = r.call_id,
        binding = c.binding,
        params = c.binding_params,
        exp = send.expires,
    );
    if let Some((name, value)) = &send.auth {
        headers.push_str(&format!("{name}: {value}\r\n"));
    }
    let msg = tm::build_request("REGISTER", &c.registrar, &headers, None)?;
    let mut ctx = MsgCtx::new(msg);
    ctx.dst_uri = c.proxy.clone();
    ctx.send_socket = c.socket.clone();
    Ok(ctx)
}

/// An event waiting for the records' lock to be released.
type Pending = (&'static str, Vec<(Option<String>, Value)>);

thread_local! {
    static PENDING: std::cell::RefCell<Vec<Pending>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes the event of the state a record entered; [`raise_pending`] raises it once the lock
/// is released (an event_route may take its time, or look at the records).
fn announce(r: &Record) {
    if let Some(event) = r.state.event() {
        let params = vec![
            (Some("aor".into()), Value::from(r.cfg.aor.clone())),
            (Some("contact".into()), Value::from(r.cfg.binding.clone())),
            (
                Some("registrar".into()),
                Value::from(r.cfg.registrar.clone()),
            ),
        ];
        PENDING.with(|p| p.borrow_mut().push((event, params)));
    }
}

/// Raises the events noted while the records were locked.
pub(crate) fn raise_pending() {
    let events = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (event, params) in events {
        engine::hooks::raise_event(event, params);
    }
}

/// Sends what a record needs (its lock released); a failure to send moves it to
/// INTERNAL_ERROR.
fn dispatch(r: &'static Registrant, key: (String, String, String), ctx: MsgCtx) {
    let Some(sender) = r.sender.get() else {
        return;
    };
    let call_id = ctx.msg.call_id().map(str::to_owned).unwrap_or_default();
    let done_key = key.clone();
    let result = sender.send(
        ctx,
        Box::new(move |code, reply| on_reply(r, &done_key, &call_id, code, reply.as_ref())),
    );
    if let Err(e) = result {
        log::error!("cannot send the REGISTER for {}: {e}", key.0);
        let mut records = r.records();
        if let Some(rec) = records.iter_mut().find(|x| same(x, &key)) {
            rec.send_failed(unix_now(), &r.timing);
            announce(rec);
        }
    }
    raise_pending();
}

fn same(r: &Record, key: &(String, String, String)) -> bool {
    let (a, b, c) = r.key();
    a == key.0 && b == key.1 && c == key.2
}

fn key_of(r: &Record) -> (String, String, String) {
    let (a, b, c) = r.key();
    (a.to_owned(), b.to_owned(), c.to_owned())
}

/// Checks every record: the ones due send now.
pub fn tick() {
    let Some(r) = get() else { return };
    if r.sender.get().is_none() {
        return;
    }
    let now = unix_now();
    let mut out = Vec::new();
    {
        let mut records = r.records();
        for rec in records.iter_mut() {
            let aor = rec.cfg.aor.clone();
            if let Some(send) = rec.due(now, &r.timing, || ids(&aor)) {
                announce(rec);
                match request(rec, &send) {
                    Ok(ctx) => out.push((key_of(rec), ctx)),
                    Err(e) => {
                        log::error!("cannot build the REGISTER for {aor}: {e}");
                        rec.send_failed(now, &r.timing);
                    }
                }
            }
        }
    }
    raise_pending();
    for (key, ctx) in out {
        dispatch(r, key, ctx);
    }
}

/// The expiry a 200 grants our binding: its Contact's `expires`, else the Expires header.
fn granted(reply: &sip::SipMessage, binding: &str) -> Option<u32> {
    let ours = sip::Uri::parse(binding).ok()?;
    let from_contact = match reply.contacts() {
        Ok(sip::headers::Contacts::List(list)) => list
            .iter()
            .find(|c| c.uri().equivalent(&ours))
            .and_then(|c| c.expires()),
        _ => None,
    };
    from_contact
        .filter(|e| *e > 0)
        .or_else(|| reply.expires().ok().flatten())
}

fn on_reply(
    r: &'static Registrant,
    key: &(String, String, String),
    call_id: &str,
    code: u16,
    reply: Option<&sip::SipMessage>,
) {
    let now = unix_now();
    let next = {
        let mut records = r.records();
        let Some(rec) = records
            .iter_mut()
            .find(|x| same(x, key) && x.call_id == call_id)
        else {
            log::error!("reply {code} for a registrant that is gone: {}", key.0);
            return;
        };
        let granted = reply.and_then(|m| granted(m, &rec.cfg.binding));
        let min_expires = reply
            .and_then(|m| m.header_str("Min-Expires"))
            .and_then(|v| v.trim().parse().ok());
        let challenge = reply.map(|m| challenge_values(m, code)).unwrap_or_default();
        let cseq_method = "REGISTER";
        let local = reply.is_none();
        let code = if local && code != 408 { 500 } else { code };
        let send = rec.reply(code, now, &r.timing, granted, min_expires, |cfg| {
            answer(cfg, &challenge, code, cseq_method)
        });
        announce(rec);
        match send {
            Some(s) => match request(rec, &s) {
                Ok(ctx) => Some(ctx),
                Err(e) => {
                    log::error!("cannot build the REGISTER for {}: {e}", key.0);
                    rec.send_failed(now, &r.timing);
                    None
                }
            },
            None => None,
        }
    };
    raise_pending();
    if let Some(ctx) = next {
        dispatch(r, key.clone(), ctx);
    }
}

fn challenge_values(m: &sip::SipMessage, code: u16) -> Vec<String> {
    let name = match code {
        401 => sip::HeaderName::WwwAuthenticate,
        _ => sip::HeaderName::ProxyAuthenticate,
    };
    m.headers()
        .filter(|h| h.name == name)
        .map(|h| h.value.to_owned())
        .collect()
}

/// The Authorization (401) or Proxy-Authorization (407) answering the reply's challenge with
/// the record's credentials (the digest URI is the registrar's), as `uac_auth` answers.
fn answer(
    cfg: &Config,
    challenges: &[String],
    code: u16,
    method: &str,
) -> Option<(String, String)> {
    let (user, password) = (cfg.username.clone()?, cfg.password.clone()?);
    let req = uac::auth::Request {
        method,
        uri: &cfg.registrar,
        body: b"",
    };
    match uac::auth::authorization(code, challenges, &[], &req, |_| Some((user, password))) {
        Ok((name, value)) => Some((name.to_owned(), value)),
        Err(e) => {
            log::error!("cannot answer the challenge for {}: {e}", cfg.aor);
            None
        }
    }
}

/// The events the module raises, for `evi:list`.
pub const EVENTS: &[&str] = &[
    "E_REGISTRANT_REGISTERING",
    "E_REGISTRANT_AUTHENTICATING",
    "E_REGISTRANT_REGISTERED",
    "E_REGISTRANT_REGISTER_TIMEOUT",
    "E_REGISTRANT_INTERNAL_ERROR",
    "E_REGISTRANT_WRONG_CREDENTIALS",
    "E_REGISTRANT_REGISTRAR_ERROR",
    "E_REGISTRANT_UNREGISTERING",
    "E_REGISTRANT_AUTHENTICATING_UNREGISTER",
];

/// The unREGISTER of a registered record, to send now (MI disable).
pub(crate) fn unregister_now(rec: &mut Record) -> Option<MsgCtx> {
    if rec.state != State::Registered {
        return None;
    }
    rec.state = State::Unregistering;
    rec.cseq += 1;
    announce(rec);
    let send = record::Send {
        expires: 0,
        auth: None,
    };
    request(rec, &send)
        .map_err(|e| log::error!("cannot build the unREGISTER: {e}"))
        .ok()
}

/// The REGISTER of a record that is not registered, to send now (MI enable).
pub(crate) fn register_now(r: &Registrant, rec: &mut Record) -> Option<MsgCtx> {
    let aor = rec.cfg.aor.clone();
    let send = rec.due(unix_now(), &r.timing, || ids(&aor))?;
    announce(rec);
    request(rec, &send).ok()
}

/// Sends a request built for a record (its lock released).
pub(crate) fn send_now(r: &'static Registrant, key: (String, String, String), ctx: MsgCtx) {
    dispatch(r, key, ctx);
}

pub(crate) fn record_key(r: &Record) -> (String, String, String) {
    key_of(r)
}
