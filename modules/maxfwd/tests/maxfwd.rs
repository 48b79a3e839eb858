//! maxfwd from a script: the decremented value is what later checks and calls see, as
//! OpenSIPS rewrites Max-Forwards in the message itself.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Script, Worker};
use sip::SipMessage;

/// Runs `route { body }` over an OPTIONS with `Max-Forwards: mf`; the log lines and the
/// Max-Forwards the message would leave with.
fn run(body: &str, mf: u32) -> (Vec<String>, String) {
    let (lines, out) = run_raw(body, &format!("Max-Forwards: {mf}\r\n"));
    (
        lines,
        out.header_str("Max-Forwards").unwrap_or("").to_owned(),
    )
}

/// Runs `route { body }` over an OPTIONS whose Max-Forwards line is `mf_line` (empty: none);
/// the log lines and the message as it would leave.
fn run_raw(body: &str, mf_line: &str) -> (Vec<String>, SipMessage) {
    let src = format!("loadmodule \"maxfwd.so\"\nroute {{\n{body}\n}}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&maxfwd::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap();
    let text = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKmf\r\n\
         {mf_line}From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: mf\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap());
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    let out = SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))).unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), out)
}

#[test]
fn is_maxfwd_lt_sees_the_decremented_value() {
    // The README's pattern: nothing left to forward with once decremented to 0.
    let script = r#"mf_process_maxfwd_header(10);
        if (is_maxfwd_lt(1)) xlog("483\n"); else xlog("forward\n");"#;
    assert_eq!(run(script, 1), (vec!["483\n".to_owned()], "0".to_owned()));
    assert_eq!(
        run(script, 2),
        (vec!["forward\n".to_owned()], "1".to_owned())
    );
}

#[test]
fn a_second_decrement_counts_from_the_first() {
    let script = r#"mf_process_maxfwd_header(70); $var(r) = mf_process_maxfwd_header(70);
        xlog("$var(r)\n");"#;
    assert_eq!(run(script, 70), (vec!["1\n".to_owned()], "68".to_owned()));
    assert_eq!(run(script, 1), (vec!["-1\n".to_owned()], "0".to_owned()));
}

// OpenSIPS `add_maxfwd_header` anchors the new header before the first received one.
#[test]
fn an_added_header_goes_above_the_received_ones() {
    let (l, out) = run_raw(
        r#"$var(r) = mf_process_maxfwd_header(10); xlog("$var(r)\n");"#,
        "",
    );
    assert_eq!(l, ["2\n"]);
    let names: Vec<&str> = out.headers().map(|h| h.name_str).collect();
    assert_eq!(names.first(), Some(&"Max-Forwards"), "{names:?}");
    assert_eq!(out.header_str("Max-Forwards"), Some("10"));
}

// Values are read as OpenSIPS' `str2s` reads them: an empty one is 0 (483), more than five
// digits is an error.
#[test]
fn values_are_read_as_opensips_reads_them() {
    let script = r#"$var(r) = mf_process_maxfwd_header(10); $var(l) = is_maxfwd_lt(5);
        xlog("$var(r) $var(l)\n");"#;
    assert_eq!(run_raw(script, "Max-Forwards: \r\n").0, ["-1 1\n"]);
    assert_eq!(run_raw(script, "Max-Forwards: 000070\r\n").0, ["-2 -3\n"]);
    assert_eq!(run_raw(script, "Max-Forwards: 100000\r\n").0, ["-2 -3\n"]);
    assert_eq!(run_raw(script, "Max-Forwards: 00070\r\n").0, ["1 -1\n"]);
}
