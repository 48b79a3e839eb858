//! uac: `uac_replace_from`/`uac_replace_to` hide the caller from the callee while the caller
//! sees its own From in every reply and the dialog's later requests are restored both ways
//! (auto mode, OpenSIPS' `vsf`/`vst` Record-Route parameters); `uac_auth` answers a next hop's
//! digest challenge from a failure route with `uac_auth`'s credential, raising CSeq towards
//! the callee and lowering it back towards the caller for the whole dialog.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "uac.so"
loadmodule "uac_auth.so"
modparam("uac_auth", "credential", "alice:carrier.example:s3cret")
route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        sl_send_reply(404, "Not here");
        exit;
    }
    record_route();
    if ($rU == "anon")
        uac_replace_from("Anonymous", "sip:anonymous@anonymous.invalid");
    if ($rU == "swap")
        uac_replace_to("", "sip:bob@trunk.example");
    t_on_failure("auth");
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
failure_route[auth] {
    if (t_check_status("40[17]")) {
        if (uac_auth()) {
            $du = "sip:127.0.0.1:CALLEE";
            t_relay();
            exit;
        }
        xlog("uac_auth did not answer $T_reply_code\n");
    }
}
"#;

struct Setup {
    port: u16,
    caller: Peer,
    callee: Peer,
    _rsips: common::Kill,
}

fn start(name: &str) -> Setup {
    let (caller, callee) = (Peer::new(), Peer::new());
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("CALLEE", &callee.port.to_string()),
    )
    .unwrap();
    let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    Setup {
        port,
        caller,
        callee,
        _rsips: rsips,
    }
}

fn invite(s: &Setup, user: &str, callid: &str, cseq: u32) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-{callid}-inv\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@a.example>;tag=A\r\n\
         To: <sip:{user}@b.example>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{c}>\r\n\
         Content-Length: 0\r\n\r\n",
        port = s.port,
        c = s.caller.port
    )
}

/// An in-dialog request from `peer` through the proxy (`route` is the Record-Route the proxy
/// added), with the From and To given.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    peer: &Peer,
    method: &str,
    target: u16,
    route: &str,
    from: &str,
    to: &str,
    callid: &str,
    cseq: u32,
) -> String {
    format!(
        "{method} sip:x@127.0.0.1:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-{callid}-{method}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         Route: {route}\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        p = peer.port
    )
}

#[test]
fn a_replaced_from_is_restored_in_replies_and_in_the_dialog() {
    let s = start("uac-from");
    s.caller.send(s.port, &invite(&s, "anon", "u1", 1));
    let inv = s.callee.recv("INVITE");
    // The callee sees the replacement, tag kept; our Record-Route carries the original.
    assert_eq!(
        header(&inv, "From"),
        ["Anonymous <sip:anonymous@anonymous.invalid>;tag=A"],
        "{inv}"
    );
    let rr = header(&inv, "Record-Route")[0].to_owned();
    assert!(rr.contains(";vsf="), "{rr}");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", s.callee.port);
    s.callee
        .send(s.port, &reply_to(&inv, "200 OK", "B", &contact));
    let ok = s.caller.recv("200");
    // The caller gets its own From back, display name and all.
    assert_eq!(
        header(&ok, "From"),
        ["\"Alice\" <sip:alice@a.example>;tag=A"],
        "{ok}"
    );
    let callee_to = "<sip:anon@b.example>;tag=B";

    // The callee asks something of the caller: the To it sends (the anonymous URI) reaches
    // the caller as the caller's own.
    let info = in_dialog(
        &s.callee,
        "INFO",
        s.caller.port,
        &rr,
        callee_to,
        "Anonymous <sip:anonymous@anonymous.invalid>;tag=A",
        "u1",
        1,
    );
    s.callee.send(s.port, &info);
    let got = s.caller.recv("INFO");
    assert_eq!(
        header(&got, "To"),
        ["Anonymous <sip:alice@a.example>;tag=A"],
        "{got}"
    );
    s.caller.send(s.port, &reply_to(&got, "200 OK", "", ""));
    let ok = s.callee.recv("200 for INFO");
    assert_eq!(
        header(&ok, "To"),
        ["Anonymous <sip:anonymous@anonymous.invalid>;tag=A"],
        "{ok}"
    );

    // The caller hangs up: the callee still sees the anonymous URI, the caller its own in
    // the reply.
    let bye = in_dialog(
        &s.caller,
        "BYE",
        s.callee.port,
        &rr,
        "\"Alice\" <sip:alice@a.example>;tag=A",
        callee_to,
        "u1",
        2,
    );
    s.caller.send(s.port, &bye);
    let got = s.callee.recv("BYE");
    assert_eq!(
        header(&got, "From"),
        ["\"Alice\" <sip:anonymous@anonymous.invalid>;tag=A"],
        "{got}"
    );
    s.callee.send(s.port, &reply_to(&got, "200 OK", "", ""));
    let ok = s.caller.recv("200 for BYE");
    assert_eq!(
        header(&ok, "From"),
        ["\"Alice\" <sip:alice@a.example>;tag=A"],
        "{ok}"
    );

    // uac_replace_to: the callee sees the new To; the caller gets its To back with the tag.
    s.caller.send(s.port, &invite(&s, "swap", "u2", 1));
    let inv = s.callee.recv("INVITE");
    assert_eq!(header(&inv, "To"), ["<sip:bob@trunk.example>"], "{inv}");
    s.callee
        .send(s.port, &reply_to(&inv, "486 Busy Here", "C", ""));
    let busy = s.caller.recv("486");
    assert_eq!(
        header(&busy, "To"),
        ["<sip:swap@b.example>;tag=C"],
        "{busy}"
    );
}

#[test]
fn uac_auth_answers_the_challenge_and_keeps_the_cseq_straight() {
    let s = start("uac-auth");
    s.caller.send(s.port, &invite(&s, "auth", "a1", 10));
    let inv = s.callee.recv("INVITE");
    assert_eq!(header(&inv, "CSeq"), ["10 INVITE"]);
    let challenge = "Proxy-Authenticate: Digest realm=\"carrier.example\", nonce=\"xyz\", \
                     qop=\"auth\", opaque=\"op\"\r\n";
    s.callee.send(
        s.port,
        &reply_to(&inv, "407 Proxy Authentication Required", "T", challenge),
    );
    let ack = s.callee.recv("ACK for 407");
    assert!(ack.starts_with("ACK "), "{ack}");

    // The INVITE again, answered, one CSeq up.
    let inv2 = s.callee.recv("authenticated INVITE");
    assert!(inv2.starts_with("INVITE "), "{inv2}");
    assert_eq!(header(&inv2, "CSeq"), ["11 INVITE"], "{inv2}");
    let auth = header(&inv2, "Proxy-Authorization")[0].to_owned();
    let uri = common::digest_param(&auth, "uri");
    assert_eq!(uri, format!("sip:auth@127.0.0.1:{}", s.port));
    assert_eq!(common::digest_param(&auth, "username"), "alice");
    assert_eq!(common::digest_param(&auth, "opaque"), "op");
    assert_eq!(common::digest_param(&auth, "nc"), "00000001");
    let cnonce = common::digest_param(&auth, "cnonce");
    let ha1 = common::md5_hex("alice:carrier.example:s3cret");
    let ha2 = common::md5_hex(&format!("INVITE:{uri}"));
    let want = common::md5_hex(&format!("{ha1}:xyz:00000001:{cnonce}:auth:{ha2}"));
    assert_eq!(common::digest_param(&auth, "response"), want, "{auth}");

    // Answered: the caller sees its own CSeq.
    let rr = header(&inv2, "Record-Route")[0].to_owned();
    assert!(rr.contains(";aci="), "{inv2}");
    assert_eq!(header(&inv2, "Via").len(), 2, "{inv2}");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", s.callee.port);
    s.callee
        .send(s.port, &reply_to(&inv2, "200 OK", "B", &contact));
    let ok = s.caller.recv("200");
    assert_eq!(header(&ok, "CSeq"), ["10 INVITE"], "{ok}");

    // The caller's ACK and BYE reach the callee one up; the BYE's reply comes back down.
    let from = "\"Alice\" <sip:alice@a.example>;tag=A";
    let to = "<sip:auth@b.example>;tag=B";
    let ack = in_dialog(&s.caller, "ACK", s.callee.port, &rr, from, to, "a1", 10);
    s.caller.send(s.port, &ack);
    let got = s.callee.recv("ACK");
    assert_eq!(header(&got, "CSeq"), ["11 ACK"], "{got}");
    let bye = in_dialog(&s.caller, "BYE", s.callee.port, &rr, from, to, "a1", 11);
    s.caller.send(s.port, &bye);
    let got = s.callee.recv("BYE");
    assert_eq!(header(&got, "CSeq"), ["12 BYE"], "{got}");
    s.callee.send(s.port, &reply_to(&got, "200 OK", "", ""));
    let ok = s.caller.recv("200 for BYE");
    assert_eq!(header(&ok, "CSeq"), ["11 BYE"], "{ok}");

    // A realm without a credential: nothing is answered, the caller gets the 401.
    s.caller.send(s.port, &invite(&s, "auth", "a2", 1));
    let inv = s.callee.recv("INVITE");
    let challenge = "WWW-Authenticate: Digest realm=\"elsewhere\", nonce=\"n\"\r\n";
    s.callee
        .send(s.port, &reply_to(&inv, "401 Unauthorized", "T", challenge));
    let _ack = s.callee.recv("ACK for 401");
    let got = s.caller.recv("401");
    assert!(got.starts_with("SIP/2.0 401"), "{got}");
}
