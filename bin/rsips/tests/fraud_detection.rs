//! fraud_detection on db_text, end to end with a caller and a callee of our own on UDP: the
//! rule of the longest prefix whose days include today, the return codes of `check_fraud`
//! (2 no rule, 1, -1 warning, -2 critical), `E_FRD_WARNING`/`E_FRD_CRITICAL` with their
//! parameters, concurrent calls going down as calls end (the module creates their dialog),
//! the call-duration check at the end of an answered call, MI `show_fraud_stats` and
//! `fraud_reload` through the real opensips-cli, and a bad rule refused at start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, Rsips, header, reply_to};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "db_text.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "dialog.so"
loadmodule "fraud_detection.so"
modparam("fraud_detection", "db_url", "text://DB")
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        check_fraud("$fU", "$rU", $(hdr(X-Profile){s.int}));
        append_hf("X-Fraud: $rc\r\n");
        record_route();
    }
    t_relay();
}
event_route[E_FRD_WARNING] {
    xlog("FRD WARNING $param(param) $param(value)/$param(threshold) $param(user) $param(called_number) rule=$param(rule_id) profile=$param(profile_id)\n");
}
event_route[E_FRD_CRITICAL] {
    xlog("FRD CRITICAL $param(param) $param(value)/$param(threshold) $param(user) $param(called_number) rule=$param(rule_id) profile=$param(profile_id)\n");
}
"#;

const HEADER: &str = "ruleid(int,auto) profileid(int) prefix(string) start_hour(string) \
    end_hour(string) daysoftheweek(string) cpm_warning(int) cpm_critical(int) \
    call_duration_warning(int) call_duration_critical(int) total_calls_warning(int) \
    total_calls_critical(int) concurrent_calls_warning(int) concurrent_calls_critical(int) \
    sequential_calls_warning(int) sequential_calls_critical(int)\n";

/// Today's and a far weekday's three-letter names, as the server's clock says.
fn days() -> (String, String) {
    let out = std::process::Command::new("date")
        .arg("+%w")
        .output()
        .unwrap();
    let today: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    (names[today].to_owned(), names[(today + 3) % 7].to_owned())
}

fn write_rules(db: &Path, rules: &str) {
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nfraud_detection:1\n",
    )
    .unwrap();
    std::fs::write(db.join("fraud_detection"), format!("{HEADER}{rules}")).unwrap();
}

fn start(dir: &Path, port: u16) -> Rsips {
    let text = CONFIG
        .replace("PORT", &port.to_string())
        .replace("FIFO", &Rsips::fifo(dir))
        .replace("DB", dir.join("db").to_str().unwrap());
    Rsips::start(dir, &text)
}

/// MI `show_fraud_stats`.
fn stats(s: &Rsips, user: &str, prefix: &str) -> serde_json::Value {
    s.mi(&["show_fraud_stats", user, prefix])
}

fn test_dir(name: &str) -> PathBuf {
    let dir = common::test_dir("frd", name);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    dir
}

/// An INVITE of alice to `number` (profile `profile`): what the callee got.
fn call(px: u16, caller: &Peer, callee: &Peer, number: &str, profile: u32, n: u32) -> String {
    caller.send(
        px,
        &format!(
            "INVITE sip:{number}@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-frd{n};rport\r\n\
             From: <sip:alice@example.com>;tag=a{n}\r\nTo: <sip:{number}@example.com>\r\nCall-ID: frd-{n}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nX-Profile: {profile}\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
    loop {
        let inv = recv_starting(callee, "INVITE ");
        // A retransmission of an earlier INVITE is passed over.
        if inv.contains(&format!("Call-ID: frd-{n}\r\n")) {
            return inv;
        }
    }
}

/// The next message at `peer` starting with `start`, passing over what else comes
/// (retransmissions of requests that got no provisional reply).
fn recv_starting(peer: &Peer, start: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = peer.recv(start);
        if m.starts_with(start) {
            return m;
        }
        assert!(Instant::now() < deadline, "no {start}");
    }
}

/// The callee refuses `inv` with 486; the caller gets it and ACKs it, the callee gets the
/// proxy's ACK.
fn busy(px: u16, caller: &Peer, callee: &Peer, inv: &str, tag: &str) {
    callee.send(px, &reply_to(inv, "486 Busy Here", tag, ""));
    let r = recv_starting(caller, "SIP/2.0 486");
    caller.send(
        px,
        &format!(
            "ACK {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            inv.split(' ').nth(1).unwrap(),
            header(&r, "Via")[0],
            header(&r, "From")[0],
            header(&r, "To")[0],
            header(&r, "Call-ID")[0]
        ),
    );
    recv_starting(callee, "ACK ");
}

fn rc(inv: &str) -> &str {
    header(inv, "X-Fraud")[0]
}

#[test]
fn calls_are_counted_against_the_rules_and_alerts_raised() {
    let dir = test_dir("all");
    let (today, other) = days();
    // Rule 2 (prefix 4021, today) is the longest active one for 4021555; rule 3 (40215) is
    // not active today; rule 1 (40) is what is left once rule 2 is gone.
    write_rules(
        &dir.join("db"),
        &format!(
            "1:1:40:00\\:00:23\\:59:Mon-Sun:0:0:0:0:0:0:0:0:0:0\n\
             2:1:4021:00\\:00:23\\:59:{today}:0:0:1:0:2:3:0:0:0:0\n\
             3:1:40215:00\\:00:23\\:59:{other}:0:1:0:0:0:1:0:0:0:0\n"
        ),
    );
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());

    let i1 = call(port, &caller, &callee, "4021555", 1, 1);
    assert_eq!(rc(&i1), "1", "{i1}");
    let i0 = call(port, &caller, &callee, "4021555", 2, 0);
    assert_eq!(rc(&i0), "2", "no rule in profile 2: {i0}");
    busy(port, &caller, &callee, &i0, "b0");
    let i2 = call(port, &caller, &callee, "4021555", 1, 2);
    assert_eq!(rc(&i2), "-1", "{i2}");
    let log = s.wait_log("FRD WARNING total-calls");
    assert!(
        log.contains("FRD WARNING total-calls 2/2 alice 4021555 rule=2 profile=1"),
        "{log}"
    );
    let i3 = call(port, &caller, &callee, "4021555", 1, 3);
    assert_eq!(rc(&i3), "-2", "{i3}");
    let log = s.wait_log("FRD CRITICAL total-calls");
    assert!(
        log.contains("FRD CRITICAL total-calls 3/3 alice 4021555 rule=2 profile=1"),
        "{log}"
    );
    assert_eq!(
        stats(&s, "alice", "4021"),
        serde_json::json!({"cpm": 3, "total_calls": 3, "concurrent_calls": 3, "seq_calls": 3})
    );

    // Call 1 fails, call 2 is answered and lasts over a second: one warning at its end.
    busy(port, &caller, &callee, &i1, "b1");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&i2, "200 OK", "b2", &contact));
    let ok = recv_starting(&caller, "SIP/2.0 200");
    let route = header(&ok, "Record-Route")[0].to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-frd2-{method};rport\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a2\r\nTo: <sip:4021555@example.com>;tag=b2\r\n\
             Call-ID: frd-2\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        )
    };
    caller.send(port, &in_dialog("ACK", 1));
    recv_starting(&callee, "ACK ");
    std::thread::sleep(Duration::from_millis(1300));
    caller.send(port, &in_dialog("BYE", 2));
    let bye = recv_starting(&callee, "BYE ");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    recv_starting(&caller, "SIP/2.0 200");
    let log = s.wait_log("FRD WARNING call-duration");
    // Whole seconds from the answer to the BYE: 1 or 2 for the 1.3 s the call lasted.
    let line = log
        .lines()
        .find(|l| l.contains("FRD WARNING call-duration "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.ends_with("call-duration 1/1 alice 4021555 rule=2 profile=1")
            || line.ends_with("call-duration 2/1 alice 4021555 rule=2 profile=1"),
        "{line}"
    );
    assert!(
        !log.contains("call-duration 0/"),
        "the failed call is not checked: {log}"
    );
    assert_eq!(stats(&s, "alice", "4021")["concurrent_calls"], 1);

    // Rule 2 gone after a reload: the number falls to rule 1's prefix.
    write_rules(
        &dir.join("db"),
        &format!(
            "1:1:40:00\\:00:23\\:59:Mon-Sun:0:0:0:0:0:0:0:0:0:0\n\
             3:1:40215:00\\:00:23\\:59:{other}:0:1:0:0:0:1:0:0:0:0\n"
        ),
    );
    // db_text keeps its tables in memory: it reads the file again first.
    let (ok, out) = s.cli(&["dbt_reload"]);
    assert!(ok, "{out}");
    let (ok, out) = s.cli(&["fraud_reload"]);
    assert!(ok, "{out}");
    let i4 = call(port, &caller, &callee, "4021555", 1, 4);
    assert_eq!(rc(&i4), "1", "{i4}");
    assert_eq!(stats(&s, "alice", "40")["total_calls"], 1);
    let (ok, out) = s.cli(&["show_fraud_stats", "mallory", "40"]);
    assert!(
        !ok && out.contains("No data for this user+number yet!"),
        "{out}"
    );
}

#[test]
fn a_rule_that_does_not_parse_stops_the_start() {
    let dir = test_dir("bad");
    write_rules(
        &dir.join("db"),
        "1:1:40:00\\:00:23\\:59:Mon-Funday:0:0:0:0:0:0:0:0:0:0\n",
    );
    let port = common::free_port();
    let text = CONFIG
        .replace("PORT", &port.to_string())
        .replace("FIFO", dir.join("fifo").to_str().unwrap())
        .replace("DB", dir.join("db").to_str().unwrap());
    std::fs::write(dir.join("rsips.cfg"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(dir.join("rsips.cfg"))
        .output()
        .unwrap();
    // `-c` only checks the script; the rules are read when the server starts.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-F", "-f"])
        .arg(dir.join("rsips.cfg"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = common::Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = guard.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "rsips kept running with a bad rule"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    use std::io::Read;
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("fraud_detection: rule 1"), "{err}");
    assert!(err.contains("Mon-Funday"), "{err}");
}
