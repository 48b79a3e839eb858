//! Finding a transaction by Call-ID and CSeq number, as OpenSIPS' `t_lookup_callid`
//! (modules/tm/t_lookup.c) does for MI `tm:uac_cancel` and `t_reply_by_callid`, cancelling
//! or answering it the way those do; the `allow-no-cancel` switch.

use std::sync::Arc;
use std::time::Instant;

use sip::Method;

use super::{Tm, TxCell, lock};

impl Tm {
    /// The transaction whose request has this Call-ID and CSeq number (any method; an INVITE
    /// is preferred over its CANCEL, which shares both). Completed transactions still in
    /// their wait time count, as in OpenSIPS.
    pub fn find_by_callid(&self, callid: &str, cseq: &str) -> Option<Arc<TxCell>> {
        let (callid, cseq) = (callid.trim(), cseq.trim());
        let cells: Vec<Arc<TxCell>> = lock(&self.txs).values().cloned().collect();
        let mut found: Option<(Arc<TxCell>, bool)> = None;
        for cell in cells {
            let (matches, invite) = {
                let tx = cell.lock();
                let msg = &tx.request.msg;
                let same = msg.call_id().is_ok_and(|c| c == callid)
                    && msg.cseq().is_ok_and(|c| c.seq.to_string() == cseq);
                (same, msg.method() == Some(Method::Invite))
            };
            if !matches {
                continue;
            }
            if invite {
                return Some(cell);
            }
            found.get_or_insert((cell, invite));
        }
        found.map(|(c, _)| c)
    }

    /// MI `tm:uac_cancel`: cancels every pending branch of the transaction with this Call-ID
    /// and CSeq number (OpenSIPS `mi_tm_cancel` → `cancel_uacs` on all branches). A branch
    /// that answered provisionally gets its CANCEL now, one that has not answered gets it as
    /// soon as it does (and keeps retransmitting until then, or until its timer fires). The
    /// CANCELs carry no Reason header unless `t_add_cancel_reason` set one. `false`: no such
    /// transaction.
    pub fn cancel_by_callid(&self, callid: &str, cseq: &str, now: Instant) -> bool {
        let Some(cell) = self.find_by_callid(callid, cseq) else {
            return false;
        };
        let mut tx = cell.lock();
        let reason = tx.cancel_reason.clone().unwrap_or_default();
        let sends = if tx.invite {
            self.cancel_pending(&mut tx, None, &reason, now)
        } else {
            Vec::new()
        };
        drop(tx);
        if !sends.is_empty() {
            self.schedule(now + self.params.t1, cell.id);
        }
        for s in sends {
            self.host.send(s, None);
        }
        true
    }

    /// As [`Tm::reply_by_callid`] (no body), with the reply's To tag given: dialog's 502 for
    /// an INVITE whose automatic PRACK failed, in the name of the callee's early dialog.
    pub fn reply_tagged_by_callid(
        &self,
        callid: &str,
        cseq: &str,
        code: u16,
        reason: &str,
        to_tag: &str,
    ) -> i64 {
        let Some(cell) = self.find_by_callid(callid, cseq) else {
            return -4;
        };
        let req = cell.lock().request.clone();
        self.reply_in_tagged(&cell, &req, code, reason, to_tag, Instant::now())
    }

    /// `t_reply_by_callid`: a stateful reply to the request of the transaction with this
    /// Call-ID and CSeq number. -4: no such transaction; else as `t_reply`.
    pub fn reply_by_callid(
        &self,
        callid: &str,
        cseq: &str,
        code: u16,
        reason: &str,
        now: Instant,
    ) -> i64 {
        let Some(cell) = self.find_by_callid(callid, cseq) else {
            return -4;
        };
        let req = cell.lock().request.clone();
        self.reply_in(&cell, &req, code, reason, None, now)
    }

    /// `t_relay("allow-no-cancel")` on a request asking `Request-Disposition: no-cancel`.
    pub fn allow_no_cancel(&self, cell: &TxCell) {
        cell.lock().multi_200ok = true;
    }
}
