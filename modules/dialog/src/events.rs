//! `dlg_on_answer`, `dlg_on_timeout`, `dlg_on_hangup`: the script routes a dialog runs when
//! it is answered, when its lifetime is up, when it has ended (the table runs them once
//! unlocked, [`crate::table::run_route`]); the `E_DLG_STATE_CHANGED` event.

use engine::{FnCtx, Value};

use crate::table::{self, dialogs};

/// Arms (or with no route, disarms) one of the dialog's event routes; -1 without a dialog.
fn on_event(
    f: &mut FnCtx<'_>,
    args: &[Value],
    pick: fn(&mut table::Routes) -> &mut Option<usize>,
) -> i64 {
    let Some(mark) = f.msg.dialog else {
        return -1;
    };
    let route = args
        .first()
        .and_then(Value::as_int)
        .and_then(|n| usize::try_from(n).ok());
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&mark.id) else {
        return -1;
    };
    *pick(&mut d.routes) = route;
    1
}

/// `dlg_on_answer([route])`: the route runs when the dialog is answered.
pub(crate) fn dlg_on_answer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    on_event(f, args, |r| &mut r.answer)
}

/// `dlg_on_timeout([route])`: the route runs when the dialog's lifetime is up, before it
/// ends; setting `$DLG_timeout` there gives it more time.
pub(crate) fn dlg_on_timeout(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    on_event(f, args, |r| &mut r.timeout)
}

/// `dlg_on_hangup([route])`: the route runs when the dialog has ended.
pub(crate) fn dlg_on_hangup(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    on_event(f, args, |r| &mut r.hangup)
}

/// The event raised on each change of a dialog's state.
pub const STATE_CHANGED: &str = "E_DLG_STATE_CHANGED";

/// `E_DLG_STATE_CHANGED` for `d`, which was in state `old`, with OpenSIPS' parameters (`id`
/// is the `did`, `db_id` the numeric id of the `dlg_id` column); nothing when nobody listens.
/// The event goes to the server's event thread, so the table may be locked.
pub fn state_changed(d: &table::Dialog, old: u8) {
    if old == d.state || !engine::hooks::event_wanted(STATE_CHANGED) {
        return;
    }
    let text = |n: &str, v: String| (Some(n.to_owned()), Value::from(v));
    engine::hooks::raise_event(
        STATE_CHANGED,
        vec![
            text("id", d.did()),
            text("db_id", d.id.to_string()),
            text("callid", d.callid.clone()),
            text("from_tag", d.caller.tag.clone()),
            text("to_tag", d.callee.tag.clone()),
            (Some("old_state".into()), Value::Int(i64::from(old))),
            (Some("new_state".into()), Value::Int(i64::from(d.state))),
        ],
    );
}
