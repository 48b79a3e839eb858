use std::collections::HashMap;

use super::*;
use crate::span::{Attr, Kind, Span};

fn ctx(raw: &str) -> MsgCtx {
    let msg = sip::SipMessage::parse(bytes::Bytes::from(raw.replace('\n', "\r\n")));
    let mut ctx = MsgCtx::new(msg.unwrap_or_else(|e| panic!("{e}")));
    ctx.receipt = Some(engine::Receipt {
        source: "127.0.0.1:5070".parse().unwrap_or_else(|_| unreachable!()),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!()),
        conn: None,
        proxy: None,
    });
    ctx
}

const INVITE: &str = "INVITE sip:bob@example.com:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=1
To: <sip:bob@example.com>
Call-ID: c-1@x
CSeq: 7 INVITE
User-Agent: phone/1
Content-Length: 0

";

fn attr(s: &Span, key: &str) -> Option<Attr> {
    s.attrs
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

fn text(v: &str) -> Option<Attr> {
    Some(Attr::Str(v.to_owned()))
}

#[test]
fn routes_nest_under_the_message_span() {
    span::reset();
    let mut done = Vec::new();
    span::start(&ctx(INVITE), 1);
    span::enter("<root>", 1, Some(("a.cfg", 3)));
    span::log("info", "hello\n");
    span::enter("outer", 1, Some(("a.cfg", 4)));
    span::enter("inner", 1, Some(("a.cfg", 9)));
    span::exit(-2, |s| done.push(s));
    span::exit(1, |s| done.push(s));
    span::exit(0, |s| done.push(s));
    span::end(|s| done.push(s));
    let names: Vec<&str> = done.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["inner", "outer", "<route>", "INVITE request"]);
    let by: HashMap<&str, &Span> = done.iter().map(|s| (s.name.as_str(), s)).collect();
    let msg = by["INVITE request"];
    assert_eq!(msg.parent, None);
    assert_eq!(msg.kind, Kind::Server);
    assert_eq!(by["<route>"].parent, Some(msg.span_id));
    assert_eq!(by["outer"].parent, Some(by["<route>"].span_id));
    assert_eq!(by["inner"].parent, Some(by["outer"].span_id));
    assert!(done.iter().all(|s| s.trace_id == msg.trace_id));
    assert!(done.iter().all(|s| s.start_ns < s.end_ns));
    assert_eq!(
        by["inner"].error.as_deref(),
        Some("OpenSIPS route returned an error")
    );
    assert_eq!(attr(by["inner"], "error.type"), text("-2"));
    assert_eq!(by["outer"].error, None);
    assert_eq!(attr(by["outer"], "opensips.route.name"), text("outer"));
    assert_eq!(attr(by["<route>"], "opensips.route.name"), None);
    assert_eq!(attr(by["inner"], "code.lineno"), Some(Attr::Int(9)));
    assert_eq!(by["<route>"].events.len(), 1);
    assert_eq!(
        by["<route>"].events[0].attrs[1],
        ("log.message", Attr::Str("hello".into()))
    );
    assert_eq!(attr(msg, "sip.request.method"), text("INVITE"));
    assert_eq!(attr(msg, "sip.call_id"), text("c-1@x"));
    assert_eq!(attr(msg, "sip.cseq"), text("7 INVITE"));
    assert_eq!(attr(msg, "server.address"), text("example.com"));
    assert_eq!(attr(msg, "server.port"), Some(Attr::Int(5080)));
    assert_eq!(attr(msg, "url.scheme"), text("sip"));
    assert_eq!(attr(msg, "user_agent.original"), text("phone/1"));
    assert_eq!(attr(msg, "network.peer.port"), Some(Attr::Int(5070)));
    assert_eq!(attr(msg, "network.transport"), text("udp"));
    assert_eq!(attr(msg, "opensips.route.is_root"), Some(Attr::Int(1)));
}

#[test]
fn replies_take_the_cseq_method_and_status() {
    span::reset();
    let reply = "SIP/2.0 486 Busy Here
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=1
To: <sip:bob@example.com>;tag=2
Call-ID: c-2@x
CSeq: 7 INVITE
Content-Length: 0

";
    let c = ctx(reply);
    assert_eq!(span::message_span_name(&c, 4), "INVITE onreply");
    let mut done = Vec::new();
    span::start(&c, 4);
    // A route run from inside this one (a branch route from t_relay) nests in the same trace.
    span::start(&ctx(INVITE), 32);
    span::end(|s| done.push(s));
    span::end(|s| done.push(s));
    let (inner, outer) = (&done[0], &done[1]);
    assert_eq!(inner.kind, Kind::Client);
    assert_eq!(inner.parent, Some(outer.span_id));
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(attr(inner, "opensips.route.is_root"), Some(Attr::Int(0)));
    assert_eq!(
        attr(outer, "sip.response.status_code"),
        Some(Attr::Int(486))
    );
    assert_eq!(attr(outer, "sip.response.reason"), text("Busy Here"));
    assert_eq!(attr(outer, "sip.message.type"), text("response"));
    assert_eq!(attr(outer, "sip.request.uri"), None);
}

fn config(ints: &[(&str, i64)], strs: &[(&str, &str)]) -> Result<Config, String> {
    Config::new(
        |n| ints.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        |n| {
            strs.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        },
        |_| None,
    )
}

#[test]
fn parameters_are_checked() {
    let d = config(&[], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d,
        Config {
            enable: false,
            proc_profiling: false,
            log_level: 4,
            use_batch: true,
            service_name: "opensips".into(),
            endpoint: "http://localhost:4318/v1/traces".into(),
        }
    );
    assert!(config(&[("enable", 2)], &[]).is_err());
    assert!(config(&[("use_batch", -1)], &[]).is_err());
    assert!(config(&[("log_level", 9)], &[]).is_err());
    assert!(config(&[], &[("service_name", " ")]).is_err());
    for bad in [
        "127.0.0.1:4318",
        "ftp://x/v1/traces",
        "http://",
        "http://h:port/x",
        "http://a b/",
    ] {
        assert!(config(&[], &[("exporter_endpoint", bad)]).is_err(), "{bad}");
    }
    let c = config(
        &[],
        &[("exporter_endpoint", "https://[::1]:4318/v1/traces")],
    );
    assert!(c.is_ok());
    let env = sdk_endpoint(|n| (n == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:1/".into()));
    assert_eq!(env, "http://c:1/v1/traces");
}

#[test]
fn a_full_queue_drops_and_counts() {
    static COUNTERS: export::Counters = export::Counters {
        queued: std::sync::atomic::AtomicU64::new(0),
        dropped: std::sync::atomic::AtomicU64::new(0),
        exported: std::sync::atomic::AtomicU64::new(0),
        failed: std::sync::atomic::AtomicU64::new(0),
    };
    // A collector that takes the connection and never answers: the exporter thread waits on
    // its first batch (at most BATCH spans), the queue fills, the rest is dropped at once.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = hole.local_addr().map_or(0, |a| a.port());
    let ex = export::spawn(
        export::Target {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            service: "t".into(),
            batch: true,
        },
        &COUNTERS,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    span::reset();
    let started = std::time::Instant::now();
    for _ in 0..(export::QUEUE + export::BATCH + 100) {
        span::start(&ctx(INVITE), 1);
        span::end(|s| ex.push(s));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let dropped = COUNTERS.dropped.load(Ordering::Relaxed);
    let queued = COUNTERS.queued.load(Ordering::Relaxed);
    assert!(dropped >= 100, "dropped {dropped}");
    assert_eq!(
        dropped + queued,
        (export::QUEUE + export::BATCH + 100) as u64
    );
    drop(hole);
}
