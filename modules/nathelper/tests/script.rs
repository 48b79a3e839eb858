//! nathelper driven from a compiled script, with messages from 203.0.113.5:40000 (a client
//! behind a NAT whose own address is 192.168.1.10): the tests of `nat_uac_test`, the Contact
//! and SDP rewrites as they go out, and a NATed registration that `lookup` sends back to the
//! address it came from.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

fn compile(text: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"signaling.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"nathelper.so\"\n{text}"
    );
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![
            &sl::SL,
            &sl::SIGNALING,
            &registrar::USRLOC,
            &registrar::REGISTRAR,
            &nathelper::MODULE,
        ],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    })
}

/// Runs the main route over `raw` from `source`: the log lines and the context after it.
fn run_from(
    script: &Script,
    raw: &str,
    source: &str,
    proto: &'static str,
) -> (Vec<String>, MsgCtx) {
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(raw.to_owned())).unwrap())
        .with_receipt(Receipt {
            source: source.parse().unwrap(),
            proto,
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        });
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    let lines = log
        .lines
        .into_iter()
        .map(|(_, l)| l.trim_end().to_owned())
        .collect();
    (lines, ctx)
}

fn run(script: &Script, raw: &str) -> (Vec<String>, MsgCtx) {
    run_from(script, raw, "203.0.113.5:40000", "udp")
}

/// The message as it would leave (the script's edits applied).
fn out(ctx: &MsgCtx) -> String {
    String::from_utf8(ctx.msg.serialize(&ctx.edits)).unwrap()
}

fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\n\
    t=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n";

fn invite(via: &str, contact: &str, sdp: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK-nat\r\n\
         From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: nat-1\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn each_nat_test_sees_what_it_names() {
    let tests = [
        "private-contact",
        "diff-ip-src-via",
        "private-via",
        "private-sdp",
        "diff-port-src-via",
        "diff-ip-src-contact",
        "diff-port-src-contact",
    ];
    let route: String = tests
        .iter()
        .map(|t| format!("if (nat_uac_test(\"{t}\")) xlog(\"{t}\\n\");\n"))
        .collect();
    let s = compile(&format!("route {{\n{route}}}"));
    let natted = invite("192.168.1.10:5060", "<sip:alice@192.168.1.10:5060>", SDP);
    assert_eq!(run(&s, &natted).0, tests);
    // A client on a public address says where it is: no test holds.
    let public = invite(
        "203.0.113.5:40000",
        "<sip:alice@203.0.113.5:40000>",
        &SDP.replace("192.168.1.10", "203.0.113.5"),
    );
    assert!(run(&s, &public).0.is_empty());
    // 100.64/10 counts only with carrier-grade-nat; numbers name the same bits.
    let s = compile(
        r#"route {
    if (nat_uac_test("private-contact")) xlog("1918\n");
    if (nat_uac_test("private-contact,carrier-grade-nat")) xlog("6598\n");
    if (nat_uac_test("17")) xlog("numeric\n");
}"#,
    );
    let cgn = invite("203.0.113.5:40000", "<sip:alice@100.64.7.7>", "");
    assert_eq!(run(&s, &cgn).0, ["6598"]);
    assert_eq!(run(&s, &natted).0, ["1918", "6598", "numeric"]);
}

#[test]
fn fix_nated_contact_names_the_source_address() {
    let s = compile(r#"route { fix_nated_contact(); }"#);
    let (_, ctx) = run(
        &s,
        &invite(
            "192.168.1.10:5060",
            "\"Al\" <sip:alice@192.168.1.10:5060;transport=udp>;expires=60",
            "",
        ),
    );
    assert_eq!(
        header(&out(&ctx), "Contact"),
        Some("\"Al\" <sip:alice@203.0.113.5:40000;transport=udp>;expires=60")
    );
    // With URI parameters, and an addr-spec Contact gets <> so that they stay the URI's.
    let s = compile(r#"route { fix_nated_contact(";nat=yes"); }"#);
    let (_, ctx) = run(&s, &invite("192.168.1.10", "sip:alice@192.168.1.10", ""));
    assert_eq!(
        header(&out(&ctx), "Contact"),
        Some("<sip:alice@203.0.113.5:40000;nat=yes>")
    );
    // IPv6 sources are bracketed, written as OpenSIPS writes addresses (ip_addr2a: every
    // group, upper case).
    let s = compile(r#"route { fix_nated_contact(); }"#);
    let (_, ctx) = run_from(
        &s,
        &invite("[fd00::5]", "<sip:alice@[fd00::5]:5060>", ""),
        "[2001:db8::5]:41000",
        "udp",
    );
    assert_eq!(
        header(&out(&ctx), "Contact"),
        Some("<sip:alice@[2001:DB8:0:0:0:0:0:5]:41000>")
    );
}

#[test]
fn add_rcv_param_as_header_or_uri_parameter() {
    let s = compile(r#"route { add_rcv_param(); }"#);
    let (_, ctx) = run_from(
        &s,
        &invite("192.168.1.10", "<sip:alice@192.168.1.10>", ""),
        "203.0.113.5:40000",
        "tcp",
    );
    assert_eq!(
        header(&out(&ctx), "Contact"),
        Some("<sip:alice@192.168.1.10>;received=\"sip:203.0.113.5:40000;transport=tcp\"")
    );
    let s = compile(r#"route { add_rcv_param(1); }"#);
    let (_, ctx) = run(&s, &invite("192.168.1.10", "<sip:alice@192.168.1.10>", ""));
    assert_eq!(
        header(&out(&ctx), "Contact"),
        Some("<sip:alice@192.168.1.10;received=\"sip:203.0.113.5:40000\">")
    );
}

#[test]
fn fix_nated_sdp_rewrites_addresses_and_adds_lines() {
    let s = compile(r#"route { fix_nated_sdp("rewrite-media-ip,add-dir-active"); }"#);
    let (_, ctx) = run(&s, &invite("192.168.1.10", "<sip:alice@192.168.1.10>", SDP));
    let sent = out(&ctx);
    let body = sent.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        body,
        "v=0\r\no=- 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 203.0.113.5\r\n\
         t=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n\
         a=direction:active\r\n"
    );
    assert_eq!(
        header(&sent, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    let s = compile(
        r#"route { fix_nated_sdp("rewrite-origin-ip,rewrite-null-ips", "198.51.100.1"); }"#,
    );
    let (_, ctx) = run(&s, &invite("192.168.1.10", "<sip:alice@192.168.1.10>", SDP));
    let sent = out(&ctx);
    assert!(sent.contains("o=- 1 1 IN IP4 198.51.100.1\r\n"), "{sent}");
    assert!(
        sent.contains("c=IN IP4 192.168.1.10\r\n"),
        "media kept: {sent}"
    );
    let s = compile(r#"route { if (!fix_nated_sdp("rewrite-media-ip")) xlog("no sdp\n"); }"#);
    assert_eq!(
        run(&s, &invite("192.168.1.10", "<sip:a@h>", "")).0,
        ["no sdp"]
    );
}

// A REGISTER from behind a NAT: fix_nated_register() gives the registrar the source address,
// stored as the contact's `received` (the 200 shows it), and lookup() sends calls there while
// the R-URI stays the registered Contact. fix_nated_contact() instead stores the Contact
// rewritten.
#[test]
fn a_natted_registration_is_reached_at_its_source_address() {
    let s = compile(
        r#"modparam("nathelper", "received_avp", "$avp(rcv)")
modparam("registrar", "received_avp", "$avp(rcv)")
route {
    if ($rm == "REGISTER") {
        if ($hdr(X-Fix-Contact) != NULL) fix_nated_contact();
        else fix_nated_register();
        save("nat_loc");
        exit;
    }
    lookup("nat_loc");
    xlog("ru=$ru du=$du\n");
}"#,
    );
    let register = |user: &str, extra: &str| {
        format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK-r{user}\r\n\
             From: <sip:{user}@example.com>;tag=f\r\nTo: <sip:{user}@example.com>\r\n\
             Call-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:{user}@192.168.1.10:5060>\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let (_, ctx) = run(&s, &register("carl", ""));
    let reply = String::from_utf8_lossy(&ctx.outbox[0].data).into_owned();
    assert_eq!(
        header(&reply, "Contact"),
        Some("<sip:carl@192.168.1.10:5060>;expires=3600;received=\"sip:203.0.113.5:40000\""),
        "{reply}"
    );
    let call = |user: &str| {
        format!(
            "INVITE sip:{user}@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bK-c{user}\r\n\
             From: <sip:x@example.com>;tag=x\r\nTo: <sip:{user}@example.com>\r\n\
             Call-ID: call-{user}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    assert_eq!(
        run(&s, &call("carl")).0,
        ["ru=sip:carl@192.168.1.10:5060 du=sip:203.0.113.5:40000"]
    );
    run(&s, &register("dina", "X-Fix-Contact: 1\r\n"));
    assert_eq!(
        run(&s, &call("dina")).0,
        ["ru=sip:dina@203.0.113.5:40000 du=<null>"]
    );
}
