//! tm's own final replies to an INVITE (OpenSIPS t_reply.c `set_final_timer`, t_lookup.c e2e
//! ACK matching): a 2xx is resent until its end-to-end ACK, which `t_check_trans` reports as
//! -2 and `t_relay` absorbs; a 401/407 is not resent.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Harness, UAC, request_text};

const SCRIPT: &str = r#"
route {
    if (is_method("ACK")) {
        t_check_trans();
        xlog("ACK $ci check=$rc\n");
        t_relay();
        xlog("ACK $ci relay=$rc\n");
        exit;
    }
    if ($ci == "own-407") {
        t_reply(407, "Proxy Authentication Required");
        exit;
    }
    if ($ci == "own-486") {
        t_reply(486, "Busy Here");
        exit;
    }
    t_reply(200, "OK");
}
"#;

/// The end-to-end ACK for a 2xx: a new branch (RFC 3261 §17.1.1.3), the 2xx's To tag.
fn ack(id: &str, to_tag: &str) -> String {
    format!(
        "ACK sip:127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch=z9hG4bK{id}-ack\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag={to_tag}\r\n\
         Call-ID: {id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn to_tag(reply: &str) -> String {
    let to = reply.lines().find(|l| l.starts_with("To:")).unwrap();
    to.split(";tag=").nth(1).unwrap().to_owned()
}

/// Ticks every 100 ms over `from..to` and counts what went out.
fn resends(h: &mut Harness, t0: Instant, from: u64, to: u64) -> Vec<String> {
    let mut sent = Vec::new();
    for ms in (from..=to).step_by(100) {
        h.tick(t0 + Duration::from_millis(ms));
        sent.extend(h.sent());
    }
    sent
}

#[test]
fn an_own_2xx_is_resent_until_its_end_to_end_ack_which_is_absorbed() {
    let mut h = Harness::new(SCRIPT);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "own-2xx"));
    let sent = h.sent();
    let ok = sent.iter().find(|m| m.starts_with("SIP/2.0 200 ")).unwrap();
    let tag = to_tag(ok);
    let again = resends(&mut h, t0, 100, 4000);
    assert_eq!(again.len(), 3, "resent at 0.5, 1.5 and 3.5 s: {again:?}");
    assert!(again.iter().all(|m| m.starts_with("SIP/2.0 200 OK\r\n")));
    // Another To tag is another dialog: not ours, relayed statelessly.
    h.receive(&ack("own-2xx", "someone-else"));
    let relayed = h.sent();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert!(relayed[0].starts_with("ACK sip:127.0.0.1:5070 "));
    h.receive(&ack("own-2xx", &tag));
    assert!(h.sent().is_empty(), "the ACK for our 2xx goes nowhere");
    let logs = h.logs();
    assert!(
        logs.contains(&"ACK own-2xx check=-1".to_owned())
            && logs.contains(&"ACK own-2xx check=-2".to_owned()),
        "t_check_trans: -1 for a stranger, -2 for the e2e ACK: {logs:?}"
    );
    assert_eq!(
        logs.iter().filter(|l| *l == "ACK own-2xx relay=1").count(),
        2,
        "{logs:?}"
    );
    assert!(
        resends(&mut h, t0, 4100, 20_000).is_empty(),
        "no resend after the ACK"
    );
    assert!(h.tm.is_empty(), "deleted after wt_timer");
}

#[test]
fn an_own_2xx_without_ack_is_given_up_after_fr_timeout() {
    let mut h = Harness::new(SCRIPT);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "own-2xx-lost"));
    h.sent();
    // T2 caps the interval at 4 s: 0.5, 1.5, 3.5, 7.5, 11.5, ... 27.5 until fr_timeout (30 s).
    let again = resends(&mut h, t0, 100, 40_000);
    assert_eq!(again.len(), 9, "{again:?}");
    assert!(resends(&mut h, t0, 40_100, 60_000).is_empty());
    assert!(h.tm.is_empty());
}

#[test]
fn a_407_is_not_resent_but_a_486_is() {
    let mut h = Harness::new(SCRIPT);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "own-407"));
    h.receive(&request_text("INVITE", "own-486"));
    assert_eq!(h.sent().len(), 4, "100 and a final reply each");
    let again = resends(&mut h, t0, 100, 4000);
    assert_eq!(again.len(), 3, "{again:?}");
    assert!(
        again.iter().all(|m| m.starts_with("SIP/2.0 486 ")),
        "{again:?}"
    );
}

/// A final reply tm makes itself is accounted as OpenSIPS' faked reply: the code's standard
/// phrase, the request's own (empty) To tag, and a negative one to an INVITE is a missed call.
#[test]
fn our_own_replies_are_accounted_with_the_standard_phrase_and_no_to_tag() {
    static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    engine::hooks::set_line_writer(Box::new(|_, _, text| {
        LINES.lock().unwrap().push(text.to_owned())
    }));
    let mut h = Harness::new(
        r#"
route {
    do_accounting("log", "missed|failed");
    t_reply(486, "Go Away");
}
"#,
    );
    h.receive(&request_text("INVITE", "acc-own"));
    let lines = std::mem::take(&mut *LINES.lock().unwrap());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("ACC: call missed: "), "{lines:?}");
    for line in &lines {
        assert!(
            line.contains(";to_tag=;call_id=acc-own;code=486;reason=Busy Here"),
            "{line}"
        );
    }
    assert!(
        lines[1].starts_with("ACC: transaction answered: "),
        "{lines:?}"
    );
}
