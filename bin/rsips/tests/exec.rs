//! The exec module: `exec()` runs a shell command with the request's values, its standard
//! input given, standard output and error into variables, the environment AVP as
//! `OSIPS_EXEC_n`, the request in `SIP_*` variables (`setvars`); a command without outputs
//! runs on its own; one past `time_to_kill` is killed and the worker goes on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "exec.so"
modparam("exec", "setvars", 1)
modparam("exec", "time_to_kill", 2)
route {
    if ($rU == "out") {
        exec("printf 'hello %s' '$fU'; printf 'oops' >&2", , $var(out), $var(err));
        append_to_reply("X-Out: $var(out)\r\nX-Err: $var(err)\r\n");
    }
    if ($rU == "in") {
        exec("tr a-z A-Z", "abc $rU", $var(out));
        append_to_reply("X-Out: $var(out)\r\n");
    }
    if ($rU == "env") {
        $avp(env) = "first";
        $avp(env) = "second";
        exec("printf '%s,%s,%s,%s' \"$$OSIPS_EXEC_0\" \"$$OSIPS_EXEC_1\" \"$$SIP_HF_CALL_ID\" \"$$SIP_USER\"", , $var(out), , $avp(env));
        append_to_reply("X-Out: $var(out)\r\n");
    }
    if ($rU == "bg")
        exec("echo started > DIR/bg.txt");
    if ($rU == "held") {
        if (!exec("sleep 30 & echo now", , $var(out)))
            append_to_reply("X-Held: yes\r\n");
    }
    if ($rU == "slow") {
        if (!exec("sleep 30; echo late", , $var(out)))
            append_to_reply("X-Killed: yes\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

fn ask(peer: &Peer, port: u16, user: &str) -> String {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ex-{user}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=f\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: ex-{user}-{port}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("reply")
}

#[test]
fn commands_run_with_input_output_and_environment() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-exec-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("DIR", &dir.display().to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();

    let r = ask(&peer, port, "out");
    assert_eq!(header(&r, "X-Out"), ["hello alice"], "{r}");
    assert_eq!(header(&r, "X-Err"), ["oops"], "{r}");
    let r = ask(&peer, port, "in");
    assert_eq!(header(&r, "X-Out"), ["ABC IN"], "{r}");
    // The AVP's values newest first; the request's Call-ID and R-URI user from setvars.
    let r = ask(&peer, port, "env");
    assert_eq!(
        header(&r, "X-Out"),
        [format!("second,first,ex-env-{port},env").as_str()],
        "{r}"
    );

    // Without outputs the command runs on its own.
    let r = ask(&peer, port, "bg");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(dir.join("bg.txt")).unwrap_or_default() != "started\n" {
        assert!(
            Instant::now() < deadline,
            "the background command did not run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Past time_to_kill (2 s) the command is killed and the request goes on.
    let started = Instant::now();
    let r = ask(&peer, port, "slow");
    assert_eq!(header(&r, "X-Killed"), ["yes"], "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A background job holding the output open is killed at the same limit.
    let started = Instant::now();
    let r = ask(&peer, port, "held");
    assert_eq!(header(&r, "X-Held"), ["yes"], "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The worker serves again.
    assert_eq!(header(&ask(&peer, port, "in"), "X-Out"), ["ABC IN"]);
}
