//! Re-INVITE pings (`reinvite-ping-caller`, `reinvite-ping-callee`): every
//! `reinvite_ping_interval` the proxy offers a side the session it has again — the last SDP
//! it relayed to that side, else the other side's — and a side that answers 408 or 481 ends
//! the call, as OpenSIPS does. For that the dialog keeps, for each side, the last SDP it sent
//! (every dialog: MI `caller_sdp`, `dialog:send_sequential`) and, with pings, the last one
//! relayed to it.

use std::time::Instant;

use engine::{DialogMark, MsgCtx};
use sip::{HeaderName, SipMessage};

use crate::table::{CONFIRMED, CONFIRMED_NA, Dialog, Leg, dialogs};

/// The SDP body of a message, when it has one.
pub(crate) fn sdp_of(msg: &SipMessage) -> Option<String> {
    let body = msg.body();
    if body.is_empty() {
        return None;
    }
    let ct = msg.header(HeaderName::ContentType).unwrap_or("");
    let is_sdp = ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp"));
    is_sdp.then(|| String::from_utf8_lossy(body).into_owned())
}

/// The SDP a request leaves with: after the script's and the media modules' edits.
fn relayed_sdp(ctx: &MsgCtx) -> Option<String> {
    if ctx.edits.is_empty() {
        return sdp_of(&ctx.msg);
    }
    let text = ctx.msg.serialize(&ctx.edits);
    SipMessage::parse(bytes::Bytes::from(text))
        .ok()
        .and_then(|m| sdp_of(&m))
}

fn sides(d: &mut Dialog, towards_caller: bool) -> (&mut Leg, &mut Leg) {
    if towards_caller {
        (&mut d.callee, &mut d.caller)
    } else {
        (&mut d.caller, &mut d.callee)
    }
}

/// A request of dialog `mark` relayed (the request route is done): the SDP its sender offered
/// (kept for every dialog), and for dialogs with re-INVITE pings the one relayed to the other
/// side.
pub(crate) fn request_relayed(ctx: &MsgCtx, mark: DialogMark) {
    let Some(offered) = sdp_of(&ctx.msg) else {
        return;
    };
    let keeps = dialogs()
        .by_id
        .get(&mark.id)
        .is_some_and(|d| d.flags.keeps_sdp());
    // Serialized outside the table's lock, and only when a ping will offer it.
    let relayed = keeps.then(|| relayed_sdp(ctx).unwrap_or_else(|| offered.clone()));
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&mark.id) else {
        return;
    };
    let (sender, target) = sides(d, mark.upstream);
    sender.in_sdp = offered;
    if let Some(sdp) = relayed {
        target.out_sdp = sdp;
    }
}

/// A reply with SDP to a request of dialog `d` went back (`mark.upstream`: the request went
/// to the caller), as relayed: the replying side's SDP (as relayed: what the script changed
/// shows), and for dialogs with re-INVITE pings the one relayed to the other side.
pub(crate) fn reply_relayed(d: &mut Dialog, mark: DialogMark, reply: &SipMessage) {
    let Some(sdp) = sdp_of(reply) else { return };
    let keeps = d.flags.keeps_sdp();
    // The reply comes from the request's target and goes to its sender.
    let (sender, target) = sides(d, mark.upstream);
    if keeps {
        sender.out_sdp.clone_from(&sdp);
    }
    target.in_sdp = sdp;
}

/// The re-INVITE pings due now: (dialog copy, towards the caller, CSeq) for each flagged
/// side of each confirmed dialog whose time came.
pub(crate) fn due(now: Instant) -> Vec<(Dialog, bool, u32)> {
    let interval = crate::settings().reinvite_ping_interval;
    let mut t = dialogs();
    let mut due = Vec::new();
    for d in t.by_id.values_mut() {
        if !(CONFIRMED_NA..=CONFIRMED).contains(&d.state)
            || d.next_reinvite.is_none_or(|at| at > now)
        {
            continue;
        }
        d.next_reinvite = Some(now + interval);
        for (towards_caller, on) in [
            (true, d.flags.reinvite_ping_caller),
            (false, d.flags.reinvite_ping_callee),
        ] {
            if !on {
                continue;
            }
            let (from, to) = sides(d, towards_caller);
            let seen = from.cseq;
            let cseq = to.next_gen_cseq(seen);
            due.push((d.clone(), towards_caller, cseq));
        }
    }
    due
}

/// The re-INVITE for one side: the SDP relayed to it last, else what the other side offered.
pub(crate) fn build(
    d: &Dialog,
    towards_caller: bool,
    cseq: u32,
    extra_hdrs: &str,
) -> Result<MsgCtx, String> {
    let (from, to) = if towards_caller {
        (&d.callee, &d.caller)
    } else {
        (&d.caller, &d.callee)
    };
    let sdp = if to.out_sdp.is_empty() {
        &from.in_sdp
    } else {
        &to.out_sdp
    };
    let (hdrs, body) = if sdp.is_empty() {
        (extra_hdrs.to_owned(), None)
    } else {
        (
            format!("{extra_hdrs}Content-Type: application/sdp\r\n"),
            Some(("application/sdp", sdp.as_str())),
        )
    };
    crate::end::request_to(d, towards_caller, "INVITE", cseq, &hdrs, to, body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    #[test]
    fn only_an_sdp_body_is_kept() {
        let msg = |ct: &str, body: &str| {
            SipMessage::parse(Bytes::from(format!(
                "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\
                 From: <sip:a@x>;tag=a\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                 {ct}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )))
            .unwrap()
        };
        assert_eq!(
            sdp_of(&msg(
                "Content-Type: application/SDP; charset=x\r\n",
                "v=0\r\n"
            ))
            .as_deref(),
            Some("v=0\r\n")
        );
        assert_eq!(sdp_of(&msg("Content-Type: text/plain\r\n", "hi")), None);
        assert_eq!(sdp_of(&msg("Content-Type: application/sdp\r\n", "")), None);
    }
}
