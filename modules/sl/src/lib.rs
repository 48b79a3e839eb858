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
            params: &[
                (Param::CheckedInt(&engine::module::REPLY_CODE), false),
                (Param::Str, false),
            ],
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
        params: &[
            (Param::CheckedInt(&engine::module::REPLY_CODE), false),
            (Param::Str, false),
        ],
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

/// signaling's reply for a module that answers a request itself (registrar's `save`): through
/// the transaction when there is one, else statelessly, with `headers` (`Name: value` lines)
/// added to that reply only.
pub fn reply_with(f: &mut FnCtx<'_>, code: u16, reason: &str, headers: Vec<String>) -> i64 {
    let kept = f.msg.reply_headers.len();
    f.msg.reply_headers.extend(headers);
    let args = [Value::Int(i64::from(code)), Value::from(reason)];
    let r = signaling_reply(f, &args);
    f.msg.reply_headers.truncate(kept);
    r
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

/// A To tag that is the same for retransmissions of one request (so they get the same reply):
/// what tm's local replies carry.
pub fn to_tag(req: &SipMessage) -> String {
    sip::hex_lower(request_digest(req).get(..8).unwrap_or_default())
}

/// MD5 of what identifies the request: its top Via branch, Call-ID and From tag.
fn request_digest(req: &SipMessage) -> [u8; 16] {
    let mut h = Md5::new();
    for part in [
        req.top_via().ok().and_then(|v| v.branch()).unwrap_or(""),
        req.call_id().unwrap_or(""),
        req.from_tag().ok().flatten().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update(b"|");
    }
    h.finalize().into()
}

/// The first part of every stateless To tag of this server, `<4 hex>`: from its first listening
/// socket (as OpenSIPS' sl tag), so that two proxies on one path tell their replies apart.
fn sl_prefix(script: Option<&engine::Script>) -> String {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(b"rsips-stateless");
    h.write(
        script
            .and_then(|s| s.sockets().first())
            .map_or("", String::as_str)
            .as_bytes(),
    );
    let n = h.finish() as u16;
    sip::hex_lower(&n.to_be_bytes())
}

/// The second part of a stateless To tag: an MD5 of the request's top Via host, port and
/// branch (as OpenSIPS'), the same for the request, its retransmissions and the ACK for its
/// negative reply (RFC 3261 §17.1.1.3: that ACK repeats the request's top Via).
fn sl_suffix(req: &SipMessage) -> String {
    let mut h = Md5::new();
    if let Ok(via) = req.top_via() {
        h.update(via.host().as_str().as_bytes());
        h.update(b"|");
        let mut port = String::new();
        if let Some(p) = via.port() {
            sip::push_decimal(&mut port, u64::from(p));
        }
        h.update(port.as_bytes());
        h.update(b"|");
        h.update(via.branch().unwrap_or("").as_bytes());
    }
    sip::hex_lower(&h.finalize())
}

/// The To tag of a stateless reply: `<prefix>.<32 hex>` ([`sl_prefix`], then [`sl_suffix`]),
/// which lets [`absorbs_ack`] know the ACKs for it.
pub fn sl_to_tag(req: &SipMessage, script: Option<&engine::Script>) -> String {
    let mut tag = sl_prefix(script);
    tag.push('.');
    tag.push_str(&sl_suffix(req));
    tag
}

/// An ACK for a reply sl sent ends here, before the script, and is counted (`received_ACKs`),
/// as OpenSIPS' sl does: a negative stateless reply is not retransmitted, so its ACK has
/// nowhere to go. It is ours when its whole To tag is the one we would give its request: our
/// prefix and the digest of the top Via the ACK repeats — an ACK for another server's
/// stateless reply that passes through here carries another Via digest and goes on.
pub fn absorbs_ack(msg: &SipMessage, script: &engine::Script) -> bool {
    if msg.method() != Some(sip::Method::Ack) || !(script.loads("sl") || script.loads("signaling"))
    {
        return false;
    }
    // Our tags are `<4 hex>.…`; most ACKs (for 2xx, end to end) carry a UA's tag that is not:
    // they are let go before the To is parsed.
    let maybe_ours = msg.header(sip::HeaderName::To).is_some_and(|to| {
        let b = to.as_bytes();
        b.windows(9)
            .any(|w| w[..4].eq_ignore_ascii_case(b"tag=") && w[8] == b'.')
    });
    if !maybe_ours {
        return false;
    }
    let Some(tag) = msg.to_tag().ok().flatten() else {
        return false;
    };
    if tag.len() != 4 + 1 + 32 || tag.as_bytes().get(4) != Some(&b'.') {
        return false;
    }
    let ours = tag == sl_to_tag(msg, Some(script));
    if ours {
        engine::stat!("sl", "received_ACKs").inc();
    }
    ours
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

/// Builds the reply bytes for `ctx`'s request (a transaction's local reply: tm's To tag).
pub fn build_reply(ctx: &MsgCtx, code: u16, reason: &str) -> Option<(Vec<u8>, SocketAddr)> {
    build_reply_with_body(ctx, code, reason, None)
}

/// Builds the reply bytes for `ctx`'s request with an optional `(content type, body)` (a
/// transaction's local reply: tm's To tag).
pub fn build_reply_with_body(
    ctx: &MsgCtx,
    code: u16,
    reason: &str,
    body: Option<(&str, &[u8])>,
) -> Option<(Vec<u8>, SocketAddr)> {
    build(ctx, code, reason, body, false, None)
}

/// As [`build_reply_with_body`], with the To tag given (a reply in the name of an early
/// dialog a downstream provisional reply set up: dialog's 502 after a failed PRACK).
pub fn build_reply_tagged(
    ctx: &MsgCtx,
    code: u16,
    reason: &str,
    to_tag: &str,
) -> Option<(Vec<u8>, SocketAddr)> {
    build(ctx, code, reason, None, false, Some(to_tag))
}

/// A stateless reply (`sl_send_reply`, the core's replies to bad requests): its To tag is one
/// [`absorbs_ack`] recognises.
pub fn build_stateless_reply(
    ctx: &MsgCtx,
    code: u16,
    reason: &str,
) -> Option<(Vec<u8>, SocketAddr)> {
    build(ctx, code, reason, None, true, None)
}

/// The `Server` header replies carry: none with `server_signature=no`, else `server_header`
/// (a whole header line, as OpenSIPS takes it) or rsips' own.
fn server_header(script: Option<&engine::Script>) -> Option<(&str, &str)> {
    let Some(script) = script else {
        return Some(("Server", SERVER));
    };
    if script.global_int("server_signature") == Some(0) {
        return None;
    }
    match script.global_text("server_header") {
        Some(line) => {
            let (name, value) = line.split_once(':')?;
            Some((name.trim(), value.trim()))
        }
        None => Some(("Server", SERVER)),
    }
}

const SERVER: &str = concat!("rsips (", env!("CARGO_PKG_VERSION"), ")");

/// The Contact of a 3xx reply: the destination set (a rewritten R-URI, then every appended
/// branch) with its q values, as OpenSIPS builds redirects.
fn redirect_contacts(ctx: &MsgCtx) -> Option<String> {
    let mut out = String::new();
    let mut add = |uri: &str, q: i32| {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push('<');
        out.push_str(uri);
        out.push('>');
        if q >= 0 {
            out.push_str(";q=");
            out.push_str(&engine::pv::q_text(q));
        }
    };
    if let Some(uri) = &ctx.new_ruri {
        add(uri, ctx.ruri_q);
    }
    for b in &ctx.branches {
        add(&b.uri, b.q);
    }
    (!out.is_empty()).then_some(out)
}

fn build(
    ctx: &MsgCtx,
    code: u16,
    reason: &str,
    body: Option<(&str, &[u8])>,
    stateless: bool,
    given_tag: Option<&str>,
) -> Option<(Vec<u8>, SocketAddr)> {
    let req = &ctx.msg;
    let source = ctx.receipt.as_ref()?.source;
    let mut b = ResponseBuilder::new(code, reason);
    let top = reply_top_via(req, source, ctx.force_rport);
    // OpenSIPS' order: every Via, Record-Route, To, From, Call-ID, CSeq.
    for (i, h) in req
        .headers()
        .filter(|h| h.name == HeaderName::Via)
        .enumerate()
    {
        match &top {
            // Only the first value of the first line is the top Via.
            Some(top) if i == 0 => {
                let mut v = top.clone();
                for rest in sip::split_values(h.value).skip(1) {
                    v.push_str(", ");
                    v.push_str(rest);
                }
                b = b.header("Via", &v);
            }
            // Nothing to record: the line goes back as it came.
            _ => b = b.header("Via", h.value),
        }
    }
    // The route set goes back in replies that can set up a dialog (OpenSIPS: 180-299).
    if (180..300).contains(&code) {
        for h in req.headers().filter(|h| h.name == HeaderName::RecordRoute) {
            b = b.header("Record-Route", h.value);
        }
    }
    if let Some(h) = req.headers().find(|h| h.name == HeaderName::To) {
        // A tag from 180 up when the request has none (OpenSIPS); below that the To goes back
        // as it came (RFC 3261 §8.2.6.2), without being parsed.
        if code < 180 || req.to_tag().ok().flatten().is_some() {
            b = b.header("To", h.value);
        } else {
            let tag = match given_tag {
                Some(t) if !t.is_empty() => t.to_owned(),
                _ if stateless => sl_to_tag(req, ctx.script.as_deref()),
                _ => to_tag(req),
            };
            let mut to = String::with_capacity(h.value.len() + 5 + tag.len());
            to.push_str(h.value);
            to.push_str(";tag=");
            to.push_str(&tag);
            b = b.header("To", &to);
        }
    }
    for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
        if let Some(h) = req.headers().find(|h| h.name == name) {
            b = b.header(h.name.as_str().unwrap_or(h.name_str), h.value);
        }
    }
    for line in &ctx.reply_headers {
        if let Some((n, v)) = line.split_once(':') {
            b = b.header(n.trim(), v.trim());
        }
    }
    if (300..400).contains(&code)
        && let Some(contacts) = redirect_contacts(ctx)
    {
        b = b.header("Contact", &contacts);
    }
    if let Some((name, value)) = server_header(ctx.script.as_deref()) {
        b = b.header(name, value);
    }
    let data = match (body, &ctx.reply_body) {
        (Some((ct, body)), _) => b.header("Content-Type", ct).body(body),
        (None, Some(body)) => b.body(body.as_bytes()),
        (None, None) => b.build(),
    };
    Some((data, reply_destination_for(ctx, source)))
}

/// `sl_reply_error()`: the reply for the last internal error a function met (OpenSIPS'
/// `err2reason_phrase`), e.g. `477 Send failed (477/SL)` after `t_relay` could not send,
/// `500 Server error occurred (1/SL)` when nothing more precise is known.
fn reply_error(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let (code, reason) = error_reply(f.msg.last_error);
    let sent = send_reply(f, &[Value::Int(i64::from(code)), Value::from(reason)]);
    // Only error replies count here, as in OpenSIPS (not every sl reply from 300 up).
    if sent > 0 {
        engine::stat!("sl", "sent_err_replies").inc();
    }
    sent
}

/// The SIP code and reason phrase for an internal error code (OpenSIPS `ser_error`).
pub fn error_reply(error: i32) -> (u16, String) {
    let error = if error == 0 { -1 } else { error };
    let (text, code) = match error {
        -473 => ("Filtered destination", 473),
        -475 => ("Bad URI", 475),
        -476 => ("Unresolvable destination", 476),
        -477 => ("Send failed", 477),
        -400 => ("Bad Request", 400),
        -9 => ("Transaction tuple incomplete", 400),
        -13 => ("Bad To", 400),
        -11 => ("Error in external logic", 500),
        -12 => ("Forking capacity exceeded", 500),
        -15 => ("Invalid character in q parameter", 400),
        -16 => ("Empty q parameter", 400),
        -17 => ("q parameter too big", 400),
        -18 => ("No destination available", 500),
        _ => ("Server error occurred", 500),
    };
    (code, format!("{text} ({}/SL)", -i64::from(error)))
}

fn send_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(code) = args
        .first()
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
    else {
        return -1;
    };
    if !(100..=699).contains(&code) || !f.msg.msg.is_request() {
        return -1;
    }
    // An ACK is never answered; as in OpenSIPS that is a success.
    if f.msg.msg.method() == Some(sip::Method::Ack) {
        return 1;
    }
    let reason = args
        .get(1)
        .map(|r| r.to_text().into_owned())
        .unwrap_or_default();
    let Some((data, dest)) = build_stateless_reply(f.msg, code, &reason) else {
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
        origin: None,
        no_new_conn: engine::ctx::no_new_conn_reply(f.msg),
    });
    1
}
