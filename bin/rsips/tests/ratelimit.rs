//! ratelimit: `rl_check` pipes limiting what a script lets through (TAILDROP and SBT),
//! `rl_dec_count`, `$rl_count`, `rl_values`, the timer that ends each interval and forgets
//! unused pipes, and the MI commands driven by the real `opensips-cli`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "ratelimit.so"
modparam("ratelimit", "timer_interval", TIMER)
modparam("ratelimit", "expire_time", EXPIRE)
modparam("ratelimit", "limit_per_interval", 1)
modparam("ratelimit", "window_size", 1)
modparam("ratelimit", "slot_period", 100)
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    if ($rU == "sbt") {
        if (!rl_check("sbt", 2, "SBT")) {
            sl_send_reply(503, "Limiting");
            exit;
        }
        sl_send_reply(200, "OK");
        exit;
    }
    if (!rl_check("gw", 3)) {
        append_to_reply("X-Count: $rl_count(gw)\r\n");
        sl_send_reply(503, "Limiting");
        exit;
    }
    if ($rU == "dec")
        rl_dec_count("gw");
    if (!rl_dec_count("nosuch"))
        append_to_reply("X-No-Pipe: yes\r\n");
    rl_values($avp(pipes), "^S");
    append_to_reply("X-Count: $rl_count(gw)\r\nX-None: $rl_count(nosuch)\r\nX-Pipes: $avp(pipes)\r\n");
    sl_send_reply(200, "OK");
}
"#;

struct Server {
    _rsips: common::Kill,
    port: u16,
    fifo: PathBuf,
}

fn start(name: &str, timer: u32, expire: u32) -> Server {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("TIMER", &timer.to_string())
            .replace("EXPIRE", &expire.to_string())
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    Server {
        _rsips: rsips,
        port,
        fifo,
    }
}

fn ask(peer: &Peer, port: u16, user: &str, n: u32) -> String {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-rl-{user}-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:t@127.0.0.1>;tag=f\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: rl-{user}-{n}-{port}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("reply")
}

fn mi(fifo: &Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let (ok, out) = common::opensips_cli(fifo, args);
    let json = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (ok, json, out)
}

#[test]
fn pipes_limit_requests_and_are_driven_over_mi() {
    // No timer tick during the test: the counts are exact.
    let s = start("rl", 3600, 3600);
    let peer = Peer::new();
    // TAILDROP, 3 per interval: the 4th and 5th are refused, and counted.
    let codes: Vec<(String, String)> = (0..5)
        .map(|i| {
            let r = ask(&peer, s.port, "gw", i);
            (r[8..11].to_owned(), header(&r, "X-Count")[0].to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("200", "1"),
        ("200", "2"),
        ("200", "3"),
        ("503", "4"),
        ("503", "5"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(codes, want);

    // The pipe over MI: `counter` is the last interval's (none ended yet).
    let (ok, list, out) = mi(&s.fifo, &["rl_list"]);
    assert!(ok, "{out}");
    assert_eq!(
        list,
        serde_json::json!({"Pipes": [{"id": "gw", "algorithm": "TAILDROP", "limit": 3, "counter": 0}], "drop_rate": 0})
    );
    let (ok, dump, out) = mi(&s.fifo, &["ratelimit:dump_pipe", "pipe=gw"]);
    assert!(ok, "{out}");
    assert_eq!(dump["Counter"], 5, "{out}");
    assert_eq!(dump["Algorithm"], "TAILDROP", "{out}");
    let (ok, _, out) = mi(&s.fifo, &["rl_list", "pipe=nosuch"]);
    assert!(!ok && out.contains("Pipe Not Found"), "{out}");
    let (ok, _, out) = mi(&s.fifo, &["rl_reset_pipe", "pipe=nosuch"]);
    assert!(!ok, "{out}");

    // Reset: the pipe passes again; rl_dec_count takes one back.
    let (ok, _, out) = mi(&s.fifo, &["rl_reset_pipe", "pipe=gw"]);
    assert!(ok, "{out}");
    let r = ask(&peer, s.port, "gw", 10);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(header(&r, "X-Count"), ["1"]);
    let r = ask(&peer, s.port, "dec", 11);
    assert_eq!(header(&r, "X-Count"), ["1"], "{r}");
    // A pipe that does not exist: rl_dec_count fails, $rl_count is NULL.
    assert_eq!(header(&r, "X-No-Pipe"), ["yes"]);
    assert_eq!(header(&r, "X-None"), ["<null>"]);

    // SBT, 2 per 1 s window: the third in a row is refused; a window later they pass again.
    let sbt: Vec<String> = (0..3)
        .map(|i| ask(&peer, s.port, "sbt", 20 + i)[8..11].to_owned())
        .collect();
    assert_eq!(sbt, ["200", "200", "503"]);
    std::thread::sleep(Duration::from_millis(1_200));
    assert!(ask(&peer, s.port, "sbt", 30).starts_with("SIP/2.0 200"));
    // rl_values finds the pipes whose name matches, without case.
    let r = ask(&peer, s.port, "gw", 31);
    assert_eq!(header(&r, "X-Pipes"), ["sbt"], "{r}");
    let (ok, list, out) = mi(&s.fifo, &["ratelimit:list", "filter=s*"]);
    assert!(ok, "{out}");
    assert_eq!(list["Pipes"][0]["id"], "sbt", "{out}");
    assert_eq!(list["Pipes"].as_array().map(Vec::len), Some(1), "{out}");

    // FEEDBACK's controller gains.
    let (ok, _, out) = mi(&s.fifo, &["rl_set_pid", "ki=-10", "kp=1", "kd=0"]);
    assert!(ok, "{out}");
    let (ok, pid, out) = mi(&s.fifo, &["rl_get_pid"]);
    assert!(ok, "{out}");
    assert_eq!(
        pid,
        serde_json::json!({"PID": {"ki": "-10.000", "kp": "1.000", "kd": "0.000"}})
    );
    let (ok, _, out) = mi(&s.fifo, &["rl_set_pid", "ki=12345", "kp=1", "kd=0"]);
    assert!(!ok && out.contains("Bad parameter value"), "{out}");
}

#[test]
fn each_interval_starts_afresh_and_unused_pipes_are_forgotten() {
    // Ticks 3 s apart: the count of the interval that ended stays listed for 3 s.
    let s = start("rl-timer", 3, 4);
    let peer = Peer::new();
    assert!(ask(&peer, s.port, "gw", 0).starts_with("SIP/2.0 200"));
    // A tick moves the count to `counter` in the listing, and the next interval starts at 0.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let (_, list, out) = mi(&s.fifo, &["rl_list", "pipe=gw"]);
        if list["Pipe"]["counter"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no tick: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Unused for expire_time (4 s): the pipe goes at the next tick.
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let (ok, _, out) = mi(&s.fifo, &["rl_list", "pipe=gw"]);
        if !ok && out.contains("Pipe Not Found") {
            break;
        }
        assert!(Instant::now() < deadline, "the pipe stays: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_bad_default_algorithm_stops_the_start() {
    let err = common::refused_start(
        "rl-bad",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"ratelimit.so\"\n\
         modparam(\"ratelimit\", \"default_algorithm\", \"FASTEST\")\nroute { exit; }\n",
    );
    assert!(err.contains("unknown algorithm FASTEST"), "{err}");
}
