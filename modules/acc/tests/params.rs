//! acc's module parameters in log mode: `report_cancels` (CANCEL transactions are reported only
//! when it is on) and `early_media` (a 183 is accounted only when it is on).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine::{Accounting, Available, MsgCtx, Script};
use sip::SipMessage;

/// Every accounting line written, in order, with its level and syslog facility.
static LINES: Mutex<Vec<(i32, String, String)>> = Mutex::new(Vec::new());
/// The tests share the writer: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The lines written since the last call.
fn captured() -> Vec<String> {
    written().into_iter().map(|(_, _, l)| l).collect()
}

/// [`captured`] with each line's level and facility.
fn written() -> Vec<(i32, String, String)> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

fn script(modparams: &str) -> Arc<Script> {
    compile(modparams, "exit;")
}

/// A script loading acc with `modparams` and `route { body }`.
fn compile(modparams: &str, body: &str) -> Arc<Script> {
    let src = format!("loadmodule \"acc.so\"\n{modparams}\nroute {{ {body} }}\n");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&acc::MODULE],
        builtin: Vec::new(),
        argv: Vec::new(),
    };
    Arc::new(Script::compile(&parsed.config, &sources, &available).unwrap())
}

/// An accounted (`log`) request of `method` handled by `script`.
fn request(method: &str, script: &Arc<Script>) -> MsgCtx {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKacc\r\n\
         From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\nCall-ID: acc-1\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap());
    ctx.acc = Some(Accounting {
        log: true,
        ..Accounting::default()
    });
    ctx.script = Some(Arc::clone(script));
    ctx
}

fn setup() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    engine::hooks::set_line_writer(Box::new(|level, facility, text| {
        LINES
            .lock()
            .unwrap()
            .push((level, facility.unwrap_or("").to_owned(), text.to_owned()))
    }));
    captured();
    guard
}

#[test]
fn cancel_transactions_are_reported_only_with_report_cancels() {
    let _serial = setup();
    let quiet = script("modparam(\"acc\", \"report_cancels\", 0)");
    acc::report(&request("CANCEL", &quiet), 200, "OK", "t1");
    acc::report(&request("INVITE", &quiet), 200, "OK", "t1");
    let lines = captured();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(";method=INVITE;"), "{lines:?}");

    let loud = script("modparam(\"acc\", \"report_cancels\", 1)");
    acc::report(&request("CANCEL", &loud), 200, "canceling", "t1");
    let lines = captured();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("ACC: transaction answered: timestamp=")
            && lines[0].contains(
                ";method=CANCEL;from_tag=f1;to_tag=t1;call_id=acc-1;code=200;reason=canceling"
            ),
        "{lines:?}"
    );
}

#[test]
fn early_media_accounts_provisional_replies_with_a_body() {
    let _serial = setup();
    let off = script("");
    acc::report_early(
        &request("INVITE", &off),
        183,
        "Session Progress",
        "t2",
        true,
    );
    assert_eq!(captured(), Vec::<String>::new());

    let on = script("modparam(\"acc\", \"early_media\", 1)");
    // OpenSIPS: any provisional reply with a body, whatever its code; none without one.
    acc::report_early(&request("INVITE", &on), 183, "Progress NoBody", "t2", false);
    assert_eq!(captured(), Vec::<String>::new(), "no body, no early media");
    acc::report_early(&request("INVITE", &on), 180, "Ringing", "t2", true);
    let lines = captured();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(";method=INVITE;") && lines[0].contains(";code=180;reason=Ringing"),
        "{lines:?}"
    );
}

/// Runs `route { body }` over an unaccounted request of `method`; returns what it left in the
/// context and the lines it logged.
fn run(modparams: &str, body: &str, method: &str) -> (Option<Accounting>, Vec<String>) {
    let script = compile(modparams, body);
    let mut ctx = request(method, &script);
    ctx.acc = None;
    let (mut worker, mut log) = (engine::Worker::default(), engine::MemoryLog::default());
    script.run(&mut worker, &mut ctx, &mut log).unwrap();
    (ctx.acc, log.lines.into_iter().map(|(_, l)| l).collect())
}

#[test]
fn cdr_needs_the_dialog_module_and_cancel_needs_report_cancels() {
    let _serial = setup();
    // No dialog module in rsips: `cdr` is refused with OpenSIPS' error, the rest applies.
    let (acc, log) = run("", r#"do_accounting("log", "cdr|failed");"#, "INVITE");
    let acc = acc.unwrap();
    assert!(acc.log && acc.failed && !acc.cdr, "{acc:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("dialog module not loaded - cdrs cannot be generated")),
        "{log:?}"
    );
    // A CANCEL is not accounted unless report_cancels is on.
    let (acc, log) = run("", r#"do_accounting("log");"#, "CANCEL");
    assert_eq!(acc, None);
    assert!(
        log.iter()
            .any(|l| l.contains("'report_cancels' modparam not set")),
        "{log:?}"
    );
    let (acc, log) = run(
        "modparam(\"acc\", \"report_cancels\", 1)",
        r#"do_accounting("log");"#,
        "CANCEL",
    );
    assert!(acc.is_some_and(|a| a.log), "{log:?}");
}

#[test]
fn extra_fields_follow_the_core_fields_of_the_log_line() {
    let _serial = setup();
    let (_, log) = run(
        "modparam(\"acc\", \"extra_fields\", \"log: src->src_ip; dst\")\n\
         modparam(\"acc\", \"extra_fields\", \"db: src->col_src\")",
        r#"$acc_extra(src) = "192.0.2.1";
           $acc_extra(other) = "x";
           xlog("read=$acc_extra(src) none=$acc_extra(dst)\n");
           acc_log_request("200 Done");
           $acc_extra(src) = NULL;
           acc_log_request("404 Gone");"#,
        "MESSAGE",
    );
    assert_eq!(
        log.first().map(String::as_str),
        Some("read=192.0.2.1 none=<null>\n")
    );
    let lines = captured();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].ends_with(";code=200;reason=Done;src_ip=192.0.2.1;dst="),
        "only the log backend's fields, in their order: {lines:?}"
    );
    assert!(
        lines[1].ends_with(";code=404;reason=Gone;src_ip=;dst="),
        "{lines:?}"
    );
}

// detect_direction: an in-dialog request going upstream (our Route's ftag is not its From tag)
// is logged with From and To swapped; off (the default), or downstream, it is logged as it came.
#[test]
fn detect_direction_swaps_the_tags_of_upstream_requests() {
    let _serial = setup();
    let line = |modparams: &str, rr_params: &str| {
        let script = compile(modparams, r#"do_accounting("log");"#);
        let mut ctx = request("BYE", &script);
        ctx.acc = None;
        ctx.rr_params = Some(rr_params.to_owned());
        let (mut worker, mut log) = (engine::Worker::default(), engine::MemoryLog::default());
        script.run(&mut worker, &mut ctx, &mut log).unwrap();
        acc::report(&ctx, 200, "OK", "t9");
        let lines = captured();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].clone()
    };
    let on = "modparam(\"acc\", \"detect_direction\", 1)";
    let off = "modparam(\"acc\", \"detect_direction\", 0)";
    assert!(
        line(on, "lr;ftag=callee").contains(";from_tag=t9;to_tag=f1;"),
        "upstream, swapped"
    );
    assert!(
        line(on, "lr;ftag=f1").contains(";from_tag=f1;to_tag=t9;"),
        "downstream"
    );
    assert!(
        line(off, "lr;ftag=callee").contains(";from_tag=f1;to_tag=t9;"),
        "detection off"
    );
    assert!(
        line("", "lr;ftag=callee").contains(";from_tag=f1;to_tag=t9;"),
        "off by default"
    );
}

// acc's own level and facility (OpenSIPS: NOTICE and LOG_DAEMON by default, whatever the
// global syslog_facility); with accounting state the line has created= and setuptime=.
#[test]
fn lines_go_out_at_accs_level_and_facility() {
    let _serial = setup();
    acc::report(&request("INVITE", &script("")), 200, "OK", "t1");
    let (level, facility, line) = written().pop().unwrap();
    assert_eq!((level, facility.as_str()), (2, "LOG_DAEMON"));
    let ts = line
        .strip_prefix("ACC: transaction answered: timestamp=")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    assert!(
        line.contains(&format!(
            "timestamp={ts};created=0;setuptime={ts};method=INVITE;"
        )),
        "{line}"
    );
    let custom = script(
        "modparam(\"acc\", \"log_level\", 1)\nmodparam(\"acc\", \"log_facility\", \"LOG_LOCAL5\")",
    );
    acc::report(&request("INVITE", &custom), 200, "OK", "t1");
    let (level, facility, _) = written().pop().unwrap();
    assert_eq!((level, facility.as_str()), (1, "LOG_LOCAL5"));
}

// acc_log_request: three leading digits are the code; a bare code gets its standard phrase; no
// accounting state, no created/setuptime.
#[test]
fn acc_log_request_reads_the_code_as_opensips_does() {
    let _serial = setup();
    let (_, _) = run(
        "",
        r#"acc_log_request("404"); acc_log_request("200OK"); acc_log_request("Just text");"#,
        "MESSAGE",
    );
    let lines = captured();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].ends_with(";code=404;reason=Not Found"),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(";code=200;reason=OK"), "{}", lines[1]);
    assert!(
        lines[2].ends_with(";code=;reason=Just text"),
        "{}",
        lines[2]
    );
    assert!(!lines[0].contains("created="), "{}", lines[0]);
}

// drop_accounting: false without accounting; with a type and flags only those go, and a
// type left without flags goes too.
#[test]
fn drop_accounting_drops_what_it_is_told() {
    let _serial = setup();
    let (acc, log) = run("", r#"if (!drop_accounting()) xlog("none\n");"#, "INVITE");
    assert_eq!(acc, None);
    assert!(log.iter().any(|l| l == "none\n"), "{log:?}");
    let (acc, _) = run(
        "",
        r#"do_accounting("log", "missed|failed"); drop_accounting("log", "missed");"#,
        "INVITE",
    );
    let acc = acc.unwrap();
    assert!(acc.log && acc.failed && !acc.missed, "{acc:?}");
    let (acc, _) = run(
        "",
        r#"do_accounting("log", "missed"); drop_accounting("log", "missed");"#,
        "INVITE",
    );
    assert_eq!(acc, None);
    let (acc, _) = run(
        "",
        r#"do_accounting("log", "failed"); drop_accounting();"#,
        "INVITE",
    );
    assert_eq!(acc, None);
}

// Multi-leg accounting: `leg_fields`, `acc_new_leg()`, `$acc_leg`, `$acc_current_leg`; every
// leg's fields follow the extra ones, and the first leg is there from the start.
#[test]
fn legs_are_logged_after_the_extra_fields() {
    let _serial = setup();
    let (_, log) = run(
        "modparam(\"acc\", \"extra_fields\", \"log: src\")\n\
         modparam(\"acc\", \"leg_fields\", \"log: dst->dst_ouser; why\")",
        r#"$acc_extra(src) = "a";
           xlog("leg=$acc_current_leg\n");
           $acc_leg(dst) = "alice";
           acc_new_leg();
           $acc_leg(dst) = "bob";
           $acc_leg(why) = "busy";
           xlog("leg=$acc_current_leg dst=$acc_leg(dst)\n");
           acc_log_request("200 OK");"#,
        "INVITE",
    );
    assert_eq!(log, ["leg=0\n", "leg=1 dst=bob\n"]);
    let lines = captured();
    assert!(
        lines[0].ends_with(";code=200;reason=OK;src=a;dst_ouser=alice;why=;dst_ouser=bob;why=busy"),
        "{lines:?}"
    );
    let (_, log) = run("", r#"if (!acc_new_leg()) xlog("no legs\n");"#, "INVITE");
    assert!(log.iter().any(|l| l == "no legs\n"), "{log:?}");
}
