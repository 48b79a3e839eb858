//! CANCEL: of the other branches (a 2xx, a 6xx, `t_cancel_branch`), or from the caller
//! (RFC 3261 §9.2, §16.10).

use std::time::Instant;

use engine::{MsgCtx, Outbound};

use super::*;

impl Tm {
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

    /// `t_add_hdrs`: the header lines the ACKs and CANCELs of `cell` carry from now on
    /// (replacing earlier ones).
    pub fn set_extra_hdrs(&self, cell: &TxCell, hdrs: Vec<(String, String)>) {
        let hdrs: Arc<[(String, String)]> = Arc::from(hdrs);
        let mut tx = cell.lock();
        for b in &mut tx.branches {
            b.extra_hdrs = Arc::clone(&hdrs);
        }
        tx.extra_hdrs = hdrs;
    }

    pub(super) fn cancel_msg(
        &self,
        b: &mut Branch,
        reason: &str,
        now: Instant,
    ) -> Option<Outbound> {
        let out = cancel_for(&b.sent, reason, &b.extra_hdrs)?;
        b.cancel = Cancel::Sent;
        if out.proto == "udp" {
            b.cancel_msg = Some((
                out.clone(),
                Retrans {
                    next: now + self.params.t1,
                    interval: self.params.t1,
                },
            ));
            b.cancel_until = Some(now + self.params.fr_timeout);
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
        self.cancel_invite_from(invite, None, cancel, pass_reason, now);
    }

    /// [`Tm::cancel_invite_with`] for a CANCEL that may have a transaction of its own
    /// (`t_newtran` on it): its 200 then goes out through it, so that its retransmissions
    /// get the 200 again (OpenSIPS `cancel_invite` replies on the CANCEL's transaction).
    pub fn cancel_invite_from(
        &self,
        invite: &TxCell,
        cancel_tx: Option<&TxCell>,
        cancel: &MsgCtx,
        pass_reason: bool,
        now: Instant,
    ) {
        if let Some(own) = cancel_tx {
            self.reply_in(own, cancel, 200, "canceling", None, now);
        } else if let Some((data, dest)) = sl::build_reply(cancel, 200, "canceling") {
            let r = cancel.receipt.as_ref();
            self.host.send(
                Outbound {
                    data,
                    dest,
                    from: r.map(|r| r.local),
                    proto: r.map_or("udp", |r| r.proto),
                    conn: r.and_then(|r| r.conn),
                    origin: None,
                    no_new_conn: false,
                },
                None,
            );
        }
        // OpenSIPS `get_cancel_reason`: `t_add_cancel_reason` first, then (with
        // `pass-reason-hdr`) the CANCEL's first Reason header, else 487 ORIGINATOR_CANCEL.
        let received = pass_reason
            .then(|| {
                cancel
                    .msg
                    .headers()
                    .find(|h| h.name_str.eq_ignore_ascii_case("Reason"))
                    .map(|h| h.value.to_owned())
            })
            .flatten();
        let mut tx = invite.lock();
        tx.cancelled = true;
        if let Some(d) = tx.request.dialog {
            engine::hooks::dialog_cancelled(d.id);
        }
        let reason = tx
            .cancel_reason
            .clone()
            .or(received)
            .unwrap_or_else(|| "SIP;cause=487;text=\"ORIGINATOR_CANCEL\"".to_owned());
        let sends = self.cancel_pending(&mut tx, None, &reason, now);
        drop(tx);
        for s in sends {
            self.host.send(s, None);
        }
    }
}
