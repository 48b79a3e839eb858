//! One message as a worker handles it: parsed and checked (a malformed request answered,
//! the counters OpenSIPS keeps), pike's automatic mode, replies given to tm or relayed
//! statelessly, requests run through the script; what to send comes back.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use engine::{MsgCtx, Outbound, Receipt, Script, Worker};
use sip::SipMessage;
use transport::stream::Streams;

use super::ScriptRunner;

/// [`handle`], timed against the core's `exec_msg_threshold` (µs; 0, the default, disables
/// it): a slower message is logged, counted in `core:slow_messages` and raises
/// `E_CORE_THRESHOLD` (`source` "msg processing", `time` in µs, `extra` the message), as
/// OpenSIPS' receive path does.
///
/// A panic while handling it (a bug: the data path must not panic) costs only this message:
/// it is logged and dropped, and the worker goes on with the next one.
pub(super) fn timed_handle(
    data: &[u8],
    receipt: Receipt,
    script: &Arc<Script>,
    state: &mut Worker,
    streams: Option<(&Streams, i64)>,
) -> Vec<Outbound> {
    let from = (receipt.proto, receipt.source);
    guarded(
        || timed(data, receipt, script, state, streams),
        || format!("a message from {}:{}", from.0, from.1),
    )
    .unwrap_or_default()
}

/// Runs `work`, catching a panic: `None` then, and the panic logged as an internal error
/// about `what`.
pub(super) fn guarded<T>(work: impl FnOnce() -> T, what: impl FnOnce() -> String) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(v) => Some(v),
        Err(payload) => {
            crate::logging::core(
                -1,
                &format!(
                    "internal error while handling {}: {}; it is dropped and the server goes on",
                    what(),
                    panic_text(payload.as_ref())
                ),
            );
            None
        }
    }
}

/// The message a panic was raised with.
pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

fn timed(
    data: &[u8],
    receipt: Receipt,
    script: &Arc<Script>,
    state: &mut Worker,
    streams: Option<(&Streams, i64)>,
) -> Vec<Outbound> {
    let threshold = script.exec_msg_threshold();
    if threshold <= 0 {
        return handle(data, receipt, script, state, streams);
    }
    let start = std::time::Instant::now();
    let mut out = handle(data, receipt, script, state, streams);
    let took = i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX);
    if took > threshold {
        let text = String::from_utf8_lossy(data);
        crate::logging::core(
            1,
            &format!(
                "threshold exceeded : msg processing took too long - {took} us.Source : {text}"
            ),
        );
        engine::stat!("core", "slow_messages").inc();
        use engine::Value;
        let params = vec![
            (
                Some("source".to_owned()),
                Value::from("msg processing".to_owned()),
            ),
            (Some("time".to_owned()), Value::Int(took)),
            (Some("extra".to_owned()), Value::from(text.into_owned())),
        ];
        let mut log = crate::logging::ScriptLog;
        match script.raise_core_event("E_CORE_THRESHOLD", state, &mut log, params) {
            Some(Ok(mut more)) => out.append(&mut more),
            Some(Err(e)) => {
                crate::logging::core(-1, &format!("event_route[E_CORE_THRESHOLD]: {e}"));
            }
            None => {}
        }
    }
    out
}

/// One message: parse, check, run the script; returns what to send. `streams` (with
/// `tcp_accept_aliases`) is given for messages from a connection: a request whose top Via
/// carries `alias`, or a script calling `force_tcp_alias()`, makes the connection reachable at
/// the source IP and the Via port.
pub(super) fn handle(
    data: &[u8],
    receipt: Receipt,
    script: &Arc<Script>,
    state: &mut Worker,
    streams: Option<(&Streams, i64)>,
) -> Vec<Outbound> {
    // RFC 5626 keepalives and stray line ends.
    if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Vec::new();
    }
    // tracer: a new message for this worker, captured when a trace session follows it.
    tracer::incoming(data, receipt.source, receipt.local, receipt.proto);
    let local = receipt.local;
    let msg = match SipMessage::parse(Bytes::copy_from_slice(data)) {
        Ok(m) => m,
        Err(e) => {
            if pike::automatic() {
                pike::count_unparsed(receipt.source.ip());
            }
            // OpenSIPS: a message whose headers do not parse counts in bad_msg_hdr only.
            engine::stat!("core", "bad_msg_hdr").inc();
            count_bad_uri(&e);
            return crate::malformed::parse_error(data, &e, receipt, script, state);
        }
    };
    if let Err(e) = msg.check() {
        // A header that does not parse is a bad header; a missing one (no Via …) makes a
        // message received in error, as OpenSIPS counts them.
        if e.to_string().starts_with("Missing") {
            count_error(data);
        } else {
            engine::stat!("core", "bad_msg_hdr").inc();
        }
        count_bad_uri(&e);
        return crate::malformed::parse_error(data, &e, receipt, script, state);
    }
    if msg.is_request() {
        engine::stat!("core", "rcv_requests").inc();
    } else {
        engine::stat!("core", "rcv_replies").inc();
    }
    // pike's automatic mode: a flooding source's messages end here.
    if pike::automatic() {
        let mut ctx = MsgCtx::new(msg.clone()).with_receipt(receipt.clone());
        ctx.script = Some(Arc::clone(script));
        if !pike::admit(script, state, &mut ctx, &mut crate::logging::ScriptLog) {
            if msg.is_request() {
                engine::stat!("core", "drop_requests").inc();
            } else {
                engine::stat!("core", "drop_replies").inc();
            }
            return Vec::new();
        }
    }
    if !msg.is_request() {
        // A reply to one of our transactions is tm's; any other goes on statelessly to the
        // next Via when stateless forwarding is on.
        if let Some(tm) = tm::global().filter(|_| script.loads("tm")) {
            let mut ctx = MsgCtx::new(msg.clone()).with_receipt(receipt.clone());
            ctx.script = Some(Arc::clone(script));
            let mut runner = ScriptRunner { script, state };
            if tm.on_reply(&msg, ctx, &mut runner, std::time::Instant::now()) {
                return Vec::new();
            }
        }
        // Any other reply runs the main onreply_route first (OpenSIPS runs it for every
        // reply); `drop` there stops a provisional reply only (a final one is relayed all the
        // same, as OpenSIPS' receive path does), and what the route changed goes on with it.
        let mut edits = sip::Edits::new();
        let mut queued = Vec::new();
        if let Some(route) = script.reply_route() {
            let mut ctx = MsgCtx::new(msg.clone()).with_receipt(receipt.clone());
            ctx.script = Some(Arc::clone(script));
            match script.run_index(route, state, &mut ctx, &mut crate::logging::ScriptLog) {
                Ok(engine::Outcome::Drop) if msg.status().is_some_and(|c| c < 200) => {
                    engine::stat!("core", "drop_replies").inc();
                    return ctx.outbox;
                }
                Ok(engine::Outcome::Drop | engine::Outcome::Exit) => {}
                Err(e) => crate::logging::core(-1, &format!("onreply_route: {e}")),
            }
            edits = ctx.edits;
            // What the route sent itself (`send()`, `forward()`) goes out too.
            queued = ctx.outbox;
        }
        // OpenSIPS relays a reply no transaction took only with stateless forwarding on; with
        // `check_via` (off by default) its top Via must name this server.
        if !script.stateless_fwd() {
            return queued;
        }
        let check_via = script.check_via();
        let ours = |host: &str, port: u16| !check_via || is_local(script, local, host, port);
        let relayed: Vec<Outbound> = engine::forward::relay_response_with(&msg, &edits, &ours)
            .into_iter()
            .collect();
        if relayed.is_empty() {
            engine::stat!("core", "drop_replies").inc();
        } else {
            engine::stat!("core", "fwd_replies").inc();
        }
        queued.extend(relayed);
        return queued;
    }
    let via_port = msg.top_via().ok().map(|v| {
        let port = v
            .port()
            .unwrap_or(engine::forward::default_port(receipt.proto));
        (port, v.alias())
    });
    if let (Some((streams, mode)), Some(conn), Some((port, asked))) =
        (streams, receipt.conn, via_port)
        && (mode == 2 || (mode == 1 && asked))
    {
        streams.add_alias(conn, SocketAddr::new(receipt.source.ip(), port));
    }
    // The ACK for a stateless reply of ours ends here (sl), counted as dropped (OpenSIPS'
    // pre-script callback drop).
    if sl::absorbs_ack(&msg, script) {
        engine::stat!("core", "drop_requests").inc();
        return Vec::new();
    }
    let mut ctx = MsgCtx::new(msg).with_receipt(receipt);
    ctx.script = Some(Arc::clone(script));
    // Requests a module matches before the script (b2b_entities' in-dialog requests).
    if engine::hooks::request_hooked()
        && engine::hooks::run_request_hooks(&mut ctx, script, state, &mut crate::logging::ScriptLog)
    {
        return std::mem::take(&mut ctx.outbox);
    }
    match script.run(state, &mut ctx, &mut crate::logging::ScriptLog) {
        // A script's `drop` is counted nowhere in OpenSIPS.
        Ok(engine::Outcome::Drop | engine::Outcome::Exit) => {}
        Err(e) => crate::logging::core(-1, &format!("script: {e}")),
    }
    // nat_traversal keeps a REGISTER's or SUBSCRIBE's sender alive once its 2xx is sent.
    if nathelper::traversal::active() {
        for reply in ctx
            .outbox
            .iter()
            .filter(|o| o.data.starts_with(b"SIP/2.0 "))
        {
            if let Ok(m) = SipMessage::parse(Bytes::copy_from_slice(&reply.data)) {
                nathelper::traversal::reply_seen(&m);
            }
        }
    }
    if let Some(tx) = &ctx.tx {
        tx.script_done();
    }
    engine::hooks::dialog_request_done(&ctx);
    let forwarded = ctx
        .outbox
        .iter()
        .filter(|o| o.data.starts_with(b"SIP/2.0 "))
        .count();
    engine::stat!("core", "fwd_requests").add((ctx.outbox.len() - forwarded) as i64);
    if let (Some((streams, _)), Some(receipt), Some(port)) =
        (streams, ctx.receipt.as_ref(), ctx.tcp_alias)
        && let Some(conn) = receipt.conn
    {
        let port = match port {
            0 => via_port.map_or(receipt.source.port(), |(p, _)| p),
            p => p,
        };
        streams.add_alias(conn, SocketAddr::new(receipt.source.ip(), port));
    }
    std::mem::take(&mut ctx.outbox)
}

/// A message that parsed but cannot be used: `core:rcv_*` and `core:err_*` (OpenSIPS counts
/// a request without a usable Via in both).
fn count_error(data: &[u8]) {
    if data.starts_with(b"SIP/") {
        engine::stat!("core", "rcv_replies").inc();
        engine::stat!("core", "err_replies").inc();
    } else {
        engine::stat!("core", "rcv_requests").inc();
        engine::stat!("core", "err_requests").inc();
    }
}

/// `core:bad_URIs_rcvd` for a fault in a URI.
fn count_bad_uri(e: &sip::ParseError) {
    if e.to_string().contains("URI") {
        engine::stat!("core", "bad_URIs_rcvd").inc();
    }
}

/// Whether `host:port` (from a Via) is this socket or one of the configured ones.
fn is_local(script: &Script, local: SocketAddr, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match sip::parse_ipv4(host.as_bytes()) {
        Some(v4) => Some(std::net::IpAddr::V4(v4)),
        None => host.parse::<std::net::IpAddr>().ok(),
    };
    if ip == Some(local.ip()) && port == local.port() {
        return true;
    }
    script.sockets().iter().any(|s| {
        s.rsplit_once(':').is_some_and(|(rest, p)| {
            let h = rest.split_once(':').map_or(rest, |(_, h)| h);
            p.parse::<u16>() == Ok(port)
                && h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host)
        })
    }) || script.is_myself(host, Some(port))
}
