//! Replies from downstream: matching a reply to its branch, the onreply routes, hop-by-hop
//! ACKs, relaying upstream, and CANCELs (of the other branches, or from the caller).

use std::sync::Arc;
use std::time::Instant;

use engine::{MsgCtx, Outbound, Outcome, ReplyInfo};
use sip::{Method, SipMessage};

use super::*;

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
        let is_cancel_reply = reply.cseq().is_ok_and(|c| c.method == Method::Cancel);
        engine::stat!("tm", "received_replies").inc();
        let mut sends = Vec::new();
        let on_reply;
        {
            let mut tx = cell.lock();
            let invite = tx.invite;
            let local = tx.local;
            let fr_inv = tx.fr_inv;
            let Some(b) = tx.branches.get_mut(n) else {
                return true;
            };
            if is_cancel_reply {
                b.cancel_msg = None;
                return true;
            }
            if b.is_final() {
                // A retransmitted final reply: re-ACK a negative one, relay a 2xx again (ACK
                // it when we sent the INVITE, even after a local 408, as OpenSIPS does).
                if invite && code >= 300 {
                    if let Some(ack) = ack_for(&b.sent, reply) {
                        sends.push(ack);
                    }
                } else if invite && local && (200..300).contains(&code) {
                    sends.extend(ack_for_2xx(&b.sent, reply));
                } else if invite && code < 200 {
                    // A late 1xx on a branch given up before it answered: CANCEL it now
                    // (OpenSIPS `T_UAC_TO_CANCEL_FLAG`).
                    if let Cancel::Wanted(reason) = b.cancel.clone()
                        && let Some(c) = self.cancel_msg(b, &reason, now)
                    {
                        sends.push(c);
                    }
                } else if invite && (200..300).contains(&code) {
                    // 2xx retransmissions of an INVITE go through (the UAC must ACK them);
                    // a non-INVITE transaction absorbs its retransmitted final reply.
                    sends.extend(self.relay_up(&tx.request, reply));
                }
                drop(tx);
                for s in sends {
                    self.host.send(s, None);
                }
                return true;
            }
            b.retrans = None;
            if code < 200 {
                let first = !b.provisional;
                b.provisional = true;
                if invite && (first || self.params.restart_fr_on_each_reply) {
                    b.fr_at = Some(now + fr_inv);
                } else if !invite {
                    // Non-INVITE: keep retransmitting at T2 (RFC 3261 Timer E).
                    if b.sent.proto == "udp" {
                        b.retrans = Some(Retrans {
                            next: now + self.params.t2,
                            interval: self.params.t2,
                        });
                    }
                }
                if let Cancel::Wanted(reason) = b.cancel.clone()
                    && let Some(c) = self.cancel_msg(b, &reason, now)
                {
                    sends.push(c);
                }
            } else {
                b.status = Some(code);
                b.reason = reply.reason_phrase().unwrap_or("").to_owned();
                b.local = false;
                b.reply = Some(reply.clone());
                b.fr_at = None;
                if invite
                    && code >= 300
                    && let Some(ack) = ack_for(&b.sent, reply)
                {
                    sends.push(ack);
                } else if invite && local && code < 300 {
                    // tm ACKs the 2xx of an INVITE it generated (OpenSIPS t_reply.c,
                    // `reply_received`: `is_local(t) && !no_autoack(t)`).
                    sends.extend(ack_for_2xx(&b.sent, reply));
                }
            }
            on_reply = b.on_reply;
            if let Some(next) = b.retrans.map(|r| r.next).or(b.fr_at) {
                self.schedule(next, id);
            }
        }
        for s in sends.drain(..) {
            self.host.send(s, None);
        }
        // onreply routes: the global one, then the branch's.
        let mut ctx = reply_ctx;
        ctx.tx = Some(cell.clone() as Arc<dyn engine::ctx::Transaction>);
        ctx.branch_index = Some(n);
        ctx.t_reply = Some(ReplyInfo {
            code,
            reason: reply.reason_phrase().unwrap_or("").to_owned(),
            branch: n,
            local: false,
        });
        // The routes see the transaction's flags and the branch's `$bavp`s, and with
        // `onreply_avp_mode=1` its AVPs; what they change of those stays with the transaction
        // (OpenSIPS keeps them in the cell).
        let routes: Vec<usize> = [self.reply_route, on_reply]
            .into_iter()
            .flatten()
            .filter(|_| code != 100)
            .collect();
        if !routes.is_empty() {
            let tx = cell.lock();
            if tx.request.acc_extra.is_some() {
                ctx.acc_extra = tx.request.acc_extra.clone();
            }
            if self.params.onreply_avps {
                ctx.avps = tx.request.avps.clone();
            }
            ctx.flags = tx.request.flags;
            ctx.bavps = tx
                .branches
                .get(n)
                .map(|b| b.bavps.clone())
                .unwrap_or_default();
        }
        let mut dropped = false;
        for &route in &routes {
            if runner.run(route, &mut ctx) == Outcome::Drop {
                dropped = true;
            }
        }
        if !routes.is_empty() {
            let mut tx = cell.lock();
            if self.params.onreply_avps {
                tx.request.avps = std::mem::take(&mut ctx.avps);
            }
            tx.request.flags = ctx.flags;
            if let Some(b) = tx.branches.get_mut(n) {
                b.bavps = std::mem::take(&mut ctx.bavps);
            }
        }
        for out in std::mem::take(&mut ctx.outbox) {
            self.host.send(out, None);
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
                Err(_) => reply,
            }
        };
        if code < 200 {
            // Provisional replies go upstream (unless dropped or a final reply went already).
            // Checked and sent under the transaction's lock: a final reply handled by another
            // worker at the same time then goes out after it, never before it.
            let mut tx = cell.lock();
            if !dropped
                && !tx.final_sent
                && let Some(out) = self.relay_up(&tx.request, reply)
            {
                if code == 183 && acc::wanted(&tx.request).is_some() {
                    acc::report_early(
                        &tx.request,
                        code,
                        reply.reason_phrase().unwrap_or(""),
                        reply.to_tag().ok().flatten().unwrap_or(""),
                    );
                }
                tx.last_reply = Some(out.clone());
                tx.last_code = code;
                self.host.send(out, None);
            }
            return true;
        }
        if (200..300).contains(&code) {
            let mut tx = cell.lock();
            if let Some(Local(done)) = tx.local_done.take() {
                tx.final_sent = true;
                let at = now + self.params.wt_timer;
                tx.delete_at = Some(at);
                drop(tx);
                self.schedule(at, id);
                done(LocalReply {
                    code,
                    reason: reply.reason_phrase().unwrap_or("").to_owned(),
                    reply: Some(reply.clone()),
                });
                return true;
            }
            let out = self.relay_up(&tx.request, reply);
            if let Some(out) = &out {
                self.note_reply_sent(&mut tx, id, code, false, out, now);
            }
            // Cancel the other branches (RFC 3261 §16.7 step 10), unless the caller asked
            // for them to go on (RFC 3841 §9.1).
            let cancels = if tx.multi_200ok {
                Vec::new()
            } else {
                self.cancel_pending(
                    &mut tx,
                    Some(n),
                    "SIP;cause=200;text=\"Call completed elsewhere\"",
                    now,
                )
            };
            drop(tx);
            for s in out.into_iter().chain(cancels) {
                self.host.send(s, None);
            }
            return true;
        }
        if code >= 600 && !self.params.disable_6xx_block {
            let mut tx = cell.lock();
            tx.blocked = true;
            let cancels = self.cancel_pending(
                &mut tx,
                Some(n),
                "SIP;cause=600;text=\"Busy Everywhere\"",
                now,
            );
            drop(tx);
            for s in cancels {
                self.host.send(s, None);
            }
        }
        self.complete_if_done(&cell, Some(n), runner, now);
        true
    }

    /// Cancels every branch still pending (except `except`): sent now when it has answered
    /// provisionally, else as soon as it does.
    pub(super) fn cancel_pending(
        &self,
        tx: &mut Tx,
        except: Option<usize>,
        reason: &str,
        now: Instant,
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        for (i, b) in tx.branches.iter_mut().enumerate() {
            if Some(i) == except || b.is_final() || b.cancel != Cancel::None {
                continue;
            }
            if b.provisional {
                out.extend(self.cancel_msg(b, reason, now));
            } else {
                b.cancel = Cancel::Wanted(reason.to_owned());
            }
        }
        out
    }

    pub(super) fn cancel_msg(
        &self,
        b: &mut Branch,
        reason: &str,
        now: Instant,
    ) -> Option<Outbound> {
        let out = cancel_for(&b.sent, reason)?;
        b.cancel = Cancel::Sent;
        if out.proto == "udp" {
            b.cancel_msg = Some((
                out.clone(),
                Retrans {
                    next: now + self.params.t1,
                    interval: self.params.t1,
                },
            ));
        }
        Some(out)
    }

    /// A CANCEL for an INVITE transaction (`t_relay` on the CANCEL): 200 to the CANCEL, then
    /// CANCEL on every pending branch with `Reason: SIP;cause=487;text="ORIGINATOR_CANCEL"`.
    pub fn cancel_invite(&self, invite: &TxCell, cancel: &MsgCtx, now: Instant) {
        self.cancel_invite_with(invite, cancel, false, now);
    }

    /// `cancel_invite`, with `pass_reason` (t_relay's `pass-reason-hdr` flag): the CANCELs carry
    /// the Reason header(s) of the received CANCEL when it has any.
    pub fn cancel_invite_with(
        &self,
        invite: &TxCell,
        cancel: &MsgCtx,
        pass_reason: bool,
        now: Instant,
    ) {
        if let Some((data, dest)) = sl::build_reply(cancel, 200, "canceling") {
            let r = cancel.receipt.as_ref();
            self.host.send(
                Outbound {
                    data,
                    dest,
                    from: r.map(|r| r.local),
                    proto: r.map_or("udp", |r| r.proto),
                    conn: r.and_then(|r| r.conn),
                },
                None,
            );
        }
        let received: Vec<&str> = if pass_reason {
            cancel
                .msg
                .headers()
                .filter(|h| h.name_str.eq_ignore_ascii_case("Reason"))
                .map(|h| h.value)
                .collect()
        } else {
            Vec::new()
        };
        let reason = if received.is_empty() {
            "SIP;cause=487;text=\"ORIGINATOR_CANCEL\"".to_owned()
        } else {
            received.join(", ")
        };
        let mut tx = invite.lock();
        tx.cancelled = true;
        let reason = if received.is_empty() {
            tx.cancel_reason.clone().unwrap_or(reason)
        } else {
            reason
        };
        let sends = self.cancel_pending(&mut tx, None, &reason, now);
        drop(tx);
        for s in sends {
            self.host.send(s, None);
        }
    }
}
