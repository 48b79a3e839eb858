//! textops in an onreply_route: what it rewrites reaches the reply tm relays upstream (tm
//! relays the received reply untouched when the route recorded no edit).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Outbound, Outcome, Receipt, Script, Worker};
use sip::SipMessage;

/// Keeps what tm sends.
#[derive(Default)]
struct Recorder(Mutex<Vec<Outbound>>);

impl tm::Host for Recorder {
    fn send(&self, out: Outbound, done: Option<tm::SendDone>) {
        self.0.lock().unwrap().push(out);
        if let Some(done) = done {
            done(Ok(()));
        }
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        let sent = std::mem::take(&mut *self.0.lock().unwrap());
        sent.iter()
            .map(|o| String::from_utf8_lossy(&o.data).into_owned())
            .collect()
    }
}

/// Runs the script's routes for tm.
struct Routes {
    script: Script,
    worker: Worker,
    log: MemoryLog,
}

impl tm::Runner for Routes {
    fn reply_route(&self) -> Option<usize> {
        self.script.reply_route()
    }

    fn run(&mut self, route: usize, ctx: &mut MsgCtx) -> Outcome {
        self.script
            .run_index(route, &mut self.worker, ctx, &mut self.log)
            .unwrap()
    }
}

const CFG: &str = r#"socket=udp:127.0.0.1:5060
loadmodule "proto_udp.so"
loadmodule "textops.so"
route { }
onreply_route {
    if (replace("^x-orig: a", "X-Orig: b")) xlog("replaced\n");
    if (search("^X-Orig: a")) xlog("as-received\n");
}"#;

fn compile() -> Script {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), CFG.into());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&textops::MODULE],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available).unwrap()
}

fn receipt(source: &str) -> Receipt {
    Receipt {
        source: source.parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    }
}

/// A 180 to the request tm relayed, with an `X-Orig: a` header.
fn ringing(sent: &str) -> SipMessage {
    let mut text = String::from("SIP/2.0 180 Ringing\r\n");
    for line in sent.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            text.push_str(&format!("{line}\r\n"));
        } else if name == "To" {
            text.push_str(&format!("{line};tag=b1\r\n"));
        }
    }
    text.push_str("X-Orig: a\r\nContent-Length: 0\r\n\r\n");
    SipMessage::parse(Bytes::from(text)).unwrap()
}

#[test]
fn an_onreply_rewrite_is_relayed() {
    let script = compile();
    let reply_route = script.reply_route();
    assert!(reply_route.is_some());
    let host = Arc::new(Recorder::default());
    let tm = tm::Tm::new(tm::Params::default(), host.clone());
    let t0 = Instant::now();
    let invite = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKtx1\r\n\
        From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
        Call-ID: onreply-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(invite.as_bytes())).unwrap())
        .with_receipt(receipt("127.0.0.1:5090"));
    let cell = tm.create(&ctx, t0).unwrap();
    tm.add_branch(&cell, &ctx, Some("udp:127.0.0.1:5070"), &script.net(), t0)
        .unwrap();
    let sent = host.take().pop().unwrap();
    assert!(sent.starts_with("INVITE "), "{sent}");
    let reply = ringing(&sent);
    let mut routes = Routes {
        script,
        worker: Worker::default(),
        log: MemoryLog::default(),
    };
    let rctx = MsgCtx::new(reply.clone()).with_receipt(receipt("127.0.0.1:5070"));
    assert!(tm.on_reply(&reply, rctx, &mut routes, t0));
    let said: Vec<&str> = routes.log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(said, vec!["replaced\n", "as-received\n"]);
    let relayed: Vec<String> = host
        .take()
        .into_iter()
        .filter(|m| m.starts_with("SIP/2.0 180"))
        .collect();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert!(relayed[0].contains("\r\nX-Orig: b\r\n"), "{}", relayed[0]);
    assert!(!relayed[0].contains("X-Orig: a"), "{}", relayed[0]);
}
