//! `script_trace(level, format[, info])`: from the call on, every statement the message runs
//! is logged as OpenSIPS logs it — `[Script Trace][file:line][info][class action] -> (format)`
//! — through the routes it calls, until `script_trace()` turns it off; a trace level above
//! the log level prints nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use bytes::Bytes;
use sip::SipMessage;

const OPTIONS: &str = "OPTIONS sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\n\
To: <sip:bob@biloxi.com>\r\nFrom: <sip:alice@atlanta.com>;tag=1\r\nCall-ID: c1\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn run(src: &str) -> Vec<String> {
    let msg = SipMessage::parse(Bytes::from_static(OPTIONS.as_bytes())).unwrap();
    common::run(&common::compile(src), msg).0
}

#[test]
fn statements_are_traced_from_the_call_on_until_it_is_turned_off() {
    let l = run(r#"route {
    $var(n) = 1;
    script_trace(2, "$rm n=$var(n)", "me");
    $var(n) = $var(n) + 1;
    if ($var(n) == 2)
        route(sub);
    script_trace();
    $var(n) = 9;
}
route[sub] {
    xlog("in sub\n");
}"#);
    assert_eq!(
        l,
        [
            "[Script Trace][t.cfg:4][me][assign equal] -> (OPTIONS n=1)\n",
            "[Script Trace][t.cfg:5][me][core if] -> (OPTIONS n=2)\n",
            "[Script Trace][t.cfg:6][me][route sub] -> (OPTIONS n=2)\n",
            "[Script Trace][t.cfg:11][me][core xlog] -> (OPTIONS n=2)\n",
            "in sub\n",
            "[Script Trace][t.cfg:7][me][core script_trace] -> (OPTIONS n=2)\n",
        ]
    );
    // Without the info part; a level above the log level prints nothing.
    let l = run(r#"route {
    script_trace(2, "x");
    $var(a) += 1;
    script_trace(9, "hidden");
    $var(a) = 2;
}"#);
    assert_eq!(
        l,
        [
            "[Script Trace][t.cfg:3][assign plus-eq] -> (x)\n",
            "[Script Trace][t.cfg:4][core script_trace] -> (x)\n",
        ]
    );
}
