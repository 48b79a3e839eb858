//! Forms real configs use that OpenSIPS' parser accepts: blanks before a number or a
//! variable in a transformation (`{s.substr, 1, $var(l)}`), `s.select`'s separator as the one
//! character right after its comma (a space included), and an xlog level given as a variable
//! in quotes (`xlog("$var(level)", …)`), and `async(f(), resume)` / `launch(f(), report)`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{compile, run};
use sip::SipMessage;

#[test]
fn blanks_before_numbers_and_variables_and_the_select_separator() {
    let script = compile(
        r#"route {
    $var(s) = "abcdef";
    $var(l) = 3;
    xlog("[$(var(s){s.substr, 1, $var(l)})]\n");
    $var(w) = "one two;three";
    xlog("[$(var(w){s.select,1, })] [$(var(w){s.select, 0,;})]\n");
}"#,
    );
    let msg = SipMessage::parse(bytes::Bytes::from_static(
        b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKt\r\n\
From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let (logs, _) = run(&script, msg);
    assert_eq!(logs, ["[bcd]\n", "[two;three] [one two]\n"]);
}

#[test]
fn an_xlog_level_in_a_quoted_variable_is_read_at_run_time() {
    let script = compile(
        r#"route {
    $var(level) = 1;
    xlog("$var(level)", "warned\n");
    $var(level) = 4;
    xlog("$var(level)", "too verbose\n");
}"#,
    );
    let msg = SipMessage::parse(bytes::Bytes::from_static(
        b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKt\r\n\
From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let (logs, _) = run(&script, msg);
    // xlog_level defaults to 2 (NOTICE): level 1 is written, level 4 (debug) is not.
    assert_eq!(logs, ["warned\n"]);
}

/// `async(f(), resume)`: the function runs, the resume route follows with its result in `$rc`,
/// and the calling route ends; `launch` goes on after its report route.
#[test]
fn async_resumes_and_ends_the_route_launch_goes_on() {
    let script = compile(
        r#"route {
    launch(xlog("launched\n"), report);
    xlog("after launch\n");
    async(xlog("working\n"), resume);
    xlog("never\n");
}
route[report] { xlog("report rc=$rc\n"); }
route[resume] { xlog("resumed rc=$rc\n"); }"#,
    );
    let msg = SipMessage::parse(bytes::Bytes::from_static(
        b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKt\r\n\
From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let (logs, _) = run(&script, msg);
    assert_eq!(
        logs,
        [
            "launched\n",
            "report rc=1\n",
            "after launch\n",
            "working\n",
            "resumed rc=1\n"
        ]
    );
}
