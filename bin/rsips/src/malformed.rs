//! What a message that does not parse gets: `error_route` when the script has one, else the
//! stateless error reply (none to a response, an ACK, or text without a Via).

use std::sync::Arc;

use engine::{MsgCtx, Outbound, Receipt, Script, Worker};
use sip::{Reaction, SipMessage};

/// A malformed request goes to `error_route` when the script has one (`$err.*` set, nothing
/// sent unless the route sends it); otherwise it gets the error reply.
pub(crate) fn parse_error(
    data: &[u8],
    e: &sip::ParseError,
    receipt: Receipt,
    script: &Arc<Script>,
    state: &mut Worker,
) -> Vec<engine::Outbound> {
    if !script.has_error_route() {
        return error_reply(data, e, receipt, script);
    }
    let Ok(msg) = SipMessage::parse_for_error_reply(data) else {
        return Vec::new();
    };
    if !msg.is_request() {
        return Vec::new();
    }
    let code = match e.reaction() {
        Reaction::Reply(code) => code,
        _ => 400,
    };
    let mut ctx = MsgCtx::new(msg).with_receipt(receipt);
    ctx.script = Some(Arc::clone(script));
    ctx.err = Some(engine::ErrInfo::parse(&e.to_string(), code, e.reason()));
    if let Err(e) = script.run_error(state, &mut ctx, &mut crate::logging::ScriptLog) {
        crate::logging::core(-1, &format!("error_route: {e}"));
    }
    std::mem::take(&mut ctx.outbox)
}

/// A stateless error reply to a malformed request (never to a response, never to an ACK).
fn error_reply(
    data: &[u8],
    e: &sip::ParseError,
    receipt: Receipt,
    script: &Arc<Script>,
) -> Vec<engine::Outbound> {
    let Reaction::Reply(code) = e.reaction() else {
        return Vec::new();
    };
    let Ok(msg) = SipMessage::parse_for_error_reply(data) else {
        return Vec::new();
    };
    // No Via: nothing says where a reply would go, or that this was SIP at all.
    if !msg.is_request()
        || msg.method() == Some(sip::Method::Ack)
        || msg.header_count(sip::HeaderName::Via) == 0
    {
        return Vec::new();
    }
    let mut ctx = MsgCtx::new(msg).with_receipt(receipt.clone());
    ctx.script = Some(Arc::clone(script));
    match sl::build_stateless_reply(&ctx, code, e.reason()) {
        Some((data, dest)) => vec![Outbound {
            data,
            dest,
            from: None,
            proto: receipt.proto,
            conn: receipt.conn,
            origin: None,
            no_new_conn: false,
        }],
        None => Vec::new(),
    }
}
