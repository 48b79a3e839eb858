//! The `mi_script` module end to end: `mi()` runs MI commands from the script — with the
//! parameters in the command, or named through two AVPs — stores the JSON result (or the
//! error message) in a variable and returns 1 or the negated error code; `async(mi(…))`
//! resumes with `$rc`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, Rsips, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=2
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "gflags.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "mi_script.so"
route {
    if ($rU == "words") {
        # Positional values in the command: set flag 4 (mask 0x10), then read the flags.
        mi("set_gflag 0x10");
        $var(rc1) = $rc;
        mi("gflags:get", $var(flags));
        append_to_reply("X-Rc: $var(rc1)\r\nX-Result: $var(flags)\r\n");
    } else if ($rU == "named") {
        $avp(p) = "bitmask";
        $avp(v) = "0x20";
        if (mi("gflags:set", $var(r), $avp(p), $avp(v)))
            append_to_reply("X-Set: $var(r)\r\n");
        if (is_gflag(5)) append_to_reply("X-Five: set\r\n");
    } else if ($rU == "errors") {
        mi("no:such_command", $var(r1));
        $var(rc1) = $rc;
        mi("gflags:set", $var(r2));
        $var(rc2) = $rc;
        mi("gflags:set 0", $var(r3));
        $var(rc3) = $rc;
        append_to_reply("X-Unknown: $var(rc1)\r\nX-Missing: $var(rc2) $var(r2)\r\nX-Zero: $var(rc3) $var(r3)\r\n");
    } else if ($rU == "async") {
        async(mi("gflags:get", $var(flags)), resume);
    }
    sl_send_reply(200, "OK");
    exit;
}
route[resume] {
    append_to_reply("X-Async: $rc $var(flags)\r\n");
    sl_send_reply(200, "Resumed");
}
"#;

fn ask(px: u16, ua: &Peer, user: &str) -> String {
    ua.send(
        px,
        &format!(
            "OPTIONS sip:{user}@127.0.0.1:{px} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-mi-{user}\r\n\
             From: <sip:a@example.com>;tag=m1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: mi-{user}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ua.port
        ),
    );
    ua.recv(&format!("the reply to {user}"))
}

#[test]
fn mi_runs_commands_from_the_script() {
    let dir = common::test_dir("mi_script", "all");
    let port = common::free_port();
    let s = Rsips::start(
        &dir,
        &CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &Rsips::fifo(&dir)),
    );
    s.wait_log("MI listening");
    let ua = Peer::new();

    let r = ask(port, &ua, "words");
    assert_eq!(header(&r, "X-Rc"), ["1"], "{r}");
    assert_eq!(
        header(&r, "X-Result"),
        [r#"{"hex":"0x10","dec":"16"}"#],
        "{r}"
    );

    let r = ask(port, &ua, "named");
    assert_eq!(header(&r, "X-Set"), [r#""OK""#], "{r}");
    assert_eq!(header(&r, "X-Five"), ["set"], "{r}");

    let r = ask(port, &ua, "errors");
    assert_eq!(header(&r, "X-Unknown"), ["-1"], "{r}");
    assert_eq!(header(&r, "X-Missing"), ["-32602 Invalid params"], "{r}");
    let zero = header(&r, "X-Zero");
    assert!(
        zero.len() == 1 && zero[0].starts_with("-400 "),
        "a 400 error comes back as -400 with its message: {r}"
    );

    let r = ask(port, &ua, "async");
    assert!(r.starts_with("SIP/2.0 200 Resumed"), "{r}");
    assert_eq!(
        header(&r, "X-Async"),
        [r#"1 {"hex":"0x30","dec":"48"}"#],
        "{r}"
    );
}
