//! tm's script functions as OpenSIPS runs them (modules/tm/tm.c, t_reply.c, t_lookup.c),
//! through a compiled script and a manual clock: `t_local_replied`, route arming once the
//! transaction exists, the failure route's current branch after a timeout, `t_newtran` /
//! `t_check_trans` / `t_relay` with a transaction in hand, and `t_reply` without one.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Harness, field, request_text, request_to};

const LOCAL_REPLIED: &str = r#"
route {
    t_on_failure("fo");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
failure_route[fo] {
    $var(all) = "no";
    if (t_local_replied("all")) $var(all) = "yes";
    $var(last) = "no";
    if (t_local_replied("LAST")) $var(last) = "yes";
    $var(branch) = "no";
    if (t_local_replied("branch")) $var(branch) = "yes";
    xlog("FAILURE ci=$ci code=$T_reply_code all=$var(all) last=$var(last) branch=$var(branch)\n");
}
"#;

/// The failure route's line for Call-ID `ci`, as `all last branch`.
fn local_replied(logs: &[String], ci: &str) -> String {
    let line = logs
        .iter()
        .find(|l| l.contains(&format!("ci={ci} ")))
        .unwrap_or_else(|| panic!("no failure route for {ci}: {logs:?}"));
    format!(
        "{} {} {}",
        field(line, "all"),
        field(line, "last"),
        field(line, "branch")
    )
}

// OpenSIPS: "all" is true when no branch of the attempt received any reply (a 100 counts);
// "last" in failure_route is true when the winning reply was made up (a timeout's 408);
// "branch" when the winning branch received nothing. Not what was sent upstream.
#[test]
fn t_local_replied_looks_at_what_the_branches_received() {
    let mut h = Harness::new(LOCAL_REPLIED);
    // A real 486 and nothing before it: nothing is local.
    h.receive(&request_text("INVITE", "lr-busy"));
    let busy = h.sent_starting("INVITE ").pop().unwrap();
    // 180 then no answer: the winning 408 is made up, but the branch did answer.
    h.receive(&request_text("INVITE", "lr-ring"));
    let ring = h.sent_starting("INVITE ").pop().unwrap();
    // 100 then nothing: a received 100 is a reply too.
    h.receive(&request_text("INVITE", "lr-trying"));
    let trying = h.sent_starting("INVITE ").pop().unwrap();
    // A MESSAGE nobody answers: everything is local.
    h.receive(&request_text("MESSAGE", "lr-silent"));
    let t0 = Instant::now();
    h.answer_at(&busy, 486, "Busy Here", Some("b1"), t0);
    h.answer_at(&ring, 180, "Ringing", Some("r1"), t0);
    h.answer_at(&trying, 100, "Trying", None, t0);
    h.tick(t0 + Duration::from_secs(200));
    let logs = h.logs();
    assert_eq!(local_replied(&logs, "lr-busy"), "no no no", "{logs:?}");
    assert_eq!(local_replied(&logs, "lr-ring"), "no yes no", "{logs:?}");
    assert_eq!(local_replied(&logs, "lr-trying"), "no yes no", "{logs:?}");
    assert_eq!(local_replied(&logs, "lr-silent"), "yes yes yes", "{logs:?}");
}

// Outside a failure route "last" is whether the last reply sent upstream was tm's own (100
// Trying, t_reply), not a relayed one.
#[test]
fn t_local_replied_last_outside_failure_route_is_the_last_reply_sent() {
    let mut h = Harness::new(
        r#"
route {
    t_on_reply("r");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
onreply_route[r] {
    $var(last) = "no";
    if (t_local_replied("last")) $var(last) = "yes";
    xlog("REPLY code=$T_reply_code last=$var(last)\n");
}
"#,
    );
    h.receive(&request_text("INVITE", "lr-onreply"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 180, "Ringing", Some("x1"));
    h.answer(&invite, 183, "Session Progress", Some("x1"));
    assert_eq!(
        h.logs(),
        vec!["REPLY code=180 last=yes", "REPLY code=183 last=no"],
        "the 180 follows our 100 Trying; the 183 follows the relayed 180"
    );
}

#[test]
fn t_local_replied_refuses_an_unknown_argument_at_load_time() {
    let err = common::compile(r#"route { if (t_local_replied("sometimes")) exit; }"#)
        .err()
        .unwrap();
    assert!(err.contains("sometimes"), "{err}");
    common::compile(r#"route { if (t_local_replied("ALL")) exit; }"#).unwrap();
}

// OpenSIPS keeps a transaction-wide onreply route and one per branch (t_on_reply in
// branch_route) and runs both, the branch's first; t_on_failure / t_on_reply called once the
// transaction exists (after t_relay, in an onreply route) are the transaction's.
#[test]
fn branch_and_transaction_onreply_routes_both_run_and_routes_can_be_rearmed_later() {
    let mut h = Harness::new(
        r#"
route {
    t_on_reply("global");
    t_on_branch("b");
    $du = "sip:127.0.0.1:5070";
    t_relay();
    t_on_failure("late");
}
branch_route[b] {
    if ($rU == "alice") t_on_reply("alice");
}
onreply_route[global] {
    xlog("global $T_reply_code\n");
    if (t_check_status("180")) t_on_failure("ring_fail");
}
onreply_route[alice] {
    xlog("alice $T_reply_code\n");
}
failure_route[late] {
    xlog("late $T_reply_code\n");
}
failure_route[ring_fail] {
    xlog("ring_fail $T_reply_code\n");
}
"#,
    );
    h.receive(&request_to("INVITE", "arm-alice", "alice"));
    let alice = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&alice, 180, "Ringing", Some("a1"));
    h.answer(&alice, 486, "Busy Here", Some("a1"));
    assert_eq!(
        h.logs(),
        vec![
            "alice 180",
            "global 180",
            "alice 486",
            "global 486",
            "ring_fail 486"
        ]
    );
    h.receive(&request_to("INVITE", "arm-bob", "bob"));
    let bob = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&bob, 486, "Busy Here", Some("b1"));
    assert_eq!(h.logs(), vec!["global 486", "late 486"]);
}

// OpenSIPS runs a failure route after a timeout inside the timed-out branch
// (`_tm_branch_index`): `$T_branch_idx`, `$T_ruri` are that branch's.
#[test]
fn after_a_timeout_the_failure_routes_current_branch_is_the_one_that_timed_out() {
    let mut h = Harness::new(
        r#"
route {
    t_on_failure("next");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
failure_route[next] {
    xlog("FAIL idx=$T_branch_idx code=$T_reply_code ruri=$T_ruri last=$T_branch_last_reply_code\n");
    if (t_check_status("486")) {
        t_on_failure("next");
        $ru = "sip:second@example.com";
        $du = "sip:127.0.0.1:5070";
        t_relay();
    }
}
"#,
    );
    h.receive(&request_text("INVITE", "timeout-idx"));
    let first = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&first, 486, "Busy Here", Some("b1"), t0);
    let second = h.sent_starting("INVITE ").pop().unwrap();
    assert!(
        second.starts_with("INVITE sip:second@example.com "),
        "{second}"
    );
    h.tick(t0 + Duration::from_secs(200));
    assert_eq!(
        h.logs(),
        vec![
            "FAIL idx=0 code=486 ruri=sip:bob@example.com last=486",
            "FAIL idx=1 code=408 ruri=sip:second@example.com last=408"
        ]
    );
}

// t_newtran on an ACK (OpenSIPS t_lookup.c): one for our negative reply is absorbed (the
// script ends, the reply is no longer resent); any other creates no transaction and is true.
#[test]
fn t_newtran_creates_no_transaction_for_an_ack() {
    let mut h = Harness::new(
        r#"
route {
    if ($rm == "INVITE") { t_reply(486, "Busy Here"); exit; }
    t_newtran();
    xlog("ACK rc=$rc tid=$T_id\n");
}
"#,
    );
    let before = h.tm.len();
    h.receive(&request_text("ACK", "ack-stray"));
    assert_eq!(h.logs(), vec!["ACK rc=1 tid=<null>"]);
    assert_eq!(h.tm.len(), before, "no transaction for an ACK");

    h.receive(&request_text("INVITE", "ack-neg"));
    let t0 = Instant::now();
    assert_eq!(h.sent_starting("SIP/2.0 486").len(), 1);
    h.receive(&request_text("ACK", "ack-neg"));
    assert!(
        h.logs().is_empty(),
        "the ACK was absorbed and the script ended"
    );
    h.tick(t0 + Duration::from_secs(2));
    assert!(
        h.sent_starting("SIP/2.0 486").is_empty(),
        "the 486 is not resent once ACKed"
    );
}

#[test]
fn t_newtran_with_a_transaction_in_hand_is_false_and_t_check_trans_true() {
    let mut h = Harness::new(
        r#"
route {
    t_newtran();
    if (!t_newtran()) xlog("again rc=$rc\n");
    if (t_check_trans()) xlog("check rc=$rc\n");
    t_reply(404, "Not Here");
}
"#,
    );
    h.receive(&request_text("OPTIONS", "newtran-twice"));
    assert_eq!(h.logs(), vec!["again rc=-10", "check rc=1"]);
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "only the 404: {sent:?}");
    assert!(sent[0].starts_with("SIP/2.0 404 Not Here"), "{sent:?}");
}

// A CANCEL given its own transaction by t_newtran: t_relay still cancels the INVITE's
// branches and answers 200 (OpenSIPS `t_forward_nonack` → `cancel_invite`), instead of sending
// the CANCEL on as a new request.
#[test]
fn t_relay_of_a_cancel_after_t_newtran_cancels_the_invite() {
    let mut h = Harness::new(
        r#"
route {
    if ($rm == "CANCEL") {
        t_newtran();
        t_relay();
        xlog("cancel rc=$rc\n");
        exit;
    }
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
"#,
    );
    h.receive(&request_text("INVITE", "cancel-own"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 180, "Ringing", Some("c1"));
    h.sent();
    h.receive(&request_text("CANCEL", "cancel-own"));
    assert_eq!(h.logs(), vec!["cancel rc=1"]);
    let sent = h.sent();
    let via = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_owned()
    };
    let cancel = sent.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert_eq!(via(cancel), via(&invite), "the INVITE branch's CANCEL");
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200 canceling")),
        "{sent:?}"
    );
    assert_eq!(sent.len(), 2, "{sent:?}");
}

// t_reply without a transaction creates it as t_newtran does: a retransmission gets the same
// reply again and ends the script (OpenSIPS `w_t_reply`); an ACK is never answered (0).
#[test]
fn t_reply_absorbs_retransmissions_and_ends_the_script_on_an_ack() {
    let mut h = Harness::new(
        r#"
route {
    t_reply(486, "Busy Here");
    xlog("after $rm rc=$rc\n");
}
"#,
    );
    h.receive(&request_text("INVITE", "reply-rtx"));
    assert_eq!(h.logs(), vec!["after INVITE rc=1"]);
    let first = h.sent();
    assert_eq!(first.len(), 2, "100 and 486: {first:?}");
    h.receive(&request_text("INVITE", "reply-rtx"));
    assert!(h.logs().is_empty(), "the retransmission ends the script");
    assert_eq!(h.sent(), vec![first[1].clone()], "the same 486, once");
    h.receive(&request_text("ACK", "reply-ack-stray"));
    assert!(h.logs().is_empty(), "t_reply on an ACK ends the script");
    assert!(h.sent().is_empty());
}

// OpenSIPS adds the body alone: its Content-Type is whatever the script appended.
#[test]
fn t_reply_with_body_adds_no_content_type_of_its_own() {
    let mut h = Harness::new(r#"route { t_reply_with_body(200, "OK", "hello"); }"#);
    h.receive(&request_text("OPTIONS", "body-ct"));
    let reply = h.sent().pop().unwrap();
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(!reply.contains("Content-Type"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nhello"), "{reply}");
}

// t_add_hdrs (OpenSIPS tm.c): needs the transaction; its headers go into the hop-by-hop ACK and
// the CANCELs tm builds, never into the relayed request; a later call replaces them.
#[test]
fn t_add_hdrs_goes_into_tms_acks_and_cancels_only() {
    let mut h = Harness::new(
        r#"
route {
    if (!t_add_hdrs("X-Early: 1\r\n")) xlog("no transaction yet\n");
    t_newtran();
    t_add_hdrs("X-Old: 1\r\n");
    t_add_hdrs("X-Extra: yes\r\n");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
"#,
    );
    h.receive(&request_text("INVITE", "addhdrs"));
    assert_eq!(h.logs(), vec!["no transaction yet"]);
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    assert!(!invite.contains("X-Extra"), "{invite}");
    h.answer(&invite, 486, "Busy Here", Some("b1"));
    let ack = h.sent_starting("ACK ").pop().unwrap();
    assert!(ack.contains("\r\nX-Extra: yes\r\n"), "{ack}");
    assert!(!ack.contains("X-Old"), "replaced by the later call: {ack}");
}

// A failure route starts from the request as the request route left it: the header a
// branch_route added to the failed branch is not carried into the next attempt.
#[test]
fn failure_route_branches_do_not_inherit_the_last_branch_routes_edits() {
    let mut h = Harness::new(
        r#"
route {
    t_on_branch("b");
    t_on_failure("fo");
    append_hf("X-Req: 1\r\n");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
branch_route[b] {
    append_hf("X-Branch: $T_branch_idx\r\n");
}
failure_route[fo] {
    $du = "sip:127.0.0.1:5071";
    t_relay();
}
"#,
    );
    h.receive(&request_text("INVITE", "bredits"));
    let first = h.sent_starting("INVITE ").pop().unwrap();
    assert!(first.contains("\r\nX-Branch: 0\r\n"), "{first}");
    h.answer(&first, 486, "Busy Here", Some("b1"));
    let second = h.sent_starting("INVITE ").pop().unwrap();
    assert_eq!(second.matches("X-Req: 1").count(), 1, "{second}");
    assert!(second.contains("\r\nX-Branch: 1\r\n"), "{second}");
    assert!(!second.contains("X-Branch: 0"), "{second}");
}
