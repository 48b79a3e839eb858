//! The end of a transaction: failure_route and the best reply upstream once every branch is
//! final, and the timers (retransmissions, final-response timeouts, the wait for injected
//! branches, deletion).

use std::sync::Arc;
use std::time::Instant;

use super::*;

impl Tm {
    /// When every branch has a final reply and none went upstream: failure_route (if armed),
    /// then the best reply upstream. The branch whose final reply (received, or made up on a
    /// timeout or send failure) completed the transaction is the failure route's current
    /// branch (`$T_branch_idx`, `$bavp`, `$tm.branch.*` without an index), as OpenSIPS keeps
    /// that branch's index while it handles the reply.
    pub(super) fn complete_if_done(
        &self,
        cell: &Arc<TxCell>,
        runner: &mut dyn Runner,
        now: Instant,
    ) {
        let mut minor_cancels = Vec::new();
        let (route, mut ctx, best, current) = {
            let mut tx = cell.lock();
            let decided = tx.decided.filter(|&d| d < tx.branches.len());
            // Branches with `minor_branch_flag` are not waited for (OpenSIPS `t_pick_branch`).
            let minor_flag = self.params.minor_flag;
            let minor = |b: &Branch| minor_flag.is_some_and(|f| b.flags & (1 << f) != 0);
            let done = tx.branches.iter().all(|b| b.is_final() || minor(b))
                && tx.branches.iter().any(Branch::is_final);
            // A final reply still in its onreply routes is not the branch's answer yet: the
            // worker running them completes the transaction after them (a timer that fires
            // meanwhile would otherwise relay the reply as it came, before the routes' changes).
            if tx.final_sent
                || tx.completing
                || tx.relaying > 0
                || tx.branches.is_empty()
                || tx.branches.iter().any(|b| b.final_in_routes)
                || (decided.is_none() && (tx.waiting.is_some() || !done))
            {
                return;
            }
            tx.completing = true;
            // Minor branches still pending are cancelled (no Reason), as OpenSIPS does; the
            // CANCELs leave once the lock is released.
            if tx.branches.iter().any(|b| !b.is_final() && minor(b)) {
                minor_cancels = self.cancel_pending(&mut tx, None, "", now);
            }
            let current = tx.last_final.unwrap_or(0);
            let cancelled = tx.cancelled;
            let first = tx.first_branch.min(tx.branches.len() - 1);
            // Branches that could not be sent answer only when nothing else can: then the
            // previous attempt's best (a failure route's relays all failed), else their 477.
            let pick = |range: std::ops::Range<usize>, sent_only: bool| {
                tx.branches[range.clone()]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (i + range.start, b))
                    .filter(|(_, b)| b.is_final() && !(sent_only && b.send_failed))
                    .min_by_key(|(_, b)| rank(b.status.unwrap_or(500), cancelled))
            };
            let n = tx.branches.len();
            let Some((bi, best)) = decided
                .map(|d| (d, &tx.branches[d]))
                .or_else(|| pick(first..n, true))
                .or_else(|| pick(0..first, true))
                .or_else(|| pick(first..n, false))
            else {
                return;
            };
            let code = best.status.unwrap_or(500);
            let challenge = match code {
                401 => Some(sip::HeaderName::WwwAuthenticate),
                407 => Some(sip::HeaderName::ProxyAuthenticate),
                _ => None,
            };
            let challenges = match (challenge, best.reply.as_ref()) {
                (Some(name), Some(reply)) => reply
                    .headers()
                    .filter(|h| h.name == name)
                    .map(|h| h.value.to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            let info = ReplyInfo {
                code,
                reason: best.reason.clone(),
                branch: bi,
                local: best.local,
                challenges,
            };
            let best_to_tag = best
                .reply
                .as_ref()
                .and_then(|r| r.to_tag().ok().flatten())
                .unwrap_or("")
                .to_owned();
            let bavps = tx
                .branches
                .get(current)
                .map(|b| b.bavps.clone())
                .unwrap_or_default();
            // acc: a missed call is reported once, when an attempt has failed as a whole
            // (OpenSIPS' on-failure report), with the best reply; the flag is then spent, and
            // a `do_accounting(…, "missed")` in failure_route arms it for the next attempt.
            if tx.invite
                && info.code >= 300
                && let Some(acc) = tx.request.acc.filter(engine::Accounting::missed_armed)
            {
                acc::report_missed(&tx.request, info.code, &info.reason, &best_to_tag);
                tx.request.acc = Some(acc.missed_spent());
            }
            // After a 6xx too: the failure route runs, but cannot add branches (OpenSIPS).
            let route = tx.on_failure.take();
            tx.picked = Some(bi);
            let mut ctx = tx.request.clone();
            ctx.bavps = bavps;
            // The failure route starts from the request as the request route left it, not
            // from the last branch: no new R-URI, `$du`, q, forced socket or branch flags
            // (OpenSIPS fakes it so since 3.1).
            ctx.new_ruri = None;
            ctx.dst_uri = None;
            ctx.ruri_q = -1;
            ctx.send_socket = None;
            ctx.branch_flags = 0;
            ctx.branch_attrs = Default::default();
            // Nor the last branch's branch_route edits: the request route's only.
            if let Some(edits) = &tx.request_edits {
                ctx.edits = edits.clone();
            }
            (route, ctx, (bi, info), current)
        };
        for c in minor_cancels {
            self.host.send(c, None);
        }
        if let Some(route) = route {
            ctx.tx = Some(cell.clone() as Arc<dyn engine::ctx::Transaction>);
            ctx.t_reply = Some(best.1.clone());
            ctx.branch_index = Some(current);
            ctx.on_failure = None;
            let branches_before = cell.lock().branches.len();
            runner.run(route, &mut ctx);
            for out in std::mem::take(&mut ctx.outbox) {
                self.host.send(out, None);
            }
            let mut tx = cell.lock();
            // What the failure route set stays with the transaction and the current branch
            // (its `do_accounting` too).
            tx.request.avps = std::mem::take(&mut ctx.avps);
            tx.request.flags = ctx.flags;
            tx.request.acc = ctx.acc;
            if let Some(b) = tx.branches.get_mut(current) {
                b.bavps = std::mem::take(&mut ctx.bavps);
            }
            let added = tx.branches.len() > branches_before;
            if tx.final_sent {
                return;
            }
            if added {
                // New branches: a new attempt; wait for them (they complete the transaction
                // again, and only they compete for the best reply).
                tx.completing = false;
                tx.first_branch = branches_before;
                let pending = tx.branches.iter().any(|b| !b.is_final());
                drop(tx);
                if !pending {
                    self.complete_if_done(cell, runner, now);
                }
                return;
            }
        }
        self.send_best(cell, best.0, now);
    }

    fn send_best(&self, cell: &TxCell, branch: usize, now: Instant) {
        let mut tx = cell.lock();
        if tx.final_sent {
            return;
        }
        if let Some(Local(done)) = tx.local_done.take() {
            let done_with = tx
                .branches
                .get(branch)
                .map_or((500, String::new(), None), |b| {
                    let reply = if b.local { None } else { b.reply.clone() };
                    (b.status.unwrap_or(500), b.reason.clone(), reply)
                });
            tx.final_sent = true;
            let at = now + self.params.wt_timer;
            tx.delete_at = Some(at);
            drop(tx);
            self.schedule(at, cell.id);
            let (code, reason, reply) = done_with;
            done(LocalReply {
                code,
                reason,
                reply,
            });
            return;
        }
        let Some(b) = tx.branches.get(branch) else {
            return;
        };
        let (code, reason, reply, local) = (
            b.status.unwrap_or(500),
            b.reason.clone(),
            b.reply.clone(),
            b.local,
        );
        let out = match (&reply, local) {
            (Some(reply), false) => {
                let came_on = b.sent.from.map(|a| (b.sent.proto, a));
                self.relay_up(&tx.request, reply, came_on)
            }
            _ => {
                let req = tx.request.clone();
                drop(tx);
                let reason = if code == 408 {
                    "Request Timeout"
                } else if code == 477 {
                    "Send failed (477/TM)"
                } else {
                    reason.as_str()
                };
                // A made-up branch reply is relayed as the branch's, not a reply of tm's own
                // (`t_local_replied("last")` outside failure_route; OpenSIPS `relay_reply`).
                if self.reply_in(cell, &req, code, reason, None, now) > 0 {
                    cell.lock().last_local = false;
                }
                return;
            }
        };
        if let Some(out) = out {
            self.note_reply_sent(&mut tx, cell.id, code, false, &out, None, now);
            drop(tx);
            self.host.send(out, None);
        }
    }

    /// Runs every timer due at `now`: request and CANCEL retransmissions (UDP), final-response
    /// timeouts (local 408, CANCEL when the branch rang), negative reply retransmissions until
    /// the ACK, deletion after `wt_timer`.
    pub fn tick(&self, now: Instant, runner: &mut dyn Runner) {
        let urgent = std::mem::take(&mut *lock(&self.urgent));
        for id in urgent {
            // The table's lock is let go before the timers run (they may delete the
            // transaction, which takes it again).
            let cell = lock(&self.txs).get(&id).cloned();
            if let Some(cell) = cell {
                self.run_timers(&cell, now, runner);
            }
        }
        let mut due = Vec::new();
        lock(&self.timers).due(now, &mut due);
        // A transaction may have several timers due at once: its timers run once.
        due.sort_unstable();
        due.dedup();
        for id in due {
            let Some(cell) = lock(&self.txs).get(&id).cloned() else {
                continue;
            };
            self.run_timers(&cell, now, runner);
        }
    }

    /// The wait for injected branches ends at `fr_inv_timeout`; with no branch at all the
    /// caller gets a local 408.
    fn end_wait_if_due(&self, cell: &TxCell, now: Instant) {
        let mut tx = cell.lock();
        let Some(w) = tx.waiting else { return };
        if w.until > now {
            return;
        }
        tx.waiting = None;
        let nothing = tx.branches.is_empty() && !tx.final_sent;
        let req = tx.request.clone();
        drop(tx);
        if nothing {
            engine::stat!("tm", "timeout_finalresponse").inc();
            self.reply_in(cell, &req, 408, "Request Timeout", None, now);
        }
    }

    fn run_timers(&self, cell: &Arc<TxCell>, now: Instant, runner: &mut dyn Runner) {
        let mut sends = Vec::new();
        let mut failover = Vec::new();
        let mut next: Option<Instant> = None;
        let mut soonest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        {
            let mut tx = cell.lock();
            if tx.delete_at.is_some_and(|d| d <= now) {
                let key = tx.key.clone();
                let ack_key = tx.ack_key.take();
                let dialog = tx.request.dialog;
                drop(tx);
                if let Some(d) = dialog {
                    engine::hooks::dialog_tx_gone(d.id);
                }
                lock(&self.by_key).remove(&key);
                if let Some(k) = ack_key {
                    lock(&self.local_2xx).remove(&k);
                }
                if lock(&self.txs).remove(&cell.id).is_some() {
                    engine::gauge!("tm", "inuse_transactions").dec();
                }
                return;
            }
            let invite = tx.invite;
            let t2 = self.params.t2;
            let mut timed_out = None;
            for (i, b) in tx.branches.iter_mut().enumerate() {
                if let Some(r) = b.retrans
                    && !b.is_final()
                {
                    if r.next <= now {
                        sends.push(b.sent.clone());
                        // Which step of the back-off this resend is (OpenSIPS' RT lists).
                        let t1 = self.params.t1;
                        match r.interval {
                            i if i == t1 => engine::stat!("tm", "retransmission_req_T1_1").inc(),
                            i if i == t1 * 2 => {
                                engine::stat!("tm", "retransmission_req_T1_2").inc()
                            }
                            i if i == t1 * 4 => {
                                engine::stat!("tm", "retransmission_req_T1_3").inc()
                            }
                            _ => engine::stat!("tm", "retransmission_req_T2").inc(),
                        }
                        let interval = if invite || !b.provisional {
                            (r.interval * 2).min(t2)
                        } else {
                            t2
                        };
                        b.retrans = Some(Retrans {
                            next: now + interval,
                            interval,
                        });
                    }
                    if let Some(r) = b.retrans {
                        soonest(r.next);
                    }
                }
                // An unanswered CANCEL is resent for fr_timeout, no longer.
                if b.cancel_until.is_some_and(|u| u <= now) {
                    b.cancel_msg = None;
                    b.cancel_until = None;
                }
                if let Some((msg, r)) = b.cancel_msg.clone() {
                    if r.next <= now {
                        sends.push(msg.clone());
                        let interval = (r.interval * 2).min(t2);
                        b.cancel_msg = Some((
                            msg,
                            Retrans {
                                next: now + interval,
                                interval,
                            },
                        ));
                        soonest(now + interval);
                    } else {
                        soonest(r.next);
                    }
                }
                if let Some(fr) = b.fr_at {
                    if fr <= now && !b.is_final() {
                        // Timer B/F: the branch is given up; a ringing INVITE branch is cancelled.
                        if invite && b.cancel == Cancel::None {
                            let reason = "SIP;cause=480;text=\"NO_ANSWER\"";
                            if !b.provisional {
                                // Cancelled if it answers provisionally after all.
                                b.cancel = Cancel::Wanted(reason.to_owned());
                            } else if let Some(c) = self.cancel_msg(b, reason, now) {
                                sends.push(c);
                                soonest(now + self.params.t1);
                            }
                        }
                        // A branch that rang was on fr_inv_timeout (OpenSIPS' FR_INV list).
                        if invite && b.provisional {
                            engine::stat!("tm", "timeout_finalresponse_inv").inc();
                        } else {
                            engine::stat!("tm", "timeout_finalresponse").inc();
                        }
                        b.status = Some(408);
                        b.reason = "Request Timeout".into();
                        b.local = true;
                        b.retrans = None;
                        b.fr_at = None;
                        timed_out = Some(i);
                        // Nothing ever came back: the next DNS target may answer.
                        if !b.received && b.failover.is_some() {
                            failover.push(i);
                        }
                    } else if !b.is_final() {
                        soonest(fr);
                    }
                }
            }
            if timed_out.is_some() {
                tx.last_final = timed_out;
            }
            if let Some((r, give_up)) = tx.reply_retrans {
                if now >= give_up {
                    tx.reply_retrans = None;
                    let at = now + self.params.wt_timer;
                    tx.delete_at = Some(at);
                } else if r.next <= now {
                    if let Some(out) = tx.last_reply.clone() {
                        engine::stat!("tm", "retransmission_rpl_T2").inc();
                        sends.push(out);
                    }
                    let interval = (r.interval * 2).min(t2);
                    tx.reply_retrans = Some((
                        Retrans {
                            next: now + interval,
                            interval,
                        },
                        give_up,
                    ));
                    soonest(now + interval);
                } else {
                    soonest(r.next);
                }
            }
            if let Some(d) = tx.delete_at {
                soonest(d);
            }
        }
        for s in sends {
            self.host.send(s, None);
        }
        for n in failover {
            self.dns_failover(cell, n, now);
        }
        self.end_wait_if_due(cell, now);
        self.complete_if_done(cell, runner, now);
        let delete_at = cell.lock().delete_at;
        if let Some(d) = delete_at {
            soonest(d);
        }
        if let Some(at) = next {
            self.schedule(at, cell.id);
        }
    }
}
