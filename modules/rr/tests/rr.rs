//! rr and maxfwd driven from a script over real messages; what is relayed is serialized and
//! re-parsed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

fn request(extra: &str, ruri: &str, to_tag: bool) -> String {
    let tag = if to_tag { ";tag=callee" } else { "" };
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKrr\r\n\
         From: <sip:alice@example.com>;tag=caller\r\nTo: <sip:bob@example.com>{tag}\r\n\
         Call-ID: rr-1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Runs `body` as the main route over `raw` received on `proto` at 127.0.0.1:5060.
fn run(body: &str, raw: &str, proto: &'static str) -> (Vec<String>, MsgCtx) {
    run_with("", body, raw, proto)
}

/// [`run`] with `modparams` after the loadmodule lines.
fn run_with(modparams: &str, body: &str, raw: &str, proto: &'static str) -> (Vec<String>, MsgCtx) {
    let src = format!(
        "socket=udp:127.0.0.1:5060\nsocket=tcp:127.0.0.1:5060\ndisable_stateless_fwd=no\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"proto_tcp.so\"\n\
         loadmodule \"rr.so\"\nloadmodule \"maxfwd.so\"\n{modparams}\nroute {{\n{body}\n}}"
    );
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&rr::MODULE, &maxfwd::MODULE],
        builtin: vec!["proto_udp", "proto_tcp"],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    });
    let msg = SipMessage::parse(Bytes::from(raw.to_owned())).unwrap();
    let mut ctx = MsgCtx::new(msg).with_receipt(Receipt {
        source: "192.0.2.10:5070".parse().unwrap(),
        proto,
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: (proto != "udp").then_some(1),
        proxy: None,
    });
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), ctx)
}

fn relayed(ctx: &MsgCtx) -> SipMessage {
    let out = ctx.outbox.first().expect("something was relayed");
    SipMessage::parse(Bytes::from(out.data.clone())).unwrap()
}

fn values(msg: &SipMessage, name: sip::HeaderName) -> Vec<String> {
    msg.headers()
        .filter(|h| h.name == name)
        .flat_map(|h| sip::split_values(h.value).map(|v| v.trim().to_owned()))
        .collect()
}

#[test]
fn maxfwd_adds_decrements_and_refuses_zero() {
    let body = r#"$var(r) = mf_process_maxfwd_header(10); xlog("r=$var(r)\n");
        forward("udp:127.0.0.1:5090");"#;
    let (l, ctx) = run(body, &request("", "sip:bob@example.com", false), "udp");
    assert_eq!(l, vec!["r=2\n"], "absent: added, 2");
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::MaxForwards),
        vec!["10"]
    );
    let (l, ctx) = run(
        body,
        &request("Max-Forwards: 70\r\n", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(l, vec!["r=1\n"]);
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::MaxForwards),
        vec!["69"]
    );
    let (l, _) = run(
        body,
        &request("Max-Forwards: 0\r\n", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(l, vec!["r=-1\n"], "zero: the script answers 483");
    let (l, _) = run(
        r#"if (is_maxfwd_lt(5)) xlog("lt5\n"); if (!is_maxfwd_lt(3)) xlog("ge3\n");"#,
        &request("Max-Forwards: 4\r\n", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(l, vec!["lt5\n", "ge3\n"]);
}

#[test]
fn record_route_uses_the_sending_socket_and_the_from_tag() {
    let (_, ctx) = run(
        r#"record_route("foo=bar"); add_rr_param(";x=1"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Record-Route: <sip:upstream.example.com;lr>\r\n",
            "sip:bob@example.com",
            false,
        ),
        "udp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec![
            "<sip:127.0.0.1;lr;ftag=caller;foo=bar;x=1>",
            "<sip:upstream.example.com;lr>"
        ],
        "ours on top of the existing set"
    );
}

#[test]
fn double_record_route_when_the_protocol_changes() {
    let (_, ctx) = run(
        r#"record_route(); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "tcp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec![
            "<sip:127.0.0.1;r2=on;lr;ftag=caller>",
            "<sip:127.0.0.1;transport=tcp;r2=on;lr;ftag=caller>"
        ]
    );
}

#[test]
fn loose_route_consumes_our_route_and_follows_the_next() {
    let (l, ctx) = run(
        r#"xlog("before=$rr_params\n");
        if (loose_route()) xlog("routed $du\n");
        if (is_direction("downstream")) xlog("down\n");
        if (check_route_param("ftag=caller")) xlog("param\n");
        xlog("rr=$rr_params\n");"#,
        &request(
            "Route: <sip:127.0.0.1:5060;lr;ftag=caller>, <sip:p2.example.com;lr>\r\n",
            "sip:bob@192.0.2.99",
            true,
        ),
        "udp",
    );
    assert_eq!(
        l,
        vec![
            "before=<null>\n",
            "routed sip:p2.example.com;lr\n",
            "down\n",
            "param\n",
            "rr=lr;ftag=caller\n"
        ]
    );
    let _ = ctx;
}

#[test]
fn loose_route_drops_both_of_a_double_record_route() {
    let (l, ctx) = run(
        r#"if (loose_route()) xlog("routed\n"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Route: <sip:127.0.0.1:5060;transport=tcp;r2=on;lr>\r\nRoute: <sip:127.0.0.1:5060;r2=on;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n",
            "sip:bob@192.0.2.99",
            true,
        ),
        "tcp",
    );
    assert_eq!(l, vec!["routed\n"]);
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::Route),
        vec!["<sip:p3.example.com;lr>"]
    );
}

#[test]
fn a_lone_preloaded_route_to_us_is_removed_and_not_followed() {
    let (l, ctx) = run(
        r#"if (!loose_route()) xlog("initial\n"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Route: <sip:127.0.0.1:5060;lr>\r\n",
            "sip:bob@example.com",
            false,
        ),
        "udp",
    );
    assert_eq!(l, vec!["initial\n"]);
    assert!(values(&relayed(&ctx), sip::HeaderName::Route).is_empty());
}

#[test]
fn a_strict_router_before_us_is_undone() {
    let (l, ctx) = run(
        r#"if (loose_route()) xlog("routed $ru via $du\n"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Route: <sip:p1.example.com;lr>, <sip:bob@192.0.2.77>\r\n",
            "sip:127.0.0.1:5060;lr",
            true,
        ),
        "udp",
    );
    assert_eq!(
        l,
        vec!["routed sip:bob@192.0.2.77 via sip:p1.example.com;lr\n"],
        "the remote target from the last Route, the next loose router in $du"
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::Route),
        vec!["<sip:p1.example.com;lr>"]
    );
}

#[test]
fn no_route_header_is_false() {
    let (l, _) = run(
        r#"if (!loose_route()) xlog("none\n");"#,
        &request("", "sip:bob@example.com", true),
        "udp",
    );
    assert_eq!(l, vec!["none\n"]);
}

#[test]
fn record_route_preset_records_the_given_addresses() {
    let (_, ctx) = run(
        r#"record_route_preset("203.0.113.5:5060;transport=tcp", "sip:10.0.0.5:5060"); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec![
            "<sip:203.0.113.5:5060;transport=tcp;ftag=caller;lr>",
            "<sip:10.0.0.5:5060;ftag=caller;lr>"
        ],
        "each address as given, then ftag and lr; no r2"
    );
}

// add_rr_param only keeps its parameter for a record_route() that may come; alone it adds no
// Record-Route (the residential NAT config calls it for every relayed request).
#[test]
fn add_rr_param_alone_adds_no_record_route() {
    let (_, ctx) = run(
        r#"add_rr_param(";nat=yes"); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert!(values(&relayed(&ctx), sip::HeaderName::RecordRoute).is_empty());
    let (_, ctx) = run(
        r#"add_rr_param(";nat=yes"); record_route(); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec!["<sip:127.0.0.1;lr;ftag=caller;nat=yes>"]
    );
}

// A second record_route()/record_route_preset() fails and the first Record-Route stays.
#[test]
fn a_second_record_route_fails_and_keeps_the_first() {
    let (l, ctx) = run(
        r#"if (record_route(";a=1")) xlog("first\n");
        if (!record_route(";b=2")) xlog("second refused\n");
        if (!record_route_preset("192.0.2.1")) xlog("preset refused\n");
        forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        l,
        vec![
            "first\n",
            "Double attempt to record-route\n",
            "second refused\n",
            "Double attempt to record-route\n",
            "preset refused\n"
        ]
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec!["<sip:127.0.0.1;lr;ftag=caller;a=1>"]
    );
}

// With one socket in and out, an advertised address gives one Record-Route: the sockets are
// compared, not the names they advertise.
#[test]
fn set_advertised_address_does_not_double_the_record_route() {
    let (_, ctx) = run(
        r#"set_advertised_address("203.0.113.9"); record_route(); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec!["<sip:203.0.113.9;lr;ftag=caller>"]
    );
}

// A preset pair needs enable_double_rr.
#[test]
fn a_preset_pair_needs_double_rr() {
    let (l, ctx) = run_with(
        r#"modparam("rr", "enable_double_rr", 0)"#,
        r#"if (!record_route_preset("192.0.2.1", "10.0.0.1")) xlog("refused\n");
        forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        l,
        vec![
            "Attempt to double record-route while 'enable_double_rr' param is disabled\n",
            "refused\n"
        ]
    );
    assert!(values(&relayed(&ctx), sip::HeaderName::RecordRoute).is_empty());
}

// is_direction as OpenSIPS decides it: upstream only when our Route's ftag and the From tag are
// both there and differ; a Route without ftag, or no loose_route at all, is downstream.
#[test]
fn is_direction_is_upstream_only_when_the_ftag_differs_from_the_from_tag() {
    let script = r#"loose_route();
        if (is_direction("upstream")) xlog("up\n");
        if (is_direction("downstream")) xlog("down\n");"#;
    let direction = |route: &str| run(script, &request(route, "sip:bob@192.0.2.99", true), "udp").0;
    assert_eq!(
        direction("Route: <sip:127.0.0.1:5060;lr;ftag=callee>, <sip:p2.example.com;lr>\r\n"),
        vec!["up\n"]
    );
    assert_eq!(
        direction("Route: <sip:127.0.0.1:5060;lr;ftag=caller>, <sip:p2.example.com;lr>\r\n"),
        vec!["down\n"]
    );
    assert_eq!(
        direction("Route: <sip:127.0.0.1:5060;lr>, <sip:p2.example.com;lr>\r\n"),
        vec!["down\n"]
    );
    assert_eq!(direction(""), vec!["down\n"]);
}

// A strict router before us sent our own double-RR pair's top half as the R-URI's twin: both of
// ours go, and an R-URI with a user part naming us counts as ours too (OpenSIPS is_myself).
#[test]
fn a_strict_router_before_us_takes_our_twin_and_a_user_part() {
    let (l, ctx) = run(
        r#"if (loose_route()) xlog("routed $ru via $du\n"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Route: <sip:127.0.0.1;transport=tcp;r2=on;lr>, <sip:p1.example.com;lr>, <sip:bob@192.0.2.77>\r\n",
            "sip:127.0.0.1;r2=on;lr",
            true,
        ),
        "udp",
    );
    assert_eq!(
        l,
        vec!["routed sip:bob@192.0.2.77 via sip:p1.example.com;lr\n"]
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::Route),
        vec!["<sip:p1.example.com;lr>"]
    );
    let (l, _) = run(
        r#"if (loose_route()) xlog("routed $ru via $du\n");"#,
        &request(
            "Route: <sip:p1.example.com;lr>, <sip:bob@192.0.2.77>\r\n",
            "sip:alice@127.0.0.1:5060;lr",
            true,
        ),
        "udp",
    );
    assert_eq!(
        l,
        vec!["routed sip:bob@192.0.2.77 via sip:p1.example.com;lr\n"]
    );
}

// Double RR: an in-dialog request leaves by the socket the second Route of our pair names (the
// other side of a multihomed proxy), whatever socket it came in on.
#[test]
fn a_double_record_route_forces_the_socket_of_its_second_half() {
    let (l, _) = run(
        r#"if (loose_route()) xlog("out $socket_out\n");"#,
        &request(
            "Route: <sip:127.0.0.1;r2=on;lr>, <sip:127.0.0.1;transport=tcp;r2=on;lr>, <sip:p3.example.com;lr>\r\n",
            "sip:bob@192.0.2.99",
            true,
        ),
        "udp",
    );
    assert_eq!(l, vec!["out tcp:127.0.0.1:5060\n"]);
}

// check_route_param matches the parameters with their opening `;`, ignoring case; a Route of
// ours without parameters is false.
#[test]
fn check_route_param_sees_the_opening_semicolon_and_ignores_case() {
    let script = r#"loose_route();
        if (check_route_param(";NAT=yes")) xlog("icase\n");
        if (check_route_param("^;lr")) xlog("leading\n");
        if (check_route_param("^lr")) xlog("no-leading\n");"#;
    let (l, _) = run(
        script,
        &request(
            "Route: <sip:127.0.0.1:5060;lr;nat=yes>, <sip:p2.example.com;lr>\r\n",
            "sip:bob@192.0.2.99",
            true,
        ),
        "udp",
    );
    assert_eq!(l, vec!["icase\n", "leading\n"]);
    let (l, _) = run(
        r#"loose_route(); if (!check_route_param(".*")) xlog("none\n");"#,
        &request(
            "Route: <sip:127.0.0.1:5060>, <sip:p2.example.com;lr>\r\n",
            "sip:bob@192.0.2.99",
            true,
        ),
        "udp",
    );
    assert_eq!(l, vec!["none\n"]);
}

// A check_route_param regex that does not compile stops the script from loading, at its place.
#[test]
fn a_bad_check_route_param_regex_fails_the_load() {
    let src = "loadmodule \"rr.so\"\nroute {\n  if (check_route_param(\"nat=(yes\")) exit;\n}\n";
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    let available = Available {
        modules: vec![&rr::MODULE],
        builtin: Vec::new(),
        argv: Vec::new(),
    };
    let Err(d) = Script::compile(&parsed.config, &sources, &available) else {
        panic!("the script loaded");
    };
    let text: String = d.iter().map(|d| d.render(&sources)).collect();
    assert!(
        text.contains("bad regular expression for `check_route_param`")
            && text.contains("t.cfg:3:25"),
        "{text}"
    );
}

// Which Routes are ours (OpenSIPS is_myself): a missing port is 5060, maddr stands for the host;
// and after our r2 Route the next one is its pair, whatever address it names.
#[test]
fn our_routes_by_default_port_maddr_and_r2_pair() {
    let next = |route: &str| {
        run(
            r#"if (loose_route()) xlog("$du\n");"#,
            &request(route, "sip:bob@192.0.2.99", true),
            "udp",
        )
        .0
    };
    assert_eq!(
        next("Route: <sip:127.0.0.1;lr>, <sip:p2.example.com;lr>\r\n"),
        vec!["sip:p2.example.com;lr\n"],
        "no port: 5060, ours"
    );
    assert_eq!(
        next("Route: <sip:127.0.0.1:5080;lr>, <sip:p2.example.com;lr>\r\n"),
        vec!["sip:127.0.0.1:5080;lr\n"],
        "another port of our address is not us"
    );
    assert_eq!(
        next("Route: <sip:proxy.invalid;maddr=127.0.0.1;lr>, <sip:p2.example.com;lr>\r\n"),
        vec!["sip:p2.example.com;lr\n"],
        "maddr names us"
    );
    assert_eq!(
        next(
            "Route: <sip:127.0.0.1;r2=on;lr>, <sip:10.9.9.9;r2=on;lr>, <sip:p3.example.com;lr>\r\n"
        ),
        vec!["sip:p3.example.com;lr\n"],
        "the second of an r2 pair goes with the first"
    );
}

// A Route line holding our Route and a strict next hop loses both (the strict one becomes the
// R-URI); a top Route that does not parse is not followed.
#[test]
fn a_strict_next_hop_on_our_line_goes_and_a_broken_route_is_not_followed() {
    let (l, ctx) = run(
        r#"if (loose_route()) xlog("routed $ru\n"); forward("udp:127.0.0.1:5090");"#,
        &request(
            "Route: <sip:127.0.0.1;lr>, <sip:192.0.2.60>\r\n",
            "sip:bob@example.com",
            true,
        ),
        "udp",
    );
    assert_eq!(l, vec!["routed sip:192.0.2.60\n"]);
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::Route),
        vec!["<sip:bob@example.com>"]
    );
    let (l, _) = run(
        r#"if (!loose_route()) xlog("not routed\n");"#,
        &request(
            "Route: garbage-without-brackets;;\r\n",
            "sip:bob@example.com",
            true,
        ),
        "udp",
    );
    assert_eq!(l, vec!["not routed\n"]);
}

// add_username: our Record-Route carries the user of the R-URI.
#[test]
fn add_username_puts_the_ruri_user_in_the_record_route() {
    let (_, ctx) = run_with(
        r#"modparam("rr", "add_username", 1)"#,
        r#"record_route(); forward("udp:127.0.0.1:5090");"#,
        &request("", "sip:bob@example.com", false),
        "udp",
    );
    assert_eq!(
        values(&relayed(&ctx), sip::HeaderName::RecordRoute),
        vec!["<sip:bob@127.0.0.1;lr;ftag=caller>"]
    );
}
