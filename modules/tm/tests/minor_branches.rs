//! `minor_branch_flag` (OpenSIPS t_reply.c `t_pick_branch`): the transaction does not wait for
//! branches with that flag; once the others are done it answers, and the minor ones still
//! pending are cancelled.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::{LOCAL, NoRoutes, Recorder, UAC, net, reply_to, request_text};
use engine::{MsgCtx, Receipt};
use sip::SipMessage;
use tm::{Params, Tm};

fn status_lines(sent: &[String]) -> Vec<&str> {
    sent.iter()
        .filter(|m| m.starts_with("SIP/2.0 "))
        .map(|m| m.lines().next().unwrap())
        .collect()
}

#[test]
fn a_minor_branch_is_not_waited_for_and_is_cancelled() {
    const MINOR: u32 = 5;
    let host = Arc::new(Recorder::default());
    let params = Params {
        minor_flag: Some(MINOR),
        ..Params::default()
    };
    let tm = Tm::new(params, host.clone());
    let t0 = Instant::now();
    let ctx = MsgCtx::new(SipMessage::parse(Bytes::from(request_text("INVITE", "minor"))).unwrap())
        .with_receipt(Receipt {
            source: UAC.parse().unwrap(),
            proto: "udp",
            local: LOCAL.parse().unwrap(),
            conn: None,
            proxy: None,
        });
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &net(), t0)
        .unwrap();
    let mut minor = ctx.clone();
    minor.branch_flags = 1 << MINOR;
    tm.add_branch(&cell, &minor, Some("udp:127.0.0.1:5071"), &net(), t0)
        .unwrap();
    let sent = host.take();
    let invites: Vec<&String> = sent.iter().filter(|m| m.starts_with("INVITE ")).collect();
    assert_eq!(invites.len(), 2);
    // The minor branch rings; the other one is busy: the 486 goes upstream at once.
    let ring = reply_to(invites[1], 180, "Ringing", Some("m1"));
    let busy = reply_to(invites[0], 486, "Busy Here", Some("b0"));
    let deliver = |r: &SipMessage| {
        let rctx = MsgCtx::new(r.clone());
        assert!(tm.on_reply(r, rctx, &mut NoRoutes, t0));
    };
    deliver(&ring);
    deliver(&busy);
    let out = host.take();
    assert!(
        status_lines(&out).contains(&"SIP/2.0 486 Busy Here"),
        "{out:?}"
    );
    let cancels: Vec<&String> = out.iter().filter(|m| m.starts_with("CANCEL ")).collect();
    assert_eq!(cancels.len(), 1, "{out:?}");
    // The CANCEL is the minor branch's (its Via branch), with no Reason.
    let branch = |m: &str| {
        m.split("branch=")
            .nth(1)
            .unwrap()
            .split(['\r', ';'])
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(branch(cancels[0]), branch(invites[1]));
    assert!(!cancels[0].contains("Reason:"), "{}", cancels[0]);
}
