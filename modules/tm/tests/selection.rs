//! Which reply tm sends upstream and what happens to the other branches, as OpenSIPS does it
//! (t_reply.c `branch_prio`/`t_pick_branch`, the 6xx block, `_reply_light`'s cancel_uacs,
//! t_fwd.c's skipped empty branches, t_lookup.c `t_unref` and `t_reply_matching`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Harness, reply_to, request_text, request_to};

const FORK: &str = r#"
route {
    if ($ci =~ "^idle") { t_newtran(); exit; }
    $du = "sip:127.0.0.1:5070";
    if (is_method("CANCEL")) { t_relay("pass-reason-hdr"); exit; }
    if ($rU == "fork") append_msg_branch("sip:other@127.0.0.1:5071");
    t_relay();
}
"#;

/// The INVITEs tm relayed for Call-ID `ci`: branch 0 (the R-URI) first.
fn relayed(h: &Harness, ci: &str) -> Vec<String> {
    let mut all = h.sent_starting("INVITE ");
    all.retain(|m| m.contains(&format!("Call-ID: {ci}\r\n")));
    all.sort_by_key(|m| m.contains("sip:other@"));
    all
}

fn status_lines(sent: &[String]) -> Vec<String> {
    sent.iter()
        .filter(|m| m.starts_with("SIP/2.0 "))
        .map(|m| m.lines().next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_lowest_code_of_the_best_class_wins_whatever_the_branch_order() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    for (ci, first, second, want) in [
        (
            "rank-4xx",
            (486, "Busy Here"),
            (404, "Not Found"),
            "404 Not Found",
        ),
        ("rank-3xx", (305, "Use Proxy"), (302, "Moved"), "302 Moved"),
        // 408 ranks below other 4xx and 5xx; 503 last of all.
        ("rank-408", (408, "Timeout"), (500, "Oops"), "500 Oops"),
        ("rank-503", (503, "Gone"), (408, "Timeout"), "408 Timeout"),
    ] {
        h.receive(&request_to("INVITE", ci, "fork"));
        let sent = relayed(&h, ci);
        assert_eq!(sent.len(), 2, "{sent:?}");
        h.answer_at(&sent[0], first.0, first.1, Some("t0"), t0);
        h.answer_at(&sent[1], second.0, second.1, Some("t1"), t0);
        let up = status_lines(&h.sent());
        assert_eq!(up, [format!("SIP/2.0 {want}")], "{ci}");
    }
}

#[test]
fn a_6xx_goes_upstream_at_once_and_cancels_the_others_without_reason() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_to("INVITE", "decline", "fork"));
    let sent = relayed(&h, "decline");
    h.answer_at(&sent[1], 180, "Ringing", Some("r1"), t0);
    h.sent();
    h.answer_at(&sent[0], 603, "Decline", Some("d0"), t0);
    let out = h.sent();
    assert_eq!(status_lines(&out), ["SIP/2.0 603 Decline"], "{out:?}");
    let cancel = out.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert!(
        cancel.starts_with("CANCEL sip:other@127.0.0.1:5071 "),
        "{cancel}"
    );
    assert!(!cancel.contains("Reason:"), "{cancel}");
}

#[test]
fn our_own_final_reply_cancels_a_ringing_branch_at_once() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "own-final"));
    let sent = relayed(&h, "own-final");
    h.answer_at(&sent[0], 180, "Ringing", Some("r0"), t0);
    h.sent();
    // MI tm:reply for the transaction (its id is in our branch: z9hG4bK<hex id>.<n>).
    let branch = sent[0].split("branch=z9hG4bK").nth(1).unwrap();
    let id = u64::from_str_radix(branch.split('.').next().unwrap(), 16).unwrap();
    assert_eq!(h.tm.reply_to(id, 486, "Busy Here", None), 1);
    let out = h.sent();
    assert_eq!(status_lines(&out), ["SIP/2.0 486 Busy Here"]);
    let cancel = out.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert!(
        !cancel.contains("Reason:"),
        "no Reason but for a 200: {cancel}"
    );
}

#[test]
fn a_branch_that_could_not_be_sent_does_not_answer_for_the_others() {
    let mut h = Harness::new(FORK);
    // The first branch's 477 would otherwise win: it ranks ahead of 480 and comes first.
    h.fail_sends_to(5070);
    let t0 = Instant::now();
    h.receive(&request_to("INVITE", "dead-branch", "fork"));
    let sent = relayed(&h, "dead-branch");
    h.tick(t0);
    h.answer_at(&sent[1], 480, "Unavailable", Some("u1"), t0);
    assert_eq!(status_lines(&h.sent()), ["SIP/2.0 480 Unavailable"]);
}

#[test]
fn a_transaction_the_script_leaves_alone_goes_after_wt_timer() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "idle-1"));
    assert_eq!(h.tm.len(), 1);
    // Still there to absorb a retransmission for a while...
    h.receive(&request_text("INVITE", "idle-1"));
    assert_eq!(status_lines(&h.sent()), ["SIP/2.0 100 Giving it a try"; 2]);
    // ... then gone with wt_timer (5 s), not kept for ever.
    h.tick(t0 + Duration::from_secs(6));
    assert!(h.tm.is_empty());
}

#[test]
fn the_reply_to_a_relayed_cancel_without_invite_goes_upstream() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("CANCEL", "lone-cancel"));
    let cancel = h.sent_starting("CANCEL ").pop().unwrap();
    h.answer_at(
        &cancel,
        481,
        "Call Leg/Transaction Does Not Exist",
        None,
        t0,
    );
    assert_eq!(
        status_lines(&h.sent()),
        ["SIP/2.0 481 Call Leg/Transaction Does Not Exist"]
    );
}

#[test]
fn a_reply_with_our_branch_but_another_method_is_not_taken_for_ours() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "other-method"));
    let sent = relayed(&h, "other-method");
    h.sent();
    let foreign = reply_to(&sent[0], 200, "OK", Some("x"));
    let text = String::from_utf8_lossy(foreign.as_bytes()).replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    h.deliver(
        sip::SipMessage::parse(bytes::Bytes::from(text)).unwrap(),
        t0,
    );
    assert!(
        status_lines(&h.sent()).is_empty(),
        "not relayed as the INVITE's 200"
    );
    h.answer_at(&sent[0], 200, "OK", Some("ok"), t0);
    assert_eq!(status_lines(&h.sent()), ["SIP/2.0 200 OK"]);
}

#[test]
fn a_cancel_passes_on_its_first_reason_header_only() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "reasons"));
    let sent = relayed(&h, "reasons");
    h.answer_at(&sent[0], 180, "Ringing", Some("r0"), t0);
    h.sent();
    let cancel = request_text("CANCEL", "reasons").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n\
         Reason: Q.850;cause=16\r\n",
    );
    h.receive(&cancel);
    let out = h.sent_starting("CANCEL ");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].contains("\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n")
            && !out[0].contains("Q.850"),
        "{}",
        out[0]
    );
}

/// The CANCEL tm builds lists its headers as OpenSIPS' `build_local` does and carries the
/// User-Agent (`server_signature`, on by default).
#[test]
fn a_cancel_has_opensips_header_order_and_a_user_agent() {
    let mut h = Harness::new(FORK);
    let _ = tm::params(&h.script);
    let t0 = Instant::now();
    h.receive(&request_to("INVITE", "ua-order", "fork"));
    let sent = relayed(&h, "ua-order");
    h.answer_at(&sent[1], 180, "Ringing", Some("r1"), t0);
    h.sent();
    h.answer_at(&sent[0], 603, "Decline", Some("d0"), t0);
    let cancel = h.sent_starting("CANCEL ").pop().unwrap();
    let names: Vec<&str> = cancel
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        [
            "Via",
            "From",
            "Call-ID",
            "To",
            "CSeq",
            "Max-Forwards",
            "User-Agent",
            "Content-Length"
        ],
        "{cancel}"
    );
    assert!(cancel.contains("\r\nUser-Agent: rsips ("), "{cancel}");
}

/// An unanswered CANCEL is resent for fr_timeout (30 s), not until the INVITE branch's own
/// timer (OpenSIPS gives the CANCEL a final-response timer of its own).
#[test]
fn an_unanswered_cancel_is_resent_for_fr_timeout_only() {
    let mut h = Harness::new(FORK);
    let t0 = Instant::now();
    h.receive(&request_text("INVITE", "cancel-bound"));
    let sent = relayed(&h, "cancel-bound");
    h.answer_at(&sent[0], 180, "Ringing", Some("r0"), t0);
    h.receive(&request_text("CANCEL", "cancel-bound"));
    assert_eq!(h.sent_starting("CANCEL ").len(), 1);
    let mut within = 0;
    for ms in (500..=30_000).step_by(250) {
        h.tick(t0 + Duration::from_millis(ms));
        within += h.sent_starting("CANCEL ").len();
    }
    let mut after = 0;
    for ms in (30_250..=100_000).step_by(250) {
        h.tick(t0 + Duration::from_millis(ms));
        after += h.sent_starting("CANCEL ").len();
    }
    assert!(within >= 5, "{within}");
    assert_eq!(after, 0);
}
