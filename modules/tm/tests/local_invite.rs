//! INVITEs rsips generates itself (MI `tm:uac_dlg`, `t_new_request`) with a manual clock: a
//! client transaction with no server side, ACKed by tm for every final reply, cancelled by
//! Call-ID and CSeq (MI `tm:uac_cancel`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::forward::{Socket, Sockets};
use engine::{MsgCtx, Outbound, Outcome, Receipt};
use sip::SipMessage;
use tm::{Host, LocalReply, Params, Runner, SendDone, Tm};

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Outbound>>,
}

impl Host for Recorder {
    fn send(&self, out: Outbound, done: Option<SendDone>) {
        self.sent.lock().unwrap().push(out);
        if let Some(done) = done {
            done(Ok(()));
        }
    }
}

impl Recorder {
    /// What was sent since the last call: text and destination port.
    fn take(&self) -> Vec<(String, u16)> {
        self.sent
            .lock()
            .unwrap()
            .drain(..)
            .map(|o| (String::from_utf8_lossy(&o.data).into_owned(), o.dest.port()))
            .collect()
    }
}

struct NoScript;

impl Runner for NoScript {
    fn run(&mut self, _: usize, _: &mut MsgCtx) -> Outcome {
        Outcome::Exit
    }
}

fn net() -> Sockets {
    Sockets {
        listen: vec![Socket {
            proto: "udp",
            host: "127.0.0.1".into(),
            port: 5060,
            addr: Some("127.0.0.1:5060".parse().unwrap()),
            advertised: None,
            allow_proxy_protocol: false,
            send_proxy_protocol: false,
            use_workers: None,
            reuse_port: false,
            tos: None,
            tag: None,
            anycast: false,
        }],
        bonds: Vec::new(),
    }
}

type Done = Arc<Mutex<Option<LocalReply>>>;

/// A local INVITE to 127.0.0.1:5070 sent at `t0`; returns what went out and the completion.
fn invite(tm: &Tm, host: &Recorder, t0: Instant) -> (String, Done) {
    let msg = tm::build_request(
        "INVITE",
        "sip:bob@127.0.0.1:5070",
        "From: <sip:mi@rsips.example>\r\nTo: <sip:bob@example.com>\r\nCall-ID: local-inv-1\r\nCSeq: 7 INVITE\r\n",
        None,
    )
    .unwrap();
    let done: Done = Arc::default();
    let d = Arc::clone(&done);
    tm.new_request(
        MsgCtx::new(msg),
        None,
        &net(),
        t0,
        Box::new(move |r| *d.lock().unwrap() = Some(r)),
    )
    .unwrap();
    let sent = host.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1, 5070);
    assert!(
        sent[0]
            .0
            .starts_with("INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n")
    );
    (sent[0].0.clone(), done)
}

/// A reply from the UAS to the request `sent`, with `extra` header lines.
fn reply(
    sent: &str,
    code: u16,
    reason: &str,
    tag: Option<&str>,
    extra: &str,
) -> (SipMessage, MsgCtx) {
    let mut text = format!("SIP/2.0 {code} {reason}\r\n");
    for line in sent.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            text.push_str(line);
            text.push_str("\r\n");
        } else if name == "To" {
            text.push_str(line);
            if let Some(t) = tag {
                text.push_str(&format!(";tag={t}"));
            }
            text.push_str("\r\n");
        }
    }
    text.push_str(extra);
    text.push_str("Content-Length: 0\r\n\r\n");
    let msg = SipMessage::parse(Bytes::from(text)).unwrap();
    let ctx = MsgCtx::new(msg.clone()).with_receipt(Receipt {
        source: "127.0.0.1:5070".parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    });
    (msg, ctx)
}

fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.lines()
        .find(|l| l.split(':').next() == Some(name))
        .map(|l| l.split_once(':').unwrap().1.trim())
}

fn params() -> Params {
    Params {
        fr_timeout: Duration::from_secs(30),
        fr_inv_timeout: Duration::from_secs(60),
        ..Params::default()
    }
}

fn setup() -> (Arc<Tm>, Arc<Recorder>) {
    let host = Arc::new(Recorder::default());
    (Tm::new(params(), host.clone()), host)
}

/// Ticks every 100 ms from `from` to `to` (ms after `t0`); returns when something was sent.
fn sends_between(tm: &Tm, host: &Recorder, t0: Instant, from: u64, to: u64) -> Vec<(u64, String)> {
    let mut at = Vec::new();
    for ms in (from..=to).step_by(100) {
        tm.tick(t0 + Duration::from_millis(ms), &mut NoScript);
        for (m, _) in host.take() {
            at.push((ms, m));
        }
    }
    at
}

#[test]
fn retransmits_until_a_provisional_reply_then_486_is_acked_on_the_same_branch() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (sent, done) = invite(&tm, &host, t0);
    let at: Vec<u64> = sends_between(&tm, &host, t0, 0, 4000)
        .into_iter()
        .map(|(ms, m)| {
            assert_eq!(m, sent, "a retransmission is the same INVITE");
            ms
        })
        .collect();
    assert_eq!(at, vec![500, 1500, 3500], "T1 doubling");
    let (r, ctx) = reply(&sent, 180, "Ringing", Some("uas1"), "");
    assert!(tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(4000)));
    assert!(host.take().is_empty(), "a provisional reply goes nowhere");
    assert!(
        sends_between(&tm, &host, t0, 4100, 20_000).is_empty(),
        "no retransmission after the 180"
    );
    assert!(done.lock().unwrap().is_none());
    let (r, ctx) = reply(&sent, 486, "Busy Here", Some("uas1"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(21));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    let (ack, port) = &out[0];
    assert_eq!(*port, 5070);
    assert!(
        ack.starts_with("ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\n"),
        "{ack}"
    );
    assert_eq!(header(ack, "Via"), header(&sent, "Via"), "same branch");
    assert_eq!(header(ack, "CSeq"), Some("7 ACK"));
    assert_eq!(header(ack, "Call-ID"), Some("local-inv-1"));
    assert_eq!(header(ack, "From"), header(&sent, "From"));
    assert!(header(ack, "To").unwrap().ends_with(";tag=uas1"), "{ack}");
    let d = done.lock().unwrap().take().unwrap();
    assert_eq!((d.code, d.reason.as_str()), (486, "Busy Here"));
    assert!(d.reply.is_some(), "a received reply is handed over");
    // A retransmitted 486 is ACKed again, and reported once only.
    let (r, ctx) = reply(&sent, 486, "Busy Here", Some("uas1"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(22));
    let again = host.take();
    assert_eq!(again.len(), 1);
    assert!(again[0].0.starts_with("ACK "));
    assert!(done.lock().unwrap().is_none());
}

#[test]
fn a_2xx_is_acked_by_tm_towards_the_contact_with_the_route_set() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (sent, done) = invite(&tm, &host, t0);
    let rr = "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n\
              Contact: <sip:bob@192.0.2.9:5080>\r\n";
    let (r, ctx) = reply(&sent, 200, "OK", Some("uas2"), rr);
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(100));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    let (ack, port) = &out[0];
    assert_eq!(
        *port, 5070,
        "the ACK goes where the INVITE went (as OpenSIPS)"
    );
    assert!(
        ack.starts_with("ACK sip:bob@192.0.2.9:5080 SIP/2.0\r\n"),
        "{ack}"
    );
    assert_eq!(
        header(ack, "Route"),
        Some("<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        "the Record-Route set reversed"
    );
    assert_eq!(
        header(ack, "Via"),
        header(&sent, "Via"),
        "OpenSIPS reuses the branch"
    );
    assert_eq!(header(ack, "CSeq"), Some("7 ACK"));
    assert!(header(ack, "To").unwrap().ends_with(";tag=uas2"));
    let d = done.lock().unwrap().take().unwrap();
    assert_eq!((d.code, d.reason.as_str()), (200, "OK"));
    let t = tm::dialog_target(d.reply.as_ref().unwrap()).unwrap();
    assert_eq!(t.ruri, "sip:bob@192.0.2.9:5080");
    assert_eq!(t.next_hop, "sip:p1.example.com;lr");
    // The 2xx retransmitted (our ACK was lost): ACKed again.
    let (r, ctx) = reply(&sent, 200, "OK", Some("uas2"), rr);
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(600));
    let again = host.take();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, *ack);
    assert!(
        sends_between(&tm, &host, t0, 700, 10_000).is_empty(),
        "nothing retransmits"
    );
    assert_eq!(tm.len(), 0, "gone after wt_timer");
}

#[test]
fn no_answer_ends_in_a_local_408_and_a_ringing_branch_is_cancelled() {
    // Nothing answers: retransmissions until fr_timeout, then 408, no CANCEL.
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (_, done) = invite(&tm, &host, t0);
    let sends = sends_between(&tm, &host, t0, 0, 30_000);
    assert!(
        sends.iter().all(|(_, m)| m.starts_with("INVITE ")),
        "no CANCEL"
    );
    assert_eq!(
        sends.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(),
        vec![
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500
        ],
        "capped at T2"
    );
    let d = done.lock().unwrap().take().unwrap();
    assert_eq!((d.code, d.reason.as_str()), (408, "Request Timeout"));
    assert!(d.reply.is_none(), "made up locally");

    // It rang: fr_inv_timeout from the 180, then CANCEL with the NO_ANSWER reason and 408.
    let (tm, host) = setup();
    let (sent, done) = invite(&tm, &host, t0);
    let (r, ctx) = reply(&sent, 180, "Ringing", Some("uas3"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(10));
    tm.tick(t0 + Duration::from_secs(69), &mut NoScript);
    assert!(host.take().is_empty() && done.lock().unwrap().is_none());
    tm.tick(t0 + Duration::from_secs(70), &mut NoScript);
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    let cancel = &out[0].0;
    assert!(cancel.starts_with("CANCEL sip:bob@127.0.0.1:5070 SIP/2.0\r\n"));
    assert_eq!(
        header(cancel, "Reason"),
        Some("SIP;cause=480;text=\"NO_ANSWER\"")
    );
    assert_eq!(header(cancel, "Via"), header(&sent, "Via"));
    let d = done.lock().unwrap().take().unwrap();
    assert_eq!(d.code, 408);
}

#[test]
fn a_1xx_after_a_silent_timeout_is_cancelled() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (sent, done) = invite(&tm, &host, t0);
    sends_between(&tm, &host, t0, 0, 30_000);
    assert_eq!(done.lock().unwrap().take().unwrap().code, 408);
    let (r, ctx) = reply(&sent, 180, "Ringing", Some("late"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(31));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0.starts_with("CANCEL "), "{}", out[0].0);
}

#[test]
fn cancel_by_callid_cancels_a_ringing_invite_which_then_ends_in_487() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (sent, done) = invite(&tm, &host, t0);
    assert!(
        !tm.cancel_by_callid("other-call", "7", t0),
        "unknown Call-ID"
    );
    assert!(!tm.cancel_by_callid("local-inv-1", "8", t0), "unknown CSeq");
    let (r, ctx) = reply(&sent, 180, "Ringing", Some("uas4"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(200));
    assert!(tm.cancel_by_callid("local-inv-1", " 7 ", t0 + Duration::from_secs(1)));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    let cancel = out[0].0.clone();
    assert!(
        cancel.starts_with("CANCEL sip:bob@127.0.0.1:5070 SIP/2.0\r\n"),
        "{cancel}"
    );
    assert_eq!(header(&cancel, "Via"), header(&sent, "Via"));
    assert_eq!(header(&cancel, "CSeq"), Some("7 CANCEL"));
    assert_eq!(header(&cancel, "Call-ID"), Some("local-inv-1"));
    assert_eq!(
        header(&cancel, "To"),
        header(&sent, "To"),
        "the INVITE's To, no tag"
    );
    assert_eq!(
        header(&cancel, "Reason"),
        None,
        "MI CANCELs carry no Reason (OpenSIPS)"
    );
    // Unanswered, the CANCEL is retransmitted over UDP; its 200 stops that.
    let re = sends_between(&tm, &host, t0, 1100, 1500);
    assert_eq!(re.len(), 1);
    assert_eq!(re[0].1, cancel);
    let (r, ctx) = reply(&cancel, 200, "canceling", None, "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(1600));
    assert!(host.take().is_empty(), "the 200 to our CANCEL is consumed");
    assert!(sends_between(&tm, &host, t0, 1700, 5000).is_empty());
    assert!(
        done.lock().unwrap().is_none(),
        "still waiting for the INVITE's reply"
    );
    let (r, ctx) = reply(&sent, 487, "Request Terminated", Some("uas4"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(6));
    let out = host.take();
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .0
            .starts_with("ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\n")
    );
    let d = done.lock().unwrap().take().unwrap();
    assert_eq!((d.code, d.reason.as_str()), (487, "Request Terminated"));
}

#[test]
fn cancel_before_any_reply_waits_for_the_first_provisional() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let (sent, _done) = invite(&tm, &host, t0);
    assert!(tm.cancel_by_callid("local-inv-1", "7", t0 + Duration::from_millis(100)));
    assert!(
        host.take().is_empty(),
        "no CANCEL before the branch answered (RFC 3261 §9.1)"
    );
    let re = sends_between(&tm, &host, t0, 200, 1600);
    assert_eq!(re.len(), 2, "the INVITE keeps retransmitting: {re:?}");
    assert!(re.iter().all(|(_, m)| *m == sent));
    let (r, ctx) = reply(&sent, 183, "Session Progress", Some("uas5"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_millis(1700));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0.starts_with("CANCEL "), "{}", out[0].0);
}

/// A request received from a UAC at 127.0.0.1:5090.
fn received(method: &str, branch: &str, callid: &str, extra: &str) -> MsgCtx {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch={branch}\r\n\
         From: <sip:a@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
         CSeq: 3 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap()).with_receipt(Receipt {
        source: "127.0.0.1:5090".parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    })
}

#[test]
fn cancel_by_callid_finds_a_relayed_invite_too() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let ctx = received("INVITE", "z9hG4bKrel", "relayed-1", "");
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let sent = host.take().pop().unwrap().0;
    let (r, rctx) = reply(&sent, 180, "Ringing", Some("b"), "");
    tm.on_reply(&r, rctx, &mut NoScript, t0);
    host.take();
    assert!(tm.cancel_by_callid("relayed-1", "3", t0));
    let out = host.take();
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .0
            .starts_with("CANCEL sip:bob@example.com SIP/2.0\r\n")
    );
}

#[test]
fn reply_by_callid_answers_the_invite_a_cancel_names() {
    let (tm, host) = setup();
    let t0 = Instant::now();
    let ctx = received("INVITE", "z9hG4bKrbc", "by-callid-1", "");
    tm.create(&ctx, t0).unwrap();
    assert!(host.take()[0].0.starts_with("SIP/2.0 100 "));
    // The CANCEL's own transaction shares Call-ID and CSeq number: the INVITE is preferred.
    let cancel = received("CANCEL", "z9hG4bKrbc", "by-callid-1", "");
    tm.create(&cancel, t0).unwrap();
    assert_eq!(tm.reply_by_callid("by-callid-1", "4", 487, "Gone", t0), -4);
    assert_eq!(tm.reply_by_callid("nope", "3", 487, "Gone", t0), -4);
    assert_eq!(tm.reply_by_callid("by-callid-1", "3", 487, "Gone", t0), 1);
    let out = host.take();
    assert_eq!(out.len(), 1);
    assert!(out[0].0.starts_with("SIP/2.0 487 Gone\r\n"), "{}", out[0].0);
    assert_eq!(header(&out[0].0, "CSeq"), Some("3 INVITE"));
    assert_eq!(out[0].1, 5090);
    assert_eq!(
        tm.reply_by_callid("by-callid-1", "3", 200, "OK", t0),
        -1,
        "a final reply went already"
    );
}

/// An INVITE forked to 5070 and 5071 that rang on both; `no_cancel` as `t_relay`'s
/// `allow-no-cancel` with `Request-Disposition: no-cancel` would set it.
fn forked(tm: &Tm, host: &Recorder, t0: Instant, no_cancel: bool) -> Vec<String> {
    let ctx = received("INVITE", "z9hG4bKfork", "forked-1", "");
    let cell = tm.create(&ctx, t0).unwrap();
    if no_cancel {
        tm.allow_no_cancel(&cell);
    }
    for port in [5070, 5071] {
        tm.add_branch(
            &cell,
            &ctx,
            Some(&format!("udp:127.0.0.1:{port}")),
            &net(),
            t0,
        )
        .unwrap();
    }
    let sent: Vec<String> = host.take().into_iter().skip(1).map(|(m, _)| m).collect();
    assert_eq!(sent.len(), 2);
    for m in &sent {
        let (r, ctx) = reply(m, 180, "Ringing", Some("r"), "");
        tm.on_reply(&r, ctx, &mut NoScript, t0);
    }
    host.take();
    sent
}

#[test]
fn allow_no_cancel_lets_the_other_branches_run_after_a_2xx() {
    let t0 = Instant::now();
    // Without it, the 2xx cancels the other branch.
    let (tm, host) = setup();
    let sent = forked(&tm, &host, t0, false);
    let (r, ctx) = reply(&sent[0], 200, "OK", Some("a"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0);
    let out = host.take();
    assert!(
        out.iter()
            .any(|(m, p)| m.starts_with("CANCEL ") && *p == 5071),
        "{out:?}"
    );

    let (tm, host) = setup();
    let sent = forked(&tm, &host, t0, true);
    let (r, ctx) = reply(&sent[0], 200, "OK", Some("a"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0);
    let out = host.take();
    assert_eq!(out.len(), 1, "only the 2xx upstream, no CANCEL: {out:?}");
    assert!(out[0].0.starts_with("SIP/2.0 200 OK") && out[0].1 == 5090);
    // The second branch's 2xx goes upstream as well.
    let (r, ctx) = reply(&sent[1], 200, "OK", Some("b"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(1));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0.starts_with("SIP/2.0 200 OK") && out[0].0.contains(";tag=b"));

    // A negative reply on the other branch is ACKed and goes no further.
    let (tm, host) = setup();
    let sent = forked(&tm, &host, t0, true);
    let (r, ctx) = reply(&sent[0], 200, "OK", Some("a"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0);
    host.take();
    let (r, ctx) = reply(&sent[1], 486, "Busy Here", Some("b"), "");
    tm.on_reply(&r, ctx, &mut NoScript, t0 + Duration::from_secs(1));
    let out = host.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0.starts_with("ACK ") && out[0].1 == 5071);
}
