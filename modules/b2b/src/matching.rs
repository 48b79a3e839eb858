//! Requests of B2B dialogs, taken before the script runs (OpenSIPS' b2b_entities pre-script
//! callback): an in-dialog request whose Call-ID and To tag are one of our entities', and a
//! CANCEL for a caller's INVITE we answer. Retransmissions and ACKs are tm's; a request
//! with one of our tags but no dialog gets a 481.

use std::time::Instant;

use engine::{MsgCtx, Script};
use sip::Method;

use crate::leg::{Side, State};
use crate::session;
use crate::table::table;

/// The request hook: `true` when the request was ours (the script does not run).
pub fn on_request(
    ctx: &mut MsgCtx,
    script: &Script,
    worker: &mut engine::Worker,
    log: &mut dyn engine::Log,
) -> bool {
    let Some(method) = ctx.msg.method() else {
        return false;
    };
    let Ok(callid) = ctx.msg.call_id() else {
        return false;
    };
    if method == Method::Cancel {
        return on_cancel(ctx);
    }
    let Some(to_tag) = ctx.msg.to_tag().ok().flatten() else {
        return false;
    };
    let place = table().by_dialog(callid, to_tag);
    let ours = to_tag.starts_with(&crate::settings().tag_start);
    if place.is_none() && !ours {
        return false;
    }
    let Some(tm) = tm::global() else {
        return false;
    };
    let now = Instant::now();
    // Retransmissions, and the ACKs of our final replies, are the transactions'.
    match tm.lookup_request(&ctx.msg) {
        tm::Found::Retransmission(c) => {
            tm.resend_last_reply(&c);
            return true;
        }
        tm::Found::AckForNegative(c) | tm::Found::AckForLocal2xx(c) => {
            tm.absorb_ack(&c, now);
            return true;
        }
        tm::Found::CancelFor(_) | tm::Found::None => {}
    }
    if method == Method::Ack {
        // An ACK of a dialog of ours that no transaction waits for (a retransmitted 2xx's,
        // or one for a session gone): nothing to answer.
        return true;
    }
    let Some(cell) = tm.create(ctx, now) else {
        // No CSeq tm could key it by: the script decides.
        return false;
    };
    let Some(place) = place else {
        tm.reply_in(
            &cell,
            ctx,
            481,
            "Call/Transaction Does Not Exist",
            None,
            now,
        );
        return true;
    };
    let scripted = {
        let mut t = table();
        let scenario = t.tuples.get(&place.0).map(|t| t.scenario.clone());
        match t.entity_mut(&place) {
            Some(e) if e.live() => {
                e.leg.note_request(&ctx.msg);
                scenario.is_some_and(|s| s != crate::TOP_HIDING)
            }
            _ => {
                drop(t);
                tm.reply_in(
                    &cell,
                    ctx,
                    481,
                    "Call/Transaction Does Not Exist",
                    None,
                    now,
                );
                return true;
            }
        }
    };
    if scripted && crate::script::run_request_route(&place, &cell, ctx, script, worker, log) {
        return true;
    }
    session::default_request(&place, cell, ctx);
    true
}

/// A CANCEL for the INVITE of one of our server entities: 200 to it, 487 to the INVITE, and
/// the client INVITEs still pending are cancelled.
fn on_cancel(ctx: &MsgCtx) -> bool {
    let (Ok(callid), Ok(Some(from_tag))) = (ctx.msg.call_id(), ctx.msg.from_tag()) else {
        return false;
    };
    let Some(place) = table().by_caller(callid, from_tag) else {
        return false;
    };
    let Some(tm) = tm::global() else {
        return false;
    };
    let now = Instant::now();
    if let tm::Found::Retransmission(c) = tm.lookup_request(&ctx.msg) {
        tm.resend_last_reply(&c);
        return true;
    }
    let Some(cell) = tm.create(ctx, now) else {
        return false;
    };
    let pending = {
        let t = table();
        t.entity(&place)
            .and_then(|e| e.invite.as_ref())
            .is_some_and(|i| !i.answered)
    };
    if !pending {
        // Too late: the INVITE has its final reply (RFC 3261 §9.2 still wants a 200).
        tm.reply_in(&cell, ctx, 200, "OK", None, now);
        return true;
    }
    tm.reply_in(&cell, ctx, 200, "OK", None, now);
    let clients: Vec<usize> = {
        let mut t = table();
        let Some(tuple) = t.tuples.get_mut(&place.0) else {
            return true;
        };
        tuple.ending = true;
        tuple
            .entities
            .iter()
            .enumerate()
            .filter(|(_, e)| e.side == Side::Client && e.state == State::Early)
            .map(|(i, _)| i)
            .collect()
    };
    // The caller's INVITE: 487 in the name of our dialog with it.
    session::end_leg(&place);
    for i in clients {
        session::end_leg(&(place.0.clone(), i));
    }
    table().remove_if_finished(&place.0);
    true
}
