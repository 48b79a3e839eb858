//! tm's transaction and timer logic with a manual clock: every send is recorded by a host that
//! never touches a socket, and time only moves when a test says so.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::forward::{Socket, Sockets};
use engine::{MsgCtx, Outbound, Outcome, Receipt};
use sip::SipMessage;
use tm::{Found, Host, LegacyMatching, Params, Runner, SendDone, Tm, TxCell};

/// Records every message tm sends; sends to `fail_to` fail.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Outbound>>,
    fail_to: Mutex<Option<SocketAddr>>,
}

impl Host for Recorder {
    fn send(&self, out: Outbound, done: Option<SendDone>) {
        let failed = *self.fail_to.lock().unwrap() == Some(out.dest);
        self.sent.lock().unwrap().push(out);
        if let Some(done) = done {
            done(if failed {
                Err("refused".into())
            } else {
                Ok(())
            });
        }
    }
}

impl Recorder {
    /// First lines of what was sent since the last call, with the destination port.
    fn take(&self) -> Vec<(String, u16)> {
        self.sent
            .lock()
            .unwrap()
            .drain(..)
            .map(|o| {
                let text = String::from_utf8_lossy(&o.data).into_owned();
                (text.lines().next().unwrap_or("").to_owned(), o.dest.port())
            })
            .collect()
    }

    fn take_full(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .drain(..)
            .map(|o| String::from_utf8_lossy(&o.data).into_owned())
            .collect()
    }
}

/// What a test's "script" does when a route runs.
type OnRun = Box<dyn FnMut(usize, &mut MsgCtx)>;

/// Records the routes it is asked to run; `on_run` may act (a failure_route relaying again).
struct Script {
    runs: Vec<(usize, Option<u16>)>,
    on_run: Option<OnRun>,
    /// The index of the unnamed onreply_route, if the "script" has one.
    reply_route: Option<usize>,
}

impl Runner for Script {
    fn reply_route(&self) -> Option<usize> {
        self.reply_route
    }

    fn run(&mut self, route: usize, ctx: &mut MsgCtx) -> Outcome {
        self.runs
            .push((route, ctx.t_reply.as_ref().map(|r| r.code)));
        if let Some(f) = &mut self.on_run {
            f(route, ctx);
        }
        Outcome::Exit
    }
}

fn script() -> Script {
    Script {
        runs: Vec::new(),
        on_run: None,
        reply_route: None,
    }
}

const UAC: &str = "127.0.0.1:5090";
const LOCAL: &str = "127.0.0.1:5060";

fn request(method: &str, branch: &str, transport: &str) -> MsgCtx {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:5090;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap()).with_receipt(Receipt {
        source: UAC.parse().unwrap(),
        proto: if transport == "TCP" { "tcp" } else { "udp" },
        local: LOCAL.parse().unwrap(),
        conn: (transport == "TCP").then_some(1),
        proxy: None,
    })
}

fn net() -> Sockets {
    let socket = |proto: &'static str| Socket {
        proto,
        host: "127.0.0.1".into(),
        port: 5060,
        addr: Some(LOCAL.parse().unwrap()),
        advertised: None,
        allow_proxy_protocol: false,
        send_proxy_protocol: false,
        use_workers: None,
        reuse_port: false,
        tos: None,
        tag: None,
        anycast: false,
    };
    Sockets {
        listen: vec![socket("udp"), socket("tcp")],
        bonds: Vec::new(),
    }
}

/// A reply to branch `n` of the request tm relayed in `sent` (its top Via is ours).
fn reply_to(sent: &str, code: u16, reason: &str, to_tag: Option<&str>) -> (SipMessage, MsgCtx) {
    let msg = common::reply_to(sent, code, reason, to_tag);
    let ctx = MsgCtx::new(msg.clone()).with_receipt(Receipt {
        source: "127.0.0.1:5070".parse().unwrap(),
        proto: "udp",
        local: LOCAL.parse().unwrap(),
        conn: None,
        proxy: None,
    });
    (msg, ctx)
}

fn setup(params: Params) -> (Arc<Tm>, Arc<Recorder>) {
    let host = Arc::new(Recorder::default());
    (Tm::new(params, host.clone()), host)
}

fn params() -> Params {
    Params {
        fr_timeout: Duration::from_secs(30),
        fr_inv_timeout: Duration::from_secs(60),
        ..Params::default()
    }
}

#[test]
fn invite_over_udp_retransmits_t1_doubling_to_t2_and_stops_on_a_reply() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKa", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 100 Giving it a try".to_owned(), 5090)],
        "100 Trying at once"
    );
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"
    ));
    let mut s = script();
    // Sends at 0.5, 1.5, 3.5, 7.5, 11.5 s (intervals 0.5, 1, 2, 4, 4).
    let mut at = Vec::new();
    for ms in (0..=12_000).step_by(100) {
        tm.tick(t0 + Duration::from_millis(ms), &mut s);
        if !host.take().is_empty() {
            at.push(ms);
        }
    }
    assert_eq!(at, vec![500, 1500, 3500, 7500, 11_500]);
    let (r, rctx) = reply_to(&sent[0], 180, "Ringing", Some("b1"));
    assert!(tm.on_reply(&r, rctx, &mut s, t0 + Duration::from_millis(12_000)));
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 180 Ringing".to_owned(), 5090)],
        "relayed upstream"
    );
    for ms in (12_100..=30_000).step_by(500) {
        tm.tick(t0 + Duration::from_millis(ms), &mut s);
    }
    assert!(
        host.take().is_empty(),
        "no retransmission after a provisional reply"
    );
}

#[test]
fn reliable_transports_never_retransmit() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bKtcp", "TCP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("tcp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    assert_eq!(host.take().len(), 1, "no 100 for non-INVITE; one request");
    let mut s = script();
    for secs in 1..29 {
        tm.tick(t0 + Duration::from_secs(secs), &mut s);
    }
    assert!(host.take().is_empty());
    // fr_timeout: a local 408 upstream.
    tm.tick(t0 + Duration::from_secs(31), &mut s);
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 408 Request Timeout".to_owned(), 5090)],
        "the reply goes back to the Via port on the connection"
    );
}

#[test]
fn no_answer_cancels_with_reason_and_replies_408() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKna", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let mut s = script();
    let (r, rctx) = reply_to(&sent, 180, "Ringing", Some("b1"));
    tm.on_reply(&r, rctx, &mut s, t0 + Duration::from_secs(1));
    host.take();
    tm.tick(t0 + Duration::from_secs(60), &mut s);
    assert!(host.take().is_empty(), "fr_inv_timeout runs from the 180");
    tm.tick(t0 + Duration::from_secs(62), &mut s);
    let out = host.take_full();
    let cancel = out.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert!(
        cancel.contains("\r\nReason: SIP;cause=480;text=\"NO_ANSWER\"\r\n"),
        "{cancel}"
    );
    assert!(cancel.contains("\r\nCSeq: 1 CANCEL\r\n"));
    let via = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        via(cancel),
        via(&sent),
        "the CANCEL carries the INVITE's Via"
    );
    assert!(
        out.iter()
            .any(|m| m.starts_with("SIP/2.0 408 Request Timeout"))
    );
}

/// An INVITE whose failure_route is 7, relayed to 127.0.0.1:5070: its cell and what was sent.
fn invite_failing_over(
    tm: &Arc<Tm>,
    host: &Recorder,
    id: &str,
    t0: Instant,
) -> (Arc<TxCell>, String) {
    let mut ctx = request("INVITE", id, "UDP");
    ctx.on_failure = Some(7);
    relayed(tm, host, &ctx, t0)
}

/// `ctx`'s transaction, created and relayed to 127.0.0.1:5070: its cell and what was sent.
fn relayed(tm: &Arc<Tm>, host: &Recorder, ctx: &MsgCtx, t0: Instant) -> (Arc<TxCell>, String) {
    let cell = tm.create(ctx, t0).unwrap();
    tm.add_branch(&cell, ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    (cell, host.take_full().pop().unwrap())
}

/// A script whose failure route relays again to 127.0.0.1:5071; what that `add_branch` gave
/// is kept in the returned slot.
fn relaying_again(tm: &Arc<Tm>, cell: &Arc<TxCell>, t0: Instant) -> (Script, Relayed) {
    let relayed: Relayed = Arc::new(Mutex::new(None));
    let (tm, cell, record) = (Arc::clone(tm), Arc::clone(cell), Arc::clone(&relayed));
    let script = Script {
        runs: Vec::new(),
        on_run: Some(Box::new(move |_, ctx| {
            *record.lock().unwrap() =
                Some(tm.add_branch(&cell, ctx, Some("udp:127.0.0.1:5071"), &net(), t0));
        })),
        reply_route: None,
    };
    (script, relayed)
}

/// What a failure route's relay gave (`None` until it ran).
type Relayed = Arc<Mutex<Option<Result<usize, i64>>>>;

#[test]
fn a_negative_reply_is_acked_downstream_and_failure_route_can_fail_over() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let (cell, first) = invite_failing_over(&tm, &host, "z9hG4bKfo", t0);
    // failure_route[7] relays to a second destination.
    let (mut s, _) = relaying_again(&tm, &cell, t0);
    let (r, rctx) = reply_to(&first, 486, "Busy Here", Some("b1"));
    tm.on_reply(&r, rctx, &mut s, t0 + Duration::from_secs(1));
    assert_eq!(s.runs, vec![(7, Some(486))], "failure_route sees the 486");
    let out = host.take_full();
    let ack = out.iter().find(|m| m.starts_with("ACK ")).unwrap();
    assert!(
        ack.contains(";tag=b1\r\n") && ack.contains("\r\nCSeq: 1 ACK\r\n"),
        "{ack}"
    );
    let second = out.iter().find(|m| m.starts_with("INVITE ")).unwrap();
    assert!(second.contains(".1\r\n"), "branch 1: {second}");
    assert!(
        !out.iter().any(|m| m.starts_with("SIP/2.0 486")),
        "the 486 is not relayed while a new branch runs"
    );
    let (r, rctx) = reply_to(second, 200, "OK", Some("b2"));
    tm.on_reply(&r, rctx, &mut s, t0 + Duration::from_secs(2));
    let out = host.take();
    assert_eq!(out, vec![("SIP/2.0 200 OK".to_owned(), 5090)]);
}

#[test]
fn without_failure_route_the_best_reply_goes_upstream_and_503_becomes_500() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bK503", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let (r, rctx) = reply_to(&sent, 503, "Service Unavailable", Some("x"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 500 Service Unavailable".to_owned(), 5090)]
    );
}

/// A reply that lost the upstream's Via (only ours left, as a UA copying the last Via alone
/// sends it) goes upstream with the request's own Via put back, never with none.
#[test]
fn a_reply_with_no_via_but_ours_gets_the_requests_via_back() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bKnovia", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let (whole, rctx) = reply_to(&sent, 200, "OK", Some("x"));
    let ours = sent.lines().find(|l| l.starts_with("Via:")).unwrap();
    let bare = String::from_utf8_lossy(whole.as_bytes())
        .lines()
        .filter(|l| !l.starts_with("Via:") || *l == ours)
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "\r\n";
    let bare = SipMessage::parse(Bytes::from(bare)).unwrap();
    assert_eq!(bare.vias().count(), 1);
    assert!(tm.on_reply(&bare, rctx, &mut script(), t0), "taken by tm");
    let relayed = host.take_full();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    let up = SipMessage::parse(Bytes::from(relayed[0].clone())).unwrap();
    assert!(up.check().is_ok(), "{}", relayed[0]);
    let vias: Vec<String> = up
        .vias()
        .map(|v| v.unwrap().branch().unwrap_or("").to_owned())
        .collect();
    assert_eq!(vias, ["z9hG4bKnovia"], "{}", relayed[0]);
}

/// A branch that failed to send is looked at on the next tick (`urgent`); when that tick
/// finds the transaction already due for deletion (it ended on another branch and its wait
/// is over), the deletion takes the table's lock again. It must not still be held: this
/// tick used to deadlock.
#[test]
fn a_late_send_failure_on_a_finished_transaction_does_not_deadlock_the_timers() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bKlate", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full().pop().unwrap();
    *host.fail_to.lock().unwrap() = Some("127.0.0.1:5071".parse().unwrap());
    let _ = tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5071"), &net(), t0);
    let (ok, rctx) = reply_to(&sent, 200, "OK", Some("x"));
    tm.on_reply(&ok, rctx, &mut script(), t0);
    assert_eq!(tm.len(), 1);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let ticker = Arc::clone(&tm);
    std::thread::spawn(move || {
        ticker.tick(t0 + Duration::from_secs(60), &mut script());
        let _ = done_tx.send(ticker.len());
    });
    let left = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the tick ends (no deadlock)");
    assert_eq!(left, 0, "the transaction is deleted");
}

#[test]
fn with_disable_503_translation_a_503_goes_upstream_as_it_came() {
    let (tm, host) = setup(Params {
        disable_503_translation: true,
        ..params()
    });
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bK503keep", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let (r, rctx) = reply_to(&sent, 503, "Service Unavailable", Some("x"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 503 Service Unavailable".to_owned(), 5090)]
    );
}

#[test]
fn a_2xx_cancels_the_other_branches() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKfork", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    for port in [5070, 5071, 5072] {
        tm.add_branch(
            &cell,
            &ctx,
            Some(&format!("udp:127.0.0.1:{port}")),
            &net(),
            t0,
        )
        .unwrap();
    }
    let sent: Vec<String> = host
        .take_full()
        .into_iter()
        .filter(|m| m.starts_with("INVITE"))
        .collect();
    assert_eq!(sent.len(), 3);
    let mut s = script();
    // Branches 0 and 1 ring; branch 2 has not answered yet.
    for b in &sent[..2] {
        let (r, rctx) = reply_to(b, 180, "Ringing", Some("r"));
        tm.on_reply(&r, rctx, &mut s, t0);
    }
    host.take();
    let (r, rctx) = reply_to(&sent[0], 200, "OK", Some("win"));
    tm.on_reply(&r, rctx, &mut s, t0);
    let out = host.take_full();
    assert!(out[0].starts_with("SIP/2.0 200 OK"));
    let cancels: Vec<&String> = out.iter().filter(|m| m.starts_with("CANCEL")).collect();
    assert_eq!(cancels.len(), 1, "only the ringing branch is cancelled now");
    assert!(cancels[0].contains("Reason: SIP;cause=200;text=\"Call completed elsewhere\""));
    // The silent branch is cancelled as soon as it rings.
    let (r, rctx) = reply_to(&sent[2], 180, "Ringing", Some("late"));
    tm.on_reply(&r, rctx, &mut s, t0);
    let out = host.take_full();
    assert!(out.iter().any(|m| m.starts_with("CANCEL ")), "{out:?}");
    assert!(
        !out.iter().any(|m| m.starts_with("SIP/2.0 180")),
        "no 1xx after the 2xx"
    );
}

#[test]
fn cancel_from_the_caller_is_answered_and_fanned_out_then_487_goes_up() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKc", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let mut s = script();
    let (r, rctx) = reply_to(&sent, 180, "Ringing", Some("r"));
    tm.on_reply(&r, rctx, &mut s, t0);
    host.take();
    let cancel = request("CANCEL", "z9hG4bKc", "UDP");
    let Found::CancelFor(found) = tm.lookup_request(&cancel.msg) else {
        panic!("the CANCEL finds its INVITE");
    };
    tm.cancel_invite(&found, &cancel, t0);
    let out = host.take_full();
    assert!(out[0].starts_with("SIP/2.0 200 canceling"), "{out:?}");
    assert!(out[1].starts_with("CANCEL sip:bob@example.com SIP/2.0"));
    assert!(out[1].contains("Reason: SIP;cause=487;text=\"ORIGINATOR_CANCEL\""));
    let (r, rctx) = reply_to(&sent, 487, "Request Terminated", Some("r"));
    tm.on_reply(&r, rctx, &mut s, t0);
    let out = host.take();
    assert!(
        out.contains(&("SIP/2.0 487 Request Terminated".to_owned(), 5090)),
        "{out:?}"
    );
    assert!(
        out.iter().any(|(l, _)| l.starts_with("ACK ")),
        "the 487 is acknowledged"
    );
}

#[test]
fn retransmissions_are_absorbed_and_negative_replies_resent_until_the_ack() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKr", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    host.take();
    let again = request("INVITE", "z9hG4bKr", "UDP");
    let Found::Retransmission(c) = tm.lookup_request(&again.msg) else {
        panic!("same branch, same transaction");
    };
    tm.resend_last_reply(&c);
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 100 Giving it a try".to_owned(), 5090)]
    );
    tm.reply_in(&cell, &ctx, 404, "Not Here", None, t0);
    assert_eq!(host.take().len(), 1);
    let mut s = script();
    let mut resent = 0;
    for ms in (100..=4000).step_by(100) {
        tm.tick(t0 + Duration::from_millis(ms), &mut s);
        resent += host.take().len();
    }
    assert_eq!(resent, 3, "404 resent at 0.5, 1.5, 3.5 s");
    let ack = request("ACK", "z9hG4bKr", "UDP");
    let Found::AckForNegative(c) = tm.lookup_request(&ack.msg) else {
        panic!("the ACK matches the INVITE transaction");
    };
    tm.absorb_ack(&c, t0 + Duration::from_secs(4));
    for secs in 5..20 {
        tm.tick(t0 + Duration::from_secs(secs), &mut s);
    }
    assert!(host.take().is_empty(), "no resend after the ACK");
    assert!(tm.is_empty(), "deleted after wt_timer");
}

#[test]
fn a_branch_that_cannot_be_sent_ends_in_477() {
    let (tm, host) = setup(params());
    *host.fail_to.lock().unwrap() = Some("127.0.0.1:5070".parse().unwrap());
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bKf477", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    let r = tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0);
    assert_eq!(r, Err(-6), "t_relay's 'send failed'");
    host.take();
    tm.tick(t0, &mut script());
    assert_eq!(
        host.take(),
        vec![("SIP/2.0 477 Send failed (477/TM)".to_owned(), 5090)]
    );
}

#[test]
fn a_thousand_branches_fork_and_the_best_reply_wins() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKk", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    for i in 0..1000u16 {
        tm.add_branch(
            &cell,
            &ctx,
            Some(&format!("udp:127.0.0.1:{}", 20_000 + i)),
            &net(),
            t0,
        )
        .unwrap();
    }
    assert_eq!(cell.branch_count(), 1000);
    let sent: Vec<String> = host
        .take_full()
        .into_iter()
        .filter(|m| m.starts_with("INVITE"))
        .collect();
    assert_eq!(sent.len(), 1000);
    let mut s = script();
    for (i, b) in sent.iter().enumerate() {
        let (code, reason) = if i == 640 {
            (401, "Unauthorized")
        } else {
            (480, "Temporarily Unavailable")
        };
        let (r, rctx) = reply_to(b, code, reason, Some("t"));
        tm.on_reply(&r, rctx, &mut s, t0);
    }
    let up: Vec<(String, u16)> = host
        .take()
        .into_iter()
        .filter(|(l, _)| l.starts_with("SIP/2.0"))
        .collect();
    assert_eq!(
        up,
        vec![("SIP/2.0 401 Unauthorized".to_owned(), 5090)],
        "401 ranks before 480"
    );
}

#[test]
fn the_branch_cap_is_enforced() {
    let (tm, _host) = setup(Params {
        max_branches: 2,
        ..params()
    });
    let t0 = Instant::now();
    let ctx = request("OPTIONS", "z9hG4bKcap", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    for _ in 0..2 {
        tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
            .unwrap();
    }
    assert_eq!(
        tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0),
        Err(-1)
    );
}

#[test]
fn t_cancel_branch_cancels_the_others_or_all() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKcb", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    for port in [5070, 5071, 5072] {
        tm.add_branch(
            &cell,
            &ctx,
            Some(&format!("udp:127.0.0.1:{port}")),
            &net(),
            t0,
        )
        .unwrap();
    }
    let sent: Vec<String> = host
        .take_full()
        .into_iter()
        .filter(|m| m.starts_with("INVITE"))
        .collect();
    let mut s = script();
    for b in &sent {
        let (r, rctx) = reply_to(b, 180, "Ringing", Some("r"));
        tm.on_reply(&r, rctx, &mut s, t0);
    }
    host.take();
    tm.cancel_branches(&cell, 1, "o", t0);
    let ports: Vec<u16> = host
        .take()
        .into_iter()
        .filter(|(l, _)| l.starts_with("CANCEL"))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(ports, vec![5070, 5072], "every branch but the current one");
    tm.cancel_branches(&cell, 1, "", t0);
    assert_eq!(
        host.take(),
        vec![("CANCEL sip:bob@example.com SIP/2.0".to_owned(), 5071)]
    );
    tm.cancel_branches(&cell, 1, "a", t0);
    assert!(host.take().is_empty(), "a branch is cancelled once");
}

#[test]
fn what_the_onreply_route_changes_is_relayed() {
    let host = Arc::new(Recorder::default());
    let tm = Tm::new(params(), host.clone());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKor", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let mut s = Script {
        runs: Vec::new(),
        on_run: Some(Box::new(|_, ctx| {
            ctx.edits.append("X-Onreply", "seen");
        })),
        reply_route: Some(3),
    };
    for (code, reason) in [(180, "Ringing"), (200, "OK")] {
        let (r, rctx) = reply_to(&sent, code, reason, Some("t"));
        tm.on_reply(&r, rctx, &mut s, t0);
    }
    assert_eq!(
        s.runs,
        vec![(3, Some(180)), (3, Some(200))],
        "the global onreply_route"
    );
    let out = host.take_full();
    let relayed: Vec<&String> = out.iter().filter(|m| m.starts_with("SIP/2.0")).collect();
    assert_eq!(relayed.len(), 2);
    for m in relayed {
        assert!(m.contains("\r\nX-Onreply: seen\r\n"), "{m}");
        assert_eq!(m.matches("Via:").count(), 1, "our Via is gone: {m}");
    }
}

#[test]
fn pass_reason_hdr_carries_the_callers_reason_on_the_cancels() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKpr", "UDP");
    let (_, sent) = relayed(&tm, &host, &ctx, t0);
    let (r, rctx) = reply_to(&sent, 180, "Ringing", Some("r"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    host.take();
    let text = String::from_utf8_lossy(request("CANCEL", "z9hG4bKpr", "UDP").msg.as_bytes())
        .replace(
            "Content-Length: 0\r\n",
            "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\nContent-Length: 0\r\n",
        );
    let cancel = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap()).with_receipt(Receipt {
        source: UAC.parse().unwrap(),
        proto: "udp",
        local: LOCAL.parse().unwrap(),
        conn: None,
        proxy: None,
    });
    let Found::CancelFor(found) = tm.lookup_request(&cancel.msg) else {
        panic!("the CANCEL finds its INVITE");
    };
    tm.cancel_invite_with(&found, &cancel, true, t0);
    let out = host.take_full();
    let down = out.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert!(
        down.contains("\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"),
        "{down}"
    );
}

#[test]
fn a_cancel_reason_set_on_the_transaction_goes_on_its_cancels() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKcr", "UDP");
    let (cell, sent) = relayed(&tm, &host, &ctx, t0);
    let (r, rctx) = reply_to(&sent, 180, "Ringing", Some("r"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    host.take();
    tm.set_cancel_reason(&cell, "Q.850;cause=16;text=\"Terminated\"");
    let cancel = request("CANCEL", "z9hG4bKcr", "UDP");
    tm.cancel_invite(&cell, &cancel, t0);
    let out = host.take_full();
    let down = out.iter().find(|m| m.starts_with("CANCEL ")).unwrap();
    assert!(
        down.contains("\r\nReason: Q.850;cause=16;text=\"Terminated\"\r\n"),
        "{down}"
    );
}

/// The final replies sent upstream (to the caller's port).
fn finals(out: &[(String, u16)]) -> Vec<String> {
    out.iter()
        .filter(|(l, port)| {
            *port == 5090 && l.starts_with("SIP/2.0 ") && !l.starts_with("SIP/2.0 1")
        })
        .map(|(l, _)| l.clone())
        .collect()
}

#[test]
fn a_waiting_transaction_outlives_its_branches_until_fr_inv_timeout() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKwait1", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.wait_for_new_branches(&cell, None, t0);
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full().pop().unwrap();
    let (r, rctx) = reply_to(&sent, 486, "Busy Here", Some("b1"));
    tm.on_reply(&r, rctx, &mut script(), t0 + Duration::from_secs(1));
    tm.tick(t0 + Duration::from_secs(59), &mut script());
    assert!(
        finals(&host.take()).is_empty(),
        "the 486 waits for injected branches"
    );
    assert!(tm.is_waiting(&cell));
    tm.tick(t0 + Duration::from_secs(60), &mut script());
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 486 Busy Here"]);
    assert!(!tm.is_waiting(&cell));
}

#[test]
fn injected_branches_count_against_the_wait_and_the_best_reply_wins() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let ctx = request("INVITE", "z9hG4bKwait2", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.wait_for_new_branches(&cell, Some(1), t0);
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let first = host.take_full().pop().unwrap();
    let (r, rctx) = reply_to(&first, 486, "Busy Here", Some("b1"));
    tm.on_reply(&r, rctx, &mut script(), t0 + Duration::from_secs(1));
    tm.tick(t0 + Duration::from_secs(2), &mut script());
    assert!(finals(&host.take()).is_empty());
    // One branch injected: the one the wait was for, so the wait is over.
    tm.begin_relay(&cell);
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5071"), &net(), t0)
        .unwrap();
    tm.end_relay(&cell);
    tm.injected(&cell, 1, false);
    assert!(!tm.is_waiting(&cell));
    let second = host
        .take_full()
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap();
    assert!(second.contains(".1\r\n"), "branch 1: {second}");
    let (r, rctx) = reply_to(&second, 404, "Not Found", Some("b2"));
    tm.on_reply(&r, rctx, &mut script(), t0 + Duration::from_secs(3));
    tm.tick(t0 + Duration::from_secs(3), &mut script());
    let out = finals(&host.take());
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0] == "SIP/2.0 404 Not Found" || out[0] == "SIP/2.0 486 Busy Here");
}

#[test]
fn waiting_with_no_branch_ends_in_a_local_408_and_no_more_branches_completes_at_once() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    // Parked: nothing relayed at all.
    let ctx = request("INVITE", "z9hG4bKpark", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.wait_for_new_branches(&cell, None, t0);
    tm.tick(t0 + Duration::from_secs(30), &mut script());
    assert!(finals(&host.take()).is_empty());
    tm.tick(t0 + Duration::from_secs(60), &mut script());
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 408 Request Timeout"]);

    // A failed branch, then t_wait_no_more_branches: the next timer run completes it.
    let ctx = request("INVITE", "z9hG4bKnomore", "UDP");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.wait_for_new_branches(&cell, Some(5), t0);
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full().pop().unwrap();
    let (r, rctx) = reply_to(&sent, 480, "Temporarily Unavailable", Some("t"));
    tm.on_reply(&r, rctx, &mut script(), t0 + Duration::from_secs(1));
    tm.tick(t0 + Duration::from_secs(1), &mut script());
    assert!(finals(&host.take()).is_empty());
    tm.wait_no_more_branches(&cell);
    tm.tick(t0 + Duration::from_secs(2), &mut script());
    assert_eq!(
        finals(&host.take()),
        vec!["SIP/2.0 480 Temporarily Unavailable"]
    );
}

// RFC 2543 clients (no z9hG4bK branch): the transaction is found by Request-URI, From tag,
// Call-ID, CSeq number and top Via (RFC 3261 §17.2.3).
#[test]
fn requests_without_a_magic_cookie_match_the_rfc_2543_way() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let invite = request("INVITE", "old1", "UDP");
    let cell = tm.create(&invite, t0).unwrap();
    assert!(matches!(
        tm.lookup_request(&request("INVITE", "old1", "UDP").msg),
        Found::Retransmission(_)
    ));
    // Another top Via branch value: another transaction.
    assert!(matches!(
        tm.lookup_request(&request("INVITE", "old2", "UDP").msg),
        Found::None
    ));
    assert!(matches!(
        tm.lookup_request(&request("CANCEL", "old1", "UDP").msg),
        Found::CancelFor(_)
    ));
    tm.add_branch(&cell, &invite, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full().pop().unwrap();
    let (r, rctx) = reply_to(&sent, 486, "Busy Here", Some("b1"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 486 Busy Here"]);
    // The ACK for the 486 is the transaction's (hop by hop), absorbed.
    assert!(matches!(
        tm.lookup_request(&request("ACK", "old1", "UDP").msg),
        Found::AckForNegative(_)
    ));

    // After a 2xx the ACK is end to end: no transaction claims it.
    let invite = request("INVITE", "old3", "UDP");
    let cell = tm.create(&invite, t0).unwrap();
    tm.add_branch(&cell, &invite, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take_full().pop().unwrap();
    let (r, rctx) = reply_to(&sent, 200, "OK", Some("ok"));
    tm.on_reply(&r, rctx, &mut script(), t0);
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 200 OK"]);
    assert!(matches!(
        tm.lookup_request(&request("ACK", "old3", "UDP").msg),
        Found::None
    ));
}

/// An RFC 2543 request (no magic cookie) with its own Request-URI and top Via.
fn legacy_request(method: &str, ruri: &str, via: &str) -> MsgCtx {
    let text = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: legacy-1\r\n\
         CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap())
}

// tm's `ruri_matching` and `via1_matching` (both 1 by default): whether the Request-URI and the
// top Via take part in matching a request without an RFC 3261 branch.
#[test]
fn ruri_and_via1_matching_decide_what_identifies_an_rfc_2543_transaction() {
    let is_retransmission = |legacy: LegacyMatching, ruri: &str, via: &str| {
        let (tm, _host) = setup(Params { legacy, ..params() });
        let t0 = Instant::now();
        tm.create(
            &legacy_request("OPTIONS", "sip:bob@example.com", "10.0.0.1:5060;branch=1"),
            t0,
        )
        .unwrap();
        matches!(
            tm.lookup_request(&legacy_request("OPTIONS", ruri, via).msg),
            Found::Retransmission(_)
        )
    };
    let (same_ruri, other_ruri) = ("sip:bob@example.com", "sip:bob@10.0.0.9");
    let (same_via, other_via) = ("10.0.0.1:5060;branch=1", "10.0.0.2:5062;branch=2");
    let both = LegacyMatching::default();
    assert!(both.ruri && both.via1);
    assert!(is_retransmission(both, same_ruri, same_via));
    assert!(!is_retransmission(both, other_ruri, same_via));
    assert!(!is_retransmission(both, same_ruri, other_via));

    let no_ruri = LegacyMatching {
        ruri: false,
        ..both
    };
    assert!(is_retransmission(no_ruri, other_ruri, same_via));
    assert!(!is_retransmission(no_ruri, same_ruri, other_via));

    let no_via = LegacyMatching {
        via1: false,
        ..both
    };
    assert!(is_retransmission(no_via, same_ruri, other_via));
    assert!(!is_retransmission(no_via, other_ruri, same_via));

    let neither = LegacyMatching {
        ruri: false,
        via1: false,
    };
    assert!(is_retransmission(neither, other_ruri, other_via));
    // Call-ID, From, To and CSeq still count: another CSeq is another transaction.
    let (tm, _host) = setup(Params {
        legacy: neither,
        ..params()
    });
    let t0 = Instant::now();
    tm.create(&legacy_request("OPTIONS", same_ruri, same_via), t0)
        .unwrap();
    let text = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=1\r\n\
                From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: legacy-1\r\n\
                CSeq: 8 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let next = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap());
    assert!(matches!(tm.lookup_request(&next.msg), Found::None));
}

// failure_route starts from the request as received: the last branch's new R-URI, `$du`, q,
// forced socket and branch flags are not inherited (OpenSIPS fakes the request so since 3.1).
#[test]
fn failure_route_does_not_inherit_the_last_branchs_destination() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let mut ctx = request("INVITE", "z9hG4bKreset", "UDP");
    ctx.on_failure = Some(7);
    ctx.new_ruri = Some("sip:contact@192.0.2.50".to_owned());
    ctx.dst_uri = Some("sip:127.0.0.1:5070".to_owned());
    ctx.ruri_q = 500;
    ctx.branch_flags = 0b101;
    ctx.send_socket = Some("udp:127.0.0.1:5060".to_owned());
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, None, &net(), t0).unwrap();
    let first = host.take_full().pop().unwrap();
    assert!(
        first.starts_with("INVITE sip:contact@192.0.2.50 "),
        "{first}"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let mut s = Script {
        runs: Vec::new(),
        on_run: Some(Box::new(move |_, ctx| {
            record.lock().unwrap().push((
                ctx.ruri().map(str::to_owned),
                ctx.dst_uri.clone(),
                ctx.ruri_q,
                ctx.branch_flags,
                ctx.send_socket.clone(),
            ));
        })),
        reply_route: None,
    };
    let (r, rctx) = reply_to(&first, 486, "Busy Here", Some("b1"));
    tm.on_reply(&r, rctx, &mut s, t0 + Duration::from_secs(1));
    assert_eq!(s.runs, vec![(7, Some(486))]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(Some("sip:bob@example.com".to_owned()), None, -1, 0, None)]
    );
}

// Each failure_route relay starts a new attempt: only its branches compete for the reply that
// goes upstream (OpenSIPS picks from `first_branch` on), so a 401 from the first attempt does not
// beat the 486 of the second.
#[test]
fn the_best_reply_is_picked_from_the_current_attempt_only() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let (cell, first) = invite_failing_over(&tm, &host, "z9hG4bKattempt", t0);
    let (mut s, _) = relaying_again(&tm, &cell, t0);
    let (r, rctx) = reply_to(&first, 401, "Unauthorized", Some("a1"));
    tm.on_reply(&r, rctx, &mut s, t0);
    let second = host
        .take_full()
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap();
    let (r, rctx) = reply_to(&second, 486, "Busy Here", Some("a2"));
    tm.on_reply(&r, rctx, &mut s, t0);
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 486 Busy Here"]);
}

// A 6xx still runs failure_route (OpenSIPS), but no new branch may be added after it.
#[test]
fn after_a_6xx_failure_route_runs_but_cannot_relay_again() {
    let (tm, host) = setup(params());
    let t0 = Instant::now();
    let (cell, first) = invite_failing_over(&tm, &host, "z9hG4bK6xx", t0);
    let (mut s, relayed) = relaying_again(&tm, &cell, t0);
    let (r, rctx) = reply_to(&first, 603, "Decline", Some("d1"));
    tm.on_reply(&r, rctx, &mut s, t0);
    assert_eq!(
        s.runs,
        vec![(7, Some(603))],
        "failure_route ran for the 603"
    );
    assert_eq!(*relayed.lock().unwrap(), Some(Err(-3)), "no new branch");
    assert_eq!(finals(&host.take()), vec!["SIP/2.0 603 Decline"]);
}
