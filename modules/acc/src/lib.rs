//! The OpenSIPS `acc` module: `do_accounting("log|db", "missed|failed|cdr"[, table])`,
//! `drop_accounting()`, `acc_log_request(comment)`, `acc_db_request(comment, table)`. tm reports
//! the transactions it completes ([`report`]); lines go to the log as OpenSIPS writes them:
//! `ACC: transaction answered: timestamp=…;method=…;from_tag=…;to_tag=…;call_id=…;code=…;reason=…`,
//! and rows to the database ([`db`]). With `cdr` an answered call is one record when its dialog
//! ends (`ACC: call ended: created=…;call_start_time=…;duration=…;ms_duration=…;setuptime=…;…`).
#![forbid(unsafe_code)]

pub mod db;
pub mod evi;

use engine::{Accounting, FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Value};

const ACC_ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "acc",
    functions: &[
        FnSpec {
            name: "do_accounting",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Str, true)],
            routes: ACC_ROUTES,
            run: do_accounting,
        },
        FnSpec {
            name: "drop_accounting",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: ACC_ROUTES,
            run: drop_accounting,
        },
        FnSpec {
            name: "acc_new_leg",
            params: &[],
            routes: ACC_ROUTES,
            run: acc_new_leg,
        },
        FnSpec {
            name: "acc_log_request",
            params: &[(Param::Str, false)],
            routes: ACC_ROUTES,
            run: acc_log_request,
        },
        FnSpec {
            name: "acc_db_request",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: ACC_ROUTES,
            run: acc_db_request,
        },
        FnSpec {
            name: "acc_evi_request",
            params: &[(Param::Str, false)],
            routes: ACC_ROUTES,
            run: evi::acc_evi_request,
        },
    ],
    params: &[
        ("early_media", ParamType::Int),
        ("report_cancels", ParamType::Int),
        ("detect_direction", ParamType::Int),
        ("log_level", ParamType::Int),
        ("log_facility", ParamType::Str),
        ("db_url", ParamType::Str),
        ("db_table_acc", ParamType::Str),
        ("db_table_missed_calls", ParamType::Str),
        ("extra_fields", ParamType::Str),
        ("leg_fields", ParamType::Str),
        ("acc_method_column", ParamType::Str),
        ("acc_from_tag_column", ParamType::Str),
        ("acc_to_tag_column", ParamType::Str),
        ("acc_callid_column", ParamType::Str),
        ("acc_sip_code_column", ParamType::Str),
        ("acc_sip_reason_column", ParamType::Str),
        ("acc_time_column", ParamType::Str),
        ("evi_extra_fields", ParamType::Str),
        ("aaa_url", ParamType::Str),
    ],
};

/// `do_accounting(types[, flags][, table])`.
fn do_accounting(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let types = args
        .first()
        .map(|v| v.to_text().to_ascii_lowercase())
        .unwrap_or_default();
    // An absent optional parameter is NULL, not the text `<null>`.
    let flags = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().to_ascii_lowercase())
        .unwrap_or_default();
    // OpenSIPS: a CANCEL is accounted only with `report_cancels` (a warning, and success).
    if f.msg.msg.method() == Some(sip::Method::Cancel)
        && f.script.modparam_int("acc", "report_cancels").unwrap_or(0) == 0
    {
        f.log.log(
            1,
            "do_accounting() called on CANCEL but 'report_cancels' modparam not set - no accounting will be done for this transaction!\n",
        );
        return 1;
    }
    let mut acc = f.msg.acc.unwrap_or_default();
    let (mut log_t, mut db_t, mut evi_t) = (false, false, false);
    for t in types.split('|').map(str::trim) {
        match t {
            "log" => log_t = true,
            "evi" => evi_t = true,
            "db" => {
                if !db::available() {
                    f.log.log(
                        -1,
                        "do_accounting: `db` accounting needs modparam(\"acc\", \"db_url\", …)\n",
                    );
                    return -1;
                }
                db_t = true;
            }
            "aaa" => {
                f.log.log(
                    -1,
                    "do_accounting: `aaa` accounting is not available in rsips (`log`, `db` and `evi` are)\n",
                );
                return -1;
            }
            _ => {
                f.log
                    .log(-1, &format!("do_accounting: unknown type `{t}`\n"));
                return -1;
            }
        }
    }
    acc.log |= log_t;
    acc.db |= db_t;
    acc.evi |= evi_t;
    for flag in flags.split('|').map(str::trim).filter(|s| !s.is_empty()) {
        match flag {
            // Call detail records need the dialog module (OpenSIPS' error without it): one
            // record per call when it ends, with its duration.
            "cdr" if !f.script.loads("dialog") || !engine::hooks::dialog_running() => f.log.log(
                -1,
                "do_accounting: dialog module not loaded - cdrs cannot be generated\n",
            ),
            "cdr" => {
                acc.cdr |= log_t;
                acc.db_cdr |= db_t;
                acc.evi_cdr |= evi_t;
                // The call needs a dialog; an initial INVITE gets one here if it has none.
                if f.msg.dialog.is_none()
                    && f.msg.msg.method() == Some(sip::Method::Invite)
                    && f.msg.msg.to_tag().ok().flatten().is_none()
                    && engine::hooks::dialog_create(f.msg).is_none()
                {
                    f.log
                        .log(-1, "do_accounting: cannot create the dialog for cdrs\n");
                }
            }
            "missed" => {
                acc.missed |= log_t;
                acc.db_missed |= db_t;
                acc.evi_missed |= evi_t;
            }
            "failed" => {
                acc.failed |= log_t;
                acc.db_failed |= db_t;
                acc.evi_failed |= evi_t;
            }
            _ => {
                f.log
                    .log(-1, &format!("do_accounting: unknown flag `{flag}`\n"));
                return -1;
            }
        }
    }
    if db_t
        && let Some(table) = args
            .get(2)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| v.to_text().trim().to_owned())
            .filter(|t| !t.is_empty())
    {
        acc.db_table = db::table_index(&table);
    }
    // detect_direction: a request going upstream (callee to caller) is logged with From and
    // To swapped, so that both directions of a dialog read alike.
    acc.upstream = f
        .script
        .modparam_int("acc", "detect_direction")
        .unwrap_or(0)
        != 0
        && f.msg.is_upstream();
    f.msg.acc = Some(acc);
    1
}

/// `drop_accounting([types[, flags]])` (OpenSIPS `w_drop_acc`): without arguments all
/// accounting of the request stops; with them only those types (and, given flags, only those
/// flags of them: a type left without flags stops too). False when nothing was accounted.
fn drop_accounting(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(mut acc) = f.msg.acc else {
        f.log
            .log(-1, "drop_accounting: do_accounting() was not called\n");
        return -1;
    };
    let text = |i: usize| {
        args.get(i)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| v.to_text().to_ascii_lowercase())
    };
    let (types, flags) = (text(0), text(1));
    let Some(types) = types else {
        f.msg.acc = None;
        return 1;
    };
    let has = |name: &str| types.split('|').any(|t| t.trim() == name);
    let (log_t, db_t, evi_t) = (has("log"), has("db"), has("evi"));
    match flags {
        None => {
            acc.log &= !log_t;
            acc.db &= !db_t;
            acc.evi &= !evi_t;
        }
        Some(flags) => {
            for flag in flags.split('|').map(str::trim) {
                match flag {
                    "missed" => {
                        acc.missed &= !log_t;
                        acc.db_missed &= !db_t;
                        acc.evi_missed &= !evi_t;
                    }
                    "failed" => {
                        acc.failed &= !log_t;
                        acc.db_failed &= !db_t;
                        acc.evi_failed &= !evi_t;
                    }
                    "cdr" => {
                        acc.cdr &= !log_t;
                        acc.db_cdr &= !db_t;
                        acc.evi_cdr &= !evi_t;
                    }
                    "" => {}
                    other => {
                        f.log
                            .log(-1, &format!("drop_accounting: unknown flag `{other}`\n"));
                        return -1;
                    }
                }
            }
            if log_t && !(acc.missed || acc.failed || acc.cdr) {
                acc.log = false;
            }
            if db_t && !(acc.db_missed || acc.db_failed || acc.db_cdr) {
                acc.db = false;
            }
            if evi_t && !(acc.evi_missed || acc.evi_failed || acc.evi_cdr) {
                acc.evi = false;
            }
        }
    }
    f.msg.acc = acc.any().then_some(acc);
    1
}

/// `acc_new_leg()`: a new leg, the current one from now on (`$acc_leg`, `$acc_current_leg`).
/// The first leg exists from the start (OpenSIPS creates the context with one); false without
/// `leg_fields`.
fn acc_new_leg(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    if leg_fields(f.script).is_empty() {
        f.log.log(-1, "acc_new_leg: no leg_fields defined\n");
        return -1;
    }
    let shared = f.msg.acc_extra.get_or_insert_with(Default::default);
    let mut values = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if values.legs.is_empty() {
        values.legs.push(Vec::new());
    }
    values.legs.push(Vec::new());
    1
}

/// `acc_log_request("code reason")`: logs the request now. Three leading digits are the
/// code, the rest (after spaces) the reason, or the code's standard phrase when nothing is left
/// (OpenSIPS `acc_comm_to_acc_param`).
fn acc_log_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let comment = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (code, reason) = split_comment(&comment);
    let to_tag = f.msg.msg.to_tag().ok().flatten().unwrap_or("").to_owned();
    let line = line("request accounted", f.msg, &code, &reason, &to_tag);
    emit(f.msg, &line);
    1
}

/// `acc_db_request("code reason", table)`: a row for the request now, in `table`.
fn acc_db_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if !db::available() {
        f.log.log(
            -1,
            "acc_db_request: needs modparam(\"acc\", \"db_url\", …)\n",
        );
        return -1;
    }
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (comment, table) = (text(0), text(1));
    if table.trim().is_empty() {
        f.log.log(-1, "acc_db_request: no table\n");
        return -1;
    }
    let (code, reason) = split_comment(&comment);
    let to_tag = f.msg.msg.to_tag().ok().flatten().unwrap_or("").to_owned();
    let extra = db_extra_fields(f.script);
    db::queue(db::row(
        f.msg,
        table.trim().to_owned(),
        &code,
        &reason,
        &to_tag,
        &extra,
    ));
    1
}

/// `"404 Gone"` → (`404`, `Gone`); `"404"` → (`404`, `Not Found`); `"Done"` → (``, `Done`).
fn split_comment(comment: &str) -> (String, String) {
    let digits = comment.as_bytes().iter().take(3).all(u8::is_ascii_digit) && comment.len() >= 3;
    if !digits {
        return (String::new(), comment.to_owned());
    }
    let (code, rest) = comment.split_at(3);
    let rest = rest.trim_start_matches(' ');
    let reason = if rest.is_empty() {
        code.parse().map_or("", error_text).to_owned()
    } else {
        rest.to_owned()
    };
    (code.to_owned(), reason)
}

/// The reason phrase OpenSIPS' accounting gives a code of a reply it made itself
/// (`error_text`: RFC 3261's phrases in OpenSIPS' spelling, else the class name).
pub fn error_text(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            6.. => "Global Failure",
            5 => "Server Failure",
            4 => "Request Failure",
            3 => "Redirection",
            2 => "Successful",
            1 => "Provisional",
            _ => "Unspecified",
        },
    }
}

/// Writes an accounting line as OpenSIPS does: `LEVEL:ACC: …` with no module tag, at acc's
/// `log_level` (default NOTICE) and to its `log_facility` (default LOG_DAEMON).
fn emit(req: &MsgCtx, line: &str) {
    let level = param(req, "log_level").map_or(2, |l| l as i32);
    let facility = req
        .script
        .as_ref()
        .and_then(|s| {
            s.modparams("acc").find_map(|(n, v)| match v {
                cfg::ast::ParamValue::Str(f) if n == "log_facility" => Some(f.clone()),
                _ => None,
            })
        })
        .unwrap_or_else(|| "LOG_DAEMON".to_owned());
    engine::hooks::gen_line(level, Some(&facility), line);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One accounting line for the request in `req`, with the `extra_fields` of the log backend
/// after the core fields.
pub fn line(what: &str, req: &MsgCtx, code: &str, reason: &str, to_tag: &str) -> String {
    let now = unix_now();
    // With accounting state (do_accounting ran, or `$acc_extra` was set) OpenSIPS writes the
    // context's creation time (its dialog's with `cdr`, else 0) and the set-up time since it.
    let created = req
        .acc
        .filter(|a| a.cdr || a.db_cdr || a.evi_cdr)
        .and(req.dialog)
        .and_then(|d| engine::hooks::dialog_created_ms(d.id))
        .map_or(0, |ms| (ms / 1000) as u64);
    let times = if req.acc.is_some() || req.acc_extra.is_some() {
        format!(";created={created};setuptime={}", now - created.min(now))
    } else {
        String::new()
    };
    format!(
        "ACC: {what}: timestamp={now}{times};{}",
        fields(req, code, reason, to_tag)
    )
}

/// A call's record when it ended (`cdr`), as OpenSIPS logs it.
pub fn cdr_line(
    req: &MsgCtx,
    end: &engine::hooks::DialogEnd,
    code: &str,
    reason: &str,
    to_tag: &str,
) -> String {
    let (created, start) = (end.created_ms / 1000, end.start_ms / 1000);
    let ms = (end.end_ms - end.start_ms).max(0);
    format!(
        "ACC: call ended: created={created};call_start_time={start};duration={};ms_duration={ms};setuptime={};{}",
        (end.end_ms / 1000 - start).max(0),
        (start - created).max(0),
        fields(req, code, reason, to_tag)
    )
}

/// The core fields (`method=…;…;reason=…`) and the `extra_fields` / `leg_fields` of the log
/// backend.
/// The core fields of an accounted request: its method (the CSeq's), From and To tags (swapped
/// for a request going upstream, `detect_direction`) and Call-ID.
fn core_fields<'a>(req: &'a MsgCtx, to_tag: &'a str) -> (String, &'a str, &'a str, &'a str) {
    let msg = &req.msg;
    let method = msg
        .cseq()
        .map(|c| c.method_str.to_owned())
        .unwrap_or_default();
    let from_tag = msg.from_tag().ok().flatten().unwrap_or("");
    let (from_tag, to_tag) = if req.acc.is_some_and(|a| a.upstream) {
        (to_tag, from_tag)
    } else {
        (from_tag, to_tag)
    };
    (method, from_tag, to_tag, msg.call_id().unwrap_or(""))
}

/// The `$acc_extra` / `$acc_leg` values the request's accounting context holds now.
fn extra_values(req: &MsgCtx) -> engine::ctx::AccValues {
    req.acc_extra
        .as_ref()
        .map(|x| {
            x.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
        .unwrap_or_default()
}

fn fields(req: &MsgCtx, code: &str, reason: &str, to_tag: &str) -> String {
    let (method, from_tag, to_tag, callid) = core_fields(req, to_tag);
    let mut line = format!(
        "method={method};from_tag={from_tag};to_tag={to_tag};call_id={callid};code={code};reason={reason}",
    );
    if let Some(script) = req.script.as_ref() {
        let (fields, legs) = (log_extra_fields(script), leg_fields(script));
        if !fields.is_empty() || !legs.is_empty() {
            let values = extra_values(req);
            let mut push = |values: &[(String, Value)], fields: &[(String, String)]| {
                for (tag, name) in fields {
                    line.push(';');
                    line.push_str(name);
                    line.push('=');
                    if let Some((_, v)) = values.iter().find(|(t, _)| t == tag) {
                        line.push_str(&v.to_text());
                    }
                }
            };
            push(&values.extra, &fields);
            // Every leg's fields after the extra ones; there is always a first leg.
            if !legs.is_empty() {
                let first = Vec::new();
                let all: Vec<&Vec<(String, Value)>> = if values.legs.is_empty() {
                    vec![&first]
                } else {
                    values.legs.iter().collect()
                };
                for leg in all {
                    push(leg, &legs);
                }
            }
        }
    }
    line
}

/// The `(tag, log name)` pairs of the `log` backend in `extra_fields`
/// (`"log: a->My_a_Field; b"`: a tag without `->` is logged under its own name).
pub fn log_extra_fields(script: &engine::Script) -> Vec<(String, String)> {
    log_fields(script, "extra_fields", "log")
}

/// The `(tag, column)` pairs of the `db` backend in `extra_fields`.
pub fn db_extra_fields(script: &engine::Script) -> Vec<(String, String)> {
    log_fields(script, "extra_fields", "db")
}

/// The same for `leg_fields` (`$acc_leg` values, per leg).
pub fn leg_fields(script: &engine::Script) -> Vec<(String, String)> {
    log_fields(script, "leg_fields", "log")
}

fn log_fields(script: &engine::Script, param: &str, wanted: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in script.modparams("acc") {
        let cfg::ast::ParamValue::Str(spec) = value else {
            continue;
        };
        if name != param {
            continue;
        }
        let Some((backend, list)) = spec.split_once(':') else {
            continue;
        };
        if !backend.trim().eq_ignore_ascii_case(wanted) {
            continue;
        }
        for item in list.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (tag, name) = match item.split_once("->") {
                Some((t, n)) => (t.trim(), n.trim()),
                None => (item, item),
            };
            if !tag.is_empty() && !name.is_empty() {
                out.push((tag.to_owned(), name.to_owned()));
            }
        }
    }
    out
}

/// An integer `modparam("acc", name, …)` of the script the request runs in.
fn param(req: &MsgCtx, name: &str) -> Option<i64> {
    req.script.as_ref()?.modparam_int("acc", name)
}

/// CANCEL transactions are reported only with `report_cancels` (OpenSIPS default: off).
fn reported_method(req: &MsgCtx) -> bool {
    req.msg.method() != Some(sip::Method::Cancel) || param(req, "report_cancels").unwrap_or(0) != 0
}

/// tm's report of a final reply sent upstream for an accounted transaction: successful ones
/// always, negative ones with the `failed` flag.
pub fn report(req: &MsgCtx, code: u16, reason: &str, to_tag: &str) {
    let Some(acc) = req.acc.filter(Accounting::any) else {
        return;
    };
    if !reported_method(req) {
        return;
    }
    // An answered call accounted with `cdr` gets one record when it ends instead (the INVITE
    // that created its dialog: a re-INVITE is a transaction of its own).
    let answered = req.msg.method() == Some(sip::Method::Invite)
        && (200..300).contains(&code)
        && req.dialog.is_some_and(|d| d.created);
    let (mut log_cdr, mut db_cdr, mut evi_cdr) = (
        acc.log && acc.cdr && answered,
        acc.db && acc.db_cdr && answered,
        acc.evi && acc.evi_cdr && answered,
    );
    if (log_cdr || db_cdr || evi_cdr)
        && !call_record_at_end(req, code, reason, to_tag, (log_cdr, db_cdr, evi_cdr))
    {
        // No dialog to follow (it is gone already): the transaction is accounted.
        (log_cdr, db_cdr, evi_cdr) = (false, false, false);
    }
    if acc.evi && !evi_cdr && (code < 300 || acc.evi_failed) {
        evi::event(req, evi::EVENT, &code.to_string(), reason, to_tag);
    }
    if acc.log && !log_cdr && (code < 300 || acc.failed) {
        emit(
            req,
            &line(
                "transaction answered",
                req,
                &code.to_string(),
                reason,
                to_tag,
            ),
        );
    }
    if acc.db && !db_cdr && (code < 300 || acc.db_failed) {
        write_row(req, db::acc_table(req), code, reason, to_tag);
    }
}

/// Asks the dialog of `req` to run the call's record (log line and/or db row) when it ends.
fn call_record_at_end(
    req: &MsgCtx,
    code: u16,
    reason: &str,
    to_tag: &str,
    (log, db, evi): (bool, bool, bool),
) -> bool {
    let Some(mark) = req.dialog else { return false };
    let req = req.clone();
    let (reason, to_tag) = (reason.to_owned(), to_tag.to_owned());
    engine::hooks::dialog_on_end(
        mark.id,
        Box::new(move |end| {
            let code = code.to_string();
            if log {
                emit(&req, &cdr_line(&req, end, &code, &reason, &to_tag));
            }
            if db {
                let extra = req
                    .script
                    .as_ref()
                    .map(|s| db_extra_fields(s))
                    .unwrap_or_default();
                let mut row = db::row(&req, db::acc_table(&req), &code, &reason, &to_tag, &extra);
                db::add_cdr_columns(&mut row, end);
                db::queue(row);
            }
            if evi {
                evi::cdr(&req, end, &code, &reason, &to_tag);
            }
        }),
    )
}

/// Queues the db row of an event.
fn write_row(req: &MsgCtx, table: String, code: u16, reason: &str, to_tag: &str) {
    let extra = req
        .script
        .as_ref()
        .map(|s| db_extra_fields(s))
        .unwrap_or_default();
    db::queue(db::row(
        req,
        table,
        &code.to_string(),
        reason,
        to_tag,
        &extra,
    ));
}

/// tm's report of a provisional reply relayed upstream: accounted like an answer with
/// `early_media` when it carries a body (OpenSIPS: any 1xx with Content-Length > 0).
pub fn report_early(req: &MsgCtx, code: u16, reason: &str, to_tag: &str, has_body: bool) {
    let Some(acc) = req.acc.filter(Accounting::any) else {
        return;
    };
    if !has_body || param(req, "early_media").unwrap_or(0) == 0 || !reported_method(req) {
        return;
    }
    if acc.log {
        emit(
            req,
            &line(
                "transaction answered",
                req,
                &code.to_string(),
                reason,
                to_tag,
            ),
        );
    }
    if acc.db {
        write_row(req, db::acc_table(req), code, reason, to_tag);
    }
    if acc.evi {
        evi::event(req, evi::EVENT, &code.to_string(), reason, to_tag);
    }
}

/// tm's report of an INVITE transaction whose attempt failed as a whole (every branch
/// negative), when it is accounted with `missed`; tm reports it once per arming.
pub fn report_missed(req: &MsgCtx, code: u16, reason: &str, to_tag: &str) {
    let Some(acc) = req.acc.filter(Accounting::missed_armed) else {
        return;
    };
    if !reported_method(req) {
        return;
    }
    if acc.log && acc.missed {
        emit(
            req,
            &line("call missed", req, &code.to_string(), reason, to_tag),
        );
    }
    if acc.db && acc.db_missed {
        write_row(req, db::names().missed.clone(), code, reason, to_tag);
    }
    if acc.evi && acc.evi_missed {
        evi::event(req, evi::MISSED, &code.to_string(), reason, to_tag);
    }
}

/// Whether a transaction with this request is accounted at all (tm skips the work otherwise).
pub fn wanted(req: &MsgCtx) -> Option<Accounting> {
    req.acc.filter(Accounting::any)
}
