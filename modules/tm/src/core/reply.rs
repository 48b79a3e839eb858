//! Replies from downstream: matching a reply to its branch, the onreply routes, hop-by-hop
//! ACKs and relaying upstream.

use std::sync::Arc;
use std::time::Instant;

use engine::{MsgCtx, Outbound, Outcome, ReplyInfo};
use sip::{Method, SipMessage};

use super::*;

/// What a reply did to its branch.
enum Noted {
    /// Nothing more to do: a reply to our CANCEL, or one after the branch's final reply.
    Done,
    /// The branch's final reply, recorded (and a negative one ACKed).
    Final,
    /// A provisional reply on a pending branch: only its retransmissions stopped; the rest
    /// waits for the onreply routes, which may drop it (`accept_provisional`).
    Provisional,
}

impl Tm {
    /// A reply that came in. `false`: not one of our branches (the caller relays it
    /// statelessly).
    pub fn on_reply(
        &self,
        reply: &SipMessage,
        reply_ctx: MsgCtx,
        runner: &mut dyn Runner,
        now: Instant,
    ) -> bool {
        let Some((id, n)) = reply
            .top_via()
            .ok()
            .and_then(|v| v.branch().and_then(parse_branch_id))
        else {
            return false;
        };
        let Some(cell) = lock(&self.txs).get(&id).cloned() else {
            return false;
        };
        let Some(code) = reply.status() else {
            return false;
        };
        engine::stat!("tm", "received_replies").inc();
        // The unnamed onreply_route runs first, for every reply, before tm looks at it
        // (OpenSIPS `receive_msg`, then `forward_reply`): a provisional reply it drops is not
        // seen by the transaction at all (no branch state, no timer, no pending CANCEL sent).
        let (ctx, dropped) = self.run_reply_routes(&cell, n, reply, code, reply_ctx, runner, true);
        if dropped && code < 200 {
            engine::stat!("core", "drop_replies").inc();
            return true;
        }
        if let Noted::Done = self.note_branch_reply(&cell, n, reply, code, now) {
            return true;
        }
        let (mut ctx, dropped) = self.run_reply_routes(&cell, n, reply, code, ctx, runner, false);
        // The dialog module (sst) and a media module engaged in the request's dialog see the
        // reply before it goes on.
        let media = engine::hooks::media_running();
        if media || engine::hooks::dialog_running() {
            let of_dialog = {
                let tx = cell.lock();
                tx.request.dialog.map(|d| {
                    (
                        d,
                        tx.request.msg.method_str().unwrap_or("").to_owned(),
                        !tx.request.msg.body().is_empty(),
                    )
                })
            };
            if let Some((mark, method, body)) = of_dialog {
                engine::hooks::dialog_reply_out(&mut ctx, mark);
                if media {
                    engine::hooks::media_reply(&mut ctx, mark.id, &method, body);
                }
            }
        }
        // Modules that follow replies (mid_registrar) see it too.
        if engine::hooks::reply_hooked() {
            let script = cell.lock().request.script.clone();
            if let Some(script) = script {
                // Without an onreply route the context has not met its transaction yet.
                if ctx.tx.is_none() {
                    ctx.tx = Some(cell.clone() as Arc<dyn engine::ctx::Transaction>);
                    ctx.branch_index = Some(n);
                }
                engine::hooks::run_reply_hooks(&mut ctx, &script);
            }
        }
        if code >= 200
            && let Some(b) = cell.lock().branches.get_mut(n)
        {
            b.final_in_routes = false;
        }
        // A provisional reply the routes kept is the branch's now (OpenSIPS
        // `process_reply_and_timer`, after the routes): it restarts the INVITE branch's
        // final-response timer with `fr_inv_timeout` as the routes left it
        // (`$T_fr_inv_timeout`); one they dropped left no trace but its stopped
        // retransmissions.
        if code < 200 && !dropped && self.accept_provisional(&cell, n, code, now) {
            self.restart_fr_inv(&cell, n, now);
        }
        if code == 100 {
            return true;
        }
        // What the onreply routes changed (append_hf, remove_hf …) is in the reply that goes on.
        let edited;
        let reply: &SipMessage = if ctx.edits.is_empty() {
            reply
        } else {
            match SipMessage::parse(bytes::Bytes::from(ctx.msg.serialize(&ctx.edits))) {
                Ok(m) => {
                    edited = m;
                    if code >= 200
                        && let Some(b) = cell.lock().branches.get_mut(n)
                    {
                        b.reply = Some(edited.clone());
                    }
                    &edited
                }
                Err(e) => {
                    log::error!(
                        "tm: the {code} reply as the onreply route changed it does not parse \
                         ({e}); it goes on as it came"
                    );
                    reply
                }
            }
        };
        if code < 200 {
            if !dropped {
                self.relay_provisional(&cell, n, reply, code);
            }
        } else if code < 300 {
            self.relay_2xx(&cell, n, reply, code, now);
        } else {
            // A 503 is an RFC 3263 failure: the destination's next DNS target gets the request
            // (the transaction then waits for it).
            if code == 503 {
                self.dns_failover(&cell, n, now);
            }
            if code >= 600 && !self.params.disable_6xx_block {
                // The 6xx is the answer now (OpenSIPS): the other branches are cancelled
                // without a Reason, and the transaction completes without waiting for them.
                let mut tx = cell.lock();
                tx.blocked = true;
                tx.decided.get_or_insert(n);
                let cancels = self.cancel_pending(&mut tx, Some(n), "", now);
                drop(tx);
                for s in cancels {
                    self.host.send(s, None);
                }
            }
            self.complete_if_done(&cell, runner, now);
        }
        true
    }

    /// Records a reply on branch `n` (OpenSIPS `reply_received` before the routes): timers
    /// stopped, a final reply stored and ACKed (a negative one hop by hop, a 2xx to an INVITE
    /// of ours end to end), the CANCEL that waited for a provisional reply sent.
    fn note_branch_reply(
        &self,
        cell: &TxCell,
        n: usize,
        reply: &SipMessage,
        code: u16,
        now: Instant,
    ) -> Noted {
        let mut sends = Vec::new();
        let noted = {
            let mut tx = cell.lock();
            let (invite, local) = (tx.invite, tx.local);
            // The branch id alone is not enough (OpenSIPS `t_reply_matching`): the reply's
            // CSeq method is the transaction's, or CANCEL for one we sent on an INVITE.
            // The transaction's key ends with its method (`…|INVITE`).
            let ours = tx.key.rsplit('|').next().unwrap_or("");
            let method_ok = match reply.cseq() {
                Ok(got) => got.method_str == ours || (invite && got.method == Method::Cancel),
                Err(_) => false,
            };
            if !method_ok {
                return Noted::Done;
            }
            let Some(b) = tx.branches.get_mut(n) else {
                return Noted::Done;
            };
            // The reply to a CANCEL we sent on an INVITE branch; a CANCEL transaction of its
            // own (relayed with no INVITE here) gets its replies like any other.
            if invite && reply.cseq().is_ok_and(|c| c.method == Method::Cancel) {
                b.cancel_msg = None;
                return Noted::Done;
            }
            // Any reply counts, even one after the branch ended (`t_local_replied`); a
            // provisional one on a pending branch once the onreply routes kept it.
            if code >= 200 || b.is_final() {
                b.received = true;
            }
            if b.is_final() {
                // A retransmitted final reply: re-ACK a negative one, relay a 2xx again (ACK
                // it when we sent the INVITE, even after a local 408, as OpenSIPS does).
                if invite && code >= 300 {
                    sends.extend(ack_for(&b.sent, reply, &b.extra_hdrs));
                } else if invite && local && (200..300).contains(&code) {
                    sends.extend(ack_for_2xx(&b.sent, reply));
                } else if invite && code < 200 {
                    // A late 1xx on a branch given up before it answered: CANCEL it now
                    // (OpenSIPS `T_UAC_TO_CANCEL_FLAG`).
                    if let Cancel::Wanted(reason) = b.cancel.clone() {
                        sends.extend(self.cancel_msg(b, &reason, now));
                    }
                } else if invite && (200..300).contains(&code) {
                    // 2xx retransmissions of an INVITE go through (the UAC must ACK them);
                    // a non-INVITE transaction absorbs its retransmitted final reply.
                    let came_on = b.sent.from.map(|a| (b.sent.proto, a));
                    sends.extend(self.relay_up(&tx.request, reply, came_on));
                }
                Noted::Done
            } else {
                b.retrans = None;
                if code < 200 {
                    // The rest waits for the onreply routes (`accept_provisional`).
                    Noted::Provisional
                } else {
                    b.status = Some(code);
                    b.reason = reply.reason_phrase().unwrap_or("").to_owned();
                    b.local = false;
                    b.reply = Some(reply.clone());
                    b.fr_at = None;
                    if invite && code >= 300 {
                        sends.extend(ack_for(&b.sent, reply, &b.extra_hdrs));
                    } else if invite && local && code < 300 {
                        // tm ACKs the 2xx of an INVITE it generated (OpenSIPS t_reply.c,
                        // `reply_received`: `is_local(t) && !no_autoack(t)`).
                        sends.extend(ack_for_2xx(&b.sent, reply));
                    }
                    b.final_in_routes = true;
                    tx.last_final = Some(n);
                    Noted::Final
                }
            }
        };
        for s in sends {
            self.host.send(s, None);
        }
        noted
    }

    /// A provisional reply on branch `n` the onreply routes kept; whether it restarts the
    /// INVITE branch's final-response timer.
    fn accept_provisional(&self, cell: &TxCell, n: usize, code: u16, now: Instant) -> bool {
        let mut sends = Vec::new();
        let restart_fr = {
            let mut tx = cell.lock();
            let invite = tx.invite;
            match tx.branches.get_mut(n) {
                // A route may have ended the branch meanwhile (`t_cancel_branch`, a reply).
                Some(b) if !b.is_final() => {
                    b.received = true;
                    self.note_provisional(b, cell.id, code, invite, now, &mut sends)
                }
                Some(b) => {
                    b.received = true;
                    false
                }
                None => false,
            }
        };
        for s in sends {
            self.host.send(s, None);
        }
        restart_fr
    }

    /// A provisional reply on a pending branch; whether it restarts an INVITE branch's
    /// final-response timer: always with `restart_fr_on_each_reply`, else the first one and a
    /// higher 18x after a 100 (OpenSIPS `process_reply_and_timer`).
    fn note_provisional(
        &self,
        b: &mut Branch,
        id: u64,
        code: u16,
        invite: bool,
        now: Instant,
        sends: &mut Vec<Outbound>,
    ) -> bool {
        let before = b.last_1xx;
        b.provisional = true;
        b.last_1xx = code;
        if !invite && b.sent.proto == "udp" {
            // Non-INVITE: keep retransmitting at T2 (RFC 3261 Timer E).
            let r = Retrans {
                next: now + self.params.t2,
                interval: self.params.t2,
            };
            b.retrans = Some(r);
            self.schedule(r.next, id);
        }
        if let Cancel::Wanted(reason) = b.cancel.clone() {
            sends.extend(self.cancel_msg(b, &reason, now));
        }
        invite
            && (self.params.restart_fr_on_each_reply
                || (before < code && (code >= 180 || before == 0)))
    }

    /// The INVITE branch answered provisionally: it now has `fr_inv_timeout` (as the
    /// transaction has it after the onreply routes) to answer finally.
    fn restart_fr_inv(&self, cell: &TxCell, n: usize, now: Instant) {
        let mut tx = cell.lock();
        let at = now + tx.fr_inv;
        if let Some(b) = tx.branches.get_mut(n)
            && !b.is_final()
        {
            b.fr_at = Some(at);
            drop(tx);
            self.schedule(at, cell.id);
        }
    }

    /// The onreply routes for a reply of branch `n`, for every reply (a 100 too): the unnamed
    /// one, the branch's own, then the transaction's (OpenSIPS runs the core's route, then
    /// `uac->on_reply`, then `t->on_reply`); a route dropping a provisional reply ends them.
    /// They see the transaction's flags, the branch's flags and `$bavp`s, and with
    /// `onreply_avp_mode=1` its AVPs; what they change of those stays with the transaction.
    /// Gives the context they ran over, and whether the reply was dropped.
    #[allow(clippy::too_many_arguments)]
    fn run_reply_routes(
        &self,
        cell: &Arc<TxCell>,
        n: usize,
        reply: &SipMessage,
        code: u16,
        reply_ctx: MsgCtx,
        runner: &mut dyn Runner,
        main: bool,
    ) -> (MsgCtx, bool) {
        let mut ctx = reply_ctx;
        let routes: Vec<usize> = if main {
            runner.reply_route().into_iter().collect()
        } else {
            let tx = cell.lock();
            // The routes the transaction armed belong to the script it started in (a reload
            // since may have renumbered the routes); the unnamed one is the running script's.
            if tx.request.script.is_some() {
                ctx.script = tx.request.script.clone();
            }
            let branch = tx.branches.get(n);
            [branch.and_then(|b| b.on_reply), tx.on_reply]
                .into_iter()
                .flatten()
                .collect()
        };
        if routes.is_empty() {
            return (ctx, false);
        }
        ctx.tx = Some(cell.clone() as Arc<dyn engine::ctx::Transaction>);
        ctx.branch_index = Some(n);
        ctx.t_reply = Some(ReplyInfo {
            code,
            reason: reply.reason_phrase().unwrap_or("").to_owned(),
            branch: n,
            local: false,
            challenges: Vec::new(),
        });
        {
            let tx = cell.lock();
            if tx.request.acc_extra.is_some() {
                ctx.acc_extra = tx.request.acc_extra.clone();
            }
            if self.params.onreply_avps {
                ctx.avps = tx.request.avps.clone();
            }
            ctx.flags = tx.request.flags;
            ctx.dialog = tx.request.dialog;
            if let Some(b) = tx.branches.get(n) {
                ctx.bavps = b.bavps.clone();
                ctx.branch_flags = b.flags;
            }
        }
        let mut dropped = false;
        for route in routes {
            if runner.run(route, &mut ctx) == Outcome::Drop {
                dropped = true;
                if code < 200 {
                    break;
                }
            }
        }
        let mut tx = cell.lock();
        if self.params.onreply_avps {
            tx.request.avps = std::mem::take(&mut ctx.avps);
        }
        tx.request.flags = ctx.flags;
        if let Some(b) = tx.branches.get_mut(n) {
            b.bavps = std::mem::take(&mut ctx.bavps);
            b.flags = ctx.branch_flags;
        }
        drop(tx);
        for out in std::mem::take(&mut ctx.outbox) {
            self.host.send(out, None);
        }
        (ctx, dropped)
    }

    /// A provisional reply goes upstream unless a final reply went already. Checked and sent
    /// under the transaction's lock: a final reply handled by another worker at the same time
    /// then goes out after it, never before it.
    fn relay_provisional(&self, cell: &TxCell, n: usize, reply: &SipMessage, code: u16) {
        let mut tx = cell.lock();
        if tx.final_sent {
            return;
        }
        let came_on = branch_socket(&tx, n);
        let Some(out) = self.relay_up(&tx.request, reply, came_on) else {
            return;
        };
        if acc::wanted(&tx.request).is_some() {
            acc::report_early(
                &tx.request,
                code,
                reply.reason_phrase().unwrap_or(""),
                reply.to_tag().ok().flatten().unwrap_or(""),
                !reply.body().is_empty(),
            );
        }
        tx.last_reply = Some(out.clone());
        tx.last_code = code;
        tx.last_local = false;
        if let Some(dialog) = tx.request.dialog {
            engine::hooks::dialog_reply_sent(dialog, code, Some(reply));
        }
        engine::stat!("tm", "relayed_replies").inc();
        self.host.send(out, None);
    }

    /// A 2xx goes upstream at once (or to the local request's owner) and cancels the other
    /// branches (RFC 3261 §16.7 step 10), unless the caller asked for them to go on (RFC 3841
    /// §9.1).
    fn relay_2xx(&self, cell: &TxCell, n: usize, reply: &SipMessage, code: u16, now: Instant) {
        let mut tx = cell.lock();
        if let Some(Local(done)) = tx.local_done.take() {
            tx.final_sent = true;
            let at = now + self.params.wt_timer;
            tx.delete_at = Some(at);
            drop(tx);
            self.schedule(at, cell.id);
            done(LocalReply {
                code,
                reason: reply.reason_phrase().unwrap_or("").to_owned(),
                reply: Some(reply.clone()),
            });
            return;
        }
        let came_on = branch_socket(&tx, n);
        let out = self.relay_up(&tx.request, reply, came_on);
        if let Some(out) = &out {
            self.note_reply_sent(&mut tx, cell.id, code, false, out, Some(reply), now);
        }
        let cancels = if tx.multi_200ok {
            Vec::new()
        } else {
            let reason = completed_elsewhere(code);
            self.cancel_pending(&mut tx, Some(n), reason, now)
        };
        drop(tx);
        for s in out.into_iter().chain(cancels) {
            self.host.send(s, None);
        }
    }
}

/// The Reason of the CANCELs a final reply upstream sends to the other branches: RFC 3326's
/// "completed elsewhere" for a 200 exactly (OpenSIPS `build_cancel`), none otherwise.
pub(super) fn completed_elsewhere(code: u16) -> &'static str {
    if code == 200 {
        "SIP;cause=200;text=\"Call completed elsewhere\""
    } else {
        ""
    }
}

/// The socket branch `n` left from (its replies came in on it).
pub(super) fn branch_socket(tx: &Tx, n: usize) -> Option<(&'static str, std::net::SocketAddr)> {
    let b = tx.branches.get(n)?;
    Some((b.sent.proto, b.sent.from?))
}
