//! The messages tm builds and the identifiers it matches by: transaction keys and branch ids,
//! reply ranks, relayed replies, hop-by-hop ACKs and CANCELs.

use engine::{MsgCtx, Outbound};
use sip::{Edits, SipMessage};

/// The numeric id of a `$T_id` text (`hash:label`).
pub fn parse_tid(text: &str) -> Option<u64> {
    let (hash, label) = text.trim().split_once(':')?;
    let hash = u64::from_str_radix(hash, 16).ok()?;
    let label: u64 = label.parse().ok()?;
    (label <= 0xffff).then_some((hash << 16) | label)
}

/// The server-transaction key of a request: its top Via branch and sent-by, and the method
/// (an ACK and a CANCEL belong to the INVITE they refer to, so they carry their own method
/// here and are matched against INVITE separately).
pub(crate) fn request_key(msg: &SipMessage, method: &str) -> Option<String> {
    let via = msg.top_via().ok()?;
    let branch = via.branch()?;
    if !branch.starts_with("z9hG4bK") {
        return None;
    }
    Some(format!(
        "{branch}|{}:{}|{method}",
        via.host().as_str().to_ascii_lowercase(),
        via.port().unwrap_or(0)
    ))
}

/// Our branch id for branch `n` of transaction `id` (`z9hG4bK` + hex id + `.` + n).
pub(crate) fn branch_id(id: u64, n: usize) -> String {
    format!("z9hG4bK{id:x}.{n}")
}

pub(crate) fn parse_branch_id(branch: &str) -> Option<(u64, usize)> {
    let rest = branch.strip_prefix("z9hG4bK")?;
    let (id, n) = rest.split_once('.')?;
    Some((u64::from_str_radix(id, 16).ok()?, n.parse().ok()?))
}

/// Reply selection rank (lower wins) for final replies when every branch is done.
pub(crate) fn rank(code: u16, cancelled: bool) -> u32 {
    if cancelled && code == 487 {
        return 0;
    }
    match code {
        600..=699 => 1,
        200..=299 => 2,
        300..=399 => 3,
        401 => 4,
        407 => 5,
        415 => 6,
        420 => 7,
        484 => 8,
        408 => 11,
        400..=499 => 9,
        503 => 12,
        500..=599 => 10,
        _ => 13,
    }
}

/// The request state a transaction keeps: the message and the script's decisions, without
/// what belongs to one run (the outbox, the reply being handled).
pub(crate) fn strip(ctx: &MsgCtx) -> MsgCtx {
    let mut c = ctx.clone();
    c.outbox.clear();
    c.tx = None;
    c.t_reply = None;
    c
}

/// A reply relayed upstream: our top Via removed, sent where the request came from (RFC 3261
/// §18.2.2 via the receipt, on its connection for streams). A 503 becomes 500 (§16.7 step 6).
pub(crate) fn relay_upstream(req: &MsgCtx, reply: &SipMessage) -> Option<Outbound> {
    let receipt = req.receipt.as_ref()?;
    let mut edits = Edits::new();
    edits.remove_top_via(reply);
    let mut data = reply.serialize(&edits);
    if reply.status() == Some(503) && data.starts_with(b"SIP/2.0 503") {
        data.splice(8..11, *b"500");
    }
    let dest = sl::reply_destination(&req.msg, receipt.source, req.force_rport);
    Some(Outbound {
        data,
        dest,
        from: Some(receipt.local),
        proto: receipt.proto,
        conn: receipt.conn,
    })
}

/// The lines of a branch's request that ACK and CANCEL copy: R-URI, top Via, Route set, From,
/// Call-ID, CSeq number, To.
pub(crate) fn copied_lines(sent: &Outbound) -> Option<(SipMessage, String, u32)> {
    let sent = SipMessage::parse(bytes::Bytes::from(sent.data.clone())).ok()?;
    let ruri = sent.request_uri_str()?.to_owned();
    let seq = sent.cseq().ok()?.seq;
    Some((sent, ruri, seq))
}

pub(crate) fn build_like(
    sent_out: &Outbound,
    method: &str,
    to: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<Outbound> {
    let (sent, ruri, seq) = copied_lines(sent_out)?;
    let mut rb = sip::RequestBuilder::new(method, &ruri);
    let top = sent.top_via().ok()?.as_str().to_owned();
    rb = rb.header("Via", &top);
    for h in sent.headers() {
        match h.name {
            sip::HeaderName::Route | sip::HeaderName::From | sip::HeaderName::CallId => {
                rb = rb.header(h.name.as_str().unwrap_or(h.name_str), h.value);
            }
            sip::HeaderName::To => {
                rb = rb.header("To", to.unwrap_or(h.value));
            }
            _ => {}
        }
    }
    rb = rb.header("CSeq", &format!("{seq} {method}"));
    rb = rb.header("Max-Forwards", "70");
    for (n, v) in extra {
        rb = rb.header(n, v);
    }
    Some(Outbound {
        data: rb.build(),
        ..sent_out.clone()
    })
}

/// The hop-by-hop ACK for a negative final reply on an INVITE branch (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for(sent: &Outbound, reply: &SipMessage) -> Option<Outbound> {
    let to = reply
        .headers()
        .find(|h| h.name == sip::HeaderName::To)?
        .value
        .to_owned();
    build_like(sent, "ACK", Some(&to), &[])
}

/// A CANCEL for a branch (RFC 3261 §9.1) with a Reason header.
pub(crate) fn cancel_for(sent: &Outbound, reason: &str) -> Option<Outbound> {
    build_like(sent, "CANCEL", None, &[("Reason", reason)])
}
