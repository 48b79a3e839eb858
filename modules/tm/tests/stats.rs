//! tm's statistics move with the transactions (one test alone in its binary: the counters are
//! process-wide).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::forward::{Socket, Sockets};
use engine::{MsgCtx, Outbound, Outcome, Receipt};
use sip::SipMessage;
use tm::{Host, Params, Runner, SendDone, Tm};

#[derive(Default)]
struct Sink(Mutex<Vec<Outbound>>);

impl Host for Sink {
    fn send(&self, out: Outbound, done: Option<SendDone>) {
        self.0.lock().unwrap().push(out);
        if let Some(done) = done {
            done(Ok(()));
        }
    }
}

struct NoScript;

impl Runner for NoScript {
    fn run(&mut self, _: usize, _: &mut MsgCtx) -> Outcome {
        Outcome::Exit
    }
}

fn stat(name: &str) -> i64 {
    engine::stats::select(&format!("tm:{name}"))
        .first()
        .map_or(-1, |s| s.get())
}

#[test]
fn counters_follow_a_transaction_from_creation_to_deletion() {
    tm::register_stats();
    let host = Arc::new(Sink::default());
    let tm = Tm::new(Params::default(), host.clone());
    let t0 = Instant::now();
    let text = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKst\r\n\
                From: <sip:a@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: st\r\n\
                CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(text.as_bytes())).unwrap())
        .with_receipt(Receipt {
            source: "127.0.0.1:5090".parse().unwrap(),
            proto: "udp",
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        });
    let net = Sockets {
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
    };
    let before = (
        stat("UAS_transactions"),
        stat("UAC_transactions"),
        stat("inuse_transactions"),
    );
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net, t0)
        .unwrap();
    assert_eq!(stat("UAS_transactions"), before.0 + 1);
    // A relayed branch is no UAC transaction: those are the ones rsips starts (OpenSIPS).
    assert_eq!(stat("UAC_transactions"), before.1);
    assert_eq!(stat("inuse_transactions"), before.2 + 1);
    // The request's resends over UDP, by back-off step: T1, 2·T1, 4·T1, then T2.
    let steps = [
        "retransmission_req_T1_1",
        "retransmission_req_T1_2",
        "retransmission_req_T1_3",
        "retransmission_req_T2",
    ];
    let resent: Vec<i64> = steps.iter().map(|s| stat(s)).collect();
    for ms in [500, 1500, 3500, 7500] {
        tm.tick(t0 + Duration::from_millis(ms), &mut NoScript);
    }
    for (step, before) in steps.iter().zip(resent) {
        assert_eq!(stat(step), before + 1, "{step}");
    }
    let (timeouts, local, fourxx) = (
        stat("timeout_finalresponse"),
        stat("local_replies"),
        stat("4xx_transactions"),
    );
    // fr_timeout (30 s): a local 408; then wt_timer removes the transaction.
    tm.tick(t0 + Duration::from_secs(31), &mut NoScript);
    assert_eq!(stat("timeout_finalresponse"), timeouts + 1);
    assert_eq!(stat("local_replies"), local + 1);
    assert_eq!(stat("4xx_transactions"), fourxx + 1);
    tm.tick(t0 + Duration::from_secs(40), &mut NoScript);
    assert!(tm.is_empty());
    assert_eq!(
        stat("inuse_transactions"),
        before.2,
        "the gauge comes back down"
    );
}
