//! `$rc` / `$retcode` after a function or route call used as a condition: OpenSIPS stores the
//! call's own return code, so the branch taken (then or else) reads it, not the code of the
//! statement before the `if`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, FnCtx, FnSpec, MemoryLog, MsgCtx, Param, Routes, Script, Value, Worker};
use sip::SipMessage;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

/// Stand-ins for the sipmsgops functions (the engine cannot link the module itself).
fn is_method(ctx: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let want = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    if ctx.msg.msg.method_str() == Some(want.as_str()) {
        1
    } else {
        -1
    }
}

fn has_body(ctx: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    if ctx.msg.msg.body().is_empty() { -1 } else { 1 }
}

/// Returns its integer argument as the code (`-3` and `7` are not just true/false).
fn code_of(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    args.first().and_then(Value::as_int).unwrap_or(1)
}

static FAKE: engine::ModuleSpec = engine::ModuleSpec {
    name: "sipmsgops",
    functions: &[
        FnSpec {
            name: "is_method",
            params: &[(Param::Str, false)],
            routes: Routes::ALL,
            run: is_method,
        },
        FnSpec {
            name: "has_body",
            params: &[(Param::Str, true)],
            routes: Routes::ALL,
            run: has_body,
        },
        FnSpec {
            name: "code_of",
            params: &[(Param::Int, false)],
            routes: Routes::ALL,
            run: code_of,
        },
    ],
    params: &[],
};

fn logs(body: &str) -> Vec<String> {
    let src = format!("loadmodule \"sipmsgops.so\"\n{body}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&FAKE],
        builtin: vec![],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    });
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(INVITE)).unwrap());
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    log.lines.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn a_function_in_an_if_condition_sets_rc_for_the_then_branch() {
    let l = logs(
        r#"route {
            $var(x) = "before";
            if (is_method("INVITE")) { $var(x) = $rc; }
            xlog("x=$var(x)\n");
            if (!has_body()) { $var(y) = $rc; }
            xlog("y=$var(y)\n");
            if (code_of(7)) { xlog("rc=$rc retcode=$retcode\n"); }
        }"#,
    );
    assert_eq!(l, ["x=1\n", "y=-1\n", "rc=7 retcode=7\n"]);
}

#[test]
fn a_false_condition_sets_rc_for_the_else_branch() {
    let l = logs(
        r#"route {
            $var(x) = 1;
            if (is_method("REGISTER")) { xlog("no\n"); } else { xlog("else rc=$rc\n"); }
            if (code_of(-3)) { xlog("no\n"); } else { xlog("else rc=$rc\n"); }
        }"#,
    );
    assert_eq!(l, ["else rc=-1\n", "else rc=-3\n"]);
}

#[test]
fn a_route_in_an_if_condition_sets_rc() {
    let l = logs(
        r#"route {
            $var(x) = 0;
            if (route(r)) { $var(x) = $rc; }
            xlog("x=$var(x)\n");
            if (route(neg)) { xlog("no\n"); } else { xlog("else rc=$rc\n"); }
        }
        route[r] { $var(inner) = 1; return(5); }
        route[neg] { return(-4); }"#,
    );
    assert_eq!(l, ["x=5\n", "else rc=-4\n"]);
}

#[test]
fn the_last_call_of_a_compound_condition_sets_rc() {
    let l = logs(
        r#"route {
            if (is_method("INVITE") && code_of(9)) { xlog("and rc=$rc\n"); }
            if (code_of(-2) || code_of(4)) { xlog("or rc=$rc\n"); }
            if ($var(unset) == 1 || code_of(-6)) { xlog("no\n"); } else { xlog("else rc=$rc\n"); }
        }"#,
    );
    assert_eq!(l, ["and rc=9\n", "or rc=4\n", "else rc=-6\n"]);
}

#[test]
fn while_and_expression_calls_set_rc() {
    let l = logs(
        r#"route {
            $var(i) = 0;
            while (code_of(3) && $var(i) < 1) { xlog("while rc=$rc\n"); $var(i) += 1; }
            $var(t) = 1;
            if ($var(t) == 1 && !code_of(-8)) { xlog("not rc=$rc\n"); }
        }"#,
    );
    assert_eq!(l, ["while rc=3\n", "not rc=-8\n"]);
}
