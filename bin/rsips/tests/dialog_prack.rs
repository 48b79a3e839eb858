//! OpenSIPS 4.0's PRACK interworking in the dialog module, end to end with a caller and a
//! callee of our own on UDP: `create_dialog("auto-prack")` acknowledging each reliable
//! provisional reply of the callee with a PRACK of the proxy's own (the caller knows nothing
//! of RFC 3262), the caller's later requests renumbered after those PRACKs and their replies
//! numbered back, a failed PRACK answering the INVITE `502 Bad Gateway`
//! (`auto_prack_hangup_on_failure`), and `dlg_send_sequential` sending a PRACK from an
//! onreply route and an in-dialog request towards the caller.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, Rsips, header, reply_to};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
modparam("dialog", "auto_prack_hangup_on_failure", 1)
modparam("dialog", "auto_prack_fr_timeout", 1)
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        if (is_method("INFO") && $hdr(X-Send) != NULL) {
            if (dlg_send_sequential("MESSAGE", "caller", "hello caller", "text/plain", "X-Sent-By: script"))
                xlog("SENT sequential\n");
            send_reply(200, "Sent");
            exit;
        }
        t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        if ($hdr(X-Manual) != NULL) {
            create_dialog();
            t_on_reply("manual_prack");
        } else {
            create_dialog("auto-prack");
        }
        record_route();
    }
    t_relay();
}
onreply_route[manual_prack] {
    if ($rs == 183) {
        if (dlg_send_sequential("PRACK", "callee", , , "X-Prack: manual"))
            xlog("MANUAL PRACK sent\n");
    }
}
local_route {
    xlog("LOCAL $rm to $ru\n");
}
"#;

fn start(dir: &Path, port: u16) -> Rsips {
    Rsips::start(dir, &CONFIG.replace("PORT", &port.to_string()))
}

fn test_dir(name: &str) -> PathBuf {
    common::test_dir("prack", name)
}

fn invite(px: u16, caller: &Peer, callee: &Peer, callid: &str, extra: &str) {
    caller.send(
        px,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-1;rport\r\n\
             From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
}

/// A request from `from` inside the call (Route, tags and CSeq given).
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    px: u16,
    from: &Peer,
    to_port: u16,
    method: &str,
    cseq: u32,
    route: &str,
    (from_tag, to_tag): (&str, &str),
    callid: &str,
    extra: &str,
) {
    from.send(
        px,
        &format!(
            "{method} sip:x@127.0.0.1:{to_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{method}{cseq};rport\r\n\
             Route: {route}\r\nFrom: <sip:a@example.com>;tag={from_tag}\r\nTo: <sip:b@example.com>;tag={to_tag}\r\n\
             Call-ID: {callid}\r\nCSeq: {cseq} {method}\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            from.port
        ),
    );
}

/// A reliable provisional reply of the callee to `req`.
fn reliable(req: &str, status: &str, tag: &str, rseq: u32, callee: &Peer) -> String {
    reply_to(
        req,
        status,
        tag,
        &format!(
            "Require: 100rel\r\nRSeq: {rseq}\r\nContact: <sip:bob@127.0.0.1:{}>\r\n",
            callee.port
        ),
    )
}

/// The caller's hop-by-hop ACK for a negative final reply to its INVITE.
fn ack_for(reply: &str, callee: &Peer) -> String {
    format!(
        "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        callee.port,
        header(reply, "Via")[0],
        header(reply, "From")[0],
        header(reply, "To")[0],
        header(reply, "Call-ID")[0],
    )
}

/// Receives at the callee, skipping retransmissions of `skip` (a request it already got).
fn recv_skipping(peer: &Peer, what: &str, skip: &str) -> String {
    loop {
        let m = peer.recv(what);
        if !m.starts_with(skip) {
            return m;
        }
    }
}

#[test]
fn auto_prack_acknowledges_reliable_provisionals_and_renumbers_the_callers_requests() {
    let dir = test_dir("auto");
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());
    invite(port, &caller, &callee, "p1", "");
    let inv = callee.recv("INVITE");
    assert!(inv.starts_with("INVITE "), "{inv}");
    let tag = "b-p1";

    // 183 with RSeq 1: relayed to the caller as it is, and a PRACK of ours goes to the callee.
    callee.send(
        port,
        &reliable(&inv, "183 Session Progress", tag, 1, &callee),
    );
    let progress = caller.recv("183");
    assert!(progress.starts_with("SIP/2.0 183"), "{progress}");
    let prack = callee.recv("PRACK");
    assert!(
        prack.starts_with(&format!("PRACK sip:bob@127.0.0.1:{} SIP/2.0", callee.port)),
        "the PRACK goes to the Contact of the 183: {prack}"
    );
    assert_eq!(header(&prack, "CSeq"), ["2 PRACK"], "{prack}");
    assert_eq!(header(&prack, "RAck"), ["1 1 INVITE"], "{prack}");
    assert_eq!(header(&prack, "Call-ID"), ["p1"]);
    assert!(header(&prack, "From")[0].ends_with(";tag=a-p1"), "{prack}");
    assert!(header(&prack, "To")[0].ends_with(";tag=b-p1"), "{prack}");
    assert_eq!(header(&prack, "Via").len(), 1, "only ours: {prack}");
    assert!(
        header(&prack, "Route").is_empty(),
        "no proxy beyond us: {prack}"
    );
    callee.send(port, &reply_to(&prack, "200 OK", "", ""));
    // A retransmitted 183 (same RSeq) is not acknowledged again; the caller never sees the
    // PRACK's 200.
    callee.send(
        port,
        &reliable(&inv, "183 Session Progress", tag, 1, &callee),
    );
    let again = caller.recv("183 again");
    assert!(again.starts_with("SIP/2.0 183"), "{again}");
    assert_eq!(callee.quiet(Duration::from_millis(500)), None);

    // 180 with RSeq 2: the next PRACK, one CSeq up.
    callee.send(port, &reliable(&inv, "180 Ringing", tag, 2, &callee));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    let prack2 = callee.recv("second PRACK");
    assert_eq!(header(&prack2, "CSeq"), ["3 PRACK"], "{prack2}");
    assert_eq!(header(&prack2, "RAck"), ["2 1 INVITE"], "{prack2}");
    callee.send(port, &reply_to(&prack2, "200 OK", "", ""));

    // Answered; the caller's ACK keeps the INVITE's number.
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", tag, &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(caller.quiet(Duration::from_millis(300)).is_none());
    let route = header(&ok, "Record-Route")[0].to_owned();
    in_dialog(
        port,
        &caller,
        callee.port,
        "ACK",
        1,
        &route,
        ("a-p1", tag),
        "p1",
        "",
    );
    let ack = recv_skipping(&callee, "ACK", "PRACK");
    assert!(ack.starts_with("ACK "), "{ack}");
    assert_eq!(header(&ack, "CSeq"), ["1 ACK"], "{ack}");

    // The caller's BYE (its CSeq 2) reaches the callee after our PRACKs (2, 3): as 4; the
    // callee's 200 goes back to the caller as the answer to its CSeq 2.
    in_dialog(
        port,
        &caller,
        callee.port,
        "BYE",
        2,
        &route,
        ("a-p1", tag),
        "p1",
        "",
    );
    let bye = recv_skipping(&callee, "BYE", "PRACK");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "CSeq"), ["4 BYE"], "{bye}");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    let bye_ok = caller.recv("200 for the BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    assert_eq!(header(&bye_ok, "CSeq"), ["2 BYE"], "{bye_ok}");

    // An unreliable 180 (no RSeq) of another call gets no PRACK.
    invite(port, &caller, &callee, "p2", "");
    let inv2 = callee.recv("INVITE 2");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv2, "180 Ringing", "b-p2", &contact));
    assert!(caller.recv("180 of p2").starts_with("SIP/2.0 180"));
    assert_eq!(callee.quiet(Duration::from_millis(500)), None);
    callee.send(port, &reply_to(&inv2, "486 Busy Here", "b-p2", ""));
    assert!(caller.recv("486").starts_with("SIP/2.0 486"));

    let log = s.log();
    assert_eq!(
        log.matches("LOCAL PRACK to ").count(),
        2,
        "local_route saw both PRACKs: {log}"
    );
}

#[test]
fn a_failed_auto_prack_answers_the_invite_502_with_the_callees_tag() {
    let dir = test_dir("fail");
    let port = common::free_port();
    let _s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());

    // Refused PRACK.
    invite(port, &caller, &callee, "f1", "");
    let inv = callee.recv("INVITE");
    callee.send(
        port,
        &reliable(&inv, "183 Session Progress", "b-f1", 1, &callee),
    );
    assert!(caller.recv("183").starts_with("SIP/2.0 183"));
    let prack = callee.recv("PRACK");
    assert!(prack.starts_with("PRACK "), "{prack}");
    callee.send(port, &reply_to(&prack, "481 Call Does Not Exist", "", ""));
    let failed = caller.recv("502");
    assert!(failed.starts_with("SIP/2.0 502 Bad Gateway"), "{failed}");
    assert!(
        header(&failed, "To")[0].ends_with(";tag=b-f1"),
        "the 502 speaks for the callee's early dialog: {failed}"
    );
    // The caller ACKs the 502 (it ends its retransmissions); the callee's branch is cancelled.
    caller.send(port, &ack_for(&failed, &callee));
    let cancel = recv_skipping(&callee, "CANCEL", "PRACK");
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    assert_eq!(header(&cancel, "Call-ID"), ["f1"]);
    callee.send(port, &reply_to(&cancel, "200 OK", "", ""));
    callee.send(port, &reply_to(&inv, "487 Request Terminated", "b-f1", ""));
    let ack = callee.recv("ACK of the 487");
    assert!(ack.starts_with("ACK "), "{ack}");
    assert_eq!(caller.quiet(Duration::from_millis(700)), None);

    // Unanswered PRACK: 502 once auto_prack_fr_timeout (1 s) runs out.
    invite(port, &caller, &callee, "f2", "");
    let inv = callee.recv("INVITE 2");
    let sent = Instant::now();
    callee.send(
        port,
        &reliable(&inv, "183 Session Progress", "b-f2", 7, &callee),
    );
    assert!(caller.recv("183 of f2").starts_with("SIP/2.0 183"));
    let prack = callee.recv("PRACK of f2");
    assert_eq!(header(&prack, "RAck"), ["7 1 INVITE"], "{prack}");
    let failed = caller.recv("502 after the timeout");
    assert!(failed.starts_with("SIP/2.0 502 Bad Gateway"), "{failed}");
    assert_eq!(header(&failed, "Call-ID"), ["f2"]);
    assert!(header(&failed, "To")[0].ends_with(";tag=b-f2"), "{failed}");
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "the PRACK's own 1 s timer, not fr_timeout's 5 s: {waited:?}"
    );
}

#[test]
fn dlg_send_sequential_sends_a_manual_prack_and_requests_towards_the_caller() {
    let dir = test_dir("manual");
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());
    invite(port, &caller, &callee, "m1", "X-Manual: yes\r\n");
    let inv = callee.recv("INVITE");
    let tag = "b-m1";
    callee.send(
        port,
        &reliable(&inv, "183 Session Progress", tag, 5, &callee),
    );
    assert!(caller.recv("183").starts_with("SIP/2.0 183"));
    let prack = callee.recv("manual PRACK");
    assert_eq!(header(&prack, "RAck"), ["5 1 INVITE"], "{prack}");
    assert_eq!(header(&prack, "CSeq"), ["2 PRACK"], "{prack}");
    assert_eq!(header(&prack, "X-Prack"), ["manual"], "{prack}");
    callee.send(port, &reply_to(&prack, "200 OK", "", ""));
    // Without auto-prack, a 180 carrying RSeq gets no PRACK.
    callee.send(port, &reliable(&inv, "180 Ringing", tag, 6, &callee));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    assert_eq!(callee.quiet(Duration::from_millis(500)), None);
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", tag, &contact));
    let ok = caller.recv("200");
    let route = header(&ok, "Record-Route")[0].to_owned();
    in_dialog(
        port,
        &caller,
        callee.port,
        "ACK",
        1,
        &route,
        ("a-m1", tag),
        "m1",
        "",
    );
    assert!(callee.recv("ACK").starts_with("ACK "));

    // The callee's INFO (its CSeq 10) makes the script send a MESSAGE to the caller: from the
    // callee's side, numbered after the callee's 10.
    in_dialog(
        port,
        &callee,
        caller.port,
        "INFO",
        10,
        &route,
        (tag, "a-m1"),
        "m1",
        "X-Send: yes\r\n",
    );
    let sent = callee.recv("the INFO's reply");
    assert!(sent.starts_with("SIP/2.0 200 Sent"), "{sent}");
    let msg = caller.recv("MESSAGE");
    assert!(
        msg.starts_with(&format!(
            "MESSAGE sip:alice@127.0.0.1:{} SIP/2.0",
            caller.port
        )),
        "{msg}"
    );
    assert_eq!(header(&msg, "CSeq"), ["11 MESSAGE"], "{msg}");
    assert!(header(&msg, "From")[0].ends_with(";tag=b-m1"), "{msg}");
    assert!(header(&msg, "To")[0].ends_with(";tag=a-m1"), "{msg}");
    assert_eq!(header(&msg, "Content-Type"), ["text/plain"], "{msg}");
    assert_eq!(header(&msg, "X-Sent-By"), ["script"], "{msg}");
    assert!(msg.ends_with("\r\n\r\nhello caller"), "{msg}");
    caller.send(port, &reply_to(&msg, "200 OK", "", ""));
    // The callee's BYE (its CSeq 11) reaches the caller after our MESSAGE (11): as 12.
    in_dialog(
        port,
        &callee,
        caller.port,
        "BYE",
        11,
        &route,
        (tag, "a-m1"),
        "m1",
        "",
    );
    let bye = caller.recv("BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "CSeq"), ["12 BYE"], "{bye}");
    caller.send(port, &reply_to(&bye, "200 OK", "", ""));
    let bye_ok = callee.recv("200 for the BYE");
    assert_eq!(header(&bye_ok, "CSeq"), ["11 BYE"], "{bye_ok}");
    let log = s.log();
    assert!(log.contains("MANUAL PRACK sent"), "{log}");
    assert!(log.contains("SENT sequential"), "{log}");
}

#[test]
fn a_bad_leg_is_refused_at_start() {
    let err = common::refused_start(
        "prack-leg",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\n\
         loadmodule \"dialog.so\"\nroute { dlg_send_sequential(\"INFO\", \"sideways\"); }\n",
    );
    assert!(err.contains("sideways"), "{err}");
    assert!(err.contains(":5:"), "names the line: {err}");
}
