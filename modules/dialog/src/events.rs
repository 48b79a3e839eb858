//! `dlg_on_answer`, `dlg_on_timeout`, `dlg_on_hangup`: the script routes a dialog runs when
//! it is answered, when its lifetime is up, when it has ended (the table runs them once
//! unlocked, [`crate::table::run_route`]); the `E_DLG_STATE_CHANGED` event.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use engine::{FnCtx, Value};

use crate::table::{self, dialogs};

/// What a module watching a dialog ([`watch`]) sees of a change of its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub old: u8,
    pub state: u8,
    pub callid: String,
    pub caller_tag: String,
    pub callee_tag: String,
    /// Its lifetime in seconds once confirmed.
    pub lifetime: u32,
}

/// A module's watch on one dialog. It runs with the dialog table locked: it must not look
/// the dialog up again (queue the work instead).
pub type Watch = Box<dyn Fn(&Seen) + Send>;

static WATCHES: Mutex<Option<HashMap<u64, Vec<Watch>>>> = Mutex::new(None);

/// Runs `w` on every change of dialog `id`'s state from now on, until it is deleted (the
/// last change it sees); false when there is no such live dialog.
pub fn watch(id: u64, w: Watch) -> bool {
    if !crate::is_live(id) {
        return false;
    }
    WATCHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .entry(id)
        .or_default()
        .push(w);
    true
}

/// Forgets the watches of a dialog that leaves the table without being deleted first.
pub(crate) fn unwatch(id: u64) {
    if let Some(m) = WATCHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        m.remove(&id);
    }
}

fn run_watches(d: &table::Dialog, old: u8) {
    let mut guard = WATCHES.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(m) = guard.as_mut() else { return };
    if d.state == table::DELETED {
        // The last change: the watches go with it.
        let Some(list) = m.remove(&d.id) else { return };
        drop(guard);
        let seen = seen_of(d, old);
        list.iter().for_each(|w| w(&seen));
    } else if let Some(list) = m.get(&d.id) {
        let seen = seen_of(d, old);
        list.iter().for_each(|w| w(&seen));
    }
}

fn seen_of(d: &table::Dialog, old: u8) -> Seen {
    Seen {
        id: d.id,
        old,
        state: d.state,
        callid: d.callid.clone(),
        caller_tag: d.caller.tag.clone(),
        callee_tag: d.callee.tag.clone(),
        lifetime: d.lifetime,
    }
}

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
    if old != d.state {
        run_watches(d, old);
    }
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
