//! What tm, rr and the core ask of the dialog module (`engine::hooks::DialogHooks`): the
//! `$DLG_*` variables, the replies relayed for a dialog's transactions (its state, its
//! callee's tag, Contact and route set, session timers, auto PRACK, kept SDP), a CANCEL of its
//! INVITE, sequential requests `loose_route` took, and the end of a request's handling.

use std::time::{Duration, Instant};

use engine::{DialogMark, MsgCtx, Value};
use sip::Method;

use crate::table::{self, CONFIRMED, CONFIRMED_NA, DELETED, EARLY, Flags, UNCONFIRMED, dialogs};
use crate::{
    active_count, contact_of, create, events, matched, mi, reinvite, settings, sst, within,
};

/// What tm and rr tell the module.
pub(crate) struct Hooks;

impl engine::hooks::DialogHooks for Hooks {
    fn pv(&self, ctx: &MsgCtx, name: &str) -> Value {
        let Some(mark) = ctx.dialog else {
            return if name == "DLG_count" {
                Value::Int(active_count() as i64)
            } else {
                Value::Null
            };
        };
        let t = dialogs();
        if name == "DLG_count" {
            drop(t);
            return Value::Int(active_count() as i64);
        }
        let Some(d) = t.by_id.get(&mark.id) else {
            return Value::Null;
        };
        let now = Instant::now();
        match name {
            "DLG_status" => Value::Int(i64::from(d.state)),
            "DLG_dir" => Value::from(if mark.upstream {
                "UPSTREAM"
            } else {
                "DOWNSTREAM"
            }),
            "DLG_did" => Value::from(d.did()),
            "DLG_lifetime" => Value::Int(if d.start_unix > 0 {
                table::unix_now() - d.start_unix
            } else {
                0
            }),
            "DLG_timeout" => Value::Int(d.timeout_left(now) as i64),
            "DLG_flags" => Value::Int(i64::from(d.user_flags)),
            "DLG_end_reason" => d.end_reason.clone().map_or(Value::Null, Value::from),
            "DLG_del_delay" => Value::Int(settings().delete_delay.as_secs() as i64),
            "DLG_json" => Value::from(mi::dialog_json(d, now).to_string()),
            "DLG_ctx_json" => Value::from(mi::dialog_ctx_json(d, now).to_string()),
            _ => Value::Null,
        }
    }

    fn reply_sent(&self, mark: DialogMark, code: u16, reply: Option<&sip::SipMessage>) {
        if code <= 100 {
            return;
        }
        let dialog = mark.id;
        let s = settings();
        let now = Instant::now();
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&dialog) else {
            return;
        };
        if let Some(msg) = reply
            && d.sst.is_some()
        {
            sst::reply(d, code, msg, now);
        }
        if let Some(msg) = reply
            && (180..300).contains(&code)
        {
            reinvite::reply_relayed(d, mark, msg);
        }
        if d.state >= CONFIRMED_NA {
            return;
        }
        // Only the replies to the INVITE that created it move it.
        if let Some(msg) = reply {
            match msg.cseq() {
                Ok(c) if c.method == Method::Invite && c.seq == d.initial_cseq => {}
                _ => return,
            }
        }
        match (code, reply) {
            (101..=199, Some(msg)) => {
                // An early dialog: its tag (the target and route set come with the 2xx).
                if let Ok(Some(tag)) = msg.to_tag() {
                    d.callee.tag = tag.to_owned();
                    // Topology hiding routes the early dialog's requests (PRACK, UPDATE)
                    // itself: it needs the callee's target and route set now.
                    if d.mod_flags & table::TOPOH_ONGOING != 0 {
                        if let Some(c) = contact_of(msg) {
                            d.callee.contact = c;
                        }
                        d.callee.route_set =
                            within::route_set_of_reply(msg, None).unwrap_or_default();
                    }
                    if d.state == UNCONFIRMED {
                        d.state = EARLY;
                        events::state_changed(d, UNCONFIRMED);
                        engine::gauge!("dialog", "early_dialogs").inc();
                    }
                }
                if d.flags.auto_prack {
                    within::auto_prack(d, msg);
                }
            }
            (200..=299, Some(msg)) => {
                if let Ok(Some(tag)) = msg.to_tag() {
                    d.callee.tag = tag.to_owned();
                }
                if let Some(c) = contact_of(msg) {
                    d.callee.contact = c;
                }
                // Towards the callee: the Record-Routes above ours, nearest first.
                let ours = format!(";{}={}", s.rr_param, d.did());
                // Topology hiding took our Record-Route out: all of them are the callee's.
                let ours = (d.mod_flags & table::TOPOH_ONGOING == 0).then_some(ours.as_str());
                if let Some(set) = within::route_set_of_reply(msg, ours) {
                    d.callee.route_set = set;
                }
                if d.state == EARLY {
                    engine::gauge!("dialog", "early_dialogs").dec();
                }
                let old = d.state;
                d.state = CONFIRMED_NA;
                events::state_changed(d, old);
                if d.cancelled && d.flags.end_on_race {
                    // Its CANCEL came first: the 2xx crossed it (RFC 5407).
                    d.race = true;
                    d.lifetime = s.race_condition_timeout;
                }
                if d.flags.keeps_sdp() {
                    d.next_reinvite = Some(now + s.reinvite_ping_interval);
                }
                d.start_unix = table::unix_now();
                d.start_ms = table::unix_ms();
                d.expires = Some(now + Duration::from_secs(u64::from(d.lifetime)));
                if d.flags.ping_caller || d.flags.ping_callee {
                    d.next_ping = Some(now + s.ping_interval);
                }
                engine::gauge!("dialog", "active_dialogs").inc();
                if let Some(route) = d.routes.answer {
                    t.routes_due.push((route, dialog));
                }
                t.mark_dirty(dialog);
            }
            (300.., _) => {
                engine::stat!("dialog", "failed_dialogs").inc();
                t.end(dialog, "Failed", Duration::ZERO, now);
            }
            _ => {}
        }
    }

    fn tx_gone(&self, dialog: u64) {
        let mut t = dialogs();
        // Its INVITE transaction ended without a final reply upstream reaching the dialog.
        if t.by_id.get(&dialog).is_some_and(|d| d.state <= EARLY) {
            engine::stat!("dialog", "failed_dialogs").inc();
            t.end(dialog, "Failed", Duration::ZERO, Instant::now());
        }
    }

    fn routed(&self, ctx: &mut MsgCtx) {
        if ctx.dialog.is_none() && ctx.msg.to_tag().ok().flatten().is_some() {
            matched(ctx, settings().match_mode, None);
            if let Some(mark) = ctx.dialog {
                engine::hooks::media_request(ctx, mark.id);
            }
        }
    }

    fn val(&self, ctx: &MsgCtx, name: &str) -> Value {
        let Some(mark) = ctx.dialog else {
            return Value::Null;
        };
        dialogs()
            .by_id
            .get(&mark.id)
            .and_then(|d| d.vals.iter().find(|(n, _)| n == name))
            .map_or(Value::Null, |(_, v)| Value::from(v.clone()))
    }

    fn set_val(&self, ctx: &MsgCtx, name: &str, v: &Value) -> bool {
        let Some(mark) = ctx.dialog else { return false };
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&mark.id) else {
            return false;
        };
        d.vals.retain(|(n, _)| n != name);
        if !matches!(v, Value::Null) {
            d.vals.push((name.to_owned(), v.to_text().into_owned()));
        }
        t.mark_dirty(mark.id);
        true
    }

    fn set_timeout(&self, ctx: &MsgCtx, secs: u32) -> bool {
        let Some(mark) = ctx.dialog else { return false };
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&mark.id) else {
            return false;
        };
        if d.state == DELETED {
            return false;
        }
        d.lifetime = secs;
        if d.expires.is_some() {
            d.expires = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
            // The lifetime stored counts from the start: what is left plus what has gone.
            let gone = table::unix_now() - d.start_unix;
            d.lifetime = u32::try_from(gone.max(0)).unwrap_or(0).saturating_add(secs);
        }
        t.mark_dirty(mark.id);
        true
    }

    fn create(&self, ctx: &mut MsgCtx) -> Option<u64> {
        create(ctx, Flags::default()).ok()
    }

    fn created_ms(&self, dialog: u64) -> Option<i64> {
        dialogs().by_id.get(&dialog).map(|d| d.created_ms)
    }

    fn on_end(&self, dialog: u64, f: engine::hooks::OnDialogEnd) -> bool {
        let mut t = dialogs();
        // Only an answered call ends with a record; otherwise the caller accounts otherwise.
        if t.by_id
            .get(&dialog)
            .is_none_or(|d| !(CONFIRMED_NA..=CONFIRMED).contains(&d.state))
        {
            return false;
        }
        t.on_end.entry(dialog).or_default().push(f);
        true
    }

    fn reply_out(&self, ctx: &mut MsgCtx, mark: DialogMark) {
        let t = dialogs();
        if let Some(d) = t.by_id.get(&mark.id)
            && d.sst.is_some()
        {
            sst::reply_out(ctx, d);
        }
    }

    fn cancelled(&self, dialog: u64) {
        let s = settings();
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&dialog) else {
            return;
        };
        d.cancelled = true;
        if d.flags.end_on_race && (CONFIRMED_NA..=CONFIRMED).contains(&d.state) && !d.race {
            // The CANCEL crossed the 2xx (RFC 5407): the call ends soon.
            d.race = true;
            let secs = s.race_condition_timeout;
            d.expires = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
            let gone = table::unix_now() - d.start_unix;
            d.lifetime = u32::try_from(gone.max(0)).unwrap_or(0).saturating_add(secs);
            t.mark_dirty(dialog);
        }
    }

    fn request_done(&self, ctx: &MsgCtx) {
        if let Some(mark) = ctx.dialog
            && ctx.tx.is_some()
        {
            reinvite::request_relayed(ctx, mark);
        }
        let Some(mark) = ctx.dialog.filter(|m| m.created) else {
            return;
        };
        let mut t = dialogs();
        if ctx.tx.is_none() {
            // Nothing will ever answer for it through tm: a stateless reply, or a drop.
            if t.by_id
                .get(&mark.id)
                .is_some_and(|d| d.state == UNCONFIRMED)
            {
                t.remove(mark.id);
            }
        } else if let Some(d) = t.by_id.get_mut(&mark.id)
            && ctx.send_socket.is_some()
        {
            // A socket the script forced after create_dialog is the callee's side too: the
            // proxy's own requests to the callee (BYE, pings) leave from it.
            d.callee.socket.clone_from(&ctx.send_socket);
        }
    }
}
