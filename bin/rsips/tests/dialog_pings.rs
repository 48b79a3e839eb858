//! The dialog module's re-INVITE pings and its handling of a CANCEL that crosses a 2xx, end
//! to end with a caller and a callee of our own on UDP: each side is offered again the SDP
//! the proxy relayed to it (after the script changed it), a side answering 481 ends the call
//! with a BYE each way, and with `end-on-race-condition` a call answered after its CANCEL
//! ends after `race_condition_timeout` ("SIP Race Condition").

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
loadmodule "textops.so"
loadmodule "dialog.so"
modparam("dialog", "reinvite_ping_interval", 1)
modparam("dialog", "race_condition_timeout", 1)
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        t_relay();
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        create_dialog($hdr(X-Flags));
        $dlg_val(ci) = $ci;
        dlg_on_hangup("ended");
        replace_body_all("10.0.0.1", "10.9.9.9");
        t_on_reply("answer");
        record_route();
    }
    t_relay();
}
onreply_route[answer] {
    replace_body_all("10.0.0.2", "10.8.8.8");
}
route[ended] {
    xlog("ENDED $dlg_val(ci) $DLG_end_reason\n");
}
local_route {
    xlog("LOCAL $rm to $ru\n");
}
"#;

fn start(dir: &Path, port: u16) -> Rsips {
    Rsips::start(dir, &CONFIG.replace("PORT", &port.to_string()))
}

fn test_dir(name: &str) -> PathBuf {
    common::test_dir("dlgping", name)
}

fn sdp(ip: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
}

fn invite(px: u16, caller: &Peer, callee: &Peer, callid: &str, flags: &str) {
    let body = sdp("10.0.0.1");
    caller.send(
        px,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-1;rport\r\n\
             From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nX-Flags: {flags}\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            callee.port,
            caller.port,
            caller.port,
            body.len()
        ),
    );
}

/// A 200 with the callee's SDP.
fn answer(req: &str, tag: &str, callee: &Peer) -> String {
    let body = sdp("10.0.0.2");
    reply_to(
        req,
        "200 OK",
        tag,
        &format!(
            "Contact: <sip:bob@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
            callee.port
        ),
    )
    .replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
    )
}

fn ack(px: u16, caller: &Peer, callee: &Peer, route: &str, callid: &str) {
    caller.send(
        px,
        &format!(
            "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-ack;rport\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>;tag=b-{callid}\r\n\
             Call-ID: {callid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
}

/// The next request at `peer` with this method, skipping what else comes (retransmissions).
fn recv_method(peer: &Peer, method: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = peer.recv(method);
        if m.starts_with(&format!("{method} ")) {
            return m;
        }
        assert!(Instant::now() < deadline, "no {method}");
    }
}

#[test]
fn reinvite_pings_offer_each_side_its_sdp_and_a_481_ends_the_call() {
    let dir = test_dir("reinvite");
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());
    invite(
        port,
        &caller,
        &callee,
        "r1",
        "reinvite-ping-caller,reinvite-ping-callee",
    );
    let inv = callee.recv("INVITE");
    assert!(inv.contains("c=IN IP4 10.9.9.9"), "the script's SDP: {inv}");
    callee.send(port, &answer(&inv, "b-r1", &callee));
    let ok = caller.recv("200");
    assert!(ok.contains("c=IN IP4 10.8.8.8"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    ack(port, &caller, &callee, &route, "r1");
    assert!(callee.recv("ACK").starts_with("ACK "));

    // Within the next sweeps each side gets a re-INVITE with the SDP relayed to it.
    let ping = recv_method(&callee, "INVITE");
    assert!(
        ping.contains("c=IN IP4 10.9.9.9"),
        "the callee's own view: {ping}"
    );
    assert_eq!(header(&ping, "CSeq"), ["2 INVITE"], "{ping}");
    assert!(header(&ping, "From")[0].ends_with(";tag=a-r1"), "{ping}");
    assert_eq!(header(&ping, "Content-Type"), ["application/sdp"]);
    callee.send(port, &answer(&ping, "", &callee));
    let ack_ping = recv_method(&callee, "ACK");
    assert_eq!(header(&ack_ping, "CSeq"), ["2 ACK"], "{ack_ping}");
    let ping = recv_method(&caller, "INVITE");
    assert!(
        ping.contains("c=IN IP4 10.8.8.8"),
        "the caller's own view: {ping}"
    );
    assert!(header(&ping, "From")[0].ends_with(";tag=b-r1"), "{ping}");
    assert_eq!(header(&ping, "Route").len(), 0, "{ping}");
    caller.send(port, &reply_to(&ping, "200 OK", "", ""));
    recv_method(&caller, "ACK");

    // The next ping to the callee is refused with 481: the call ends, a BYE each way.
    let ping = recv_method(&callee, "INVITE");
    assert_eq!(header(&ping, "CSeq"), ["3 INVITE"], "{ping}");
    callee.send(port, &reply_to(&ping, "481 Call Does Not Exist", "", ""));
    let bye = recv_method(&callee, "BYE");
    assert_eq!(header(&bye, "CSeq"), ["4 BYE"], "after our pings: {bye}");
    recv_method(&caller, "BYE");
    let log = s.wait_log("ENDED r1 Callee ReINVITE Ping Timeout");
    assert!(
        log.contains("ENDED r1 Callee ReINVITE Ping Timeout"),
        "{log}"
    );
    assert!(
        log.contains("LOCAL INVITE to "),
        "local_route saw the pings: {log}"
    );
}

#[test]
fn a_call_answered_after_its_cancel_ends_after_the_race_timeout() {
    let dir = test_dir("race");
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());
    invite(
        port,
        &caller,
        &callee,
        "c1",
        "end-on-race-condition,bye-on-timeout",
    );
    let inv = callee.recv("INVITE");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "180 Ringing", "b-c1", &contact));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    // The caller gives up; the callee answers before it sees the CANCEL.
    caller.send(
        port,
        &format!(
            "CANCEL sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-c1-1;rport\r\n\
             From: <sip:alice@example.com>;tag=a-c1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\n\
             CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
    let canceling = caller.recv("200 canceling");
    assert!(canceling.starts_with("SIP/2.0 200"), "{canceling}");
    recv_method(&callee, "CANCEL");
    callee.send(port, &answer(&inv, "b-c1", &callee));
    let ok = caller.recv("200 of the INVITE");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(header(&ok, "CSeq"), ["1 INVITE"], "{ok}");
    let answered = Instant::now();
    let route = header(&ok, "Record-Route")[0].to_owned();
    ack(port, &caller, &callee, &route, "c1");
    recv_method(&callee, "ACK");
    // Not the default 12 h: race_condition_timeout (1 s), within the 1 s sweep.
    recv_method(&callee, "BYE");
    recv_method(&caller, "BYE");
    assert!(
        answered.elapsed() < Duration::from_millis(3500),
        "{:?}",
        answered.elapsed()
    );
    let log = s.wait_log("ENDED c1 SIP Race Condition");
    assert!(log.contains("ENDED c1 SIP Race Condition"), "{log}");
}
