//! topology_hiding: a call through rsips between a caller behind an upstream proxy and a
//! callee behind a downstream one. Each side sees rsips' Via only, no Record-Route of the
//! other side and a Contact of rsips'; replies carry the caller's own Vias and Record-Route
//! back; the ACK and the callee's BYE sent to those Contacts reach the other side through its
//! own proxy, with its route set; nothing of one side's addresses reaches the other, and
//! (flag `C`) the callee's side knows the call by another Call-ID. The dialog mode is in
//! topology_hiding_dialog.rs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header, leaks, reply_to};

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "topology_hiding.so"
loadmodule "dialog.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
#LOOP
route {
    if (has_totag()) {
        if (topology_hiding_match()) {
            t_relay();
            exit;
        }
        sl_send_reply(404, "Not here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) t_relay();
        exit;
    }
    record_route();
    topology_hiding("UC");
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
"#;

#[test]
fn neither_side_sees_the_other() {
    call_through(false);
}

/// With `th_callid_loop_protection` the call goes the same, and a request from the caller's
/// side that comes back to the callee's Contact (a loop) keeps a hidden Call-ID.
#[test]
fn with_loop_protection_a_looped_request_stays_hidden() {
    call_through(true);
}

fn call_through(loop_protection: bool) {
    let (caller, upstream, callee, downstream) =
        (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-th-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("CALLEE", &callee.port.to_string())
            .replace("FIFO", dir.join("fifo").to_str().unwrap())
            .replace(
                "#LOOP",
                if loop_protection {
                    "modparam(\"topology_hiding\", \"th_callid_loop_protection\", 1)"
                } else {
                    ""
                },
            ),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let caller_side = [caller.port, upstream.port];
    let callee_side = [callee.port, downstream.port];

    // The INVITE as the upstream proxy would relay it: its Via and Record-Route on top.
    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{up};branch=z9hG4bK-up1\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-a1;rport\r\n\
         Record-Route: <sip:127.0.0.1:{up};lr>\r\n\
         Max-Forwards: 69\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: th-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{cp};ob>;expires=60\r\n\
         Content-Length: 0\r\n\r\n",
        up = upstream.port,
        cp = caller.port
    );
    upstream.send(port, &invite);
    let got = callee.recv("INVITE");
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert!(
        header(&got, "Via")[0].contains(&format!("127.0.0.1:{port}")),
        "{got}"
    );
    assert!(header(&got, "Record-Route").is_empty(), "{got}");
    let contact = header(&got, "Contact")[0];
    assert!(
        contact.starts_with(&format!("<sip:alice@127.0.0.1:{port};thinfo=")),
        "{got}"
    );
    assert_eq!(leaks(&got, &caller_side), Vec::<u16>::new(), "{got}");
    // `C`: the callee sees another Call-ID.
    let hidden = header(&got, "Call-ID")[0].to_owned();
    assert!(
        hidden.starts_with("DLGCH_") && !hidden.contains("th-1"),
        "{got}"
    );

    // The callee answers through its downstream proxy (its Record-Route on top).
    let ok = reply_to(
        &got,
        "200 OK",
        "b1",
        &format!(
            "Record-Route: <sip:127.0.0.1:{dp};lr>\r\nContact: <sip:bob@127.0.0.1:{ep}>\r\n",
            dp = downstream.port,
            ep = callee.port
        ),
    );
    callee.send(port, &ok);
    let ok = upstream.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    // The caller's own Vias and Record-Route come back; rsips' Contact stands for the callee.
    assert_eq!(
        header(&ok, "Via"),
        vec![
            format!("SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-up1", upstream.port).as_str(),
            format!(
                "SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-a1;rport",
                caller.port
            )
            .as_str(),
        ],
        "{ok}"
    );
    assert_eq!(
        header(&ok, "Record-Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", upstream.port).as_str()],
        "{ok}"
    );
    let back = header(&ok, "Contact")[0].to_owned();
    assert!(
        back.starts_with(&format!("<sip:bob@127.0.0.1:{port};thinfo=")),
        "{ok}"
    );
    assert_eq!(leaks(&ok, &callee_side), Vec::<u16>::new(), "{ok}");
    assert_eq!(header(&ok, "Call-ID"), vec!["th-1"], "{ok}");

    // The ACK, as the upstream proxy relays it to rsips' Contact: it reaches the callee's
    // proxy with the callee's Contact as R-URI and the callee's route set.
    let ruri = back.trim_start_matches('<').split('>').next().unwrap();
    let ack = format!(
        "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-a2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n\
         Call-ID: th-1\r\nCSeq: 1 ACK\r\nContact: <sip:alice@127.0.0.1:{cp}>\r\nContent-Length: 0\r\n\r\n",
        cp = caller.port
    );
    upstream.send(port, &ack);
    let got = downstream.recv("ACK");
    assert!(
        got.starts_with(&format!(
            "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            callee.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(
        header(&got, "Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", downstream.port).as_str()]
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert_eq!(leaks(&got, &caller_side), Vec::<u16>::new(), "{got}");
    assert_eq!(header(&got, "Call-ID"), vec![hidden.as_str()], "{got}");

    // The callee hangs up (with the Call-ID it knows): its BYE goes to rsips' Contact and reaches the caller's proxy
    // with the caller's Contact and route set.
    let invite_contact = contact.trim_start_matches('<').split('>').next().unwrap();
    let bye = format!(
        "BYE {invite_contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ep};branch=z9hG4bK-b2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n\
         Call-ID: {hidden}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        ep = callee.port
    );
    callee.send(port, &bye);
    let got = upstream.recv("BYE");
    assert!(
        got.starts_with(&format!(
            "BYE sip:alice@127.0.0.1:{};ob SIP/2.0\r\n",
            caller.port
        )),
        "{got}"
    );
    assert_eq!(
        header(&got, "Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", upstream.port).as_str()]
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert_eq!(leaks(&got, &callee_side), Vec::<u16>::new(), "{got}");
    assert_eq!(header(&got, "Call-ID"), vec!["th-1"], "{got}");
    // Its 200 goes back to the callee with the callee's own Via only.
    upstream.send(port, &reply_to(&got, "200 OK", "", ""));
    let ok = callee.recv("200");
    assert_eq!(
        header(&ok, "Via"),
        vec![format!("SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-b2", callee.port).as_str()],
        "{ok}"
    );
    assert_eq!(leaks(&ok, &caller_side), Vec::<u16>::new(), "{ok}");
    assert_eq!(header(&ok, "Call-ID"), vec![hidden.as_str()], "{ok}");

    // The caller's side comes round to the callee's Contact (its own tag, the hidden
    // Call-ID): with loop protection it stays hidden (hidden once more), else it is revealed.
    let looped = bye
        .replace("z9hG4bK-b2", "z9hG4bK-l1")
        .replace("tag=b1\r\nTo:", "tag=a1\r\nTo:")
        .replace(
            "To: <sip:alice@example.com>;tag=a1",
            "To: <sip:alice@example.com>;tag=b1",
        );
    callee.send(port, &looped);
    let got = upstream.recv("looped BYE");
    let cid = header(&got, "Call-ID")[0].to_owned();
    if loop_protection {
        assert!(cid.starts_with("DLGCH_") && cid != hidden, "{got}");
    } else {
        assert_eq!(cid, "th-1", "{got}");
    }
    upstream.send(port, &reply_to(&got, "200 OK", "", ""));
    callee.recv("200 to the looped BYE");

    // A sequential request to a Contact that is not ours to decode: the script's 404.
    let stray = bye
        .replace("thinfo=", "thinfo=garbage")
        .replace("z9hG4bK-b2", "z9hG4bK-b3");
    callee.send(port, &stray);
    assert!(callee.recv("404").starts_with("SIP/2.0 404 Not here"));
    server.terminate(log);
}
