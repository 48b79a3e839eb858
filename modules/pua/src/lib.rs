//! The OpenSIPS `pua` module, a presence user agent for the PUBLISHes rsips sends itself, and
//! `pua_dialoginfo`, which publishes the state of the calls the script marks (BLF).
//!
//! pua keeps one record per publication (presentity, id, event): the first PUBLISH has no
//! entity tag, the next ones carry the tag the server gave (`SIP-If-Match`); a publication
//! waiting for its reply queues the next change; a 412 starts the publication over; one
//! whose time is up is refreshed (without a body) while its owner wants it, or ended
//! (`Expires: 0`). The records live in the `pua` table (version 9) across restarts.
//!
//! Not here: pua's SUBSCRIBE side (pua_reginfo, pua_usrloc, pua_bla, pua_xmpp) and its
//! clustering (`cluster_id`, refused at start).
#![forbid(unsafe_code)]

pub mod dialoginfo;
pub mod usrloc;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use db::{Connection, Value as DbValue};
use engine::{ModuleSpec, MsgCtx, ParamType, Script};

pub static PUA: ModuleSpec = ModuleSpec {
    name: "pua",
    functions: &[],
    params: &[
        ("hash_size", ParamType::Int),
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("min_expires", ParamType::Int),
        ("default_expires", ParamType::Int),
        ("update_period", ParamType::Int),
        ("cluster_id", ParamType::Int),
        ("cluster_sharing_tag", ParamType::Str),
    ],
};

/// The version of the `pua` table this module reads and writes.
const TABLE_VERSION: i64 = 9;

/// An event pua publishes, with OpenSIPS' bit for it in the `event` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bit: i64,
}

/// pua_usrloc's event.
pub const PRESENCE: Event = Event {
    name: "presence",
    content_type: "application/pidf+xml",
    bit: 1,
};

/// pua_dialoginfo's event.
pub const DIALOG: Event = Event {
    name: "dialog",
    content_type: "application/dialog-info+xml",
    bit: 1 << 6,
};

const EVENTS: [Event; 2] = [PRESENCE, DIALOG];

/// Who asks for a publication (OpenSIPS' source flags): `UL_PUBLISH`, `DIALOG_PUBLISH`.
pub const UL_PUBLISH: i64 = 1;
pub const DIALOG_PUBLISH: i64 = 1 << 10;

/// One change of a publication, as a module hands it to pua.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publ {
    pub pres_uri: String,
    pub id: String,
    pub event: Event,
    pub source: i64,
    pub body: Option<String>,
    /// Seconds it should last; 0 ends it; below 0: `default_expires`.
    pub expires: i64,
    /// Where the PUBLISH goes instead of the presentity's domain.
    pub outbound_proxy: Option<String>,
}

/// What became of a [`Publ`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The publication waits for the reply to its last PUBLISH: this change goes next.
    Queued,
    /// An end for a publication pua does not have: nothing to send.
    NoRecord,
    /// A refresh (no body) for a publication pua does not have: it needs a body to start.
    NoBody,
}

/// The final reply to a PUBLISH: its code and the reply (none for tm's own 408).
pub type Done = Box<dyn FnOnce(u16, Option<sip::SipMessage>) + Send>;

/// Sends a request rsips builds (the server runs `local_route`, then tm).
pub trait Sender: Send + Sync {
    fn send(&self, ctx: MsgCtx, done: Done) -> Result<(), String>;
}

#[derive(Debug, Clone)]
struct Record {
    pres_uri: String,
    id: String,
    event: Event,
    source: i64,
    etag: Option<String>,
    /// When the server's grant runs out (unix seconds).
    expires: i64,
    /// Until when its owner wants it.
    desired_expires: i64,
    version: u32,
    waiting: bool,
    pending: VecDeque<Publ>,
    outbound_proxy: Option<String>,
    /// The last body sent, to start over after a 412.
    body: Option<String>,
    /// Tells the replies of this record from those of an earlier one with the same key.
    serial: u64,
}

impl Record {
    fn is(&self, p: &Publ) -> bool {
        self.pres_uri == p.pres_uri
            && self.id == p.id
            && self.event == p.event
            && self.source == p.source
    }
}

struct Pua {
    db: Arc<dyn Connection>,
    table: String,
    min_expires: i64,
    default_expires: i64,
    update_period: i64,
    records: Mutex<Vec<Record>>,
    sender: OnceLock<Box<dyn Sender>>,
    serials: AtomicU64,
    /// The records changed since the table was last written.
    dirty: AtomicBool,
    last_write: AtomicI64,
}

static PUA_STATE: OnceLock<Pua> = OnceLock::new();

impl Pua {
    fn records(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serial(&self) -> u64 {
        self.serials.fetch_add(1, Ordering::Relaxed)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Reads the parameters and the `pua` table when the script loads pua.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("pua") {
        for m in ["pua_dialoginfo", "pua_usrloc"] {
            if script.loads(m) {
                return Err(format!("{m} needs the pua module"));
            }
        }
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("pua", n).unwrap_or(d);
    if int("cluster_id", 0) != 0 {
        return Err("pua: cluster_id (clustering) is not supported by rsips yet".into());
    }
    if !script.loads("tm") {
        return Err("pua needs the tm module (its PUBLISHes go through it)".into());
    }
    let dialog_proxy = dialoginfo::start(script)?;
    let url = script
        .modparam_str("pua", "db_url")
        .or_else(|| script.global_text("db_default_url").map(str::to_owned))
        .ok_or("pua: db_url is not set: pua keeps its publications in the pua table")?;
    let db = db::open_for("pua", &url, |m| script.loads(m), options)?;
    let table = script
        .modparam_str("pua", "db_table")
        .unwrap_or_else(|| "pua".to_owned());
    db::check_version(db.as_ref(), &table, TABLE_VERSION).map_err(|e| format!("pua: {e}"))?;
    let update_period = int("update_period", 100);
    if update_period <= 0 {
        return Err(format!(
            "pua: update_period must be above 0, not {update_period}"
        ));
    }
    let default_expires = match int("default_expires", 3600) {
        d if d < 600 => 3600,
        d => d,
    };
    let pua = Pua {
        db,
        table,
        min_expires: int("min_expires", 300).max(0),
        default_expires,
        update_period,
        records: Mutex::new(Vec::new()),
        sender: OnceLock::new(),
        serials: AtomicU64::new(1),
        dirty: AtomicBool::new(false),
        last_write: AtomicI64::new(unix_now()),
    };
    let ul_proxy = usrloc::start(script)?;
    let restored = restore(&pua, dialog_proxy, ul_proxy)?;
    *pua.records() = restored;
    let _ = PUA_STATE.set(pua);
    Ok(())
}

/// The publications the table holds (OpenSIPS writes them there), given the presence
/// servers of the dialog and usrloc ones (the table has no column for it).
fn restore(
    pua: &Pua,
    dialog_proxy: Option<String>,
    ul_proxy: Option<String>,
) -> Result<Vec<Record>, String> {
    let cols = [
        "pres_uri",
        "pres_id",
        "event",
        "expires",
        "desired_expires",
        "flag",
        "etag",
        "version",
        "watcher_uri",
    ];
    let rows = pua
        .db
        .query(&pua.table, &cols, &[])
        .map_err(|e| format!("pua: cannot read {}: {e}", pua.table))?;
    let now = unix_now();
    let mut out = Vec::new();
    for row in rows {
        let text = |i: usize| row.get(i).and_then(DbValue::as_text).unwrap_or_default();
        let int = |i: usize| row.get(i).and_then(DbValue::as_int).unwrap_or(0);
        if !text(8).is_empty() {
            continue; // a subscription (pua's SUBSCRIBE side)
        }
        let Some(event) = EVENTS.iter().find(|e| e.bit == int(2)).copied() else {
            continue;
        };
        let etag = text(6);
        if etag.is_empty() || int(3) <= now {
            continue;
        }
        out.push(Record {
            pres_uri: text(0),
            id: text(1),
            event,
            source: int(5),
            etag: Some(etag),
            expires: int(3),
            desired_expires: int(4),
            version: u32::try_from(int(7)).unwrap_or(0),
            waiting: false,
            pending: VecDeque::new(),
            outbound_proxy: if event == DIALOG {
                dialog_proxy.clone()
            } else {
                ul_proxy.clone()
            },
            body: None,
            serial: pua.serial(),
        });
    }
    if !out.is_empty() {
        log::info!(
            "pua: {} publication(s) restored from {}",
            out.len(),
            pua.table
        );
    }
    Ok(out)
}

/// Work for pua's own thread: what the dialog and usrloc modules report with their tables
/// locked, turned into PUBLISHes (which run the script's `local_route`) there.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

static WORK: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();

/// Hands pua the server's sender: PUBLISHes can go out from now on, and pua's thread starts.
pub fn serve(sender: Box<dyn Sender>) {
    let Some(p) = PUA_STATE.get() else { return };
    let _ = p.sender.set(sender);
    if WORK.get().is_some() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("pua".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        });
    match started {
        Ok(_) => {
            let _ = WORK.set(Mutex::new(tx));
        }
        Err(e) => log::error!("pua: cannot start its thread: {e}"),
    }
}

/// Runs `job` on pua's thread (nothing before the server serves).
pub(crate) fn work(job: Job) {
    if let Some(w) = WORK.get() {
        let _ = w.lock().unwrap_or_else(PoisonError::into_inner).send(job);
    }
}

/// Sends (or queues) one change of a publication.
pub fn send_publish(publ: Publ) -> Result<Outcome, String> {
    let pua = PUA_STATE.get().ok_or("pua is not loaded")?;
    let now = unix_now();
    let expires = if publ.expires < 0 {
        pua.default_expires
    } else {
        publ.expires
    };
    let mut records = pua.records();
    let (etag, serial, end) = match records.iter().position(|r| r.is(&publ)) {
        Some(i) if records[i].waiting => {
            records[i].pending.push_back(publ);
            return Ok(Outcome::Queued);
        }
        Some(i) => {
            let r = &mut records[i];
            r.version += 1;
            r.desired_expires = now + expires;
            r.waiting = true;
            r.outbound_proxy.clone_from(&publ.outbound_proxy);
            if publ.body.is_some() {
                r.body.clone_from(&publ.body);
            }
            let found = (r.etag.clone(), r.serial, expires == 0);
            if expires == 0 {
                records.remove(i);
                pua.dirty.store(true, Ordering::Relaxed);
            }
            found
        }
        None if expires == 0 => return Ok(Outcome::NoRecord),
        None if publ.body.is_none() => return Ok(Outcome::NoBody),
        None => {
            let serial = pua.serial();
            records.push(Record {
                pres_uri: publ.pres_uri.clone(),
                id: publ.id.clone(),
                event: publ.event,
                source: publ.source,
                etag: None,
                expires: now + expires,
                desired_expires: now + expires,
                version: 0,
                waiting: true,
                pending: VecDeque::new(),
                outbound_proxy: publ.outbound_proxy.clone(),
                body: publ.body.clone(),
                serial,
            });
            (None, serial, false)
        }
    };
    drop(records);
    let expires = if expires != 0 && expires < pua.min_expires {
        pua.min_expires
    } else {
        expires
    };
    let out = Outgoing {
        pres_uri: &publ.pres_uri,
        event: publ.event,
        expires,
        etag: etag.as_deref(),
        body: publ.body.as_deref(),
        proxy: publ.outbound_proxy.as_deref(),
    };
    dispatch(pua, serial, &out, end)?;
    Ok(Outcome::Sent)
}

/// A PUBLISH about to go.
struct Outgoing<'a> {
    pres_uri: &'a str,
    event: Event,
    expires: i64,
    etag: Option<&'a str>,
    body: Option<&'a str>,
    proxy: Option<&'a str>,
}

/// The PUBLISH of `out`, ready for tm: the presentity is its Request-URI, To and From.
fn request(out: &Outgoing<'_>) -> Result<MsgCtx, String> {
    // OpenSIPS asks one second more than it wants, so the grant does not fall short.
    let asked = if out.expires == 0 { 0 } else { out.expires + 1 };
    let mut headers = format!(
        "To: <{uri}>\r\nFrom: <{uri}>\r\nEvent: {}\r\nExpires: {asked}\r\n",
        out.event.name,
        uri = out.pres_uri
    );
    if let Some(tag) = out.etag {
        headers.push_str(&format!("SIP-If-Match: {tag}\r\n"));
    }
    if out.body.is_some() {
        headers.push_str(&format!("Content-Type: {}\r\n", out.event.content_type));
    }
    let msg = tm::build_request("PUBLISH", out.pres_uri, &headers, out.body)?;
    let mut ctx = MsgCtx::new(msg);
    ctx.dst_uri = out.proxy.map(str::to_owned);
    Ok(ctx)
}

/// Sends a PUBLISH of record `serial`; an end (`end`) needs no reply. A PUBLISH that cannot
/// go takes its record away (it would wait for a reply forever).
fn dispatch(pua: &'static Pua, serial: u64, out: &Outgoing<'_>, end: bool) -> Result<(), String> {
    let sent = match pua.sender.get() {
        Some(sender) => request(out).and_then(|ctx| {
            let asked = out.expires;
            sender.send(
                ctx,
                Box::new(move |code, reply| {
                    if end {
                        if code >= 300 {
                            log::warn!("pua: the PUBLISH ending a publication got {code}");
                        }
                    } else {
                        on_reply(pua, serial, asked, code, reply.as_ref());
                    }
                }),
            )
        }),
        None => Err("the server does not send yet".to_owned()),
    };
    if let Err(e) = &sent {
        log::error!("pua: cannot send the PUBLISH for {}: {e}", out.pres_uri);
        if !end {
            pua.records().retain(|r| r.serial != serial);
        }
    }
    sent
}

/// The final reply to a PUBLISH of record `serial` that asked for `asked` seconds.
fn on_reply(
    pua: &'static Pua,
    serial: u64,
    asked: i64,
    code: u16,
    reply: Option<&sip::SipMessage>,
) {
    let now = unix_now();
    let mut records = pua.records();
    let Some(i) = records.iter().position(|r| r.serial == serial) else {
        return;
    };
    if (200..300).contains(&code) {
        let etag = reply
            .and_then(|m| m.header_str("SIP-ETag"))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let Some(etag) = etag else {
            log::error!(
                "pua: the {code} to a PUBLISH of {} has no SIP-ETag",
                records[i].pres_uri
            );
            records.remove(i);
            return;
        };
        let granted = reply
            .and_then(|m| m.expires().ok().flatten())
            .map_or(asked, i64::from);
        let r = &mut records[i];
        r.etag = Some(etag);
        r.expires = now + granted;
        r.waiting = false;
        pua.dirty.store(true, Ordering::Relaxed);
        let next = r.pending.pop_front();
        let rest: Vec<Publ> = r.pending.drain(..).collect();
        drop(records);
        // The changes that waited go in order: the first now, the others queue behind it.
        for p in next.into_iter().chain(rest) {
            if let Err(e) = send_publish(p) {
                log::error!("pua: {e}");
            }
        }
        return;
    }
    let r = records.remove(i);
    pua.dirty.store(true, Ordering::Relaxed);
    drop(records);
    if code == 412 && r.body.is_some() {
        // The server forgot the publication: it starts over, the queued changes after it.
        log::info!("pua: 412 for {} ({}): publishing anew", r.pres_uri, r.id);
        let again = Publ {
            pres_uri: r.pres_uri.clone(),
            id: r.id.clone(),
            event: r.event,
            source: r.source,
            body: r.body.clone(),
            expires: (r.desired_expires - now).max(pua.min_expires),
            outbound_proxy: r.outbound_proxy.clone(),
        };
        for p in std::iter::once(again).chain(r.pending) {
            if let Err(e) = send_publish(p) {
                log::error!("pua: {e}");
            }
        }
        return;
    }
    log::error!(
        "pua: PUBLISH of {} ({} event) failed with {code}; the publication is dropped",
        r.pres_uri,
        r.event.name
    );
}

/// Once a second: publications whose grant ends within `update_period` are refreshed
/// (their owner still wants them) or ended; the table is written every `update_period`.
pub fn tick() {
    let Some(pua) = PUA_STATE.get() else { return };
    let now = unix_now();
    let mut due: Vec<(u64, Record, bool)> = Vec::new();
    {
        let mut records = pua.records();
        let mut i = 0;
        while i < records.len() {
            let r = &mut records[i];
            if r.waiting || r.etag.is_none() || r.expires - pua.update_period >= now {
                i += 1;
                continue;
            }
            if r.desired_expires > r.expires + 5 {
                r.waiting = true;
                r.version += 1;
                due.push((r.serial, r.clone(), false));
                i += 1;
            } else {
                let r = records.remove(i);
                pua.dirty.store(true, Ordering::Relaxed);
                due.push((r.serial, r, true));
            }
        }
    }
    for (serial, r, end) in due {
        let expires = if end {
            0
        } else {
            (r.desired_expires - now).max(pua.min_expires)
        };
        let out = Outgoing {
            pres_uri: &r.pres_uri,
            event: r.event,
            expires,
            etag: r.etag.as_deref(),
            body: None,
            proxy: r.outbound_proxy.as_deref(),
        };
        let _ = dispatch(pua, serial, &out, end);
    }
    if now - pua.last_write.load(Ordering::Relaxed) >= pua.update_period {
        pua.last_write.store(now, Ordering::Relaxed);
        write_table(pua);
    }
}

/// Writes the publications with an entity tag into the table (all of it: pua's rows are
/// its own), when they changed.
fn write_table(pua: &Pua) {
    if !pua.dirty.swap(false, Ordering::Relaxed) {
        return;
    }
    let rows: Vec<Record> = pua
        .records()
        .iter()
        .filter(|r| r.etag.is_some())
        .cloned()
        .collect();
    let result = (|| {
        pua.db.delete(&pua.table, &[])?;
        for r in &rows {
            pua.db.insert(
                &pua.table,
                &[
                    ("pres_uri", DbValue::Str(r.pres_uri.clone())),
                    ("pres_id", DbValue::Str(r.id.clone())),
                    ("event", DbValue::Int(r.event.bit)),
                    ("expires", DbValue::Int(r.expires)),
                    ("desired_expires", DbValue::Int(r.desired_expires)),
                    ("flag", DbValue::Int(r.source)),
                    ("etag", DbValue::Str(r.etag.clone().unwrap_or_default())),
                    ("tuple_id", DbValue::Str(String::new())),
                    ("watcher_uri", DbValue::Str(String::new())),
                    ("to_uri", DbValue::Str(String::new())),
                    ("call_id", DbValue::Str(String::new())),
                    ("to_tag", DbValue::Str(String::new())),
                    ("from_tag", DbValue::Str(String::new())),
                    ("cseq", DbValue::Int(0)),
                    ("record_route", DbValue::Null),
                    ("contact", DbValue::Str(String::new())),
                    ("remote_contact", DbValue::Str(String::new())),
                    ("version", DbValue::Int(i64::from(r.version))),
                    ("extra_headers", DbValue::Null),
                ],
            )?;
        }
        Ok::<(), db::DbError>(())
    })();
    if let Err(e) = result {
        log::error!("pua: cannot write {}: {e}; trying again later", pua.table);
        pua.dirty.store(true, Ordering::Relaxed);
    }
}

/// At shutdown: the publications are written so that a restart finds them.
pub fn flush() {
    if let Some(pua) = PUA_STATE.get() {
        write_table(pua);
    }
}

/// The version the next document of a dialog publication gets (`osips_ps` 0).
pub(crate) fn version_of(pres_uri: &str, id: &str) -> u32 {
    PUA_STATE.get().map_or(0, |p| {
        p.records()
            .iter()
            .find(|r| r.pres_uri == pres_uri && r.id == id && r.event == DIALOG)
            .map_or(0, |r| r.version + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_carries_the_tag_expiry_and_body() {
        let out = Outgoing {
            pres_uri: "sip:alice@example.com",
            event: DIALOG,
            expires: 3600,
            etag: Some("a.1.2"),
            body: Some("<dialog-info/>"),
            proxy: Some("sip:127.0.0.1:5060"),
        };
        let ctx = request(&out).unwrap_or_else(|e| panic!("{e}"));
        let m = &ctx.msg;
        assert_eq!(m.request_uri_str(), Some("sip:alice@example.com"));
        assert_eq!(m.header_str("Event"), Some("dialog"));
        assert_eq!(m.header_str("Expires"), Some("3601"));
        assert_eq!(m.header_str("SIP-If-Match"), Some("a.1.2"));
        assert_eq!(
            m.header_str("Content-Type"),
            Some("application/dialog-info+xml")
        );
        assert_eq!(m.body(), b"<dialog-info/>");
        assert_eq!(ctx.dst_uri.as_deref(), Some("sip:127.0.0.1:5060"));
        // A refresh: no body, no Content-Type; an end asks for 0.
        let end = Outgoing {
            expires: 0,
            body: None,
            ..out
        };
        let ctx = request(&end).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ctx.msg.header_str("Expires"), Some("0"));
        assert_eq!(ctx.msg.header_str("Content-Type"), None);
        assert!(ctx.msg.body().is_empty());
    }
}
