//! The nat_traversal module end to end: `client_nat_test`, `fix_contact`, `$source_uri`,
//! `$keepalive.socket`, and `nat_keepalive()` keeping a registered endpoint's NAT binding open
//! with NOTIFY keepalives (only once its REGISTER got a 2xx, and until the expiry granted),
//! and a caller's for as long as its dialog lasts.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
udp_workers=2
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "dialog.so"
loadmodule "nat_traversal.so"
modparam("nat_traversal", "keepalive_interval", 1)
modparam("registrar", "min_expires", 1)
modparam("nat_traversal", "keepalive_extra_headers", "X-Keepalive: yes\r\n")
route {
    if (is_method("OPTIONS")) {
        if (client_nat_test(1)) append_to_reply("X-Private-Contact: yes\r\n");
        if (client_nat_test(2)) append_to_reply("X-Moved: yes\r\n");
        if (client_nat_test(4)) append_to_reply("X-Private-Via: yes\r\n");
        if (client_nat_test(8)) append_to_reply("X-Contact-Elsewhere: yes\r\n");
        append_to_reply("X-Source: $source_uri\r\nX-Keepalive-Socket: $keepalive.socket(sip:127.0.0.1:UAPORT)\r\n");
        sl_send_reply(200, "Tested");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        sl_send_reply(404, "Not here");
        exit;
    }
    if (client_nat_test(1)) {
        fix_contact();
        nat_keepalive();
    }
    if (is_method("REGISTER")) {
        if ($hdr(X-Refuse) != NULL) { sl_send_reply(403, "Refused"); exit; }
        save("location");
        exit;
    }
    record_route();
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
"#;

fn request(px: u16, peer: &Peer, method: &str, n: &str, extra: &str) {
    peer.send(
        px,
        &format!(
            "{method} sip:bob@127.0.0.1:{px} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-nt{n}\r\n\
             From: <sip:bob@example.com>;tag=t{n}\r\nTo: <sip:bob@example.com>\r\nCall-ID: nt-{n}\r\n\
             CSeq: 1 {method}\r\nContact: <sip:bob@10.0.0.5:5062>\r\n{extra}Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
}

/// The keepalives `peer` gets within `wait` (other messages are skipped).
fn keepalives(peer: &Peer, wait: Duration) -> Vec<String> {
    let until = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match peer.quiet(left.max(Duration::from_millis(10))) {
            Some(m) if m.starts_with("NOTIFY ") => got.push(m),
            Some(_) => {}
            None => break,
        }
    }
    got
}

#[test]
fn registered_and_calling_endpoints_are_kept_alive() {
    let dir = common::test_dir("nat-traversal", "keepalive");
    let port = common::free_port();
    let (callee, ua) = (Peer::new(), Peer::new());
    let server = common::Rsips::start(
        &dir,
        &CONFIG
            .replace("CALLEE", &callee.port.to_string())
            .replace("UAPORT", &ua.port.to_string())
            .replace("PORT", &port.to_string()),
    );
    let log = || server.log();

    // The tests, and the variables before any keepalive.
    request(port, &ua, "OPTIONS", "o1", "");
    let r = ua.recv("200 Tested");
    assert_eq!(header(&r, "X-Private-Contact"), ["yes"], "{r}");
    assert!(header(&r, "X-Moved").is_empty(), "{r}");
    assert!(header(&r, "X-Private-Via").is_empty(), "{r}");
    assert_eq!(header(&r, "X-Contact-Elsewhere"), ["yes"], "{r}");
    let source = format!("sip:127.0.0.1:{}", ua.port);
    assert_eq!(header(&r, "X-Source"), [source.as_str()]);
    assert_eq!(header(&r, "X-Keepalive-Socket"), ["<null>"], "{r}");

    // A refused REGISTER is not kept alive.
    let refused = Peer::new();
    request(
        port,
        &refused,
        "REGISTER",
        "r0",
        "Expires: 60\r\nX-Refuse: yes\r\n",
    );
    assert!(refused.recv("403").starts_with("SIP/2.0 403"));

    // A granted one is: NOTIFY keepalives every second, from the socket it came to.
    request(port, &ua, "REGISTER", "r1", "Expires: 3\r\n");
    let ok = ua.recv("200 to the REGISTER");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        header(&ok, "Contact")[0].contains(&format!("@127.0.0.1:{}", ua.port)),
        "fix_contact: {ok}\n{}",
        log()
    );
    let kas = keepalives(&ua, Duration::from_millis(2500));
    assert!(!kas.is_empty(), "no keepalive:\n{}", log());
    let ka = &kas[0];
    assert!(
        ka.starts_with(&format!("NOTIFY {source} SIP/2.0\r\n")),
        "{ka}"
    );
    assert_eq!(header(ka, "Event"), ["keep-alive"]);
    assert_eq!(header(ka, "X-Keepalive"), ["yes"]);
    assert!(
        header(ka, "From")[0].starts_with("sip:keepalive@127.0.0.1;tag="),
        "{ka}"
    );
    assert!(refused.quiet(Duration::from_millis(200)).is_none());
    request(port, &ua, "OPTIONS", "o2", "");
    let r = ua.recv("200 Tested");
    assert_eq!(
        header(&r, "X-Keepalive-Socket"),
        [format!("udp:127.0.0.1:{port}").as_str()],
        "{r}"
    );
    // The registration runs out after 3 s: the keepalives stop.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = keepalives(&ua, Duration::from_millis(100));
    assert!(
        keepalives(&ua, Duration::from_millis(2200)).is_empty(),
        "keepalives after the expiry"
    );

    // A caller is kept alive while its call lasts.
    let caller = Peer::new();
    request(port, &caller, "INVITE", "c1", "");
    let inv = callee.recv("INVITE");
    let contact = format!("Contact: <sip:callee@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", "cb", &contact));
    let ok = caller.recv("200 OK");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let rr = header(&ok, "Record-Route")[0].to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:callee@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ntc{cseq}\r\n\
             Route: {rr}\r\nFrom: <sip:bob@example.com>;tag=tc1\r\nTo: <sip:bob@example.com>;tag=cb\r\n\
             Call-ID: nt-c1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        )
    };
    caller.send(port, &in_dialog("ACK", 1));
    assert!(
        !keepalives(&caller, Duration::from_millis(2200)).is_empty(),
        "no keepalive to the caller during the call:\n{}",
        log()
    );
    caller.send(port, &in_dialog("BYE", 2));
    let bye = callee.recv("BYE");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    let _ = keepalives(&caller, Duration::from_millis(1200));
    assert!(
        keepalives(&caller, Duration::from_millis(2200)).is_empty(),
        "keepalives after the call ended"
    );
}
