//! The OpenSIPS `sl` module (`sl_send_reply`) and `signaling`'s `send_reply` (stateful through
//! the message's transaction when it has one, else the stateless reply). Replies copy Via, From,
//! To (with a tag), Call-ID and CSeq, carry `append_to_reply` headers, and go back the way the
//! request came (RFC 3261 §18.2.2 with RFC 3581 rport).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Outbound, Param, Routes, Value};
use md5::{Digest, Md5};
use sip::{HeaderName, ResponseBuilder, SipMessage};

const REPLYING: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::ERROR);

/// `sl`: `sl_send_reply(code, reason)`.
pub static SL: ModuleSpec = ModuleSpec {
    name: "sl",
    functions: &[
        FnSpec {
            name: "sl_send_reply",
            params: &[(Param::Int, false), (Param::Str, false)],
            routes: REPLYING,
            run: send_reply,
        },
        FnSpec {
            name: "sl_reply_error",
            params: &[],
            routes: Routes::REQUEST,
            run: reply_error,
        },
    ],
    params: &[("enable_stats", engine::ParamType::Int)],
};

/// `signaling`: `send_reply(code, reason)` — `t_reply` when the message has a transaction,
/// else the stateless reply.
pub static SIGNALING: ModuleSpec = ModuleSpec {
    name: "signaling",
    functions: &[FnSpec {
        name: "send_reply",
        params: &[(Param::Int, false), (Param::Str, false)],
        routes: REPLYING,
        run: signaling_reply,
    }],
    params: &[],
};

fn signaling_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if let Some(tx) = f.msg.tx.clone() {
        let Some(code) = args
            .first()
            .and_then(Value::as_int)
            .and_then(|c| u16::try_from(c).ok())
        else {
            return -1;
        };
        let reason = args
            .get(1)
            .map(|r| r.to_text().into_owned())
            .unwrap_or_default();
        return tx.reply(f.msg, code, &reason);
    }
    send_reply(f, args)
}

/// Registers sl's statistics (so they are listed before first use).
pub fn register_stats() {
    for name in [
        "1xx_replies",
        "2xx_replies",
        "3xx_replies",
        "4xx_replies",
        "5xx_replies",
        "6xx_replies",
        "sent_replies",
        "sent_err_replies",
        "received_ACKs",
    ] {
        engine::stats::counter("sl", name);
    }
}

/// A To tag that is the same for retransmissions of one request (so they get the same reply).
pub fn to_tag(req: &SipMessage) -> String {
    let mut h = Md5::new();
    for part in [
        req.top_via().ok().and_then(|v| v.branch()).unwrap_or(""),
        req.call_id().unwrap_or(""),
        req.from_tag().ok().flatten().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update(b"|");
    }
    sip::hex_lower(h.finalize().get(..8).unwrap_or_default())
}

/// Where a reply to `req` goes (RFC 3261 §18.2.2, RFC 3581): the source address when the top
/// Via asks for rport (or `force_rport()` was called), else the source IP and the Via port.
pub fn reply_destination(req: &SipMessage, source: SocketAddr, force_rport: bool) -> SocketAddr {
    let Ok(via) = req.top_via() else {
        return source;
    };
    if force_rport || via.rport().is_some() {
        return source;
    }
    SocketAddr::new(source.ip(), via.port().unwrap_or(5060))
}

/// [`reply_destination`] for a request being handled: with `set_via_handling("reply-to-via")`
/// the top Via's sent-by (an IP address; its port or 5060) instead of the source.
pub fn reply_destination_for(ctx: &MsgCtx, source: SocketAddr) -> SocketAddr {
    if ctx.reply_to_via
        && let Ok(via) = ctx.msg.top_via()
        && let Ok(ip) = via
            .host()
            .as_str()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
    {
        return SocketAddr::new(ip, via.port().unwrap_or(5060));
    }
    reply_destination(&ctx.msg, source, ctx.force_rport)
}

/// The top Via as the reply must carry it: `received` and `rport` recorded as on receipt.
pub fn reply_top_via(req: &SipMessage, source: SocketAddr, force_rport: bool) -> Option<String> {
    engine::forward::received_top_via(req, source, force_rport)
}

/// Builds the reply bytes for `ctx`'s request.
pub fn build_reply(ctx: &MsgCtx, code: u16, reason: &str) -> Option<(Vec<u8>, SocketAddr)> {
    build_reply_with_body(ctx, code, reason, None)
}

/// Builds the reply bytes for `ctx`'s request with an optional `(content type, body)`.
pub fn build_reply_with_body(
    ctx: &MsgCtx,
    code: u16,
    reason: &str,
    body: Option<(&str, &[u8])>,
) -> Option<(Vec<u8>, SocketAddr)> {
    let req = &ctx.msg;
    let source = ctx.receipt.as_ref()?.source;
    let mut b = ResponseBuilder::new(code, reason);
    let top = reply_top_via(req, source, ctx.force_rport);
    let mut first_via = true;
    for h in req.headers() {
        match h.name {
            HeaderName::Via if first_via => {
                first_via = false;
                // Only the first value of a combined line is the top Via.
                let mut values = sip::split_values(h.value);
                let _ = values.next();
                let rest: Vec<&str> = values.collect();
                let mut v = top.clone().unwrap_or_else(|| h.value.to_owned());
                if !rest.is_empty() {
                    v = format!("{v}, {}", rest.join(", "));
                }
                b = b.header("Via", &v);
            }
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                b = b.header(h.name.as_str().unwrap_or(h.name_str), h.value);
            }
            HeaderName::To => {
                // A 100 carries the To as it came (RFC 3261 §8.2.6.2): no need to parse it.
                if code == 100 || req.to_tag().ok().flatten().is_some() {
                    b = b.header("To", h.value);
                } else {
                    let mut to = String::with_capacity(h.value.len() + 5 + 16);
                    to.push_str(h.value);
                    to.push_str(";tag=");
                    to.push_str(&to_tag(req));
                    b = b.header("To", &to);
                }
            }
            _ => {}
        }
    }
    for line in &ctx.reply_headers {
        if let Some((n, v)) = line.split_once(':') {
            b = b.header(n.trim(), v.trim());
        }
    }
    b = b.header("Server", concat!("rsips (", env!("CARGO_PKG_VERSION"), ")"));
    let data = match (body, &ctx.reply_body) {
        (Some((ct, body)), _) => b.header("Content-Type", ct).body(body),
        (None, Some(body)) => b.body(body.as_bytes()),
        (None, None) => b.build(),
    };
    Some((data, reply_destination_for(ctx, source)))
}

/// `sl_reply_error()`: the reply for the last internal error. rsips records none yet (it comes
/// with transactions, #5), so this is the generic 500.
fn reply_error(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    send_reply(f, &[Value::Int(500), Value::str("Server Internal Error")])
}

fn send_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(code) = args
        .first()
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
    else {
        return -1;
    };
    if !(100..=699).contains(&code)
        || !f.msg.msg.is_request()
        || f.msg.msg.method() == Some(sip::Method::Ack)
    {
        return -1;
    }
    let reason = args
        .get(1)
        .map(|r| r.to_text().into_owned())
        .unwrap_or_default();
    let Some((data, dest)) = build_reply(f.msg, code, &reason) else {
        return -1;
    };
    match code / 100 {
        1 => engine::stat!("sl", "1xx_replies").inc(),
        2 => engine::stat!("sl", "2xx_replies").inc(),
        3 => engine::stat!("sl", "3xx_replies").inc(),
        4 => engine::stat!("sl", "4xx_replies").inc(),
        5 => engine::stat!("sl", "5xx_replies").inc(),
        _ => engine::stat!("sl", "6xx_replies").inc(),
    }
    engine::stat!("sl", "sent_replies").inc();
    if code >= 300 {
        engine::stat!("sl", "sent_err_replies").inc();
    }
    // Replies leave by the socket the request came in on (RFC 3261 §18.2.2), on its
    // connection for stream transports.
    let (proto, conn) = f
        .msg
        .receipt
        .as_ref()
        .map_or(("udp", None), |r| (r.proto, r.conn));
    f.msg.outbox.push(Outbound {
        data,
        dest,
        from: None,
        proto,
        conn,
    });
    1
}
