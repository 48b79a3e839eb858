//! The OpenSIPS `msilo` module: offline message storage. `m_store([owner])` keeps a MESSAGE
//! for a user who is not online (in the `silo` table, version 6: sender, recipient, the
//! owner's user and domain, body, content type, arrival and expiry times); `m_dump([owner][,
//! maxmsg])`, called when the user registers, sends what waits for them as new MESSAGEs
//! through tm (to the stored recipient, via `outbound_proxy` when set), each with a `Date` of
//! its arrival, the sender as `Contact`, and — for text/plain with `add_date` — the arrival
//! time in front of the text; a message is deleted once a 2xx answers it. Expired messages
//! are removed every `check_time × clean_period` seconds. With `from_address` and
//! `offline_message`, the sender of a stored message is told so.
//!
//! Not yet: reminders (`reminder`, `send_time`, `snd_time_avp`): messages stored with a send
//! time are not sent at that time.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use db::Value as DbValue;
use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "msilo",
    functions: &[
        FnSpec {
            name: "m_store",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST.or(Routes::FAILURE),
            run: m_store,
        },
        FnSpec {
            name: "m_dump",
            params: &[(Param::Str, true), (Param::Int, true)],
            routes: Routes::REQUEST
                .or(Routes::STARTUP)
                .or(Routes::TIMER)
                .or(Routes::EVENT),
            run: m_dump,
        },
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("from_address", ParamType::Str),
        ("contact_hdr", ParamType::Str),
        ("content_type_hdr", ParamType::Str),
        ("offline_message", ParamType::Str),
        ("reminder", ParamType::Str),
        ("outbound_proxy", ParamType::Str),
        ("expire_time", ParamType::Int),
        ("check_time", ParamType::Int),
        ("send_time", ParamType::Int),
        ("clean_period", ParamType::Int),
        ("use_contact", ParamType::Int),
        ("sc_mid", ParamType::Str),
        ("sc_from", ParamType::Str),
        ("sc_to", ParamType::Str),
        ("sc_uri_user", ParamType::Str),
        ("sc_uri_host", ParamType::Str),
        ("sc_body", ParamType::Str),
        ("sc_ctype", ParamType::Str),
        ("sc_exp_time", ParamType::Str),
        ("sc_inc_time", ParamType::Str),
        ("sc_snd_time", ParamType::Str),
        ("snd_time_avp", ParamType::Str),
        ("add_date", ParamType::Int),
        ("max_messages", ParamType::Int),
    ],
};

/// The `silo` table's version this module reads.
const TABLE_VERSION: i64 = 6;

/// The table's column names (`sc_*`).
struct Columns {
    mid: String,
    from: String,
    to: String,
    user: String,
    host: String,
    body: String,
    ctype: String,
    exp_time: String,
    inc_time: String,
    snd_time: String,
}

struct State {
    db: Arc<dyn db::Connection>,
    table: String,
    c: Columns,
    expire_time: i64,
    add_date: bool,
    max_messages: usize,
    outbound_proxy: Option<String>,
    from_address: Option<String>,
    offline_message: Option<String>,
    contact_hdr: Option<String>,
    content_type_hdr: Option<String>,
    use_contact: bool,
    /// How often expired messages are removed.
    clean_every: Duration,
    /// Messages sent and not answered yet: not sent again meanwhile.
    pending: Mutex<Vec<i64>>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Opens the database; a missing driver, table or wrong version stops the start. Reminder
/// settings, which rsips does not act on yet, are refused rather than ignored.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("msilo") {
        return Ok(());
    }
    let s = |p: &str| script.modparam_str("msilo", p);
    let n = |p: &str, d: i64| script.modparam_int("msilo", p).unwrap_or(d);
    for p in ["reminder", "snd_time_avp"] {
        if s(p).is_some_and(|v| !v.trim().is_empty()) {
            return Err(format!(
                "msilo: `{p}`: reminders are not available in rsips yet"
            ));
        }
    }
    if n("send_time", 0) != 0 {
        return Err("msilo: `send_time`: reminders are not available in rsips yet".into());
    }
    let url = s("db_url")
        .or_else(|| script.global_str("db_default_url"))
        .unwrap_or_else(|| "mysql://opensips:opensipsrw@localhost/opensips".into());
    let db = db::open_for("msilo", &url, |m| script.loads(m), options)?;
    let table = s("db_table").unwrap_or_else(|| "silo".into());
    db::check_version(&*db, &table, TABLE_VERSION).map_err(|e| format!("msilo: {e}"))?;
    let col = |p: &str, d: &str| s(p).unwrap_or_else(|| d.to_owned());
    let check_time = n("check_time", 30).max(1);
    let clean_period = n("clean_period", 5).max(1);
    let state = State {
        db,
        table,
        c: Columns {
            mid: col("sc_mid", "id"),
            from: col("sc_from", "src_addr"),
            to: col("sc_to", "dst_addr"),
            user: col("sc_uri_user", "username"),
            host: col("sc_uri_host", "domain"),
            body: col("sc_body", "body"),
            ctype: col("sc_ctype", "ctype"),
            exp_time: col("sc_exp_time", "exp_time"),
            inc_time: col("sc_inc_time", "inc_time"),
            snd_time: col("sc_snd_time", "snd_time"),
        },
        expire_time: n("expire_time", 259_200).max(1),
        add_date: n("add_date", 1) != 0,
        max_messages: usize::try_from(n("max_messages", 0)).unwrap_or(0),
        outbound_proxy: s("outbound_proxy").filter(|p| !p.trim().is_empty()),
        from_address: s("from_address").filter(|p| !p.trim().is_empty()),
        offline_message: s("offline_message").filter(|p| !p.is_empty()),
        contact_hdr: s("contact_hdr").filter(|p| !p.is_empty()),
        content_type_hdr: s("content_type_hdr").filter(|p| !p.is_empty()),
        use_contact: n("use_contact", 1) != 0,
        clean_every: Duration::from_secs((check_time * clean_period).unsigned_abs()),
        pending: Mutex::default(),
    };
    let _ = STATE.set(state);
    Ok(())
}

/// How often the server calls [`clean`] (`None`: msilo is not running).
pub fn clean_interval() -> Option<Duration> {
    STATE.get().map(|s| s.clean_every)
}

/// Removes the messages whose expiry has passed.
pub fn clean() {
    let Some(s) = STATE.get() else { return };
    let now = now();
    let rows = match s.db.query(&s.table, &[&s.c.mid, &s.c.exp_time], &[]) {
        Ok(r) => r,
        Err(e) => {
            log::error!("msilo: cannot read {}: {e}", s.table);
            return;
        }
    };
    for row in rows {
        let (Some(id), Some(exp)) = (
            row.first().and_then(DbValue::as_int),
            row.get(1).and_then(DbValue::as_int),
        ) else {
            continue;
        };
        if exp > 0 && exp <= now {
            let _ = s.db.delete(&s.table, &[(&s.c.mid, DbValue::Int(id))]);
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn fail(f: &mut FnCtx<'_>, what: &str, why: &str) -> i64 {
    f.log.log(-1, &format!("msilo: {what}: {why}\n"));
    -1
}

/// `user` and `host` of a SIP URI, both present.
fn user_host(uri: &str) -> Option<(String, String)> {
    let u = sip::Uri::parse(uri.trim()).ok()?;
    let user = u.user().filter(|u| !u.is_empty())?.to_owned();
    let host = u.host()?.as_str().to_owned();
    (!host.is_empty()).then_some((user, host))
}

/// `m_store([owner])`: 1 stored, -1 not (no body, no owner, the inbox full, a database
/// error).
fn m_store(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let what = "m_store";
    let Some(s) = STATE.get() else {
        return fail(f, what, "the module is not running");
    };
    let msg = &f.msg.msg;
    let body = msg.body();
    if body.is_empty() {
        return fail(f, what, "the request has no body");
    }
    let (Ok(to), Ok(from)) = (msg.to_header(), msg.from_header()) else {
        return fail(f, what, "no usable To or From");
    };
    let (to, from) = (to.uri().as_str().to_owned(), from.uri().as_str().to_owned());
    // The owner: given, else the R-URI when it names a user, else the To URI.
    let owner = match args.first().filter(|v| !v.is_null()) {
        Some(o) => user_host(&o.to_text()),
        None => f.msg.ruri().and_then(user_host).or_else(|| user_host(&to)),
    };
    let Some((user, host)) = owner else {
        return fail(f, what, "no user in the owner URI");
    };
    let ctype = msg
        .header(sip::HeaderName::ContentType)
        .unwrap_or("text/plain")
        .trim()
        .to_owned();
    let body = String::from_utf8_lossy(body).into_owned();
    let c = &s.c;
    if s.max_messages > 0 {
        let filter = [
            (c.user.as_str(), DbValue::Str(user.clone())),
            (c.host.as_str(), DbValue::Str(host.clone())),
        ];
        match s.db.query(&s.table, &[&c.mid], &filter) {
            Ok(rows) if rows.len() >= s.max_messages => {
                return fail(f, what, &format!("the inbox of {user}@{host} is full"));
            }
            Ok(_) => {}
            Err(e) => return fail(f, what, &e.to_string()),
        }
    }
    // A shorter Expires of the MESSAGE wins over expire_time.
    let lifetime = match msg.expires() {
        Ok(Some(e)) if e > 0 => s.expire_time.min(i64::from(e)),
        _ => s.expire_time,
    };
    let now = now();
    let row = [
        (c.from.as_str(), DbValue::Str(from.clone())),
        (c.to.as_str(), DbValue::Str(to)),
        (c.user.as_str(), DbValue::Str(user)),
        (c.host.as_str(), DbValue::Str(host)),
        (c.body.as_str(), DbValue::Str(body)),
        (c.ctype.as_str(), DbValue::Str(ctype)),
        (c.inc_time.as_str(), DbValue::Int(now)),
        (c.exp_time.as_str(), DbValue::Int(now + lifetime)),
        (c.snd_time.as_str(), DbValue::Int(0)),
    ];
    if let Err(e) = s.db.insert(&s.table, &row) {
        return fail(f, what, &e.to_string());
    }
    engine::stat!("msilo", "stored_messages").inc();
    notify_sender(f, s, &from);
    1
}

/// With `from_address` and `offline_message`: tells the sender their message was stored.
fn notify_sender(f: &mut FnCtx<'_>, s: &State, from_uri: &str) {
    let (Some(from), Some(text)) = (&s.from_address, &s.offline_message) else {
        return;
    };
    let from = f.eval_format(from).to_text().into_owned();
    let body = f.eval_format(text).to_text().into_owned();
    // To the sender's Contact when there is one (use_contact), else their From URI.
    let contact = s
        .use_contact
        .then(|| {
            f.msg.msg.contacts().ok().and_then(|c| match c {
                sip::Contacts::List(l) => l.first().map(|c| c.uri().as_str().to_owned()),
                sip::Contacts::Star => None,
            })
        })
        .flatten();
    let ruri = contact.unwrap_or_else(|| from_uri.to_owned());
    let mut headers = format!("From: <{from}>\r\nTo: <{from_uri}>\r\n");
    if let Some(c) = &s.contact_hdr {
        headers.push_str(&f.eval_format(c).to_text());
    }
    match &s.content_type_hdr {
        Some(ct) => headers.push_str(&f.eval_format(ct).to_text()),
        None => headers.push_str("Content-Type: text/plain\r\n"),
    }
    if let Err(e) = send(f, s, &ruri, &headers, &body, None) {
        f.log.log(
            -1,
            &format!("msilo: m_store: cannot notify the sender: {e}\n"),
        );
    }
}

/// Sends one MESSAGE through tm; `done` gets the final reply's code.
fn send(
    f: &mut FnCtx<'_>,
    s: &State,
    ruri: &str,
    headers: &str,
    body: &str,
    done: Option<Box<dyn FnOnce(u16) + Send>>,
) -> Result<(), String> {
    let tm = tm::global().ok_or("tm is not running")?;
    let msg = tm::build_request("MESSAGE", ruri, headers, Some(body))?;
    let mut ctx = MsgCtx::new(msg);
    if !tm::run_local_route(f.script, f.worker, &mut ctx, f.log) {
        return Err("dropped by local_route".into());
    }
    let done: tm::core::LocalDone = match done {
        Some(d) => Box::new(move |r| d(r.code)),
        None => Box::new(|_| {}),
    };
    tm.new_request(
        ctx,
        s.outbound_proxy.as_deref(),
        &f.script.net(),
        Instant::now(),
        done,
    )
    .map(|_| ())
}

/// `Date:` of a message's arrival, as RFC 3261 writes it.
fn sip_date(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)],
        MONTHS[usize::try_from(m - 1).unwrap_or(0)],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The arrival time as C's `ctime` writes it (`Thu Jan  1 00:00:00 1970`), in UTC.
fn ctime(t: i64) -> String {
    let date = sip_date(t);
    // "Thu, 01 Jan 1970 00:00:00 GMT" → "Thu Jan  1 00:00:00 1970"
    let parts: Vec<&str> = date.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [wd, d, mon, y, hms, _] => {
            format!("{wd} {mon} {:>2} {hms} {y}", d.trim_start_matches('0'))
        }
        _ => date,
    }
}

/// Year, month, day of a day count since 1970-01-01 (the proleptic Gregorian calendar).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `m_dump([owner][, maxmsg])`: 1 when the owner's messages (up to `maxmsg`) were handed to
/// tm, -1 otherwise (a REGISTER that unregisters, no owner, a database error).
fn m_dump(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let what = "m_dump";
    let Some(s) = STATE.get() else {
        return fail(f, what, "the module is not running");
    };
    let owner = match args.first().filter(|v| !v.is_null()) {
        Some(o) => user_host(&o.to_text()),
        None => f
            .msg
            .msg
            .to_header()
            .ok()
            .and_then(|t| user_host(t.uri().as_str())),
    };
    let Some((user, host)) = owner else {
        return fail(f, what, "no user in the owner URI");
    };
    let max = args
        .get(1)
        .and_then(Value::as_int)
        .and_then(|m| usize::try_from(m).ok())
        .filter(|m| *m > 0)
        .unwrap_or(usize::MAX);
    // A REGISTER that takes the user offline gets nothing.
    if f.msg.msg.method() == Some(sip::Method::Register) {
        let expires = f.msg.msg.expires().ok().flatten();
        let contact_expires = f.msg.msg.contacts().ok().and_then(|c| match c {
            sip::Contacts::List(l) => l.first().and_then(sip::NameAddr::expires),
            sip::Contacts::Star => Some(0),
        });
        if contact_expires.or(expires) == Some(0) {
            return -1;
        }
    }
    let c = &s.c;
    let filter = [
        (c.user.as_str(), DbValue::Str(user.clone())),
        (c.host.as_str(), DbValue::Str(host.clone())),
        (c.snd_time.as_str(), DbValue::Int(0)),
    ];
    let cols = [
        c.mid.as_str(),
        c.from.as_str(),
        c.to.as_str(),
        c.body.as_str(),
        c.ctype.as_str(),
        c.inc_time.as_str(),
    ];
    let mut rows = match s.db.query(&s.table, &cols, &filter) {
        Ok(r) => r,
        Err(e) => return fail(f, what, &e.to_string()),
    };
    rows.sort_by_key(|r| r.first().and_then(DbValue::as_int).unwrap_or(0));
    let text = |r: &[DbValue], i: usize| r.get(i).and_then(DbValue::as_text).unwrap_or_default();
    let mut sent = 0;
    for row in rows {
        if sent >= max {
            break;
        }
        let Some(id) = row.first().and_then(DbValue::as_int) else {
            continue;
        };
        {
            let mut pending = s.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.contains(&id) {
                continue;
            }
            pending.push(id);
        }
        let (from, to, body, ctype) = (text(&row, 1), text(&row, 2), text(&row, 3), text(&row, 4));
        let inc = row.get(5).and_then(DbValue::as_int).unwrap_or(0);
        let mut headers = format!("From: <{from}>\r\nTo: <{to}>\r\n");
        if inc > 0 {
            headers.push_str(&format!("Date: {}\r\n", sip_date(inc)));
        }
        if !ctype.is_empty() {
            headers.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        headers.push_str(&format!("Contact: <{from}>\r\n"));
        let plain = ctype
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"));
        let body = if plain && s.add_date {
            format!("[Offline message - {}] {body}", ctime(inc))
        } else {
            body
        };
        // Answered 2xx: deleted; otherwise it stays for the next registration.
        let done = Box::new(move |code: u16| {
            let Some(s) = STATE.get() else { return };
            s.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|p| *p != id);
            if (200..300).contains(&code) {
                engine::stat!("msilo", "dumped_messages").inc();
                if let Err(e) = s.db.delete(&s.table, &[(&s.c.mid, DbValue::Int(id))]) {
                    log::error!("msilo: cannot delete message {id}: {e}");
                }
            } else {
                engine::stat!("msilo", "failed_messages").inc();
            }
        });
        match send(f, s, &to, &headers, &body, Some(done)) {
            Ok(()) => sent += 1,
            Err(e) => {
                s.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|p| *p != id);
                return fail(f, what, &format!("cannot send message {id}: {e}"));
            }
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(sip_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        // 2026-12-07 18:23:20 UTC, a Monday.
        assert_eq!(sip_date(1_796_667_800), "Mon, 07 Dec 2026 18:23:20 GMT");
        assert_eq!(ctime(1_796_667_800), "Mon Dec  7 18:23:20 2026");
        assert_eq!(sip_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn owners() {
        assert_eq!(
            user_host("sip:bob@example.com;transport=tcp"),
            Some(("bob".into(), "example.com".into()))
        );
        assert_eq!(user_host("sip:example.com"), None, "no user");
        assert_eq!(user_host("not a uri"), None);
    }
}
