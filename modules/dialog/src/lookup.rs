//! Reaching other dialogs from the script: `load_dialog_ctx`/`unload_dialog_ctx` (the script
//! sees another call's `$DLG_*`, `$dlg_val`, flags and profiles until it unloads it),
//! `get_dialog_info`, `get_dialog_vals`, `get_dialogs_by_val` and `get_dialogs_by_profile`,
//! and putting a sequential request back on its dialog's path (`fix_route_dialog`).

use std::cell::RefCell;
use std::time::Instant;

use engine::{DialogMark, FnCtx, Value};
use sip::HeaderName;

use crate::table::{CONFIRMED, DELETED, Dialog, Dialogs, dialogs};

thread_local! {
    /// The dialog the message had before `load_dialog_ctx` (the outer `Some`: one is loaded).
    /// The script of a message runs on one thread from start to end, and OpenSIPS allows one
    /// load at a time.
    static LOADED: RefCell<Option<Option<DialogMark>>> = const { RefCell::new(None) };
}

/// The dialog with this Call-ID: a live one first, the newest of those (OpenSIPS'
/// `get_dlg_by_callid`); `active_only` leaves ended ones out.
pub(crate) fn by_callid(t: &Dialogs, callid: &str, active_only: bool) -> Option<u64> {
    let ids = t.by_callid.get(callid)?;
    let live = ids
        .iter()
        .rev()
        .find(|id| t.by_id.get(id).is_some_and(|d| d.state <= CONFIRMED));
    match live {
        Some(id) => Some(*id),
        None if active_only => None,
        None => ids.last().copied(),
    }
}

/// The dialog a `$DLG_did` value (`did` Route parameter: `<entry>.<id>`, reversed hex) names.
pub(crate) fn by_did(t: &Dialogs, did: &str, active_only: bool) -> Option<u64> {
    let (e, i) = did.trim().split_once('.')?;
    let id = (u64::from(crate::table::reverse_hex_int(e)?) << 32)
        | u64::from(crate::table::reverse_hex_int(i)?);
    let d = t.by_id.get(&id)?;
    (!active_only || d.state <= CONFIRMED).then_some(id)
}

/// A dialog named as MI commands name them: its numeric id (`dlg_id`, the `ID` of
/// `dialog:list`) or its Call-ID.
pub(crate) fn by_dialog_id(t: &Dialogs, text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(id) = text.parse::<u64>()
        && t.by_id.contains_key(&id)
    {
        return Some(id);
    }
    by_callid(t, text, false)
}

/// `load_dialog_ctx(dialog[, id_type][, active_only])`.
pub(crate) fn load_dialog_ctx(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if LOADED.with(|l| l.borrow().is_some()) {
        f.log.log(
            -1,
            "load_dialog_ctx: a dialog is loaded already (unload it first)\n",
        );
        return -1;
    }
    let key = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let by = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map_or_else(|| "callid".to_owned(), |v| v.to_text().to_ascii_lowercase());
    let active_only = args.get(2).and_then(Value::as_int).unwrap_or(0) != 0;
    let found = {
        let t = dialogs();
        match by.as_str() {
            "callid" => by_callid(&t, &key, active_only),
            "did" => by_did(&t, &key, active_only),
            other => {
                f.log.log(
                    -1,
                    &format!("load_dialog_ctx: unknown id type `{other}` (callid or did)\n"),
                );
                return -1;
            }
        }
    };
    let Some(id) = found else {
        return -1;
    };
    LOADED.with(|l| *l.borrow_mut() = Some(f.msg.dialog));
    f.msg.dialog = Some(DialogMark {
        id,
        upstream: false,
        created: false,
        check: 0,
    });
    1
}

/// `unload_dialog_ctx()`: back to the dialog the message had (-1: nothing loaded).
pub(crate) fn unload_dialog_ctx(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    match LOADED.with(|l| l.borrow_mut().take()) {
        Some(before) => {
            f.msg.dialog = before;
            1
        }
        None => -1,
    }
}

/// Whether `d` is still going (OpenSIPS' searches skip deleted dialogs).
fn live(d: &Dialog) -> bool {
    d.state != DELETED
}

fn val<'a>(d: &'a Dialog, name: &str) -> Option<&'a str> {
    d.vals
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The dialogs of the table in id order, those `keep` accepts, copied.
fn matching(keep: impl Fn(&Dialog) -> bool) -> Vec<Dialog> {
    let t = dialogs();
    let mut list: Vec<Dialog> = t
        .by_id
        .values()
        .filter(|d| live(d) && keep(d))
        .cloned()
        .collect();
    list.sort_by_key(|d| d.id);
    list
}

/// `get_dialog_info(attr, avp, key, key_val, no_dlgs)`: `$dlg_val(attr)` of every dialog
/// whose `$dlg_val(key)` is `key_val` pushed into `avp`; their number (-1: none).
pub(crate) fn get_dialog_info(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (attr, key, key_val) = (text(0), text(2), text(3));
    let found = matching(|d| val(d, &key) == Some(key_val.as_str()));
    if found.is_empty() {
        return -1;
    }
    for d in &found {
        // A dialog without `attr` stops the search, as in OpenSIPS.
        let Some(v) = val(d, &attr) else {
            f.log.log(
                -1,
                &format!(
                    "get_dialog_info: dialog {} has no value `{attr}`\n",
                    d.callid
                ),
            );
            return -1;
        };
        f.set_output(1, Value::from(v.to_owned()));
    }
    let n = i64::try_from(found.len()).unwrap_or(i64::MAX);
    f.set_output(4, Value::Int(n));
    n
}

/// `get_dialog_vals(names, vals, callid)`: every `$dlg_val` of the dialog with this Call-ID,
/// names and values pushed in step.
pub(crate) fn get_dialog_vals(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let callid = args
        .get(2)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let vals = {
        let t = dialogs();
        let Some(id) = by_callid(&t, &callid, true) else {
            return -1;
        };
        t.by_id.get(&id).map(|d| d.vals.clone()).unwrap_or_default()
    };
    for (n, v) in vals {
        f.set_output(0, Value::from(n));
        f.set_output(1, Value::from(v));
    }
    1
}

/// Pushes each dialog's `$DLG_ctx_json` into parameter 2 and their number into parameter 3.
fn push_jsons(f: &mut FnCtx<'_>, found: &[Dialog]) -> i64 {
    if found.is_empty() {
        return -1;
    }
    let now = Instant::now();
    for d in found {
        f.set_output(
            2,
            Value::from(crate::mi::dialog_ctx_json(d, now).to_string()),
        );
    }
    let n = i64::try_from(found.len()).unwrap_or(i64::MAX);
    f.set_output(3, Value::Int(n));
    n
}

/// `get_dialogs_by_val(name, value, out_avp, out_dlg_no)`.
pub(crate) fn get_dialogs_by_val(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (name, value) = (text(0), text(1));
    let found = matching(|d| val(d, &name) == Some(value.as_str()));
    push_jsons(f, &found)
}

/// `get_dialogs_by_profile(name, value, out_avp, out_dlg_no)`: the dialogs in the profile
/// (with that value, when given and the profile has values).
pub(crate) fn get_dialogs_by_profile(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let Some(valued) = crate::settings().profile(&name) else {
        f.log.log(
            -1,
            &format!("get_dialogs_by_profile: no profile `{name}`\n"),
        );
        return -1;
    };
    let value = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null) && valued)
        .map(|v| v.to_text().into_owned());
    let found = matching(|d| {
        d.profiles
            .iter()
            .any(|(p, v)| *p == name && value.as_ref().is_none_or(|want| want == v))
    });
    push_jsons(f, &found)
}

/// `fix_route_dialog()`: a sequential request goes where its dialog says, whatever it
/// carried: the far side's Contact as R-URI, its route set as the Route headers (the first
/// as next hop).
pub(crate) fn fix_route_dialog(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(mark) = f.msg.dialog else {
        return -1;
    };
    let target = {
        let t = dialogs();
        let Some(d) = t.by_id.get(&mark.id) else {
            return -1;
        };
        if mark.upstream {
            d.caller.clone()
        } else {
            d.callee.clone()
        }
    };
    if fix_route(f.msg, &target) { 1 } else { -1 }
}

/// Sends a sequential request towards `target` as the dialog knows it: its Contact as R-URI,
/// its route set as the Route headers (those the request had go), the first route as `$du`.
/// False when the leg has no usable target.
pub fn fix_route(ctx: &mut engine::MsgCtx, target: &crate::table::Leg) -> bool {
    if target.contact.is_empty() || !ctx.set_ruri(&target.contact) {
        return false;
    }
    let routes: Vec<usize> = ctx
        .msg
        .headers()
        .filter(|h| h.name == HeaderName::Route)
        .map(|h| h.index)
        .collect();
    for index in routes {
        ctx.edits.remove(index);
    }
    for r in &target.route_set {
        ctx.edits.add_top("Route", r);
    }
    ctx.dst_uri = target
        .route_set
        .first()
        .and_then(|r| sip::NameAddr::parse(r).ok())
        .map(|na| na.uri().as_str().to_owned());
    true
}
