//! The onreply routes and what tm makes of a reply they drop, as OpenSIPS orders them: the
//! unnamed onreply_route runs for every reply before tm sees it (receive.c, then tm's
//! `reply_received`), and a provisional reply dropped there, or in the routes the transaction
//! armed, leaves no trace on its branch (t_reply.c updates the branch after those routes).
//! Through a compiled script and a manual clock.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Harness, request_text};

/// The proxy of these tests: a 5 s final-response timeout before any provisional reply and a
/// 60 s one after it, so which one ends the branch shows whether tm saw the 180.
fn proxy(onreply: &str) -> String {
    format!(
        r#"
route {{
    $T_fr_timeout = 5;
    $T_fr_inv_timeout = 60;
    t_on_reply("tx");
    $du = "sip:127.0.0.1:5070";
    t_relay();
}}
{onreply}
"#
    )
}

/// What went out up to `at`: the 408 to the caller and any CANCEL downstream.
fn timeout_by(h: &mut Harness, at: Instant) -> (bool, bool) {
    h.tick(at);
    let sent = h.sent();
    (
        sent.iter().any(|m| m.starts_with("SIP/2.0 408")),
        sent.iter().any(|m| m.starts_with("CANCEL ")),
    )
}

// A 180 dropped in the unnamed onreply_route never reaches the transaction: its own
// onreply route does not run, nothing is relayed, and the branch ends after fr_timeout as
// one that never answered (a 408 and no CANCEL).
#[test]
fn a_provisional_reply_dropped_in_the_main_onreply_route_is_not_the_transactions() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route {
    xlog("main $rs\n");
    if ($rs == 180) drop;
}
onreply_route[tx] {
    xlog("tx $rs\n");
}
"#,
    ));
    h.receive(&request_text("INVITE", "main-drop"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&invite, 180, "Ringing", Some("d1"), t0);
    assert_eq!(h.logs(), vec!["main 180"]);
    assert!(h.sent_starting("SIP/2.0 180").is_empty(), "no 180 relayed");
    assert_eq!(
        timeout_by(&mut h, t0 + Duration::from_secs(6)),
        (true, false),
        "ended after fr_timeout, with no CANCEL"
    );
}

// The same 180 kept by the main route reaches the transaction: both routes run, in that order,
// and the branch then has fr_inv_timeout.
#[test]
fn a_provisional_reply_the_main_route_keeps_runs_the_transactions_routes_after_it() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route {
    xlog("main $rs\n");
}
onreply_route[tx] {
    xlog("tx $rs\n");
}
"#,
    ));
    h.receive(&request_text("INVITE", "main-keep"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&invite, 180, "Ringing", Some("k1"), t0);
    assert_eq!(h.logs(), vec!["main 180", "tx 180"]);
    assert_eq!(h.sent_starting("SIP/2.0 180").len(), 1);
    assert_eq!(
        timeout_by(&mut h, t0 + Duration::from_secs(6)),
        (false, false)
    );
    assert_eq!(
        timeout_by(&mut h, t0 + Duration::from_secs(61)),
        (true, true),
        "ended after fr_inv_timeout, the answered branch cancelled"
    );
}

// A 180 dropped in the transaction's own onreply route is not relayed and does not count as an
// answer either: fr_timeout still ends the branch, with no CANCEL.
#[test]
fn a_provisional_reply_dropped_in_the_transactions_route_leaves_the_branch_unanswered() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route[tx] {
    if ($rs == 180) drop;
}
"#,
    ));
    h.receive(&request_text("INVITE", "tx-drop"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    h.answer_at(&invite, 180, "Ringing", Some("t1"), t0);
    assert!(h.sent_starting("SIP/2.0 180").is_empty());
    assert_eq!(
        timeout_by(&mut h, t0 + Duration::from_secs(6)),
        (true, false)
    );
}

// A final reply cannot be dropped: the main route's drop leaves it to the transaction, which
// relays it.
#[test]
fn a_final_reply_dropped_in_the_main_onreply_route_still_goes_upstream() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route {
    drop;
}
onreply_route[tx] {
    xlog("tx $rs\n");
}
"#,
    ));
    h.receive(&request_text("INVITE", "final-drop"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.answer(&invite, 486, "Busy Here", Some("f1"));
    assert_eq!(h.logs(), vec!["tx 486"]);
    let sent = h.sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 486")),
        "{sent:?}"
    );
    assert!(sent.iter().any(|m| m.starts_with("ACK ")), "{sent:?}");
}

// After core:reload_routes the unnamed onreply_route is the new script's, found by what it is
// and not by where the old script had it; the route the transaction armed is still the one of
// the script it started in, though the reload moved every route.
#[test]
fn after_a_reload_replies_run_the_new_main_route_and_the_transactions_own() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route[tx] {
    xlog("old tx $rs\n");
}
onreply_route {
    xlog("old main $rs\n");
}
"#,
    ));
    h.receive(&request_text("INVITE", "reload"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    h.reload(&proxy(
        r#"
route[extra] {
    xlog("extra route: must not run\n");
}
onreply_route {
    xlog("new main $rs\n");
}
onreply_route[other] {
    xlog("new other: must not run\n");
}
onreply_route[tx] {
    xlog("new tx $rs\n");
}
"#,
    ));
    h.answer(&invite, 180, "Ringing", Some("r1"));
    assert_eq!(h.logs(), vec!["new main 180", "old tx 180"]);
}

/// Runs the script's routes like the harness, but lets tm's timers run at `at` just before
/// the first route: what the server's timer thread may do while a worker is in an onreply
/// route.
struct TimerMeanwhile<'a> {
    script: &'a engine::Script,
    tm: &'a tm::Tm,
    at: Instant,
    fired: bool,
    worker: engine::Worker,
    log: engine::MemoryLog,
}

impl tm::Runner for TimerMeanwhile<'_> {
    fn reply_route(&self) -> Option<usize> {
        self.script.reply_route()
    }

    fn run(&mut self, route: usize, ctx: &mut engine::MsgCtx) -> engine::Outcome {
        if !self.fired {
            self.fired = true;
            self.tm.tick(self.at, &mut common::NoRoutes);
        }
        self.script
            .run_index(route, &mut self.worker, ctx, &mut self.log)
            .unwrap_or(engine::Outcome::Exit)
    }
}

// A 200 in its onreply route: a timer run at that moment (a retransmission was due) does not
// complete the transaction with the 200 as it came; the caller gets it with the route's
// change, once.
#[test]
fn a_timer_does_not_relay_a_final_reply_still_in_its_onreply_route() {
    let mut h = Harness::new(&proxy(
        r#"
onreply_route[tx] {
    if ($rs == 200) append_hf("X-Seen: tx\r\n");
}
"#,
    ));
    h.receive(&request_text("INVITE", "timer-race"));
    let invite = h.sent_starting("INVITE ").pop().unwrap();
    let t0 = Instant::now();
    let reply = common::reply_to(&invite, 200, "OK", Some("callee"));
    let ctx = engine::MsgCtx::new(reply.clone()).with_receipt(engine::Receipt {
        source: common::UAS.parse().unwrap(),
        proto: "udp",
        local: common::LOCAL.parse().unwrap(),
        conn: None,
        proxy: None,
    });
    let script = std::sync::Arc::clone(&h.script);
    let tm = std::sync::Arc::clone(&h.tm);
    let mut runner = TimerMeanwhile {
        script: &script,
        tm: &tm,
        at: t0 + Duration::from_millis(600),
        fired: false,
        worker: engine::Worker::default(),
        log: engine::MemoryLog::default(),
    };
    assert!(tm.on_reply(&reply, ctx, &mut runner, t0));
    assert!(runner.fired, "the route ran");
    let oks = h.sent_starting("SIP/2.0 200");
    assert_eq!(oks.len(), 1, "{oks:#?}");
    assert!(oks[0].contains("\r\nX-Seen: tx\r\n"), "{}", oks[0]);
}
