//! tm's `$T_*` variables and reply checks as OpenSIPS has them (modules/tm/tm.c `pv_get_tm_*`,
//! `pv_set_tm_fr_*`, `t_check_status`; t_reply.c `reply_received`), through a compiled
//! script and a manual clock.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Harness, request_text};

// Read before the transaction exists, `$T_fr_timeout` is the modparam (or tm's default), not
// NULL.
#[test]
fn fr_timeouts_read_as_the_module_values_before_a_transaction() {
    let mut h = Harness::new(
        r#"
modparam("tm", "fr_timeout", 7)
route {
    xlog("fr=$T_fr_timeout inv=$T_fr_inv_timeout\n");
    $T_fr_inv_timeout = 9;
    t_newtran();
    $T_fr_timeout = 3;
    xlog("fr=$T_fr_timeout inv=$T_fr_inv_timeout\n");
}
"#,
    );
    h.receive(&request_text("OPTIONS", "fr-read"));
    assert_eq!(h.logs(), vec!["fr=7 inv=120", "fr=3 inv=9"]);
}

/// Whether tm answered 408 upstream by `at` (ticking there).
fn timed_out_by(h: &mut Harness, at: Instant) -> bool {
    h.tick(at);
    !h.sent_starting("SIP/2.0 408").is_empty()
}

// Set once the transaction exists (after t_newtran, in a failure route) the timeout is the
// transaction's: the branches it starts from then on use it (OpenSIPS `t->fr_timeout`).
#[test]
fn fr_timeout_set_after_t_newtran_applies_to_the_branches() {
    let mut h = Harness::new(
        r#"
route {
    t_newtran();
    $T_fr_timeout = 3;
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
"#,
    );
    h.receive(&request_text("MESSAGE", "fr-newtran"));
    let t0 = Instant::now();
    assert!(!timed_out_by(&mut h, t0 + Duration::from_secs(2)));
    assert!(timed_out_by(&mut h, t0 + Duration::from_secs(4)));
}

#[test]
fn fr_timeout_set_in_a_failure_route_applies_to_its_branches() {
    let mut h = Harness::new(
        r#"
route {
    t_on_failure("fo");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
failure_route[fo] {
    $T_fr_timeout = 5;
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
"#,
    );
    h.receive(&request_text("MESSAGE", "fr-failure"));
    let first = h.sent_starting("MESSAGE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&first, 404, "Not Found", Some("n1"), t0);
    assert_eq!(h.sent_starting("MESSAGE ").len(), 1, "the failover branch");
    assert!(!timed_out_by(&mut h, t0 + Duration::from_secs(4)));
    assert!(timed_out_by(&mut h, t0 + Duration::from_secs(6)));
}

// An INVITE branch that answers provisionally gets `fr_inv_timeout` as the transaction has it
// once the onreply routes ran (OpenSIPS restarts the timer after them).
#[test]
fn fr_inv_timeout_set_in_an_onreply_route_applies_to_that_reply() {
    let mut h = Harness::new(
        r#"
route {
    t_on_reply("r");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
onreply_route[r] {
    if (t_check_status("180")) $T_fr_inv_timeout = 10;
}
"#,
    );
    h.receive(&request_text("INVITE", "fr-inv-onreply"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&invite, 180, "Ringing", Some("r1"), t0);
    assert!(!timed_out_by(&mut h, t0 + Duration::from_secs(9)));
    assert!(timed_out_by(&mut h, t0 + Duration::from_secs(11)));
}

// `$T_ruri`: the message's R-URI without a transaction, the current branch's with one (an
// onreply route's too, whose message is a reply). `$T_reply_code` in a request route is the
// last reply sent (0 before any); `$T_branch_idx` is NULL there. `$T_branch_last_reply_code`
// in an onreply route is the code the branch had before this reply (OpenSIPS updates the
// branch's `last_received` after the onreply routes); a failure route sees the final one.
#[test]
fn request_route_and_onreply_values_of_the_t_variables() {
    let mut h = Harness::new(
        r#"
route {
    xlog("before ruri=$T_ruri code=$T_reply_code idx=$T_branch_idx\n");
    if ($rm == "OPTIONS") {
        t_reply(404, "Not Found");
        xlog("sent code=$T_reply_code idx=$T_branch_idx\n");
        exit;
    }
    $ru = "sip:carol@example.com";
    t_on_reply("r");
    t_on_failure("f");
    $du = "sip:127.0.0.1:5070";
    t_relay();
    xlog("relayed code=$T_reply_code\n");
}
onreply_route[r] {
    xlog("reply ruri=$T_ruri idx=$T_branch_idx last=$T_branch_last_reply_code\n");
}
failure_route[f] {
    xlog("failure last=$T_branch_last_reply_code\n");
}
"#,
    );
    h.receive(&request_text("OPTIONS", "pv-options"));
    assert_eq!(
        h.logs(),
        vec![
            "before ruri=sip:bob@example.com code=0 idx=<null>",
            "sent code=404 idx=<null>"
        ]
    );
    h.receive(&request_text("INVITE", "pv-invite"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 180, "Ringing", Some("p1"));
    assert_eq!(
        h.logs(),
        vec![
            "before ruri=sip:bob@example.com code=0 idx=<null>",
            "relayed code=100",
            "reply ruri=sip:carol@example.com idx=0 last=0"
        ]
    );
    h.answer(&invite, 183, "Session Progress", Some("p1"));
    h.answer(&invite, 486, "Busy Here", Some("p1"));
    assert_eq!(
        h.logs(),
        [
            "reply ruri=sip:carol@example.com idx=0 last=180",
            "reply ruri=sip:carol@example.com idx=0 last=183",
            "failure last=486"
        ]
    );
}

// OpenSIPS runs the onreply routes for every reply, a 100 included, and gives them the
// branch's flags (kept with the branch afterwards).
#[test]
fn onreply_routes_run_for_100_and_see_the_branch_flags() {
    let mut h = Harness::new(
        r#"
route {
    setbflag("NAT");
    t_on_reply("r");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
onreply_route[r] {
    $var(nat) = "no";
    if (isbflagset("NAT")) $var(nat) = "yes";
    $var(seen) = "no";
    if (isbflagset("SEEN")) $var(seen) = "yes";
    xlog("reply $T_reply_code nat=$var(nat) seen=$var(seen)\n");
    setbflag("SEEN");
}
"#,
    );
    h.receive(&request_text("INVITE", "onreply-100"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 100, "Trying", None);
    h.answer(&invite, 180, "Ringing", Some("f1"));
    assert_eq!(
        h.logs(),
        vec!["reply 100 nat=yes seen=no", "reply 180 nat=yes seen=yes"]
    );
    assert!(
        h.sent_starting("SIP/2.0 100 Trying").is_empty(),
        "a 100 is still not relayed"
    );
}

// `t_check_status` searches the code as `regexec` does (not anchored: "87" is in 487), and
// has no status to check in a branch_route (OpenSIPS: unsupported route, false).
#[test]
fn t_check_status_is_an_unanchored_search_and_false_in_branch_route() {
    let mut h = Harness::new(
        r#"
route {
    t_on_branch("b");
    t_on_failure("fo");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
branch_route[b] {
    if (t_check_status(".")) xlog("branch matched\n");
}
failure_route[fo] {
    if (t_check_status("87")) xlog("487 matched\n");
}
"#,
    );
    h.receive(&request_text("INVITE", "status-search"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 487, "Request Terminated", Some("s1"));
    let logs = h.logs();
    assert!(!logs.iter().any(|l| l == "branch matched"), "{logs:?}");
    assert!(logs.iter().any(|l| l == "487 matched"), "{logs:?}");
}
