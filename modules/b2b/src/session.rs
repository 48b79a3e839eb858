//! What a session does with its dialogs' messages: the callee's replies go to the caller,
//! in-dialog requests pass to the peer entity (a BYE ends both sides), a leg is ended with a
//! BYE or a CANCEL, overlapping re-INVITEs are refused (RFC 3261 §14.2), old sessions expire.
//!
//! As in [`crate::flow`], tm is never called with the session table locked.

use std::sync::Arc;
use std::time::Instant;

use engine::MsgCtx;
use sip::{HeaderName, SipMessage};
use tm::{LocalReply, TxCell};

use crate::flow::{passed_headers, reply_uas, send_on};
use crate::leg::{Side, State, sdp_of};
use crate::table::{Place, table};

/// What a server entity's pending INVITE needs for a reply: its transaction, request, our
/// tag and Contact.
struct Answer {
    cell: Arc<TxCell>,
    req: MsgCtx,
    tag: String,
    contact: String,
}

/// The unanswered initial INVITE of the server entity bridged with `p` (marked answered when
/// `final_` is set).
fn pending_invite_of_peer(p: &Place, final_: bool) -> Option<Answer> {
    let mut t = table();
    let peer = t.entity(p)?.peer?;
    let e = t.entity_mut(&(p.0.clone(), peer))?;
    let inv = e.invite.as_mut().filter(|i| !i.answered)?;
    if final_ {
        inv.answered = true;
    }
    Some(Answer {
        cell: Arc::clone(&inv.cell),
        req: inv.req.clone(),
        tag: e.leg.local_tag.clone(),
        contact: e.leg.contact.clone(),
    })
}

/// A provisional reply (101-199) to a client entity's initial INVITE (tm's reply hook): it
/// goes to the caller, in the name of our dialog with it.
pub fn on_reply(reply: &SipMessage) {
    let Some(code) = reply.status().filter(|c| (101..200).contains(c)) else {
        return;
    };
    let (Ok(callid), Ok(Some(tag))) = (reply.call_id(), reply.from_tag()) else {
        return;
    };
    let p = {
        let mut t = table();
        let Some(p) = t.by_dialog(callid, tag) else {
            return;
        };
        let Some(e) = t.entity_mut(&p) else { return };
        let initial = reply
            .cseq()
            .is_ok_and(|c| c.method == sip::Method::Invite && c.seq == e.invite_cseq);
        if e.side != Side::Client || e.state != State::Early || !initial {
            return;
        }
        if let Some(to_tag) = reply.to_tag().ok().flatten() {
            e.leg.remote_tag = to_tag.to_owned();
        }
        p
    };
    if let Some(a) = pending_invite_of_peer(&p, false) {
        let reason = reply.reason_phrase().unwrap_or("");
        let extra = passed_headers(reply);
        reply_uas(
            &a.cell,
            &a.req,
            code,
            reason,
            &a.tag,
            &a.contact,
            &extra,
            &sdp_of(reply),
        );
    }
}

/// The final reply to a client entity's initial INVITE (tm already ACKed a 2xx).
pub fn on_client_final(p: &Place, r: LocalReply) {
    let code = r.code;
    let (ending, script_reply) = {
        let mut t = table();
        let Some(tuple) = t.tuples.get_mut(&p.0) else {
            return;
        };
        let ending = tuple.ending;
        let script_reply =
            crate::settings().reply_route.is_some() && tuple.scenario != "top hiding";
        let Some(e) = tuple.entities.get_mut(p.1) else {
            return;
        };
        if code < 300 {
            if let Some(reply) = &r.reply {
                e.leg.confirm_from_reply(reply);
            }
            e.state = State::Confirmed;
        } else {
            e.state = State::Ended;
        }
        (ending, script_reply)
    };
    if ending {
        // The caller is gone (it cancelled): a late 2xx is ended at once.
        if code < 300 {
            end_leg(p);
        }
        table().remove_if_finished(&p.0);
        return;
    }
    if script_reply
        && let Some(reply) = &r.reply
        && !crate::script::run_reply_route(p, reply)
    {
        // The route did not ask for the reply to be handled (`b2b_handle_reply`).
        return;
    }
    answer_caller(p, &r);
}

/// The caller's INVITE gets the client's final reply; a bridge to a new client answered on
/// an established call asks the caller for the new session (a re-INVITE).
fn answer_caller(p: &Place, r: &LocalReply) {
    let code = r.code;
    let body = r.reply.as_ref().and_then(sdp_of);
    if let Some(a) = pending_invite_of_peer(p, true) {
        let mut extra = r.reply.as_ref().map(passed_headers).unwrap_or_default();
        if let Some(reply) = r.reply.as_ref().filter(|_| (300..400).contains(&code)) {
            for c in reply.values(HeaderName::Contact) {
                extra.push_str(&format!("Contact: {}\r\n", c.trim()));
            }
        }
        let reason = if r.reason.is_empty() {
            "Request Timeout"
        } else {
            r.reason.as_str()
        };
        reply_uas(
            &a.cell, &a.req, code, reason, &a.tag, &a.contact, &extra, &body,
        );
        let mut t = table();
        let peer = t.entity(p).and_then(|e| e.peer);
        if let Some(peer) = peer
            && let Some(s) = t.entity_mut(&(p.0.clone(), peer))
        {
            s.state = if code < 300 {
                State::Confirmed
            } else {
                State::Ended
            };
        }
        t.remove_if_finished(&p.0);
        return;
    }
    // No INVITE waits: a client the script bridged to an established peer.
    let peer = {
        let t = table();
        t.entity(p)
            .and_then(|e| e.peer)
            .filter(|i| t.entity(&(p.0.clone(), *i)).is_some_and(|e| e.live()))
    };
    let Some(peer) = peer else {
        if code < 300 {
            end_leg(p);
        }
        table().remove_if_finished(&p.0);
        return;
    };
    let peer = (p.0.clone(), peer);
    if code >= 300 {
        log::warn!("b2b_logic: bridging {} failed with {code}", p.0);
        table().remove_if_finished(&p.0);
        return;
    }
    // The established side gets the new session description.
    let key = p.0.clone();
    let done: tm::core::LocalDone = Box::new(move |r| {
        if r.code >= 300 {
            log::warn!(
                "b2b_logic: the re-INVITE of a bridge in {key} failed ({})",
                r.code
            );
        }
    });
    if let Err(e) = send_on(&peer, "INVITE", "", &body, done) {
        log::error!("b2b_logic: re-INVITE for the bridge in {}: {e}", p.0);
    }
}

/// Ends entity `p`'s dialog: a BYE to its far side (a confirmed one), a CANCEL for a client
/// whose INVITE is pending; the entity is ended either way.
pub fn end_leg(p: &Place) {
    let (state, side, callid, cseq) = {
        let mut t = table();
        let Some(e) = t.entity_mut(p) else { return };
        let was = e.state;
        // A client whose INVITE is pending ends with its final reply (a late 2xx gets a BYE
        // then): until that the session stays.
        if !(was == State::Early && e.side == Side::Client) {
            e.state = State::Ended;
        }
        (was, e.side, e.leg.callid.clone(), e.invite_cseq)
    };
    match (state, side) {
        (State::Confirmed, _) => {
            let key = p.0.clone();
            let done: tm::core::LocalDone = Box::new(move |r| {
                if r.code >= 300 {
                    log::info!("b2b_entities: the BYE in {key} got {}", r.code);
                }
                table().remove_if_finished(&key);
            });
            if let Err(e) = send_on(p, "BYE", "", &None, done) {
                log::error!("b2b_entities: BYE in {}: {e}", p.0);
            }
        }
        (State::Early, Side::Client) => {
            if let Some(tm) = tm::global() {
                // Its final reply comes to `on_client_final`, which finds it ended.
                let mut t = table();
                if let Some(tuple) = t.tuples.get_mut(&p.0) {
                    tuple.ending = true;
                }
                drop(t);
                tm.cancel_by_callid(&callid, &cseq.to_string(), Instant::now());
            }
        }
        (State::Early, Side::Server) => {
            if let Some(a) = pending_of(p) {
                reply_uas(
                    &a.cell,
                    &a.req,
                    487,
                    "Request Terminated",
                    &a.tag,
                    &a.contact,
                    "",
                    &None,
                );
            }
        }
        _ => {}
    }
}

/// The unanswered initial INVITE of server entity `p` itself (marked answered).
fn pending_of(p: &Place) -> Option<Answer> {
    let mut t = table();
    let e = t.entity_mut(p)?;
    let inv = e.invite.as_mut().filter(|i| !i.answered)?;
    inv.answered = true;
    Some(Answer {
        cell: Arc::clone(&inv.cell),
        req: inv.req.clone(),
        tag: e.leg.local_tag.clone(),
        contact: e.leg.contact.clone(),
    })
}

/// Passes an in-dialog request from entity `p` (its transaction `cell`) to the entity it is
/// bridged with; the peer's final reply answers it. A BYE ends both.
pub fn pass_request(p: &Place, cell: Arc<TxCell>, req: &MsgCtx) -> i64 {
    let method = req.msg.method_str().unwrap_or("").to_owned();
    let (peer, contact) = {
        let t = table();
        let Some(e) = t.entity(p) else { return -1 };
        let peer = e
            .peer
            .filter(|i| t.entity(&(p.0.clone(), *i)).is_some_and(|x| x.live()));
        (peer, e.leg.contact.clone())
    };
    let Some(peer) = peer else {
        reply_uas(
            &cell,
            req,
            481,
            "Call/Transaction Does Not Exist",
            "",
            &contact,
            "",
            &None,
        );
        return -1;
    };
    let peer = (p.0.clone(), peer);
    let invite = method == "INVITE";
    if invite && let Some((code, reason, extra)) = overlapping_invite(p, &peer) {
        reply_uas(&cell, req, code, reason, "", &contact, extra, &None);
        return -1;
    }
    let bye = method == "BYE";
    if bye {
        let mut t = table();
        for q in [p, &peer] {
            if let Some(e) = t.entity_mut(q) {
                e.state = State::Ended;
            }
        }
    }
    let extra = passed_headers(&req.msg);
    let body = sdp_of(&req.msg);
    let (key, to) = (p.0.clone(), peer.clone());
    let (reply_cell, reply_req) = (Arc::clone(&cell), req.clone());
    let from = p.clone();
    let done: tm::core::LocalDone = Box::new(move |r| {
        if invite {
            let mut t = table();
            if let Some(e) = t.entity_mut(&from) {
                e.in_invite = false;
            }
            if let Some(e) = t.entity_mut(&to) {
                e.out_invite = false;
            }
        }
        if invite
            && r.code < 300
            && let Some(reply) = &r.reply
            && let Some(e) = table().entity_mut(&to)
        {
            e.leg.confirm_from_reply(reply);
        }
        let extra = r.reply.as_ref().map(passed_headers).unwrap_or_default();
        let body = r.reply.as_ref().and_then(sdp_of);
        let reason = if r.reason.is_empty() {
            "Request Timeout"
        } else {
            &r.reason
        };
        reply_uas(
            &reply_cell,
            &reply_req,
            r.code,
            reason,
            "",
            &contact,
            &extra,
            &body,
        );
        if bye {
            table().remove_if_finished(&key);
        }
    });
    match send_on(&peer, &method, &extra, &body, done) {
        Ok(()) => 1,
        Err(e) => {
            log::error!("b2b_logic: {method} not passed in {}: {e}", p.0);
            reply_uas(&cell, req, 500, "Server Internal Error", "", "", "", &None);
            -1
        }
    }
}

/// A re-INVITE from entity `p` while another one is under way on its dialog (RFC 3261
/// §14.2): a 500 with Retry-After when its previous one waits for its answer, a 491 when ours
/// to it does; `None` (both marked pending) when it can go on to `peer`.
fn overlapping_invite(p: &Place, peer: &Place) -> Option<(u16, &'static str, &'static str)> {
    let mut t = table();
    let e = t.entity(p)?;
    if e.in_invite {
        return Some((500, "Server Internal Error", "Retry-After: 1\r\n"));
    }
    if e.out_invite {
        return Some((491, "Request Pending", ""));
    }
    if let Some(e) = t.entity_mut(p) {
        e.in_invite = true;
    }
    if let Some(e) = t.entity_mut(peer) {
        e.out_invite = true;
    }
    None
}

/// What top hiding (and a script scenario's request nobody handled) does with an in-dialog
/// request: a BYE is answered here and ends the other side too; anything else is passed.
pub fn default_request(p: &Place, cell: Arc<TxCell>, req: &MsgCtx) {
    if req.msg.method() != Some(sip::Method::Bye) {
        pass_request(p, cell, req);
        return;
    }
    let (contact, peer) = {
        let mut t = table();
        let Some(e) = t.entity_mut(p) else { return };
        e.state = State::Ended;
        (e.leg.contact.clone(), e.peer)
    };
    reply_uas(&cell, req, 200, "OK", "", &contact, "", &None);
    if let Some(peer) = peer {
        end_leg(&(p.0.clone(), peer));
    }
    table().remove_if_finished(&p.0);
}

/// Ends the sessions older than `max_age` (b2b_logic's `max_duration`): BYEs to the
/// confirmed legs, CANCELs for pending ones; the sessions go.
pub fn expire(max_age: u64, now_unix: u64) -> usize {
    let old: Vec<(String, usize)> = {
        let t = table();
        t.tuples
            .values()
            .filter(|tu| now_unix.saturating_sub(tu.created) >= max_age)
            .flat_map(|tu| {
                (0..tu.entities.len())
                    .filter(|i| tu.entities[*i].live())
                    .map(|i| (tu.key.clone(), i))
            })
            .collect()
    };
    let mut keys: Vec<String> = old.iter().map(|p| p.0.clone()).collect();
    keys.dedup();
    for p in &old {
        end_leg(p);
    }
    let mut t = table();
    for k in &keys {
        t.remove(k);
    }
    keys.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_sessions_expire() {
        use crate::leg::Leg;
        use crate::table::{Entity, Tuple};
        let key = "9.expire".to_owned();
        table().insert(Tuple {
            key: key.clone(),
            scenario: crate::TOP_HIDING.into(),
            entities: vec![Entity::new(
                "",
                Side::Server,
                Leg {
                    callid: "expire-test".into(),
                    local_tag: "B2B.x".into(),
                    ..Leg::default()
                },
            )],
            script: None,
            ctx: std::collections::HashMap::new(),
            ending: false,
            created: 1000,
        });
        assert_eq!(expire(100, 1050), 0);
        assert!(table().tuples.contains_key(&key));
        assert!(expire(100, 1100) >= 1);
        assert!(!table().tuples.contains_key(&key));
    }
}
