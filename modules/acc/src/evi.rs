//! acc's `evi` backend: `do_accounting("evi", …)` and `acc_evi_request()` raise
//! `E_ACC_EVENT` (a transaction answered, or failed with `failed`), `E_ACC_MISSED_EVENT`
//! (`missed`) and `E_ACC_CDR` (`cdr`: the call when it ended), with OpenSIPS' parameters —
//! `method`, `from_tag`, `to_tag`, `callid`, `sip_code`, `sip_reason`, `time`, the `evi`
//! backend's `extra_fields` and `leg_fields`, then `duration`, `ms_duration`, `setuptime`,
//! `created` (CDR) or `setuptime`, `created` (missed). Nothing is built when nobody listens.

use engine::{FnCtx, MsgCtx, Value};

pub const EVENT: &str = "E_ACC_EVENT";
pub const CDR: &str = "E_ACC_CDR";
pub const MISSED: &str = "E_ACC_MISSED_EVENT";

type Params = Vec<(Option<String>, Value)>;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The core parameters, `time` given, then the extra and leg values of the `evi` backend.
fn params(req: &MsgCtx, code: &str, reason: &str, to_tag: &str, time: i64) -> Params {
    let (method, from_tag, to_tag, callid) = super::core_fields(req, to_tag);
    let text = |n: &str, v: &str| (Some(n.to_owned()), Value::from(v.to_owned()));
    let mut out = vec![
        text("method", &method),
        text("from_tag", from_tag),
        text("to_tag", to_tag),
        text("callid", callid),
        text("sip_code", code),
        text("sip_reason", reason),
        (Some("time".into()), Value::Int(time)),
    ];
    let Some(script) = req.script.as_ref() else {
        return out;
    };
    let mut extra = super::log_fields(script, "extra_fields", "evi");
    for (_, v) in script
        .modparams("acc")
        .filter(|(n, _)| *n == "evi_extra_fields")
    {
        if let cfg::ast::ParamValue::Str(list) = v {
            for item in list.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                let (tag, name) = item.split_once("->").unwrap_or((item, item));
                extra.push((tag.trim().to_owned(), name.trim().to_owned()));
            }
        }
    }
    let legs = super::log_fields(script, "leg_fields", "evi");
    let values = super::extra_values(req);
    let pick = |values: &[(String, Value)], tag: &str| {
        values
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    for (tag, name) in &extra {
        out.push((Some(name.clone()), pick(&values.extra, tag)));
    }
    // The current (last) leg's values, one parameter per leg field.
    let first = Vec::new();
    let leg = values.legs.last().unwrap_or(&first);
    for (tag, name) in &legs {
        out.push((Some(name.clone()), pick(leg, tag)));
    }
    out
}

/// When the request's call was created (its dialog's creation with `cdr`), else 0.
fn created(req: &MsgCtx) -> i64 {
    req.acc
        .filter(|a| a.cdr || a.db_cdr || a.evi_cdr)
        .and(req.dialog)
        .and_then(|d| engine::hooks::dialog_created_ms(d.id))
        .map_or(0, |ms| ms / 1000)
}

/// Raises `E_ACC_EVENT` or `E_ACC_MISSED_EVENT` for the request.
pub fn event(req: &MsgCtx, name: &'static str, code: &str, reason: &str, to_tag: &str) {
    if !engine::hooks::event_wanted(name) {
        return;
    }
    let now = now();
    let mut p = params(req, code, reason, to_tag, now);
    if name == MISSED {
        let created = created(req);
        p.push((Some("setuptime".into()), Value::Int(now - created.min(now))));
        p.push((Some("created".into()), Value::Int(created)));
    }
    engine::hooks::raise_event(name, p);
}

/// Raises `E_ACC_CDR` for a call that ended.
pub fn cdr(req: &MsgCtx, end: &engine::hooks::DialogEnd, code: &str, reason: &str, to_tag: &str) {
    if !engine::hooks::event_wanted(CDR) {
        return;
    }
    let (created, start) = (end.created_ms / 1000, end.start_ms / 1000);
    let mut p = params(req, code, reason, to_tag, start);
    p.push((
        Some("duration".into()),
        Value::Int((end.end_ms / 1000 - start).max(0)),
    ));
    p.push((
        Some("ms_duration".into()),
        Value::Int((end.end_ms - end.start_ms).max(0)),
    ));
    p.push((
        Some("setuptime".into()),
        Value::Int((start - created).max(0)),
    ));
    p.push((Some("created".into()), Value::Int(created)));
    engine::hooks::raise_event(CDR, p);
}

/// `acc_evi_request("code reason")`: the request reported now, as `E_ACC_EVENT` (a code
/// below 300) or `E_ACC_MISSED_EVENT`.
pub fn acc_evi_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let comment = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (code, reason) = super::split_comment(&comment);
    let to_tag = f.msg.msg.to_tag().ok().flatten().unwrap_or("").to_owned();
    let missed = code.parse::<u16>().is_ok_and(|c| c >= 300);
    event(
        f.msg,
        if missed { MISSED } else { EVENT },
        &code,
        &reason,
        &to_tag,
    );
    1
}
