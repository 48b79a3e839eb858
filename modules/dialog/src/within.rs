//! Requests rsips itself sends inside a dialog, and what they change for the others:
//!
//! - `auto-prack` (OpenSIPS 4.0): each reliable provisional reply (101–199 with an `RSeq`) to
//!   the INVITE is acknowledged towards the callee by a PRACK of ours, so that a caller that
//!   does not do RFC 3262 can talk to a callee that insists on it. The PRACK's transaction
//!   runs `auto_prack_fr_timeout` seconds; when it fails and `auto_prack_hangup_on_failure`
//!   is set, the INVITE is answered `502 Bad Gateway` upstream.
//! - `dlg_send_sequential(method, leg[, body][, content-type][, headers])`: any in-dialog
//!   request towards one side (a PRACK from an onreply route acknowledges the reply).
//! - Once rsips sent a request of its own towards a side, the other side's requests that
//!   follow are renumbered after it (their replies get the number back, the ACK of a
//!   renumbered INVITE follows it), as OpenSIPS does with its `last_gen_cseq`.
//!
//! They leave from one thread of their own, in the order they were built: the replies that
//! ask for them arrive under tm's transaction lock, and two PRACKs must not overtake each
//! other (a callee refuses the lower CSeq).

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use engine::{FnCtx, MsgCtx, ReplyFixup, Value};
use sip::{HeaderName, Method, SipMessage};

use crate::end::{Done, SENDER};
use crate::table::{DELETED, Dialog, Leg, dialogs};

/// What the sending thread does.
enum Job {
    /// A request (through `local_route`, then tm); `done` gets its final reply's code.
    Send(Box<MsgCtx>, Done),
    /// `auto_prack_hangup_on_failure`: the INVITE (Call-ID, CSeq) answered 502 with this To tag.
    BadGateway {
        callid: String,
        cseq: u32,
        to_tag: String,
    },
}

static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

/// Hands a job to the sending thread (started on first use).
fn queue(job: Job) {
    let tx = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("dialog requests".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                }
            });
        if let Err(e) = spawned {
            log::error!("dialog: cannot start the thread sending in-dialog requests: {e}");
        }
        Mutex::new(tx)
    });
    let tx = tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if tx.send(job).is_err() {
        log::error!("dialog: the thread sending in-dialog requests is gone");
    }
}

fn run(job: Job) {
    match job {
        Job::Send(ctx, done) => {
            let Some(sender) = SENDER.get() else {
                log::error!("dialog: no sender for in-dialog requests");
                return;
            };
            let method = ctx.msg.method_str().unwrap_or("?").to_owned();
            if let Err(e) = sender.send(*ctx, done) {
                log::error!("dialog: {method} not sent: {e}");
            }
        }
        Job::BadGateway {
            callid,
            cseq,
            to_tag,
        } => {
            let Some(tm) = tm::global() else { return };
            let rc =
                tm.reply_tagged_by_callid(&callid, &cseq.to_string(), 502, "Bad Gateway", &to_tag);
            if rc < 0 {
                // -4: the INVITE's transaction is gone; -1: it already has its final reply.
                log::info!("dialog: the INVITE {callid}/{cseq} not answered 502 ({rc})");
            }
        }
    }
}

/// The route set towards the far side that sent `msg` (a reply to a request we relayed with
/// our Record-Route, `ours` inside it): the Record-Routes above ours, nearest first; all of
/// them with `ours` `None` (topology hiding sent the request without ours).
pub(crate) fn route_set_of_reply(msg: &SipMessage, ours: Option<&str>) -> Option<Vec<String>> {
    let rr: Vec<&str> = msg.values(HeaderName::RecordRoute).map(str::trim).collect();
    let first = match ours {
        Some(ours) => rr.iter().position(|r| r.contains(ours))?,
        None => rr.len(),
    };
    Some(rr[..first].iter().rev().map(|r| (*r).to_owned()).collect())
}

/// `RAck: <RSeq> <CSeq> INVITE` for a reliable provisional reply to an INVITE; `None` when the
/// reply is not one (no RSeq: nothing to acknowledge).
fn rack(reply: &SipMessage) -> Result<Option<String>, String> {
    let code = reply.status().unwrap_or(0);
    if !(101..200).contains(&code) {
        return Err(format!(
            "a PRACK acknowledges a 101-199 reply, not a {code}"
        ));
    }
    let cseq = reply.cseq().map_err(|_| "the reply has no valid CSeq")?;
    if cseq.method != Method::Invite {
        return Err("a PRACK acknowledges a provisional reply to an INVITE".into());
    }
    match reply.rseq() {
        Ok(Some(rseq)) => Ok(Some(format!("RAck: {rseq} {} INVITE\r\n", cseq.seq))),
        Ok(None) => Ok(None),
        Err(_) => Err("the reply's RSeq is not valid".into()),
    }
}

/// The callee as a provisional reply shows it: its tag, its Contact and the route set of its
/// early dialog (the socket is the one the INVITE went out on).
fn early_callee(d: &Dialog, reply: &SipMessage, rr_param: &str) -> Result<Leg, String> {
    let tag = reply
        .to_tag()
        .ok()
        .flatten()
        .ok_or("the provisional reply has no To tag")?;
    let contact = crate::contact_of(reply).ok_or("the provisional reply has no Contact")?;
    let ours = format!(";{rr_param}={}", d.did());
    Ok(Leg {
        tag: tag.to_owned(),
        contact,
        route_set: route_set_of_reply(reply, Some(&ours)).unwrap_or_default(),
        socket: d.callee.socket.clone(),
        ..Leg::default()
    })
}

/// The PRACK for `reply` towards the callee of `d` (with `hdrs` added), numbered after what
/// the callee has seen; `Ok(None)` when the reply is not sent reliably.
fn build_prack(
    d: &mut Dialog,
    reply: &SipMessage,
    hdrs: &str,
    body: Option<(&str, &str)>,
    rr_param: &str,
) -> Result<Option<MsgCtx>, String> {
    let Some(rack) = rack(reply)? else {
        return Ok(None);
    };
    let target = early_callee(d, reply, rr_param)?;
    let seen = d.caller.cseq;
    let cseq = d.callee.next_gen_cseq(seen);
    let extra = format!("{rack}{hdrs}");
    crate::end::request_to(d, false, "PRACK", cseq, &extra, &target, body).map(Some)
}

/// `auto-prack`: the PRACK for a provisional reply the callee sent, queued; nothing for an
/// unreliable one. Runs with the dialog table locked (from tm's reply hook).
pub(crate) fn auto_prack(d: &mut Dialog, reply: &SipMessage) {
    let s = crate::settings();
    let to_tag = reply.to_tag().ok().flatten().unwrap_or("").to_owned();
    if let Ok(Some(rseq)) = reply.rseq() {
        let key = (to_tag.clone(), rseq);
        if d.callee.pracked.contains(&key) {
            // A retransmission: the PRACK is on its way.
            return;
        }
        d.callee.pracked.push(key);
        if d.callee.pracked.len() > 8 {
            d.callee.pracked.remove(0);
        }
    }
    let hdrs = s.extra_hdrs.clone();
    let mut ctx = match build_prack(d, reply, &hdrs, None, &s.rr_param) {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return,
        Err(e) => {
            log::error!("dialog: no automatic PRACK for {}: {e}", d.callid);
            return;
        }
    };
    ctx.fr_timeout = Some(s.auto_prack_fr_timeout);
    let (callid, cseq) = (d.callid.clone(), d.initial_cseq);
    let hangup = s.auto_prack_hangup_on_failure;
    let done: Done = Box::new(move |f: &crate::end::Final| {
        let code = f.code;
        if code < 300 {
            return;
        }
        log::warn!("dialog: the automatic PRACK of {callid} failed with {code}");
        if hangup {
            queue(Job::BadGateway {
                callid,
                cseq,
                to_tag,
            });
        }
    });
    queue(Job::Send(Box::new(ctx), done));
}

/// Renumbers a request from one side towards `target` after the requests rsips sent that way
/// itself (nothing when it sent none): a new number for each request but ACK and CANCEL, the
/// reply getting the original back; an ACK follows its renumbered INVITE.
pub(crate) fn renumber(ctx: &mut MsgCtx, target: &mut Leg, method: Option<Method>, cseq: u32) {
    if target.gen_cseq == 0 {
        return;
    }
    let Some(index) = ctx
        .msg
        .headers()
        .find(|h| h.name == HeaderName::CSeq)
        .map(|h| h.index)
    else {
        return;
    };
    let name = ctx.msg.cseq().map_or("", |c| c.method_str).to_owned();
    match method {
        Some(Method::Cancel) => {}
        Some(Method::Ack) => {
            if let Some(&(_, relayed)) = target.renumbered.iter().find(|(sent, _)| *sent == cseq) {
                ctx.edits.replace_value(index, format!("{relayed} {name}"));
            }
        }
        _ => {
            let relayed = target.next_gen_cseq(0);
            ctx.edits.replace_value(index, format!("{relayed} {name}"));
            if !ctx
                .reply_fixups
                .iter()
                .any(|f| matches!(f, ReplyFixup::CSeq(_)))
            {
                ctx.reply_fixups.push(ReplyFixup::CSeq(cseq));
            }
            if method == Some(Method::Invite) {
                target.renumbered.push((cseq, relayed));
                if target.renumbered.len() > 4 {
                    target.renumbered.remove(0);
                }
            }
        }
    }
}

/// `dlg_send_sequential(method, leg[, body][, content-type][, headers])`: 1 when the request
/// left, -1 otherwise.
pub(crate) fn dlg_send_sequential(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| v.to_text().into_owned())
    };
    let method = text(0).unwrap_or_else(|| "INVITE".into());
    let upstream = match text(1).map(|l| l.to_ascii_lowercase()).as_deref() {
        Some("caller") => true,
        Some("callee") => false,
        other => {
            f.log.log(
                -1,
                &format!(
                    "dlg_send_sequential: the leg is `caller` or `callee`, not {:?}\n",
                    other.unwrap_or("")
                ),
            );
            return -1;
        }
    };
    let (body, ct, hdrs) = (text(2), text(3), text(4).unwrap_or_default());
    let Some(mark) = f.msg.dialog else {
        f.log.log(
            -1,
            "dlg_send_sequential: no dialog here (create_dialog, loose_route or load_dialog_ctx \
             first)\n",
        );
        return -1;
    };
    if body.is_some() && ct.is_none() {
        f.log.log(
            -2,
            "dlg_send_sequential: a body without a content type may be refused\n",
        );
    }
    let s = crate::settings();
    let mut hdrs = format!("{}{}", s.extra_hdrs, with_crlf(&hdrs));
    if let (Some(ct), Some(_)) = (&ct, &body) {
        hdrs.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let body = body.as_deref().map(|b| (ct.as_deref().unwrap_or(""), b));
    let built = {
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&mark.id) else {
            f.log.log(-1, "dlg_send_sequential: the dialog is gone\n");
            return -1;
        };
        if d.state == DELETED {
            f.log.log(-1, "dlg_send_sequential: the dialog has ended\n");
            return -1;
        }
        let reply = (!f.msg.msg.is_request()).then(|| f.msg.msg.clone());
        let built = if method.eq_ignore_ascii_case("PRACK") && !upstream {
            match &reply {
                Some(r) => build_prack(d, r, &hdrs, body, &s.rr_param)
                    .and_then(|c| c.ok_or_else(|| "the reply has no RSeq".to_owned())),
                None => Err("a PRACK is sent from an onreply route, for its reply".into()),
            }
        } else {
            let (to, from) = if upstream {
                (&mut d.caller, d.callee.cseq)
            } else {
                (&mut d.callee, d.caller.cseq)
            };
            let cseq = to.next_gen_cseq(from);
            let copy = d.clone();
            let target = if upstream { &copy.caller } else { &copy.callee };
            crate::end::request_to(&copy, upstream, &method, cseq, &hdrs, target, body)
        };
        t.mark_dirty(mark.id);
        built
    };
    match built {
        Ok(ctx) => {
            let m = method.clone();
            queue(Job::Send(
                Box::new(ctx),
                Box::new(move |f: &crate::end::Final| {
                    let code = f.code;
                    if code >= 300 {
                        log::info!("dialog: {m} sent by dlg_send_sequential got {code}");
                    }
                }),
            ));
            1
        }
        Err(e) => {
            f.log
                .log(-1, &format!("dlg_send_sequential: {method}: {e}\n"));
            -1
        }
    }
}

/// `dlg_inc_cseq([tag][, inc])`: the next requests towards the callee whose tag this is (the
/// message's To tag by default) are numbered `inc` higher (lower when negative), as after
/// requests of ours. -2: no dialog; -1: not the callee's tag.
pub(crate) fn dlg_inc_cseq(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(mark) = f.msg.dialog else {
        return -2;
    };
    let tag = match args.first().filter(|v| !matches!(v, Value::Null)) {
        Some(v) => v.to_text().into_owned(),
        None => match f.msg.msg.to_tag() {
            Ok(t) => t.unwrap_or("").to_owned(),
            Err(_) => {
                f.log.log(-1, "dlg_inc_cseq: no valid To header\n");
                return -1;
            }
        },
    };
    let inc = args.get(1).and_then(Value::as_int).unwrap_or(1);
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&mark.id) else {
        return -2;
    };
    // Only a callee's tag names a leg here, as in OpenSIPS.
    if d.callee.tag.is_empty() || d.callee.tag != tag {
        f.log
            .log(-1, &format!("dlg_inc_cseq: no leg with tag <{tag}>\n"));
        return -1;
    }
    let base = if d.callee.gen_cseq == 0 {
        d.caller.cseq
    } else {
        d.callee.gen_cseq
    };
    let raised = i64::from(base)
        .saturating_add(inc)
        .clamp(1, i64::from(u32::MAX));
    d.callee.gen_cseq = u32::try_from(raised).unwrap_or(u32::MAX);
    t.mark_dirty(mark.id);
    1
}

/// MI `dialog:send_sequential`: a request inside the call with this Call-ID towards `mode`'s
/// side (`caller`, the default, or `callee`), with `body` `none` (default), `inbound` (what the
/// other side offered last), `outbound` (what was relayed to that side last) or
/// `custom:TYPE:BODY`; waits for its final reply: (code, reason). The `challenge` modes are
/// refused (406).
pub fn mi_send_sequential(
    callid: &str,
    method: Option<&str>,
    mode: Option<&str>,
    body: Option<&str>,
    headers: Option<&str>,
) -> Result<(u16, String), (i64, String)> {
    let bad = |code: i64, text: &str| Err((code, text.to_owned()));
    let towards_caller = match mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("caller") => true,
        Some("callee") => false,
        Some(m) if m.starts_with("challenge") => {
            return bad(406, "Not Acceptable");
        }
        Some(_) => return bad(400, "Invalid mode"),
    };
    let method = method.unwrap_or("INVITE");
    enum Body {
        None,
        Inbound,
        Outbound,
        Custom(String, String),
    }
    let body = match body.map(|b| (b.to_ascii_lowercase(), b)) {
        None => Body::None,
        Some((l, _)) if l == "none" => Body::None,
        Some((l, _)) if l == "inbound" => Body::Inbound,
        Some((l, _)) if l == "outbound" => Body::Outbound,
        Some((l, b)) if l.starts_with("custom") && b.len() >= 10 => {
            match b[7..].split_once(':') {
                Some((ct, text)) => Body::Custom(ct.to_owned(), text.to_owned()),
                // OpenSIPS: no content type, no body.
                None => Body::None,
            }
        }
        Some(_) => return bad(400, "Invalid body mode"),
    };
    let s = crate::settings();
    let built = {
        let mut t = dialogs();
        let Some(id) = crate::lookup::by_callid(&t, callid, true) else {
            return bad(404, "Dialog Not Found");
        };
        let Some(d) = t.by_id.get_mut(&id) else {
            return bad(404, "Dialog Not Found");
        };
        let (from, to) = if towards_caller {
            (&d.callee, &d.caller)
        } else {
            (&d.caller, &d.callee)
        };
        let sdp = |s: &str| ("application/sdp".to_owned(), s.to_owned());
        let content = match body {
            Body::None => None,
            Body::Inbound => Some(sdp(&from.in_sdp)),
            Body::Outbound if to.out_sdp.is_empty() => Some(sdp(&from.in_sdp)),
            Body::Outbound => Some(sdp(&to.out_sdp)),
            Body::Custom(ct, b) => Some((ct, b)),
        };
        let seen = from.cseq;
        let cseq = if towards_caller {
            d.caller.next_gen_cseq(seen)
        } else {
            d.callee.next_gen_cseq(seen)
        };
        let mut hdrs = format!("{}{}", s.extra_hdrs, with_crlf(headers.unwrap_or("")));
        if let Some((ct, _)) = &content {
            hdrs.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        let copy = d.clone();
        t.mark_dirty(id);
        let target = if towards_caller {
            &copy.caller
        } else {
            &copy.callee
        };
        crate::end::request_to(
            &copy,
            towards_caller,
            method,
            cseq,
            &hdrs,
            target,
            content.as_ref().map(|(ct, b)| (ct.as_str(), b.as_str())),
        )
    };
    let ctx = built.map_err(|e| (500, format!("Internal Error ({e})")))?;
    let Some(sender) = SENDER.get() else {
        return bad(500, "Internal Error");
    };
    let (tx, rx) = mpsc::channel();
    sender
        .send(
            ctx,
            Box::new(move |f: &crate::end::Final| {
                let _ = tx.send(f.clone());
            }),
        )
        .map_err(|e| (500, format!("Internal Error ({e})")))?;
    // tm ends the transaction itself (fr_timeout / fr_inv_timeout); this only bounds a wait
    // it somehow never ends.
    match rx.recv_timeout(std::time::Duration::from_secs(300)) {
        Ok(f) if f.local => Err((i64::from(f.code), f.reason)),
        Ok(f) => Ok((f.code, f.reason)),
        Err(_) => bad(500, "Internal Error"),
    }
}

/// Header lines as the script wrote them, each ended by CRLF.
fn with_crlf(hdrs: &str) -> String {
    let mut out = String::new();
    for line in hdrs
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
    {
        out.push_str(line.trim_end());
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    fn reply(text: &str) -> SipMessage {
        SipMessage::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    const RELIABLE: &str = "SIP/2.0 183 Session Progress\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\n\
        Record-Route: <sip:edge.example;lr>\n\
        Record-Route: <sip:127.0.0.1:5060;lr;did=1.2>\n\
        From: <sip:a@x>;tag=a\nTo: <sip:b@x>;tag=b\nCall-ID: c\nCSeq: 7 INVITE\n\
        RSeq: 42\nRequire: 100rel\nContact: <sip:b@10.0.0.2>\nContent-Length: 0\n\n";

    #[test]
    fn rack_names_the_rseq_and_the_invite_cseq() {
        assert_eq!(
            rack(&reply(RELIABLE)).unwrap().as_deref(),
            Some("RAck: 42 7 INVITE\r\n")
        );
        let unreliable = RELIABLE.replace("RSeq: 42\n", "");
        assert_eq!(rack(&reply(&unreliable)).unwrap(), None);
        let trying = RELIABLE.replace("183 Session Progress", "100 Trying");
        assert!(rack(&reply(&trying)).is_err());
        let to_bye = RELIABLE.replace("7 INVITE", "7 BYE");
        assert!(rack(&reply(&to_bye)).is_err());
        let bad = RELIABLE.replace("RSeq: 42", "RSeq: forty-two");
        assert!(rack(&reply(&bad)).is_err());
    }

    #[test]
    fn the_early_route_set_is_what_lies_beyond_our_record_route() {
        let r = reply(RELIABLE);
        assert_eq!(
            route_set_of_reply(&r, Some(";did=1.2")).unwrap(),
            vec!["<sip:edge.example;lr>".to_owned()]
        );
        assert_eq!(route_set_of_reply(&r, Some(";did=9.9")), None);
    }

    #[test]
    fn requests_after_ours_are_renumbered_and_acks_follow_their_invite() {
        let mut target = Leg::default();
        let invite = |cseq: u32, method: &str| {
            let text = format!(
                "{method} sip:b@x SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\n\
                 From: <sip:a@x>;tag=a\nTo: <sip:b@x>;tag=b\nCall-ID: c\nCSeq: {cseq} {method}\n\
                 Content-Length: 0\n\n"
            );
            MsgCtx::new(reply(&text))
        };
        // Nothing sent by us yet: nothing changes.
        let mut bye = invite(2, "BYE");
        renumber(&mut bye, &mut target, Some(Method::Bye), 2);
        assert!(bye.reply_fixups.is_empty());
        // We sent CSeq 3 (a PRACK after INVITE 1 and the caller's 2).
        assert_eq!(target.next_gen_cseq(2), 3);
        let mut reinvite = invite(2, "INVITE");
        renumber(&mut reinvite, &mut target, Some(Method::Invite), 2);
        let index = reinvite
            .msg
            .headers()
            .find(|h| h.name == HeaderName::CSeq)
            .unwrap()
            .index;
        assert_eq!(reinvite.edits.replaced_value(index), Some("4 INVITE"));
        assert_eq!(reinvite.reply_fixups, vec![ReplyFixup::CSeq(2)]);
        let mut ack = invite(2, "ACK");
        renumber(&mut ack, &mut target, Some(Method::Ack), 2);
        assert_eq!(ack.edits.replaced_value(index), Some("4 ACK"));
        assert!(ack.reply_fixups.is_empty());
        let mut bye = invite(3, "BYE");
        renumber(&mut bye, &mut target, Some(Method::Bye), 3);
        assert_eq!(bye.edits.replaced_value(index), Some("5 BYE"));
    }
}
