//! The interpreter over built messages: every statement form it runs, OpenSIPS' comparison,
//! truth and arithmetic rules, `$var` persistence, flags, R-URI functions, transformations and
//! the run budgets.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{
    Available, Limits, MemoryLog, MsgCtx, Outcome, Receipt, Script, ScriptError, Value, Worker,
};
use sip::SipMessage;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n";

fn compile(src: &str) -> Script {
    compile_with(src, &Available::default())
}

fn compile_with(src: &str, available: &Available) -> Script {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    match Script::compile(&parsed.config, &sources, available) {
        Ok(s) => s,
        Err(d) => panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        ),
    }
}

fn ctx() -> MsgCtx {
    MsgCtx::new(SipMessage::parse(Bytes::from_static(INVITE)).unwrap()).with_receipt(Receipt {
        source: "192.0.2.10:5070".parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    })
}

/// Runs the main route once; returns the log lines and the context.
fn run(src: &str) -> (Vec<String>, MsgCtx, Outcome) {
    let script = compile(src);
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    let out = script.run(&mut w, &mut c, &mut log).unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), c, out)
}

fn logs(src: &str) -> Vec<String> {
    run(src).0
}

#[test]
fn string_comparisons_are_case_insensitive_and_regexes_unanchored() {
    let l = logs(
        r#"route {
        if ($rm == "invite") xlog("eq\n");
        if ($rU != "BOB") xlog("wrong\n"); else xlog("ne-false\n");
        if ($ru =~ "BOB@biloxi") xlog("re\n");
        if ($ru !~ "^tel:") xlog("nre\n");
        if ($fd < "b") xlog("lt\n");
    }"#,
    );
    assert_eq!(l, ["eq\n", "ne-false\n", "re\n", "nre\n", "lt\n"]);
}

#[test]
fn numbers_null_and_networks() {
    let l = logs(
        r#"route {
        $var(a) = 5;
        if ($var(a) > 3) xlog("gt\n");
        if ($var(a) == 5 && $var(a) <= 5) xlog("eq\n");
        if ($hdr(X-None) == NULL) xlog("null\n");
        if ($hdr(X-None) != "x") xlog("null-ne\n");
        if ($hdr(X-None) == "x") xlog("never\n");
        if ($si == 192.0.2.0/24) xlog("net\n");
        if ($si != 10.0.0.0/8) xlog("not-net\n");
        if ($rU == 5) xlog("type-error-is-false\n");
    }"#,
    );
    assert_eq!(
        l,
        ["gt\n", "eq\n", "null\n", "null-ne\n", "net\n", "not-net\n"]
    );
}

#[test]
fn and_or_share_one_precedence_level() {
    // OpenSIPS: `1 || 0 && 0` is `(1 || 0) && 0`.
    let l = logs(
        r#"route {
        $var(t) = 1; $var(f) = 0;
        if ($var(t) || $var(f) && $var(f)) xlog("c-precedence\n"); else xlog("left-to-right\n");
        if (!$var(f)) xlog("not\n");
    }"#,
    );
    assert_eq!(l, ["left-to-right\n", "not\n"]);
}

#[test]
fn arithmetic_is_32_bit_and_one_level() {
    let script = compile(
        r#"route {
        $var(a) = 2 + 3 * 4;
        $var(b) = 2147483647;
        $var(b) += 1;
        $var(c) = 7;
        $var(c) /= 0;
        $var(d) = "n=" + $var(a);
        $var(e) = 1 | 2 + 3;
        $var(f) = ~0;
        $var(g) = 17 % 5;
    }"#,
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    assert_eq!(script.var(&w, "a"), Value::Int(20));
    assert_eq!(script.var(&w, "b"), Value::Int(-2147483648));
    assert_eq!(
        script.var(&w, "c"),
        Value::Int(7),
        "division by zero leaves the variable"
    );
    assert_eq!(script.var(&w, "d"), Value::str("n=20"));
    assert_eq!(script.var(&w, "e"), Value::Int(5));
    assert_eq!(script.var(&w, "f"), Value::Int(-1));
    assert_eq!(script.var(&w, "g"), Value::Int(2));
}

#[test]
fn vars_persist_across_messages_in_a_worker() {
    let script = compile(
        r#"route {
        if ($var(n) == NULL) $var(n) = 0;
        $var(n) += 1;
        xlog("$var(n)\n");
    }"#,
    );
    let mut w = Worker::default();
    let mut log = MemoryLog::default();
    for _ in 0..3 {
        script.run(&mut w, &mut ctx(), &mut log).unwrap();
    }
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["1\n", "2\n", "3\n"]);
}

#[test]
fn while_switch_break_and_fallthrough() {
    let l = logs(
        r#"route {
        $var(i) = 0;
        while ($var(i) < 5) { $var(i) += 1; if ($var(i) == 3) break; }
        xlog("i=$var(i)\n");
        switch ($rm) {
            case "OPTIONS": xlog("options\n"); break;
            case "INVITE": xlog("invite\n");
            case "BYE": xlog("fell-through\n"); break;
            default: xlog("default\n");
        }
        switch ($var(i)) { case 9: xlog("nine\n"); break; default: xlog("other\n"); }
    }"#,
    );
    assert_eq!(l, ["i=3\n", "invite\n", "fell-through\n", "other\n"]);
}

#[test]
fn routes_params_return_codes_and_retcode() {
    let l = logs(
        r#"route {
        route(check, "first", 2);
        xlog("rc=$rc\n");
        if (route(negative)) xlog("never\n"); else xlog("negative-is-false\n");
        $var(r) = route(check, "x", 1);
        xlog("r=$var(r)\n");
    }
    route[check] { xlog("p1=$param(1) p2=$param(2)\n"); return(5); }
    route[negative] { return(-2); }"#,
    );
    assert_eq!(
        l,
        [
            "p1=first p2=2\n",
            "rc=5\n",
            "negative-is-false\n",
            "p1=x p2=1\n",
            "r=5\n"
        ]
    );
}

#[test]
fn exit_drop_and_zero_return_codes_stop_the_script() {
    let (l, _, out) = run(r#"route { xlog("a\n"); exit; xlog("b\n"); }"#);
    assert_eq!(
        (l.as_slice(), out),
        (&["a\n".to_owned()][..], Outcome::Exit)
    );
    let (_, _, out) = run(r#"route { drop; }"#);
    assert_eq!(out, Outcome::Drop);
    let (l, _, _) =
        run(r#"route { route(zero); xlog("not reached\n"); } route[zero] { return(0); }"#);
    assert!(
        l.is_empty(),
        "return(0) in a sub-route ends the caller too: {l:?}"
    );
    let (l, _, out) = run(r#"route { route(d); xlog("not reached\n"); } route[d] { drop; }"#);
    assert!(l.is_empty());
    assert_eq!(out, Outcome::Drop);
}

#[test]
fn flags() {
    let script = compile(
        r#"route {
        setflag("NAT"); setflag("ACC");
        resetflag("ACC");
        if (isflagset("NAT")) xlog("nat\n");
        if (!isflagset("ACC")) xlog("no-acc\n");
        setbflag("TCP_PERSISTENT");
        if (isbflagset("TCP_PERSISTENT")) xlog("bflag\n");
    }"#,
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["nat\n", "no-acc\n", "bflag\n"]);
    let nat = script.flag_bit("NAT").unwrap();
    assert_ne!(c.flags & (1 << nat), 0);
    assert_eq!(c.flags & (1 << script.flag_bit("ACC").unwrap()), 0);
}

#[test]
fn request_uri_functions_and_writes() {
    let (l, c, _) = run(r#"route {
        setuser("carol");
        sethost("chicago.com");
        setport("5070");
        prefix("00");
        xlog("$ru $rU $rd $rp\n");
        strip(2); strip_tail(1);
        xlog("$rU\n");
        $rU = "dave"; $rd = "example.org";
        xlog("$ru ou=$ou\n");
        revert_uri();
        xlog("$ru\n");
        seturi("sip:x@192.0.2.1:5080;transport=tcp");
        $rp = 5090;
        xlog("$ru\n");
        setdsturi("sip:10.0.0.7:5060");
        if (isdsturiset()) xlog("du=$du\n");
        resetdsturi();
        if (!isdsturiset()) xlog("no-du\n");
    }"#);
    assert_eq!(
        l,
        [
            "sip:00carol@chicago.com:5070 00carol chicago.com 5070\n",
            "caro\n",
            "sip:dave@example.org:5070 ou=sip:bob@biloxi.com\n",
            "sip:bob@biloxi.com\n",
            "sip:x@192.0.2.1:5090;transport=tcp\n",
            "du=sip:10.0.0.7:5060\n",
            "no-du\n",
        ]
    );
    assert_eq!(c.ruri(), Some("sip:x@192.0.2.1:5090;transport=tcp"));
}

#[test]
fn transformations_in_scripts() {
    let l = logs(
        r#"route {
        $var(u) = $(ru{uri.user});
        $var(n) = $(var(u){s.len});
        $var(up) = $(fu{uri.host}{s.toupper});
        xlog("$var(u) $var(n) $var(up) $(ci{s.select,0,@})\n");
    }"#,
    );
    assert_eq!(l, ["bob 3 ATLANTA.COM a84b4c76e66710\n"]);
}

#[test]
fn is_myself_uses_sockets_and_aliases() {
    // The UDP transport module is the runtime's (issue #4); declared available here.
    let script = compile_with(
        r#"
        socket=udp:127.0.0.1:5060
        alias=proxy.example.com
        loadmodule "proto_udp.so"
        route {
            if (is_myself("127.0.0.1")) xlog("socket\n");
            if (is_myself("PROXY.example.com")) xlog("alias\n");
            if (!is_myself("$rd")) xlog("not-us\n");
            if (!is_myself("127.0.0.1", 5070)) xlog("wrong-port\n");
        }"#,
        &Available {
            builtin: vec!["proto_udp"],
            ..Available::default()
        },
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    let l: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(l, ["socket\n", "alias\n", "not-us\n", "wrong-port\n"]);
}

#[test]
fn budgets_end_runaway_scripts_with_an_error() {
    // max_while_loops: the loop is left with an error log and the script goes on.
    let l = logs(
        "max_while_loops=50\nroute { $var(i) = 0; while (1) { $var(i) += 1; } xlog(\"after $var(i)\\n\"); }",
    );
    assert!(l.iter().any(|x| x.contains("max_while_loops")), "{l:?}");
    assert_eq!(l.last().map(String::as_str), Some("after 50\n"));
    // Unbounded recursion: a typed error, not a hung worker.
    let script = compile("route { route(r); } route[r] { route(r); }");
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    assert_eq!(
        script.run(&mut w, &mut c, &mut log),
        Err(ScriptError::Depth(100))
    );
    // The operation budget.
    let mut script = compile("route { while (1) { $var(x) = 1; } }");
    script.set_limits(Limits {
        max_while_loops: usize::MAX,
        max_ops: 10_000,
        max_depth: 100,
    });
    assert_eq!(
        script.run(&mut w, &mut c, &mut log),
        Err(ScriptError::Budget(10_000))
    );
}

#[test]
fn functions_the_interpreter_lacks_are_load_time_errors() {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(
        &mut sources,
        std::path::Path::new("t.cfg"),
        "route { sr_check_status(\"core\"); }".into(),
    );
    let err = Script::compile(&parsed.config, &sources, &Available::default()).unwrap_err();
    let text: String = err.iter().map(|d| d.render(&sources)).collect();
    assert!(
        text.contains("the function `sr_check_status`")
            && text.contains("not supported by the rsips interpreter yet"),
        "{text}"
    );
}

#[test]
fn avps_are_value_stacks() {
    let l = logs(
        r#"route {
        $avp(a) = "first";
        $avp(a) = "second";
        xlog("newest=$avp(a) older=$(avp(a)[1]) oldest=$(avp(a)[-1]) all=$(avp(a)[*])\n");
        $(avp(a)[append]) = "zeroth";
        xlog("all=$(avp(a)[*])\n");
        $(avp(a)[0]) = "SECOND";
        $avp(a) = NULL;
        xlog("after-delete=$avp(a) all=$(avp(a)[*])\n");
        $avp(a) := "only";
        xlog("replaced=$(avp(a)[*])\n");
        $avp(n) = 1;
        $avp(n) += 41;
        xlog("n=$avp(n)\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "newest=second older=first oldest=first all=second, first\n",
            "all=second, first, zeroth\n",
            "after-delete=first all=first, zeroth\n",
            "replaced=only\n",
            "n=42\n",
        ]
    );
}

#[test]
fn for_loops_over_avps_and_headers_with_break() {
    let l = logs(
        r#"route {
        $avp(x) = "a"; $avp(x) = "b"; $avp(x) = "c";
        for ($var(v) in $(avp(x)[*])) { xlog("$var(v)\n"); }
        for ($var(h) in $(hdr(Via)[*])) { xlog("via $(var(h){via.host})\n"); }
        for ($var(v) in $(avp(x)[*])) { if ($var(v) == "b") break; xlog("until $var(v)\n"); }
    }"#,
    );
    assert_eq!(
        l,
        ["c\n", "b\n", "a\n", "via pc33.atlanta.com\n", "until c\n"]
    );
}

#[test]
fn assert_is_off_by_default_and_stops_the_script_when_enabled() {
    let l = logs(r#"route { assert($rm == "BYE", "a BYE"); xlog("continued\n"); }"#);
    assert_eq!(l, ["continued\n"], "no-op without enable_asserts");
    let (l, _, out) = run(
        "enable_asserts=yes\nroute { assert($rm == \"INVITE\"); assert($rm == \"BYE\", \"a BYE\"); xlog(\"never\\n\"); }",
    );
    assert_eq!(l, ["ASSERTION FAILED - a BYE"]);
    assert_eq!(out, Outcome::Exit);

    // With an error_route, a failed assertion runs it ($err as OpenSIPS sets it), then stops.
    let (l, c, out) = run(
        "enable_asserts=yes\nerror_route { xlog(\"$route.type $err.class $err.level $err.info $err.rcode $err.rreason\\n\"); }\nroute { assert($rm == \"BYE\", \"a BYE\"); xlog(\"never\\n\"); }",
    );
    assert_eq!(
        l,
        [
            "ASSERTION FAILED - a BYE",
            "error 4 1 assertion failed 500 server error\n"
        ]
    );
    assert_eq!(out, Outcome::Exit);
    assert_eq!(c.err.map(|e| e.class), Some(4));
}

#[test]
fn force_rport_and_force_send_socket() {
    let script = compile_with(
        r#"socket=udp:127.0.0.1:5060
        socket=tcp:127.0.0.1:5060-5061
        loadmodule "proto_udp.so"
        loadmodule "proto_tcp.so"
        route { force_rport(); force_send_socket("tcp:127.0.0.1:5061"); }"#,
        &Available {
            builtin: vec!["proto_udp", "proto_tcp"],
            ..Available::default()
        },
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    assert!(c.force_rport);
    assert_eq!(c.send_socket.as_deref(), Some("tcp:127.0.0.1:5061"));

    let mut sources = cfg::SourceMap::new();
    let src = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nroute { force_send_socket(\"udp:10.9.9.9:5060\"); }";
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.into());
    let available = Available {
        builtin: vec!["proto_udp"],
        ..Available::default()
    };
    let err = Script::compile(&parsed.config, &sources, &available).unwrap_err();
    let text: String = err.iter().map(|d| d.render(&sources)).collect();
    assert!(
        text.contains("`udp:10.9.9.9:5060` is not a configured socket"),
        "{text}"
    );
    assert!(text.contains("configured: udp:127.0.0.1:5060"), "{text}");
}

#[test]
fn socket_out_reads_and_sets_the_sending_socket() {
    let script = compile_with(
        r#"socket=udp:127.0.0.1:5060
        socket=udp:[::1]:5062
        socket=tcp:127.0.0.1:5061
        loadmodule "proto_udp.so"
        loadmodule "proto_tcp.so"
        route {
            if ($socket_out(forced) == NULL) xlog("none forced yet: $socket_out $socket_out(PROTO)\n");
            $socket_out = "UDP:[::1]:5062";
            xlog("$socket_out $socket_out(ip) $socket_out(port) $socket_out(proto) $socket_out(af)\n");
            force_send_socket("tcp:127.0.0.1:5061");
            xlog("$socket_out(proto) $socket_out(port) $socket_out(af)\n");
            $socket_out = "udp:10.0.0.1:5060";
            xlog("refused $rc, kept $socket_out\n");
            xlog("forced $socket_out(forced)\n");
            $socket_out = NULL;
            if ($socket_out(Forced) == NULL) xlog("cleared, back to $socket_out\n");
        }"#,
        &Available {
            builtin: vec!["proto_udp", "proto_tcp"],
            ..Available::default()
        },
    );
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    let mut c = ctx();
    script.run(&mut w, &mut c, &mut log).unwrap();
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "none forced yet: udp:127.0.0.1:5060 udp\n",
            // The ip field as OpenSIPS writes a socket address: bracketed, uncompressed.
            "udp:[::1]:5062 [0:0:0:0:0:0:0:1] 5062 udp INET6\n",
            "tcp 5061 INET\n",
            "$socket_out: `udp:10.0.0.1:5060` is not a configured socket\n",
            "refused -1, kept tcp:127.0.0.1:5061\n",
            "forced tcp:127.0.0.1:5061\n",
            "cleared, back to udp:127.0.0.1:5060\n",
        ]
    );
    assert_eq!(c.send_socket, None);
}

#[test]
fn xlog_levels_filter_by_xlog_level() {
    let (l, _, _) = run(r#"xlog_level=1
        route {
            xlog("L_ERR", "err\n");
            xlog("L_WARN", "warn\n");
            xlog("L_INFO", "info hidden\n");
            $var(l) = -1;
            xlog($var(l), "pv level\n");
            $var(l) = 4;
            xlog($var(l), "debug hidden\n");
            xlog("default notice hidden\n");
            if ($socket_in(proto) == "udp") xlog("L_ERR", "on $socket_in\n");
        }"#);
    assert_eq!(
        l,
        ["err\n", "warn\n", "pv level\n", "on udp:127.0.0.1:5060\n"]
    );
}

#[test]
fn log_level_writes_are_per_worker_until_reset_with_null() {
    let script = compile(
        r#"log_level=1
        xlog_level=1
        route {
            if ($var(second) == 1) {
                xlog("L_INFO", "second run: $log_level $xlog_level\n");
                $xlog_level = NULL;
                $log_level = NULL;
                xlog("L_INFO", "info hidden again\n");
                log(3, "log hidden again\n");
                xlog("L_WARN", "back to $log_level $xlog_level\n");
                exit;
            }
            log(3, "log hidden\n");
            xlog("L_INFO", "xlog hidden\n");
            $log_level = 3;
            $xlog_level = 3;
            log(3, "log shown\n");
            xlog("L_INFO", "xlog shown\n");
            $log_level = "debug";
            xlog("L_INFO", "non-integer rejected: $rc $log_level\n");
            $var(second) = 1;
        }"#,
    );
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "log shown\n",
            "xlog shown\n",
            "non-integer rejected: -1 3\n",
            "second run: 3 3\n",
            "back to 1 1\n"
        ]
    );
    // Another worker never saw the writes.
    let (mut other, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut other, &mut ctx(), &mut log).unwrap();
    assert_eq!(
        log.lines.first().map(|(_, l)| l.as_str()),
        Some("log shown\n")
    );
}

// OpenSIPS pv_set_ru_q: an integer, above 1000 taken as 1000; NULL and strings are refused. A
// new R-URI has no q.
#[test]
fn ruri_q_is_an_integer_capped_at_1000() {
    let l = logs(
        r#"route {
        xlog("unset $ru_q\n");
        $ru_q = 500;
        xlog("set $ru_q\n");
        $ru_q = 1001;
        xlog("capped $rc $ru_q\n");
        $ru_q = NULL;
        xlog("null refused $rc $ru_q\n");
        $ru_q = "300";
        xlog("string refused $rc $ru_q\n");
        $ru = "sip:carol@chicago.com";
        xlog("new R-URI $ru_q\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "unset -1\n",
            "set 500\n",
            "capped 1 1000\n",
            "null refused -1 1000\n",
            "string refused -1 1000\n",
            "new R-URI -1\n",
        ]
    );
}

#[test]
fn argv_reads_command_line_options() {
    let available = Available {
        argv: vec![
            ("region".into(), "eu-west".into()),
            ("empty".into(), String::new()),
        ],
        ..Available::default()
    };
    let script = compile_with(
        r#"route {
        xlog("$argv(region) $argv(empty) $argv(missing)\n");
        if ($argv(missing) == NULL) xlog("null\n");
    }"#,
        &available,
    );
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["eu-west <null> <null>\n", "null\n"]);
}

#[test]
fn startup_and_timer_routes_run_on_their_own() {
    let script = compile(
        r#"startup_route {
            $var(boot) = "booted";
            xlog("startup: $route.type $route.name $si\n");
            route(common);
        }
        timer_route[tick, 5] {
            if ($var(n) == NULL) $var(n) = 0;
            $var(n) += 1;
            xlog("timer $route.type $route.name $var(n) $var(boot)\n");
        }
        timer_route[other, 60] { xlog("other\n"); }
        route[common] { xlog("common from $route.type\n"); }
        route { xlog("request $route.type $var(boot)\n"); }"#,
    );
    let timers: Vec<_> = script.timers().collect();
    assert_eq!(timers, [("tick", 5), ("other", 60)]);
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run_startup(&mut w, &mut log).unwrap();
    let mut timer_worker = w.clone();
    script.run_timer(0, &mut timer_worker, &mut log).unwrap();
    script.run_timer(0, &mut timer_worker, &mut log).unwrap();
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    let lines: Vec<_> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "startup: startup startup_route <null>\n",
            "common from startup\n",
            "timer timer tick 1 booted\n",
            "timer timer tick 2 booted\n",
            "request request booted\n",
        ]
    );
    // A route() call cannot reach a timer route, and a script without these routes runs none.
    let plain = compile("route { exit; }");
    assert_eq!(plain.timers().count(), 0);
    let mut log = MemoryLog::default();
    plain.run_startup(&mut w, &mut log).unwrap();
    assert!(log.lines.is_empty());
}

#[test]
fn startup_time_and_message_ids() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let script = compile(r#"route { xlog("$TS $Ts $mi\n"); }"#);
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    script.run(&mut w, &mut ctx(), &mut log).unwrap();
    let fields: Vec<Vec<i64>> = log
        .lines
        .iter()
        .map(|(_, l)| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    let (first, second) = (&fields[0], &fields[1]);
    // $TS: fixed when rsips started, never after now; $Ts is the current time.
    assert!(first[0] <= first[1] && first[0] <= before + 1, "{fields:?}");
    assert_eq!(first[0], second[0]);
    // $mi: every message gets its own id.
    assert_ne!(first[2], second[2]);
}

#[test]
fn msg_flags_and_config_position() {
    let l = logs(
        "route {\n  $msg.flag(\"NAT\") = 1;\n  if (isflagset(\"NAT\")) xlog(\"set via pv\\n\");\n  resetflag(\"NAT\");\n  xlog(\"flag=$msg.flag(NAT) line=$cfg_line file=$cfg_file\\n\");\n}",
    );
    assert_eq!(l, ["set via pv\n", "flag=0 line=5 file=t.cfg\n"]);
}

#[test]
fn dynamic_header_names_and_variable_indexes() {
    let l = logs(
        r#"route {
        $var(h) = "Call-ID";
        xlog("$hdr($var(h))\n");
        $var(i) = 0;
        while ($var(i) < 2) {
            xlog("via $var(i): $(hdr(Via)[$var(i)])\n");
            $var(i) += 1;
        }
        $avp(a) = "x"; $avp(a) = "y";
        $var(i) = 1;
        xlog("avp $(avp(a)[$var(i)])\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "a84b4c76e66710@pc33.atlanta.com\n",
            "via 0: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\n",
            "via 1: <null>\n",
            "avp x\n",
        ]
    );
}

static TYPED: engine::ModuleSpec = engine::ModuleSpec {
    name: "sipmsgops",
    functions: &[],
    params: &[
        ("timeout", engine::ParamType::Int),
        ("url", engine::ParamType::Str),
        ("either", engine::ParamType::Any),
    ],
};

#[test]
fn modparams_are_checked_strictly_for_implemented_modules() {
    let check = |src: &str| -> String {
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
        let available = Available {
            modules: vec![&TYPED],
            builtin: vec![],
            argv: Vec::new(),
        };
        engine::check(&parsed.config, &sources, &available)
            .iter()
            .map(|d| d.render(&sources))
            .collect()
    };
    let ok = "loadmodule \"sipmsgops.so\"\nmodparam(\"sipmsgops\", \"timeout\", 5)\nmodparam(\"SIPMSG.*\", \"url\", \"x\")\nmodparam(\"sipmsgops\", \"either\", 1)\nroute { exit; }";
    assert_eq!(check(ok), "");
    let bad = "loadmodule \"sipmsgops.so\"\nmodparam(\"sipmsgops\", \"timeout\", \"5\")\nmodparam(\"sipmsgops\", \"url\", 3)\nmodparam(\"sipmsgops\", \"timout\", 5)\nroute { exit; }";
    let out = check(bad);
    assert!(
        out.contains("type mismatch: `timeout` of module `sipmsgops` takes a number"),
        "{out}"
    );
    assert!(
        out.contains("type mismatch: `url` of module `sipmsgops` takes a string"),
        "{out}"
    );
    assert!(
        out.contains("parameter `timout` not found in module `sipmsgops`"),
        "{out}"
    );
    assert!(out.contains("did you mean `timeout`?"), "{out}");
}

#[test]
fn route_and_level_pvs() {
    let l = logs(
        r#"xlog_level=3
        route { xlog("in $route.name ($route.type) level $xlog_level\n"); route(sub); xlog("back in $route\n"); }
        route[sub] { xlog("in $route\n"); }"#,
    );
    assert_eq!(l, ["in 0 (request) level 3\n", "in sub\n", "back in 0\n"]);
}

#[test]
fn return_values() {
    let l = logs(
        r#"route {
        route(lookup_user, "alice");
        xlog("rc=$rc user=$return(0) domain=$return(1) none=$return(2)\n");
    }
    route[lookup_user] { return(2, $param(1), "example.com"); }"#,
    );
    assert_eq!(l, ["rc=2 user=alice domain=example.com none=<null>\n"]);
}

#[test]
fn the_destination_set_is_readable_by_branch_index() {
    let l = logs(
        r#"route {
            $du = "sip:proxy.example.com";
            append_msg_branch("sip:carol@example.com", "0.5");
            $msg.branch = "sip:dave@example.com";
            xlog("last=$msg.branch.last_idx 0=$(msg.branch.uri[0]) 0du=$(msg.branch.duri[0])\n");
            xlog("1=$(msg.branch.uri[1]) q=$(msg.branch.q[1]) -1=$(msg.branch.uri[-1]) 3=$(msg.branch.uri[3])\n");
            # No index is the last branch (OpenSIPS pvar.c pv_get_msg_branch_fields).
            xlog("noidx=$msg.branch.uri q=$msg.branch.q br=$msg.branch\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "last=2 0=sip:bob@biloxi.com 0du=sip:proxy.example.com\n",
            "1=sip:carol@example.com q=0.5 -1=sip:dave@example.com 3=<null>\n",
            "noidx=sip:dave@example.com q= br=sip:dave@example.com\n",
        ]
    );
}

#[test]
fn legacy_branch_pvs_index_the_appended_branches() {
    let l = logs(
        r#"route {
            $branch = "sip:carol@example.com";
            append_msg_branch("sip:dave@example.com", "0.2");
            xlog("$branch $(branch[1]) $(branch(q)[1]) $(branch(uri)[-1]) $(branch[2])\n");
        }"#,
    );
    assert_eq!(
        l,
        vec!["sip:carol@example.com sip:dave@example.com 0.2 sip:dave@example.com <null>\n"]
    );
}

// OpenSIPS pvar.c: `$ds` is print_dset() without its CRLF (the R-URI only once rewritten), q
// values print as q2str() does, `$mf`/`$bf` as the names of the flags set, newest first.
#[test]
fn destination_set_q_values_and_flag_names_print_as_opensips_prints_them() {
    let l = logs(
        r#"route {
            xlog("ds=$ds ruq=$ru_q\n");
            append_msg_branch("sip:carol@example.com", "0.125");
            xlog("ds=$ds\n");
            $ru = "sip:x@example.com";
            $ru_q = 300;
            $msg.branch = "sip:dave@example.com";
            xlog("ds=$ds ruq=$ru_q q0=$(msg.branch.q[0]) q2=$(msg.branch.q[2])\n");
            setflag("A"); setflag("NAT"); setflag("C"); resetflag("A");
            setbflag("BF1"); setbflag("BF2");
            xlog("mf=[$mf] bf=[$bf] br0=[$(msg.branch.flags[0])]\n");
            resetflag("NAT"); resetflag("C");
            xlog("mf=[$mf]\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "ds=<null> ruq=-1\n",
            "ds=Contact: <sip:carol@example.com>;q=0.125\n",
            "ds=Contact: <sip:x@example.com>;q=0.3, <sip:carol@example.com>;q=0.125, \
             <sip:dave@example.com> ruq=300 q0=0.3 q2=\n",
            "mf=[C NAT] bf=[BF2 BF1] br0=[BF2 BF1]\n",
            "mf=[]\n",
        ]
    );
}

#[test]
fn raise_event_runs_the_event_route() {
    let l = logs(
        r#"route {
            raise_event("E_MY_EVENT");
            raise_event("E_NOBODY_LISTENS");
            xlog("after\n");
        }
        event_route[E_MY_EVENT] {
            xlog("event for $ci in $route.type\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "event for a84b4c76e66710@pc33.atlanta.com in event\n",
            "after\n"
        ]
    );
}

// OpenSIPS evi: the values AVP is walked newest first, the names AVP alongside it; `$param`
// in the event route reads them by name or by 1-based position; sub-routes have their own.
#[test]
fn raise_event_passes_its_attributes_to_the_event_route() {
    let l = logs(
        r#"route {
            $avp(names) = "code"; $avp(names) = "user";
            $avp(vals) = 404; $avp(vals) = $rU;
            raise_event("E_CALL", $avp(names), $avp(vals));
            raise_event("E_CALL", , $avp(vals));
            $avp(short) = "only";
            raise_event("E_CALL", $avp(short), $avp(vals));
            xlog("rc=$rc\n");
        }
        event_route[E_CALL] {
            xlog("user=$param(user) code=$param(code) 1=$param(1) 2=$param(2) 3=$param(3)\n");
            route(sub, "x");
        }
        route[sub] { xlog("sub 1=$param(1) user=$param(user)\n"); }"#,
    );
    assert_eq!(
        l,
        vec![
            "user=bob code=404 1=bob 2=404 3=<null>\n",
            "sub 1=x user=<null>\n",
            "user=<null> code=<null> 1=bob 2=404 3=<null>\n",
            "sub 1=x user=<null>\n",
            "rc=-1\n",
        ]
    );
}

#[test]
fn s_eval_expands_a_format_held_in_a_variable() {
    let l = logs(
        r#"route {
            $var(who) = "carol";
            $avp(n) = 3;
            $var(fmt) = "$var(who) called $rm x$avp(n) for $ci $var(unset)";
            xlog("$(var(fmt){s.eval})\n");
            $var(bad) = "broken $(";
            xlog("[$(var(bad){s.eval})]\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "carol called INVITE x3 for a84b4c76e66710@pc33.atlanta.com <null>\n",
            "[broken $(]\n"
        ],
        "text that only looks like a PV stays text"
    );
}

#[test]
fn s_eval_applies_the_transformations_inside_the_format() {
    let l = logs(
        r#"route {
            $var(who) = "Carol";
            $var(n) = 2;
            $var(list) = "a-b-c";
            $var(fmt) = "$(var(who){s.len}) $(var(who){s.tolower}) $(ru{uri.user}) $(var(list){s.select,$var(n),-}) $(var(who){s.substr,1,2}{s.toupper})";
            xlog("$(var(fmt){s.eval})
");
            # A format that holds a format: evaluated once per s.eval.
            $var(inner) = "$var(who)";
            $var(outer) = "[$(var(inner){s.eval})]";
            xlog("$(var(outer){s.eval})
");
            # An unknown transformation makes the value NULL, the rest still prints.
            $var(odd) = "$(var(who){s.nosuch}) ok";
            xlog("$(var(odd){s.eval})
");
        }"#,
    );
    assert_eq!(l, vec!["5 carol bob c AR\n", "[Carol]\n", "<null> ok\n"]);
}

// Without a transaction, `<request>` reads the request being handled and `<reply>` has nothing
// to read (tm's branch variables are tested with tm, which provides them).
#[test]
fn pv_contexts_without_a_transaction() {
    let l = logs(
        r#"route {
            $var(u) = "x";
            xlog("req=$(<request>ru) user=$(<request>ru{uri.user}) rpl=$(<reply>rs) var=$(<reply>var(u))\n");
        }"#,
    );
    assert_eq!(
        l,
        vec!["req=sip:bob@biloxi.com user=bob rpl=<null> var=x\n"]
    );
}

#[test]
fn an_unknown_pv_context_is_a_load_error() {
    let mut sources = cfg::SourceMap::new();
    let src = r#"route { xlog("$(<branch>ru)\n"); }"#;
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    let Err(d) = Script::compile(&parsed.config, &sources, &Available::default()) else {
        panic!("a script with `<branch>` compiled");
    };
    let text: String = d.iter().map(|d| d.render(&sources)).collect();
    assert!(text.contains("unknown PV context `<branch>`"), "{text}");
}

// OpenSIPS route.c / action.c: NULL + an integer literal has no value, so the assignment fails
// and leaves its target alone; an integer read from a variable has a string form and appends.
#[test]
fn null_and_integer_literals_in_arithmetic_follow_opensips() {
    let l = logs(
        r#"route {
            $var(x) = "keep";
            $var(x) = $var(unset) + 1;
            xlog("rc=$rc x=$var(x)\n");
            $var(one) = 1;
            $var(y) = $var(unset) + $var(one);
            xlog("y=$var(y)\n");
            $var(z) = "a" + 1;
            xlog("rc=$rc z=$var(z)\n");
            $var(w) = "a" + $var(one) + "b";
            $var(n) = 1 + $var(unset);
            $var(m) = 2 * (3 + 4) + $var(one);
            $var(d) = "d";
            $var(d) = 7 / 0;
            xlog("w=$var(w) n=$var(n) m=$var(m) d=$var(d)\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "rc=-1 x=keep\n",
            "y=1\n",
            "rc=-1 z=<null>\n",
            "w=a1b n=1 m=15 d=d\n",
        ]
    );
}

// OpenSIPS stores a comparison's 0/1 result when it is assigned (eval_expr), so false is 0,
// not the -1 a false condition reports.
#[test]
fn comparisons_used_as_values_are_one_or_zero() {
    let l = logs(
        r#"route {
            $var(t) = $rU == "bob";
            $var(f) = $rU == "carol";
            $var(r) = $ru =~ "^sip:bob@";
            $var(g) = $rm != "INVITE";
            xlog("t=$var(t) f=$var(f) r=$var(r) g=$var(g)\n");
            if ($var(f)) xlog("false is true\n");
        }"#,
    );
    assert_eq!(l, vec!["t=1 f=0 r=1 g=0\n"]);
}

#[test]
fn sdp_and_resolve_transformations() {
    let l = logs(
        r#"route {
            $var(sdp) = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
            $var(n) = 1;
            xlog("[$(var(sdp){sdp.stream,video}{sdp.line,a,0})] [$(var(sdp){sdp.line,m,$var(n)})] [$(var(sdp){sdp.line,m,2})]\n");
            xlog("[$(var(sdp){sdp.stream-delete,audio}{sdp.line,m})] [$(var(sdp){sdp.stream,-2}{s.len})] [$(var(sdp){sdp.stream-delete,text})]\n");
            $var(h) = "localhost";
            $var(ip) = "127.0.0.1";
            xlog("[$(var(h){ip.resolve4})] [$(var(ip){ip.resolve4})] [$(var(ip){ip.resolve6})] [$(var(ip){ip.resolve})]\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "[a=rtpmap:96 H264/90000] [m=video 5000 RTP/AVP 96] [<null>]\n",
            "[m=video 5000 RTP/AVP 96] [46] [<null>]\n",
            "[127.0.0.1] [127.0.0.1] [<null>] [127.0.0.1]\n",
        ]
    );
}

#[test]
fn construct_uri_get_timestamp_and_pv_printf() {
    let l = logs(
        r#"route {
            construct_uri("sip", "alice", "example.com", "5070", "transport=tcp", $avp(u));
            construct_uri("sips", , "example.com", , , $avp(u));
            xlog("u=$(avp(u)[0]) first=$(avp(u)[1])\n");
            get_timestamp($avp(s), $avp(us));
            if ($avp(s) > 1700000000 && $avp(us) >= 0 && $avp(us) < 1000000) xlog("ts ok\n");
            pv_printf($var(p), "$rm to $rU");
            pv_printf($avp(q), "$ci");
            xlog("p=$var(p) q=$avp(q)\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "u=sips:example.com first=sip:alice@example.com:5070;transport=tcp\n",
            "ts ok\n",
            "p=INVITE to bob q=a84b4c76e66710@pc33.atlanta.com\n",
        ]
    );
}

#[test]
fn construct_uri_and_get_timestamp_store_into_avps_only() {
    for (src, needle) in [
        (
            r#"route { construct_uri("sip", "a", "b", , , $var(x)); }"#,
            "`construct_uri` stores its result in an `$avp(name)`",
        ),
        (
            r#"route { get_timestamp($avp(s), "x"); }"#,
            "`get_timestamp` stores its result in an `$avp(name)`",
        ),
        (
            r#"route { pv_printf("x", "$rm"); }"#,
            "`pv_printf` writes into a variable",
        ),
        (
            r#"route { set_via_handling("force-rport, bogus"); }"#,
            "`set_via_handling`: unknown flag `bogus`",
        ),
    ] {
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.into());
        let err = Script::compile(&parsed.config, &sources, &Available::default()).unwrap_err();
        let text: String = err.iter().map(|d| d.render(&sources)).collect();
        assert!(
            text.contains(needle) && text.contains("t.cfg:1:"),
            "{src}: {text}"
        );
    }
}

// OpenSIPS serialize.c: the destination set is put aside highest q first; next_branches()
// brings back one q class at a time (1 while more remain, 2 for the last class, -1 after).
#[test]
fn serial_forking_by_q_value() {
    let l = logs(
        r#"route {
            $ru_q = 500;
            append_msg_branch("sip:low@example.com", "0.1");
            append_msg_branch("sip:top1@example.com", "1.0");
            append_msg_branch("sip:mid@example.com", "0.5");
            append_msg_branch("sip:top2@example.com", "1.0");
            serialize_branches(1);
            xlog("after: last=$msg.branch.last_idx\n");
            $var(i) = 0;
            while ($var(i) < 4) {
                next_branches();
                xlog("rc=$rc ru=$ru q=$ru_q n=$msg.branch.last_idx ds=$ds\n");
                $var(i) = $var(i) + 1;
            }
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "after: last=0\n",
            "rc=1 ru=sip:top1@example.com q=1000 n=1 ds=Contact: <sip:top1@example.com>;q=1, <sip:top2@example.com>;q=1\n",
            "rc=1 ru=sip:bob@biloxi.com q=500 n=2 ds=Contact: <sip:bob@biloxi.com>;q=0.5, <sip:top2@example.com>;q=1, <sip:mid@example.com>;q=0.5\n",
            "rc=2 ru=sip:low@example.com q=100 n=2 ds=Contact: <sip:low@example.com>;q=0.1, <sip:top2@example.com>;q=1, <sip:mid@example.com>;q=0.5\n",
            "rc=-1 ru=sip:low@example.com q=100 n=2 ds=Contact: <sip:low@example.com>;q=0.1, <sip:top2@example.com>;q=1, <sip:mid@example.com>;q=0.5\n",
        ]
    );
}

#[test]
fn setuserpass_add_local_rport_advertised_address_and_avp_print() {
    let script = compile_with(
        "socket = udp:127.0.0.1:5060\ndisable_stateless_fwd = no\nloadmodule \"proto_udp.so\"\n\
         route {\n\
             setuserpass(\"s3cret\");\n\
             xlog(\"ru=$ru\\n\");\n\
             setuserpass(\"\");\n\
             xlog(\"ru=$ru\\n\");\n\
             $avp(a) = 1; $avp(a) = \"two\";\n\
             avp_print();\n\
             add_local_rport();\n\
             set_advertised_address(\"203.0.113.7\");\n\
             set_advertised_port(\"5099\");\n\
             forward(\"udp:127.0.0.1:5080\");\n\
         }\n",
        &Available {
            builtin: vec!["proto_udp"],
            ..Available::default()
        },
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    let lines: Vec<String> = log.lines.into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            "ru=sip:bob:s3cret@biloxi.com\n",
            "ru=sip:bob@biloxi.com\n",
            "avp_print: $avp(a) int value=1\n",
            "avp_print: $avp(a) str value=<two>\n",
        ]
    );
    let sent = String::from_utf8_lossy(&c.outbox[0].data).into_owned();
    let via = sent.lines().find(|l| l.starts_with("Via: ")).unwrap();
    assert!(
        via.starts_with("Via: SIP/2.0/UDP 203.0.113.7:5099;branch=z9hG4bK"),
        "{via}"
    );
    assert!(via.ends_with(";rport"), "{via}");
}

// cachedb_local through the core cache_* functions (OpenSIPS return codes: 1, -2 not found).
#[test]
fn cache_functions_over_cachedb_local() {
    let script = compile_with(
        r#"loadmodule "cachedb_local.so"
        route {
            cache_store("local", "k_$ci", "v1");
            cache_fetch("local", "k_$ci", $var(v));
            $var(rc1) = $rc;
            cache_fetch("local", "missing", $var(m));
            $var(rc2) = $rc;
            cache_add("local", "n", 5, 0, $var(n));
            cache_sub("local", "n", 2, 0);
            cache_counter_fetch("local", "n", $avp(c));
            cache_remove("local", "k_$ci");
            cache_fetch("local", "k_$ci", $var(gone));
            $var(rc3) = $rc;
            cache_store("redis", "x", "y");
            $var(rc4) = $rc;
            xlog("v=$var(v) rc1=$var(rc1) rc2=$var(rc2) n=$var(n) c=$avp(c) rc3=$var(rc3) rc4=$var(rc4)\n");
            cache_store("local", "chunk_a", "1");
            cache_store("local", "chunk_b", "2");
            cache_store("local", "other", "3");
            cache_store("local:g", "chunk_c", "4");
            cache_remove_chunk("chunk_*");
            cache_fetch("local", "chunk_a", $var(x));
            $var(rc5) = $rc;
            cache_fetch("local", "other", $var(o));
            cache_fetch("local:g", "chunk_c", $var(g));
            cache_remove_chunk("g", "chunk_?");
            cache_fetch("local:g", "chunk_c", $var(g2));
            $var(rc6) = $rc;
            xlog("chunk rc5=$var(rc5) o=$var(o) g=$var(g) rc6=$var(rc6)\n");
        }"#,
        &Available {
            modules: vec![&engine::cachedb::CACHEDB_LOCAL],
            ..Available::default()
        },
    );
    let (mut w, mut c, mut log) = (Worker::default(), ctx(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    let lines: Vec<String> = log.lines.into_iter().map(|(_, l)| l).collect();
    assert!(
        lines.contains(&"v=v1 rc1=1 rc2=-2 n=5 c=3 rc3=-2 rc4=-1\n".to_owned()),
        "{lines:?}"
    );
    // cache_remove_chunk: the default collection's matching keys, then another's.
    assert_eq!(
        lines.last().map(String::as_str),
        Some("chunk rc5=-2 o=3 g=4 rc6=-2\n"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no cachedb engine for `redis`")),
        "{lines:?}"
    );
}

/// `re.subst` with pseudo-variables in its replacement (OpenSIPS expands them when the
/// transformation runs): the source IP and a `$var` go in beside a group.
#[test]
fn re_subst_replacements_may_hold_variables() {
    let l = logs(
        r#"route {
        $var(port) = 5070;
        $var(ru) = $(ru{re.subst,/^sip:([^@]+)@.*$/sip:\1@$si:$var(port)/});
        xlog("$var(ru)\n");
    }"#,
    );
    assert_eq!(l, ["sip:bob@192.0.2.10:5070\n"]);
}
