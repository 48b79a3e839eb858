//! b2b_entities + b2b_logic end to end: rsips as a B2BUA between a caller and a callee of the
//! test's own (UDP on 127.0.0.1). The internal "top hiding" scenario (as OpenSIPS' sipssert
//! b2b/25.top-hiding and b2b/27.top-hiding-reject run it): each side sees a dialog with rsips
//! only — its own Call-ID, tags, one Via, rsips' Contact — provisional and final replies go
//! back, a BYE from either side ends both, a rejection and a CANCEL go through, ACKs stay on
//! their leg; and a script scenario (`b2b_server_new` + `b2b_client_new` +
//! `b2b_init_request`) whose `script_req_route` passes the requests on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Peer, Rsips, header};

/// The sipssert top hiding config, with our socket (`PORT`).
const TOP_HIDING: &str = include_str!("sipp/b2b_top_hiding.cfg");

const SDP_A: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const SDP_B: &str = "v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

struct Call {
    rsips: Rsips,
    port: u16,
    caller: Peer,
    callee: Peer,
    callid: String,
}

fn start(name: &str, config: &str) -> Call {
    let (caller, callee) = (Peer::new(), Peer::new());
    let port = common::free_port();
    let dir = common::test_dir("b2b", name);
    let rsips = Rsips::start(
        &dir,
        &config
            .replace("PORT", &port.to_string())
            .replace("CALLEE", &callee.port.to_string()),
    );
    Call {
        rsips,
        port,
        caller,
        callee,
        callid: format!("{name}-call@127.0.0.1"),
    }
}

impl Call {
    fn invite(&self) -> String {
        format!(
            "INVITE sip:bob@127.0.0.1:{callee} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{caller};branch=z9hG4bKcaller1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@atlanta.example>;tag=alicetag\r\n\
             To: <sip:bob@biloxi.example>\r\n\
             Call-ID: {callid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@127.0.0.1:{caller}>\r\n\
             X-Passed: yes\r\n\
             X-Private: secret\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{SDP_A}",
            callee = self.callee.port,
            caller = self.caller.port,
            callid = self.callid,
            len = SDP_A.len(),
        )
    }

    /// The caller's INVITE as the callee gets it.
    fn send_invite(&self) -> String {
        self.caller.send(self.port, &self.invite());
        let inv = self.callee.recv("INVITE at the callee");
        assert!(inv.starts_with("INVITE sip:"), "{inv}");
        inv
    }

    /// Ports of the other side that must not show in `msg`.
    fn leaks(&self, msg: &str, of: &Peer) -> bool {
        msg.contains(&format!("127.0.0.1:{}", of.port))
    }
}

/// A reply from the callee to `req`, with its tag, Contact and an optional SDP body.
fn callee_reply(req: &str, status: &str, callee: &Peer, body: Option<&str>) -> String {
    let mut extra = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    if body.is_some() {
        extra.push_str("Content-Type: application/sdp\r\n");
    }
    let text = common::reply_to(req, status, "bobtag", &extra);
    match body {
        Some(b) => text.replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{b}", b.len()),
        ),
        None => text,
    }
}

fn tag_of(value: &str) -> String {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .unwrap_or("")
        .to_owned()
}

fn uri_of(value: &str) -> String {
    let start = value.find('<').map_or(0, |i| i + 1);
    let end = value.find('>').unwrap_or(value.len());
    value[start..end].to_owned()
}

/// INVITE, 180, 200 and ACK: the established call; returns (the callee's INVITE, the
/// caller's 200).
fn establish(c: &Call) -> (String, String) {
    let inv = c.send_invite();
    // The callee's side: a dialog of rsips' own.
    let callid = header(&inv, "Call-ID")[0];
    assert!(callid.starts_with("B2B."), "{inv}");
    assert_ne!(callid, c.callid);
    assert_eq!(header(&inv, "Via").len(), 1, "one Via only: {inv}");
    assert!(header(&inv, "Via")[0].contains(&format!("127.0.0.1:{}", c.port)));
    assert_eq!(
        header(&inv, "Contact"),
        vec![format!("<sip:127.0.0.1:{}>", c.port)]
    );
    assert!(tag_of(header(&inv, "From")[0]).starts_with("B2B."), "{inv}");
    assert!(header(&inv, "From")[0].contains("sip:alice@"));
    assert_eq!(header(&inv, "CSeq"), vec!["1 INVITE"]);
    assert_eq!(header(&inv, "X-Passed"), vec!["yes"], "custom_headers pass");
    assert!(header(&inv, "X-Private").is_empty(), "{inv}");
    assert!(inv.ends_with(SDP_A), "the offer passes: {inv}");
    assert!(!c.leaks(&inv, &c.caller), "the caller leaks: {inv}");

    c.callee
        .send(c.port, &callee_reply(&inv, "180 Ringing", &c.callee, None));
    let ringing = c.caller.recv("180 at the caller");
    assert!(ringing.starts_with("SIP/2.0 180 "), "{ringing}");
    let our_tag = tag_of(header(&ringing, "To")[0]);
    assert!(our_tag.starts_with("B2B."), "{ringing}");
    assert_eq!(header(&ringing, "Call-ID"), vec![c.callid.as_str()]);
    assert!(!c.leaks(&ringing, &c.callee), "the callee leaks: {ringing}");

    c.callee.send(
        c.port,
        &callee_reply(&inv, "200 OK", &c.callee, Some(SDP_B)),
    );
    // tm ACKs the callee's 2xx on its leg.
    let ack = c.callee.recv("ACK at the callee");
    assert!(
        ack.starts_with(&format!("ACK sip:bob@127.0.0.1:{} SIP/2.0", c.callee.port)),
        "{ack}"
    );
    assert_eq!(header(&ack, "Call-ID"), vec![callid]);
    assert_eq!(header(&ack, "CSeq"), vec!["1 ACK"]);
    // With our Contact, as OpenSIPS' b2b_entities ACKs (UAs check it).
    assert_eq!(
        header(&ack, "Contact"),
        vec![format!("<sip:127.0.0.1:{}>", c.port)],
        "{ack}"
    );
    let ok = c.caller.recv("200 at the caller");
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert_eq!(tag_of(header(&ok, "To")[0]), our_tag, "one dialog: {ok}");
    assert_eq!(header(&ok, "Call-ID"), vec![c.callid.as_str()]);
    assert_eq!(header(&ok, "Via").len(), 1);
    assert!(header(&ok, "Via")[0].contains("branch=z9hG4bKcaller1"));
    assert_eq!(
        header(&ok, "Contact"),
        vec![format!("<sip:127.0.0.1:{}>", c.port)]
    );
    assert!(ok.ends_with(SDP_B), "the answer passes: {ok}");
    assert!(!c.leaks(&ok, &c.callee), "the callee leaks: {ok}");

    c.caller.send(
        c.port,
        &format!(
            "ACK sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{caller};branch=z9hG4bKcallerack;rport\r\n\
             From: \"Alice\" <sip:alice@atlanta.example>;tag=alicetag\r\n\
             To: {to}\r\nCall-ID: {callid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            port = c.port,
            caller = c.caller.port,
            to = header(&ok, "To")[0],
            callid = c.callid,
        ),
    );
    // The caller's ACK ends on its leg; our 200 is not resent.
    assert_eq!(c.callee.quiet(Duration::from_millis(300)), None);
    assert_eq!(c.caller.quiet(Duration::from_millis(700)), None);
    (inv, ok)
}

/// A request from the caller inside its dialog with rsips.
fn caller_request(c: &Call, ok: &str, method: &str, cseq: u32, branch: &str) -> String {
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{caller};branch={branch};rport\r\n\
         From: \"Alice\" <sip:alice@atlanta.example>;tag=alicetag\r\n\
         To: {to}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Contact: <sip:alice@127.0.0.1:{caller}>\r\nContent-Length: 0\r\n\r\n",
        target = uri_of(header(ok, "Contact")[0]),
        caller = c.caller.port,
        to = header(ok, "To")[0],
        callid = c.callid,
    )
}

#[test]
fn top_hiding_call_ended_by_the_caller() {
    let c = start("bye-caller", TOP_HIDING);
    let (inv, ok) = establish(&c);
    assert!(
        inv.starts_with(&format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0",
            c.callee.port
        )),
        "top hiding keeps the R-URI: {inv}"
    );
    assert_eq!(header(&inv, "X-Init-CallID"), vec![c.callid.as_str()]);
    c.caller
        .send(c.port, &caller_request(&c, &ok, "BYE", 2, "z9hG4bKbye1"));
    // rsips answers the BYE itself and ends the callee's leg.
    let bye_ok = c.caller.recv("200 for the BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200 "), "{bye_ok}");
    assert_eq!(header(&bye_ok, "CSeq"), vec!["2 BYE"]);
    assert_eq!(
        header(&bye_ok, "Contact"),
        vec![format!("<sip:127.0.0.1:{}>", c.port)]
    );
    let bye = c.callee.recv("BYE at the callee");
    assert!(
        bye.starts_with(&format!("BYE sip:bob@127.0.0.1:{} SIP/2.0", c.callee.port)),
        "to the callee's Contact: {bye}"
    );
    assert_eq!(header(&bye, "Call-ID"), header(&inv, "Call-ID"));
    assert_eq!(tag_of(header(&bye, "To")[0]), "bobtag");
    assert_eq!(
        tag_of(header(&bye, "From")[0]),
        tag_of(header(&inv, "From")[0])
    );
    assert!(header(&bye, "CSeq")[0].ends_with(" BYE"));
    assert_ne!(header(&bye, "CSeq"), vec!["1 BYE"], "after the INVITE's 1");
    assert_eq!(header(&bye, "Via").len(), 1);
    assert!(!c.leaks(&bye, &c.caller), "{bye}");
    c.callee
        .send(c.port, &common::reply_to(&bye, "200 OK", "", ""));
    // The session is gone: the caller's next request in it gets a 481.
    c.caller
        .send(c.port, &caller_request(&c, &ok, "INFO", 3, "z9hG4bKinfo1"));
    let gone = c.caller.recv("481");
    assert!(gone.starts_with("SIP/2.0 481 "), "{gone}");
    assert_eq!(c.callee.quiet(Duration::from_millis(300)), None);
    drop(c.rsips);
}

#[test]
fn top_hiding_call_ended_by_the_callee() {
    let c = start("bye-callee", TOP_HIDING);
    let (inv, ok) = establish(&c);
    let our_tag = tag_of(header(&ok, "To")[0]);
    // The callee's BYE goes to the Contact rsips gave it, in its dialog with rsips.
    c.callee.send(
        c.port,
        &format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{callee};branch=z9hG4bKcalleebye;rport\r\n\
             From: {to};tag=bobtag\r\nTo: {from}\r\nCall-ID: {callid}\r\nCSeq: 1 BYE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            target = uri_of(header(&inv, "Contact")[0]),
            callee = c.callee.port,
            to = header(&inv, "To")[0],
            from = header(&inv, "From")[0],
            callid = header(&inv, "Call-ID")[0],
        ),
    );
    let bye_ok = c.callee.recv("200 for the callee's BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200 "), "{bye_ok}");
    let bye = c.caller.recv("BYE at the caller");
    assert!(
        bye.starts_with(&format!(
            "BYE sip:alice@127.0.0.1:{} SIP/2.0",
            c.caller.port
        )),
        "to the caller's Contact: {bye}"
    );
    assert_eq!(header(&bye, "Call-ID"), vec![c.callid.as_str()]);
    assert_eq!(tag_of(header(&bye, "From")[0]), our_tag);
    assert_eq!(tag_of(header(&bye, "To")[0]), "alicetag");
    assert_eq!(
        header(&bye, "Contact"),
        vec![format!("<sip:127.0.0.1:{}>", c.port)]
    );
    assert_eq!(header(&bye, "Via").len(), 1);
    assert!(!c.leaks(&bye, &c.callee), "{bye}");
    c.caller
        .send(c.port, &common::reply_to(&bye, "200 OK", "", ""));
    // Nothing more on either side (the 200 to our BYE ends our transaction).
    assert_eq!(c.caller.quiet(Duration::from_millis(700)), None);
    assert_eq!(c.callee.quiet(Duration::from_millis(100)), None);
}

#[test]
fn top_hiding_passes_a_reinvite_and_its_answer() {
    let c = start("reinvite", TOP_HIDING);
    let (inv, ok) = establish(&c);
    let reinvite = caller_request(&c, &ok, "INVITE", 2, "z9hG4bKreinv").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            SDP_A.len()
        ),
    );
    c.caller.send(c.port, &reinvite);
    let passed = c.callee.recv("re-INVITE at the callee");
    assert!(passed.starts_with("INVITE sip:bob@127.0.0.1:"), "{passed}");
    assert_eq!(header(&passed, "Call-ID"), header(&inv, "Call-ID"));
    assert_eq!(tag_of(header(&passed, "To")[0]), "bobtag");
    assert!(passed.ends_with(SDP_A), "{passed}");
    c.callee.send(
        c.port,
        &callee_reply(&passed, "200 OK", &c.callee, Some(SDP_B)),
    );
    let ack = c.callee.recv("ACK of the re-INVITE");
    assert!(ack.starts_with("ACK "), "{ack}");
    let answer = c.caller.recv("200 for the re-INVITE");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert_eq!(header(&answer, "CSeq"), vec!["2 INVITE"]);
    assert!(answer.ends_with(SDP_B), "{answer}");
    assert!(!c.leaks(&answer, &c.callee), "{answer}");
}

#[test]
fn top_hiding_rejected_call() {
    let c = start("reject", TOP_HIDING);
    let inv = c.send_invite();
    c.callee.send(
        c.port,
        &callee_reply(&inv, "486 Busy Here", &c.callee, None),
    );
    // tm ACKs the 486 hop by hop on the callee's leg.
    let ack = c.callee.recv("ACK for the 486");
    assert!(ack.starts_with("ACK "), "{ack}");
    assert_eq!(header(&ack, "CSeq"), vec!["1 ACK"]);
    assert_eq!(header(&ack, "Call-ID"), header(&inv, "Call-ID"));
    let busy = c.caller.recv("486 at the caller");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here"), "{busy}");
    assert_eq!(header(&busy, "Call-ID"), vec![c.callid.as_str()]);
    assert!(tag_of(header(&busy, "To")[0]).starts_with("B2B."), "{busy}");
    assert!(!c.leaks(&busy, &c.callee), "{busy}");
    // The caller's ACK (same branch, RFC 3261 §17.1.1.3) ends on its leg and stops the 486
    // retransmissions.
    c.caller.send(
        c.port,
        &format!(
            "ACK sip:bob@127.0.0.1:{callee} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{caller};branch=z9hG4bKcaller1;rport\r\n\
             From: \"Alice\" <sip:alice@atlanta.example>;tag=alicetag\r\n\
             To: {to}\r\nCall-ID: {callid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            callee = c.callee.port,
            caller = c.caller.port,
            to = header(&busy, "To")[0],
            callid = c.callid,
        ),
    );
    assert_eq!(c.caller.quiet(Duration::from_millis(1200)), None);
    assert_eq!(c.callee.quiet(Duration::from_millis(100)), None);
}

#[test]
fn top_hiding_cancelled_call() {
    let c = start("cancel", TOP_HIDING);
    let inv = c.send_invite();
    c.callee
        .send(c.port, &callee_reply(&inv, "180 Ringing", &c.callee, None));
    let ringing = c.caller.recv("180");
    assert!(ringing.starts_with("SIP/2.0 180 "), "{ringing}");
    c.caller.send(
        c.port,
        &format!(
            "CANCEL sip:bob@127.0.0.1:{callee} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{caller};branch=z9hG4bKcaller1;rport\r\n\
             From: \"Alice\" <sip:alice@atlanta.example>;tag=alicetag\r\n\
             To: <sip:bob@biloxi.example>\r\nCall-ID: {callid}\r\nCSeq: 1 CANCEL\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee = c.callee.port,
            caller = c.caller.port,
            callid = c.callid,
        ),
    );
    let mut got = [c.caller.recv("reply 1"), c.caller.recv("reply 2")];
    got.sort_by_key(|m| header(m, "CSeq")[0].to_owned());
    assert!(got[0].starts_with("SIP/2.0 200 "), "{}", got[0]);
    assert_eq!(header(&got[0], "CSeq"), vec!["1 CANCEL"]);
    assert!(got[1].starts_with("SIP/2.0 487 "), "{}", got[1]);
    assert_eq!(header(&got[1], "CSeq"), vec!["1 INVITE"]);
    assert_eq!(
        tag_of(header(&got[1], "To")[0]),
        tag_of(header(&ringing, "To")[0])
    );
    // The callee's INVITE is cancelled on its own leg.
    let cancel = c.callee.recv("CANCEL at the callee");
    assert!(cancel.starts_with("CANCEL sip:bob@"), "{cancel}");
    assert_eq!(header(&cancel, "Call-ID"), header(&inv, "Call-ID"));
    assert_eq!(header(&cancel, "CSeq"), vec!["1 CANCEL"]);
    c.callee
        .send(c.port, &common::reply_to(&cancel, "200 OK", "bobtag", ""));
    c.callee.send(
        c.port,
        &callee_reply(&inv, "487 Request Terminated", &c.callee, None),
    );
    let ack = c.callee.recv("ACK for the 487");
    assert!(ack.starts_with("ACK "), "{ack}");
    assert!(!c.leaks(&cancel, &c.caller), "{cancel}");
}

/// A script scenario: the caller's server entity bridged with a client entity the script
/// names; in-dialog requests run `script_req_route`, which passes them on.
const SCENARIO: &str = r#"
socket=udp:127.0.0.1:PORT
log_level=3
stderror_enabled=yes
udp_workers=2
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "b2b_entities.so"
loadmodule "b2b_logic.so"
modparam("b2b_logic", "db_mode", 0)
modparam("b2b_logic", "script_req_route", "b2b_request")
modparam("b2b_logic", "custom_headers", "X-Passed")
loadmodule "proto_udp.so"
route {
    if (has_totag()) {
        send_reply(481, "Call/Transaction Does Not Exist");
        exit;
    }
    b2b_server_new("caller");
    b2b_client_new("callee", "sip:bob@127.0.0.1:CALLEE");
    $b2b_logic.ctx(plan) = "gold";
    b2b_init_request("passthrough");
    exit;
}
route[b2b_request] {
    xlog("L_NOTICE", "b2b request $rm\n");
    xlog("L_NOTICE", "b2b vars key=$b2b_logic.key scenario=$b2b_logic.scenario plan=$b2b_logic.ctx(plan) leg=$b2b_logic.entity(callid)\n");
    if (is_method("OPTIONS")) {
        b2b_send_reply(299, "Answered By Script");
        exit;
    }
    b2b_pass_request();
}
"#;

#[test]
fn script_scenario_passes_requests_through_its_route() {
    let c = start("scenario", SCENARIO);
    let (inv, ok) = establish(&c);
    assert!(
        inv.starts_with(&format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0",
            c.callee.port
        )),
        "to the client's destination: {inv}"
    );
    assert!(header(&inv, "To")[0].contains(&format!("sip:bob@127.0.0.1:{}", c.callee.port)));
    // The route answers an OPTIONS itself.
    c.caller
        .send(c.port, &caller_request(&c, &ok, "OPTIONS", 2, "z9hG4bKopt"));
    let answered = c.caller.recv("299 from the route");
    assert!(
        answered.starts_with("SIP/2.0 299 Answered By Script"),
        "{answered}"
    );
    assert_eq!(c.callee.quiet(Duration::from_millis(300)), None);
    // b2b_pass_request: the BYE goes to the callee and its 200 comes back.
    c.caller
        .send(c.port, &caller_request(&c, &ok, "BYE", 3, "z9hG4bKbye3"));
    let bye = c.callee.recv("BYE at the callee");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "Call-ID"), header(&inv, "Call-ID"));
    assert_eq!(
        c.caller.quiet(Duration::from_millis(300)),
        None,
        "not before the callee"
    );
    c.callee
        .send(c.port, &common::reply_to(&bye, "200 Bye Bye", "", ""));
    let bye_ok = c.caller.recv("the callee's 200 for the BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200 Bye Bye"), "{bye_ok}");
    assert_eq!(header(&bye_ok, "CSeq"), vec!["3 BYE"]);
    let log = c.rsips.wait_log("b2b request BYE");
    assert!(
        log.contains("not applied by rsips") && log.contains("b2b_logic:db_mode"),
        "the in-memory-only sessions are said at start: {log}"
    );
    assert!(log.contains("b2b request OPTIONS"), "{log}");
    assert!(log.contains("b2b request BYE"), "{log}");
    // $b2b_logic.*: the session's key and scenario, the context value set before
    // b2b_init_request, and the entity the request came on (the caller's leg).
    let vars = log
        .lines()
        .find(|l| l.contains("b2b vars "))
        .unwrap_or_else(|| panic!("{log}"));
    let caller_callid = header(&ok, "Call-ID")[0].to_owned();
    assert!(
        vars.contains(" scenario=passthrough plan=gold ")
            && vars.ends_with(&format!("leg={caller_callid}")),
        "{vars}"
    );
    assert!(!vars.contains("key= "), "a key: {vars}");
}

#[test]
fn check_accepts_b2b_configs_and_refuses_a_missing_route() {
    for (name, cfg) in [("th", TOP_HIDING), ("scenario", SCENARIO)] {
        let dir = common::test_dir("b2b-check", name);
        let path = dir.join("rsips.cfg");
        std::fs::write(&path, cfg.replace("PORT", "5060").replace("CALLEE", "5070")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let err = common::refused_start(
        "b2b-noroute",
        &SCENARIO.replace("route[b2b_request]", "route[other]"),
    );
    assert!(err.contains("script_req_route `b2b_request`"), "{err}");
}

/// A request from the callee inside its dialog with rsips.
fn callee_request(
    c: &Call,
    inv: &str,
    method: &str,
    cseq: u32,
    branch: &str,
    body: &str,
) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{callee};branch={branch};rport\r\n\
         From: {to};tag=bobtag\r\nTo: {from}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:bob@127.0.0.1:{callee}>\r\nMax-Forwards: 70\r\n{ct}\
         Content-Length: {len}\r\n\r\n{body}",
        target = uri_of(header(inv, "Contact")[0]),
        callee = c.callee.port,
        to = header(inv, "To")[0],
        from = header(inv, "From")[0],
        callid = header(inv, "Call-ID")[0],
        len = body.len(),
    )
}

fn mi(http: u16, method: &str) -> serde_json::Value {
    let body = format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":1}}"#);
    let out: serde_json::Value = serde_json::from_str(&common::mi_http(http, &body)).unwrap();
    out["result"].clone()
}

/// Overlapping re-INVITEs (sipssert b2b/28.top-hiding-overlapping): a second re-INVITE from
/// the side whose first one is still pending gets a 500 with Retry-After, one from the side a
/// re-INVITE of ours is pending at gets a 491 (RFC 3261 §14.2); the first one completes. The
/// MI lists show the session and its two dialogs while it lasts.
#[test]
fn top_hiding_overlapping_reinvites_and_mi_lists() {
    let http = common::free_port();
    let cfg = format!(
        "{TOP_HIDING}\nloadmodule \"httpd.so\"\nmodparam(\"httpd\", \"ip\", \"127.0.0.1\")\n\
         modparam(\"httpd\", \"port\", {http})\nloadmodule \"mi_http.so\"\n"
    );
    let c = start("overlap", &cfg);
    let (inv, ok) = establish(&c);
    let list = mi(http, "b2b_logic:list");
    let tuples = list["Tuples"].as_array().unwrap();
    assert_eq!(tuples.len(), 1, "{list}");
    assert_eq!(tuples[0]["scenario"], "top hiding");
    assert_eq!(tuples[0]["SERVERS"][0]["key"], tag_of(header(&ok, "To")[0]));
    assert_eq!(tuples[0]["CLIENTS"][0]["key"], header(&inv, "Call-ID")[0]);
    let dialogs = mi(http, "b2be_list");
    assert_eq!(dialogs["Dialogs"].as_array().unwrap().len(), 2, "{dialogs}");

    c.callee.send(
        c.port,
        &callee_request(&c, &inv, "INVITE", 10, "z9hG4bKre10", SDP_B),
    );
    let passed = c.caller.recv("re-INVITE at the caller");
    assert!(
        passed.starts_with(&format!(
            "INVITE sip:alice@127.0.0.1:{} SIP/2.0",
            c.caller.port
        )),
        "{passed}"
    );
    assert_eq!(header(&passed, "Call-ID"), vec![c.callid.as_str()]);
    assert_eq!(tag_of(header(&passed, "To")[0]), "alicetag");
    assert!(passed.ends_with(SDP_B), "{passed}");
    // The callee's second one while its first waits.
    c.callee.send(
        c.port,
        &callee_request(&c, &inv, "INVITE", 11, "z9hG4bKre11", SDP_B),
    );
    let busy = c.callee.recv("500 for the overlapping re-INVITE");
    assert!(busy.starts_with("SIP/2.0 500 "), "{busy}");
    assert_eq!(header(&busy, "CSeq"), vec!["11 INVITE"]);
    assert!(!header(&busy, "Retry-After").is_empty(), "{busy}");
    // The caller's own while ours waits at it.
    c.caller.send(
        c.port,
        &caller_request(&c, &ok, "INVITE", 2, "z9hG4bKglare"),
    );
    let glare = c.caller.recv("491");
    assert!(glare.starts_with("SIP/2.0 491 "), "{glare}");
    assert_eq!(header(&glare, "CSeq"), vec!["2 INVITE"]);
    // The caller answers ours: the callee's first re-INVITE gets its 200.
    let moved = format!("Contact: <sip:alice2@127.0.0.1:{}>\r\n", c.caller.port);
    let answer = common::reply_to(&passed, "200 OK", "", &moved).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            SDP_A.len()
        ),
    );
    c.caller.send(c.port, &answer);
    let ack = c.caller.recv("ACK at the caller");
    assert!(ack.starts_with("ACK "), "{ack}");
    let ok10 = loop {
        let m = c.callee.recv("200 for the first re-INVITE");
        // The 500 is resent until ACKed.
        if !m.starts_with("SIP/2.0 500 ") {
            break m;
        }
    };
    assert!(ok10.starts_with("SIP/2.0 200 "), "{ok10}");
    assert_eq!(header(&ok10, "CSeq"), vec!["10 INVITE"]);
    assert!(ok10.ends_with(SDP_A), "{ok10}");
    // The caller moved its target: later requests to it go to its new Contact.
    c.callee.send(
        c.port,
        &callee_request(&c, &inv, "BYE", 12, "z9hG4bKbye12", ""),
    );
    let bye = loop {
        let m = c.caller.recv("BYE at the caller");
        if m.starts_with("BYE ") {
            break m;
        }
    };
    assert!(
        bye.starts_with(&format!("BYE sip:alice2@127.0.0.1:{} ", c.caller.port)),
        "{bye}"
    );
    c.caller
        .send(c.port, &common::reply_to(&bye, "200 OK", "", ""));
    // The session goes once both legs ended (within a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let list = mi(http, "b2b_list");
        if list["Tuples"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A prepaid-like scenario (sipssert b2b/01.prepaid without its `$b2b_logic.*` variables):
/// the caller is first connected to a media server; when it hangs up, the script replies,
/// drops it and bridges the caller with the real callee.
const BRIDGE: &str = r#"
socket=udp:127.0.0.1:PORT
log_level=3
stderror_enabled=yes
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "b2b_entities.so"
loadmodule "b2b_logic.so"
modparam("b2b_logic", "script_req_route", "b2b_logic_request")
modparam("b2b_logic", "custom_headers", "X-Passed")
loadmodule "proto_udp.so"
route {
    if (has_totag()) {
        send_reply(481, "Call/Transaction Does Not Exist");
        exit;
    }
    b2b_server_new("caller");
    b2b_client_new("media", "sip:prepaid_start@127.0.0.1:CALLEE");
    b2b_init_request("prepaid");
    exit;
}
route[b2b_logic_request] {
    # the media server's BYE (its leg has one of our Call-IDs)
    if (is_method("BYE") && $ci =~ "^B2B\.") {
        b2b_send_reply(200, "OK");
        b2b_delete_entity();
        b2b_client_new("callee", "sip:bob@127.0.0.1:OTHER");
        b2b_bridge("caller", "callee");
        exit;
    }
    b2b_pass_request();
}
"#;

#[test]
fn script_bridge_moves_the_caller_to_a_new_callee() {
    let bob = Peer::new();
    let c = start("bridge", &BRIDGE.replace("OTHER", &bob.port.to_string()));
    // The media server (the test's "callee") answers first.
    let (inv, ok) = establish(&c);
    assert!(
        inv.starts_with("INVITE sip:prepaid_start@127.0.0.1:"),
        "{inv}"
    );
    c.callee.send(
        c.port,
        &callee_request(&c, &inv, "BYE", 1, "z9hG4bKmsbye", ""),
    );
    let bye_ok = c.callee.recv("200 for the media server's BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200 OK"), "{bye_ok}");
    // The new callee gets the caller's offer, from the caller's From.
    let invite = bob.recv("INVITE at the new callee");
    assert!(
        invite.starts_with(&format!("INVITE sip:bob@127.0.0.1:{} SIP/2.0", bob.port)),
        "{invite}"
    );
    assert!(invite.ends_with(SDP_A), "{invite}");
    assert!(header(&invite, "From")[0].contains("sip:alice@atlanta.example"));
    assert_ne!(header(&invite, "Call-ID"), header(&inv, "Call-ID"));
    bob.send(c.port, &callee_reply(&invite, "200 OK", &bob, Some(SDP_B)));
    let ack = bob.recv("ACK at the new callee");
    assert!(ack.starts_with("ACK "), "{ack}");
    // The caller is asked for the new session.
    let reinvite = c.caller.recv("re-INVITE at the caller");
    assert!(
        reinvite.starts_with(&format!("INVITE sip:alice@127.0.0.1:{} ", c.caller.port)),
        "{reinvite}"
    );
    assert_eq!(header(&reinvite, "Call-ID"), vec![c.callid.as_str()]);
    assert_eq!(
        tag_of(header(&reinvite, "From")[0]),
        tag_of(header(&ok, "To")[0])
    );
    assert!(reinvite.ends_with(SDP_B), "{reinvite}");
    c.caller.send(
        c.port,
        &common::reply_to(
            &reinvite,
            "200 OK",
            "",
            &format!("Contact: <sip:alice@127.0.0.1:{}>\r\n", c.caller.port),
        ),
    );
    let ack = c.caller.recv("ACK of the re-INVITE");
    assert!(ack.starts_with("ACK "), "{ack}");
    // The caller's BYE now reaches the new callee, and its answer comes back.
    c.caller
        .send(c.port, &caller_request(&c, &ok, "BYE", 2, "z9hG4bKbye2"));
    let bye = bob.recv("BYE at the new callee");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "Call-ID"), header(&invite, "Call-ID"));
    bob.send(c.port, &common::reply_to(&bye, "200 OK", "", ""));
    let done = c.caller.recv("200 for the BYE");
    assert!(done.starts_with("SIP/2.0 200 "), "{done}");
    assert_eq!(
        c.callee.quiet(Duration::from_millis(200)),
        None,
        "the media server is gone"
    );
}
