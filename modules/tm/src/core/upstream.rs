//! What goes upstream from the transaction itself: tm's own replies (`t_reply`, 100 Trying,
//! 408/477 on a branch's behalf), and the bookkeeping of every final reply sent (statistics,
//! accounting, retransmission until the ACK, cancelling the branches still pending).

use std::time::Instant;

use engine::{MsgCtx, Outbound};
use sip::SipMessage;

use super::*;

impl Tm {
    /// A stateful reply (`t_reply`, and local replies): sent upstream, kept for
    /// retransmissions, and for a negative final INVITE reply over UDP resent until the ACK.
    pub fn reply_in(
        &self,
        cell: &TxCell,
        ctx: &MsgCtx,
        code: u16,
        reason: &str,
        body: Option<(&str, &[u8])>,
        now: Instant,
    ) -> i64 {
        let built = |ctx: &MsgCtx| sl::build_reply_with_body(ctx, code, reason, body);
        self.reply_built(cell, ctx, code, now, built)
    }

    /// As [`Tm::reply_in`] (no body), with the To tag given: the reply speaks for an early
    /// dialog a downstream provisional reply set up.
    pub fn reply_in_tagged(
        &self,
        cell: &TxCell,
        ctx: &MsgCtx,
        code: u16,
        reason: &str,
        to_tag: &str,
        now: Instant,
    ) -> i64 {
        let built = |ctx: &MsgCtx| sl::build_reply_tagged(ctx, code, reason, to_tag);
        self.reply_built(cell, ctx, code, now, built)
    }

    fn reply_built(
        &self,
        cell: &TxCell,
        ctx: &MsgCtx,
        code: u16,
        now: Instant,
        build: impl FnOnce(&MsgCtx) -> Option<(Vec<u8>, std::net::SocketAddr)>,
    ) -> i64 {
        let mut tx = cell.lock();
        if tx.final_sent {
            return -1;
        }
        let Some((data, dest)) = build(ctx) else {
            return -1;
        };
        let receipt = tx.request.receipt.clone();
        let (proto, conn) = receipt
            .as_ref()
            .map_or(("udp", None), |r| (r.proto, r.conn));
        let out = Outbound {
            data,
            dest,
            from: receipt.as_ref().map(|r| r.local),
            proto,
            conn,
            origin: None,
            no_new_conn: engine::ctx::no_new_conn_reply(ctx),
        };
        self.note_reply_sent(&mut tx, cell.id, code, true, &out, None, now);
        // A final reply of tm's own to an INVITE ends its pending branches (OpenSIPS
        // `_reply_light`: cancel_uacs), unless more 2xx are welcome.
        let cancels = if code >= 200 && tx.invite && !(tx.multi_200ok && code < 300) {
            self.cancel_pending(&mut tx, None, reply::completed_elsewhere(code), now)
        } else {
            Vec::new()
        };
        drop(tx);
        self.host.send(out, None);
        for c in cancels {
            self.host.send(c, None);
        }
        1
    }

    /// `reply`: the reply as parsed, when the caller has it (a relayed one).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn note_reply_sent(
        &self,
        tx: &mut Tx,
        id: u64,
        code: u16,
        local: bool,
        out: &Outbound,
        reply: Option<&SipMessage>,
        now: Instant,
    ) {
        tx.last_reply = Some(out.clone());
        tx.last_code = code;
        tx.last_local = local;
        if let Some(dialog) = tx.request.dialog {
            // The dialog reads tags, Contact and Record-Route of a 1xx/2xx; a negative reply
            // only ends it.
            let parsed = match reply {
                None if code < 300 => SipMessage::parse(bytes::Bytes::from(out.data.clone())).ok(),
                _ => None,
            };
            engine::hooks::dialog_reply_sent(dialog, code, reply.or(parsed.as_ref()));
        }
        if local {
            engine::stat!("tm", "local_replies").inc();
        } else {
            engine::stat!("tm", "relayed_replies").inc();
        }
        if code >= 200 && !tx.final_sent {
            match code / 100 {
                2 => engine::stat!("tm", "2xx_transactions").inc(),
                3 => engine::stat!("tm", "3xx_transactions").inc(),
                4 => engine::stat!("tm", "4xx_transactions").inc(),
                5 => engine::stat!("tm", "5xx_transactions").inc(),
                _ => engine::stat!("tm", "6xx_transactions").inc(),
            }
        }
        if code >= 200 && !tx.final_sent && acc::wanted(&tx.request).is_some() {
            if local {
                // A reply made here is accounted as OpenSIPS' faked reply: the code's standard
                // phrase and the request's own To tag (none for an initial request).
                let to_tag = tx
                    .request
                    .msg
                    .to_tag()
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_owned();
                let reason = acc::error_text(code);
                // A negative one to an INVITE is a missed call too, once per arming.
                if tx.invite
                    && code >= 300
                    && let Some(armed) = tx.request.acc.filter(engine::Accounting::missed_armed)
                {
                    acc::report_missed(&tx.request, code, reason, &to_tag);
                    tx.request.acc = Some(armed.missed_spent());
                }
                acc::report(&tx.request, code, reason, &to_tag);
            } else if let Ok(sent) = SipMessage::parse(bytes::Bytes::from(out.data.clone())) {
                let reason = sent.reason_phrase().unwrap_or("");
                let to_tag = sent.to_tag().ok().flatten().unwrap_or("");
                acc::report(&tx.request, code, reason, to_tag);
            }
        }
        if code >= 200 {
            tx.final_sent = true;
            // Pending branches are no longer needed (unless more 2xx are welcome).
            if !(tx.multi_200ok && code < 300) {
                for b in &mut tx.branches {
                    b.retrans = None;
                }
            }
            // Our own 2xx to an INVITE is resent whatever the transport (a proxy upstream may
            // relay it over UDP and never resends a 2xx), until its end-to-end ACK.
            let own_2xx = local && tx.invite && !tx.local && code < 300;
            if own_2xx
                && let Ok(sent) = SipMessage::parse(bytes::Bytes::from(out.data.clone()))
                && let Some(key) = ack_key(&sent)
            {
                lock(&self.local_2xx).insert(key.clone(), id);
                tx.ack_key = Some(key);
            }
            // Not a 401/407 (RFC 3261 §26.3.2.4: no work for an unauthenticated peer).
            let negative = code >= 300 && code != 401 && code != 407 && out.proto == "udp";
            if tx.invite && (negative || tx.ack_key.is_some()) {
                let r = Retrans {
                    next: now + self.params.t1,
                    interval: self.params.t1,
                };
                tx.reply_retrans = Some((r, now + tx.fr));
                self.schedule(r.next, id);
            } else {
                let at = now + self.params.wt_timer;
                tx.delete_at = Some(at);
                self.schedule(at, id);
            }
        }
    }
}
