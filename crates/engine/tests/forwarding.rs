//! The core's stateless forwarding as OpenSIPS does it (forward.c, msg_translator.c,
//! socket_info.c): the socket a forced `force_send_socket` turns into for another transport or
//! address family, the global `advertised_address` / `advertised_port`, `send()`'s headers,
//! `is_myself` with `accept_subdomain` and port-less sockets, and the next hop of a reply
//! (`maddr`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{compile_with, run};
use engine::Available;
use sip::SipMessage;

fn available() -> Available {
    Available {
        builtin: vec!["proto_udp", "proto_tcp"],
        ..Available::default()
    }
}

fn invite() -> SipMessage {
    SipMessage::parse(bytes::Bytes::from_static(
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKf1\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: f1\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap()
}

const SOCKETS: &str = "socket=udp:127.0.0.1:5060\nsocket=tcp:127.0.0.1:5060\nsocket=udp:[::1]:5062\n\
                       loadmodule \"proto_udp.so\"\nloadmodule \"proto_tcp.so\"\n";

#[test]
fn a_forced_socket_of_another_transport_or_family_adapts_as_opensips_does() {
    let script = compile_with(
        &format!(
            "{SOCKETS}route {{\n\
             force_send_socket(\"udp:127.0.0.1:5060\");\n\
             if ($ci == \"tcp\") forward(\"sip:127.0.0.1:7000;transport=tcp\");\n\
             else forward(\"sip:[::1]:7000\");\n}}"
        ),
        &available(),
    );
    let (_, ctx) = run(&script, invite());
    let out = &ctx.outbox[0];
    // IPv6 destination: the IPv4 forced socket is ignored, the IPv6 one sends.
    assert_eq!(out.from, Some("[::1]:5062".parse().unwrap()));
    assert!(String::from_utf8_lossy(&out.data).contains("Via: SIP/2.0/UDP [::1]:5062;branch="));
    let tcp = SipMessage::parse(bytes::Bytes::from(
        String::from_utf8_lossy(invite().as_bytes()).replace("Call-ID: f1", "Call-ID: tcp"),
    ))
    .unwrap();
    let (logs, ctx) = run(&script, tcp);
    let out = ctx
        .outbox
        .first()
        .unwrap_or_else(|| panic!("not forwarded: {logs:?}"));
    // TCP destination: the TCP socket on the forced socket's address and port.
    assert_eq!(
        (out.proto, out.from),
        ("tcp", Some("127.0.0.1:5060".parse().unwrap()))
    );
    assert!(String::from_utf8_lossy(&out.data).contains("Via: SIP/2.0/TCP 127.0.0.1:5060;branch="));
}

#[test]
fn the_global_advertised_address_and_port_name_every_socket() {
    let script = compile_with(
        &format!(
            "{SOCKETS}advertised_address=\"203.0.113.5\"\nadvertised_port=5080\nroute {{\n\
             if (is_myself(\"203.0.113.5\")) xlog(\"adv is me\\n\");\n\
             forward(\"sip:127.0.0.1:7000\");\n}}"
        ),
        &available(),
    );
    let (logs, ctx) = run(&script, invite());
    assert_eq!(logs, ["adv is me\n"]);
    let text = String::from_utf8_lossy(&ctx.outbox[0].data).into_owned();
    assert!(
        text.contains("Via: SIP/2.0/UDP 203.0.113.5:5080;branch="),
        "{text}"
    );
}

#[test]
fn send_puts_its_headers_right_after_the_first_line() {
    let script = compile_with(
        &format!(
            "{SOCKETS}route {{ send(\"udp:127.0.0.1:7000\", \"X-A: 1\\r\\nX-B: 2\\r\\n\"); }}"
        ),
        &available(),
    );
    let (_, ctx) = run(&script, invite());
    let text = String::from_utf8_lossy(&ctx.outbox[0].data).into_owned();
    assert!(
        text.starts_with("INVITE sip:bob@example.com SIP/2.0\r\nX-A: 1\r\nX-B: 2\r\nVia: "),
        "{text}"
    );
}

#[test]
fn is_myself_knows_subdomains_and_the_default_port() {
    let script = compile_with(
        "socket=udp:127.0.0.1\nalias=example.com accept_subdomain\nalias=other.example\n\
         loadmodule \"proto_udp.so\"\nroute {\n\
         if (is_myself(\"sip.example.com\")) xlog(\"sub\\n\");\n\
         if (!is_myself(\"badexample.com\")) xlog(\"not a suffix match\\n\");\n\
         if (!is_myself(\"a.other.example\")) xlog(\"no subdomains without the flag\\n\");\n\
         if (is_myself(\"127.0.0.1\", 5060)) xlog(\"default port\\n\");\n\
         if (!is_myself(\"127.0.0.1\", 5070)) xlog(\"not another port\\n\");\n}",
        &available(),
    );
    let (logs, _) = run(&script, invite());
    assert_eq!(
        logs,
        [
            "sub\n",
            "not a suffix match\n",
            "no subdomains without the flag\n",
            "default port\n",
            "not another port\n"
        ]
    );
}

#[test]
fn a_reply_goes_to_the_maddr_of_the_next_via() {
    let reply = SipMessage::parse(bytes::Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtop\r\n\
Via: SIP/2.0/UDP 10.9.9.9:77;maddr=127.0.0.2;rport=7001;received=192.0.2.1;branch=z9hG4bKn\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: m\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let out =
        engine::forward::relay_response_with(&reply, &sip::Edits::new(), &|_, _| true).unwrap();
    assert_eq!(out.dest, "127.0.0.2:7001".parse().unwrap());
}

/// `mhomed`: a UDP request leaves by the socket on the address the kernel routes the
/// destination from, not by the socket it came in on.
#[test]
fn mhomed_picks_the_socket_the_route_leaves_from() {
    let run_on = |mhomed: &str| {
        let script = std::sync::Arc::new(compile_with(
            &format!(
                "socket=udp:127.0.0.2:5060\nsocket=udp:127.0.0.1:5070\n{mhomed}\
                 loadmodule \"proto_udp.so\"\nroute {{ forward(\"sip:127.0.0.1:7000\"); }}"
            ),
            &available(),
        ));
        let mut ctx = engine::MsgCtx::new(invite()).with_receipt(engine::Receipt {
            source: "192.0.2.10:5070".parse().unwrap(),
            proto: "udp",
            local: "127.0.0.2:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        });
        // As the server hands it over: the context knows its script.
        ctx.script = Some(std::sync::Arc::clone(&script));
        let (mut w, mut log) = (engine::Worker::default(), engine::MemoryLog::default());
        script.run(&mut w, &mut ctx, &mut log).unwrap();
        ctx.outbox[0].from
    };
    assert_eq!(run_on(""), Some("127.0.0.2:5060".parse().unwrap()));
    assert_eq!(
        run_on("mhomed=1\n"),
        Some("127.0.0.1:5070".parse().unwrap())
    );
}
