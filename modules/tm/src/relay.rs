//! The request side of tm's script functions: `t_relay`, `t_newtran`, `t_reply`,
//! `t_reply_with_body`, `t_check_trans`, and the branches a relay sends.

use std::sync::Arc;
use std::time::Instant;

use engine::{FnCtx, Value};

use crate::{Found, Tm, TxCell, bool_code, cell_of, tm};

/// `t_relay([flags][, outbound_proxy])`. Its outcome is the message's last error for
/// `sl_reply_error()` (OpenSIPS `ser_error`: bad request, no destination, unresolvable or
/// filtered destination, send failed; none when it relayed).
pub(crate) fn t_relay(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let code = relay(f, args);
    f.msg.last_error = match code {
        c if c >= 0 => 0,
        -2 => -400,
        -3 => -18,
        -4 => -476,
        -5 => -473,
        -6 => -477,
        _ => -1,
    };
    code
}

fn relay(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    // acc's `$acc_extra` values follow the transaction: from here on every copy of the
    // context (the stored request, its onreply and failure routes) shares one set.
    if f.script.loads("acc") {
        f.msg.acc_extra.get_or_insert_with(Default::default);
    }
    let now = Instant::now();
    let flags = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let proxy = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned());
    // Retransmissions, hop-by-hop ACKs and CANCELs are handled here and t_relay succeeds
    // (OpenSIPS returns 1 for them: the script goes on).
    let (cell, created) = match cell_of(f) {
        Some(c) => (c, false),
        None => match tm.lookup_request(&f.msg.msg) {
            Found::Retransmission(c) => {
                tm.resend_last_reply(&c);
                return 1;
            }
            Found::AckForNegative(c) | Found::AckForLocal2xx(c) => {
                tm.absorb_ack(&c, now);
                return 1;
            }
            Found::CancelFor(c) => {
                tm.cancel_invite_with(&c, f.msg, flags.contains("pass-reason-hdr"), now);
                return 1;
            }
            Found::None => {
                let method = f.msg.msg.method();
                if method == Some(sip::Method::Ack) {
                    // An end-to-end ACK (for a 2xx) has no transaction: relayed statelessly.
                    return match engine::forward::forward(f.msg, proxy.as_deref(), &f.script.net())
                    {
                        Ok(out) => {
                            f.msg.outbox.push(out);
                            1
                        }
                        Err(_) => -4,
                    };
                }
                match tm.create(f.msg, now) {
                    Some(c) => {
                        f.msg.tx = Some(c.clone() as Arc<dyn engine::ctx::Transaction>);
                        (c, true)
                    }
                    None => return -2,
                }
            }
        },
    };
    // A CANCEL given a transaction of its own by `t_newtran` still cancels its INVITE
    // (OpenSIPS `t_forward_nonack`); it is forwarded only when there is none.
    if !created
        && f.msg.msg.method() == Some(sip::Method::Cancel)
        && let Some(invite) = tm.invite_for_cancel(&f.msg.msg)
    {
        let pass_reason = flags.contains("pass-reason-hdr");
        tm.cancel_invite_from(&invite, Some(&cell), f.msg, pass_reason, now);
        return 1;
    }
    // The caller cancelled already (a failure route, or t_newtran then a slow lookup): no new
    // branch; with none sent at all the INVITE is answered 487 (OpenSIPS).
    if cell.was_cancelled() {
        if cell.branch_count() == 0 {
            tm.reply_in(&cell, f.msg, 487, "Request Terminated", None, now);
        }
        return -3;
    }
    if flags.contains("no-dns-failover") {
        cell.lock().no_dns_failover = true;
    }
    if flags.contains("allow-no-cancel") && asks_no_cancel(&f.msg.msg) {
        tm.allow_no_cancel(&cell);
    }
    let (result, first_err) = send_branches(f, tm, &cell, proxy.as_deref(), now);
    let code = match (result, first_err) {
        (Some(ok), _) => return ok,
        (None, Some(code)) => code,
        // Every branch was dropped in branch_route.
        (None, None) => -1,
    };
    // A transaction this call created, that could not be relayed at all, is answered with
    // the reason (OpenSIPS' kill_transaction) unless `no-auto-477`; t_relay then succeeds.
    // One created earlier (t_newtran) is left to the script.
    if created && !flags.contains("no-auto-477") && f.kind == "request" {
        let (status, reason) = match code {
            -2 => (400, "Bad Request (400/TM)"),
            -3 => (500, "No destination available (18/TM)"),
            -4 => (476, "Unresolvable destination (476/TM)"),
            -5 => (473, "Filtered destination (473/TM)"),
            -6 => (477, "Send failed (477/TM)"),
            _ => (500, "Server error occurred (1/TM)"),
        };
        if tm.reply_in(&cell, f.msg, status, reason, None, now) > 0 {
            return 1;
        }
    }
    code
}

/// Sends the message's destination set as new branches of `cell`: one for the R-URI and one per
/// appended branch; the transaction's `branch_route` (t_on_branch) runs over each first and
/// may drop it, or give it an onreply route of its own (`t_on_reply`). Gives (Some(1) when a
/// branch went out, the first error code).
pub(crate) fn send_branches(
    f: &mut FnCtx<'_>,
    tm: &Tm,
    cell: &Arc<TxCell>,
    proxy: Option<&str>,
    now: Instant,
) -> (Option<i64>, Option<i64>) {
    // The branches take their attributes with them (OpenSIPS hands the lists to the
    // transaction): the message is left with none.
    let ruri_attrs = std::mem::take(&mut f.msg.branch_attrs);
    let mut first = f.msg.clone();
    first.branch_attrs = ruri_attrs;
    let mut contexts = vec![first];
    for b in std::mem::take(&mut f.msg.branches) {
        let mut c = f.msg.clone();
        c.new_ruri = Some(b.uri);
        c.dst_uri = b.dst_uri;
        c.path = b.path;
        c.ruri_q = b.q;
        c.branch_flags = b.flags;
        c.branch_attrs = b.attrs;
        // The branch's own socket, else none forced (OpenSIPS gives each branch its own).
        c.send_socket = b.socket;
        c.branches.clear();
        contexts.push(c);
    }
    let mut result = None;
    let mut first_err = None;
    if f.kind == "request" {
        tm.keep_request_edits(cell, &f.msg.edits);
    }
    tm.keep_reply_fixups(cell, &f.msg.reply_fixups);
    tm.begin_relay(cell);
    for mut c in contexts {
        c.branches.clear();
        // A new branch starts without `$bavp`s (a failure route's are the old branch's), and
        // its branch_route sees no reply (a failure route's winning one is not its own).
        c.bavps.clear();
        c.t_reply = None;
        c.on_reply = None;
        // Read per branch: a branch_route may arm another one for the next (OpenSIPS).
        if let Some(route) = cell.branch_route() {
            c.tx = f.msg.tx.clone();
            c.branch_index = Some(cell.branch_count());
            match f.script.run_index(route, f.worker, &mut c, f.log) {
                Ok(engine::Outcome::Drop) => continue,
                Ok(engine::Outcome::Exit) => {}
                Err(e) => {
                    f.log.log(-1, &format!("branch_route: {e}\n"));
                    continue;
                }
            }
            f.msg.outbox.append(&mut c.outbox);
        }
        // `$du` wins over the outbound proxy parameter.
        let dest = if c.dst_uri.is_some() { None } else { proxy };
        let on_reply = c.on_reply.take();
        match tm.add_branch_with(cell, c, dest, &f.script.net(), now, on_reply) {
            Ok(_) => result = Some(1),
            Err(code) => {
                first_err.get_or_insert(code);
            }
        }
    }
    tm.end_relay(cell);
    (result, first_err)
}

/// Whether a request carries `Request-Disposition: no-cancel` (RFC 3841 §9.1; compact `d`).
fn asks_no_cancel(msg: &sip::SipMessage) -> bool {
    msg.headers()
        .filter(|h| {
            h.name_str.eq_ignore_ascii_case("Request-Disposition")
                || h.name_str.eq_ignore_ascii_case("d")
        })
        .flat_map(|h| h.value.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-cancel"))
}

/// `t_newtran()` (OpenSIPS t_lookup.c `t_newtran`): false (-10) when the message has a
/// transaction already; a retransmission gets its last reply again, an ACK for our negative
/// reply is absorbed (both end the script, 0); any other ACK creates nothing and is true; a
/// CANCEL gets a transaction of its own (`t_relay` then cancels its INVITE).
pub(crate) fn t_newtran(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    if f.msg.tx.is_some() {
        return -10;
    }
    let now = Instant::now();
    match tm.lookup_request(&f.msg.msg) {
        Found::Retransmission(c) => {
            tm.resend_last_reply(&c);
            0
        }
        Found::AckForNegative(c) | Found::AckForLocal2xx(c) => {
            tm.absorb_ack(&c, now);
            0
        }
        Found::None if f.msg.msg.method() == Some(sip::Method::Ack) => 1,
        Found::CancelFor(_) | Found::None => match tm.create(f.msg, now) {
            Some(c) => {
                f.msg.tx = Some(c as Arc<dyn engine::ctx::Transaction>);
                1
            }
            None => -1,
        },
    }
}

/// `t_reply` / `t_reply_with_body` (OpenSIPS `w_t_reply`, `w_t_reply_body`): an ACK is not
/// answered (0, the script ends); without a transaction one is created first as `t_newtran`
/// does, so a retransmission gets the last reply again and ends the script. A body goes out
/// as given, its Content-Type is whatever `append_to_reply` added.
fn reply(f: &mut FnCtx<'_>, code: &Value, reason: &Value, body: Option<&Value>) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    if f.msg.msg.method() == Some(sip::Method::Ack) {
        return 0;
    }
    let Some(code) = code.as_int().and_then(|c| u16::try_from(c).ok()) else {
        return -1;
    };
    if !(100..=699).contains(&code) {
        return -1;
    }
    let now = Instant::now();
    let cell = match cell_of(f) {
        Some(c) => c,
        None if f.kind == "failure" => return -1,
        None => match tm.lookup_request(&f.msg.msg) {
            Found::Retransmission(c) => {
                tm.resend_last_reply(&c);
                return 0;
            }
            _ => match tm.create(f.msg, now) {
                Some(c) => {
                    f.msg.tx = Some(c.clone() as Arc<dyn engine::ctx::Transaction>);
                    c
                }
                None => return -1,
            },
        },
    };
    let reason = reason.to_text().into_owned();
    let Some(body) = body else {
        return tm.reply_in(&cell, f.msg, code, &reason, None, now);
    };
    let saved = f.msg.reply_body.replace(body.to_text().into_owned());
    let sent = tm.reply_in(&cell, f.msg, code, &reason, None, now);
    f.msg.reply_body = saved;
    sent
}

pub(crate) fn t_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (c, r) = (
        args.first().cloned().unwrap_or_default(),
        args.get(1).cloned().unwrap_or_default(),
    );
    reply(f, &c, &r, None)
}

pub(crate) fn t_reply_with_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (c, r, b) = (
        args.first().cloned().unwrap_or_default(),
        args.get(1).cloned().unwrap_or_default(),
        args.get(2).cloned().unwrap_or_default(),
    );
    reply(f, &c, &r, Some(&b))
}

/// `t_check_trans()` (OpenSIPS tm.c): a CANCEL is true when its INVITE transaction exists; a
/// message whose transaction is already in hand (`t_newtran`, `t_relay` earlier) is true; a
/// retransmission is absorbed (its last reply resent, the script ends); an ACK is true when
/// it acknowledges a negative reply of ours (`t_relay()` then absorbs it).
pub(crate) fn t_check_trans(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    if f.msg.msg.method() == Some(sip::Method::Cancel) {
        return bool_code(tm.invite_for_cancel(&f.msg.msg).is_some());
    }
    if cell_of(f).is_some() {
        return 1;
    }
    match tm.lookup_request(&f.msg.msg) {
        Found::Retransmission(c) => {
            tm.resend_last_reply(&c);
            0
        }
        Found::CancelFor(_) | Found::AckForNegative(_) => 1,
        // OpenSIPS: "e2e ACK found", false to the script.
        Found::AckForLocal2xx(_) => -2,
        Found::None => -1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::asks_no_cancel;

    fn msg(extra: &str) -> sip::SipMessage {
        let text = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        sip::SipMessage::parse(bytes::Bytes::from(text)).unwrap()
    }

    #[test]
    fn request_disposition_no_cancel_is_found_in_any_form() {
        assert!(asks_no_cancel(&msg(
            "Request-Disposition: proxy, No-Cancel\r\n"
        )));
        assert!(asks_no_cancel(&msg("d: no-cancel\r\n")));
        assert!(!asks_no_cancel(&msg(
            "Request-Disposition: cancel, parallel\r\n"
        )));
        assert!(!asks_no_cancel(&msg("")));
    }
}
