//! The statistics module: `variable` and `stat_groups` declare statistics, `update_stat`
//! counts (and creates one on first use), `reset_stat` and `$stat(name) = 0` reset (not a
//! `no_reset` one), `$stat` reads them and the core's, `stat_iter_*` walk a group; MI
//! `get_statistics` (the real `opensips-cli`) shows them; statistic series (`update_stat_series`)
//! over their windows.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "statistics.so"
modparam("statistics", "stat_groups", "method, packet")
modparam("statistics", "variable", "calls_total")
modparam("statistics", "variable", "active_calls/no_reset")
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    update_stat("calls_total", 1);
    update_stat("active_calls", 2);
    update_stat("method:$rm", 1);
    update_stat("seen_$rU", 1);
    if ($rU == "reset") {
        reset_stat("calls_total");
        $stat(active_calls) = 0;
        $stat(method:OPTIONS) = 0;
    }
    if (!update_stat("nogroup:x", 1))
        append_to_reply("X-Bad-Group: refused\r\n");
    $var(list) = "";
    stat_iter_init("method", "it");
    while (stat_iter_next($var(name), $var(val), "it"))
        $var(list) = $var(list) + $var(name) + "=" + $var(val) + ";";
    append_to_reply("X-Stats: total=$stat(calls_total) active=$stat(active_calls) options=$stat(method:OPTIONS) rcv=$stat(rcv_requests)\r\nX-Methods: $var(list)\r\n");
    sl_send_reply(200, "OK");
}
"#;

fn ask(peer: &Peer, port: u16, method: &str, user: &str, n: u32) -> String {
    peer.send(
        port,
        &format!(
            "{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-st-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:t@127.0.0.1>;tag=f\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: st-{n}-{port}\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("reply")
}

#[test]
fn script_statistics_count_reset_and_show() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-stats-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    let peer = Peer::new();

    let r = ask(&peer, port, "OPTIONS", "a", 1);
    assert_eq!(
        header(&r, "X-Stats"),
        ["total=1 active=2 options=1 rcv=1"],
        "{r}"
    );
    assert_eq!(header(&r, "X-Bad-Group"), ["refused"]);
    let r = ask(&peer, port, "INFO", "a", 2);
    assert_eq!(header(&r, "X-Stats"), ["total=2 active=4 options=1 rcv=2"]);
    assert_eq!(header(&r, "X-Methods"), ["OPTIONS=1;INFO=1;"], "{r}");

    // Reset: calls_total and the method statistic go to 0, active_calls (no_reset) stays.
    let r = ask(&peer, port, "OPTIONS", "reset", 3);
    assert_eq!(
        header(&r, "X-Stats"),
        ["total=0 active=6 options=0 rcv=3"],
        "{r}"
    );

    let (ok, out) = common::opensips_cli(&fifo, &["get_statistics", "dynamic:", "method:"]);
    assert!(ok, "{out}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["dynamic:calls_total"], 0, "{out}");
    assert_eq!(stats["dynamic:active_calls"], 6, "{out}");
    assert_eq!(stats["dynamic:seen_a"], 2, "{out}");
    assert_eq!(stats["dynamic:seen_reset"], 1, "{out}");
    assert_eq!(stats["method:INFO"], 1, "{out}");
}

#[test]
fn an_undeclared_group_stops_the_start() {
    let err = common::refused_start(
        "stats-bad",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"statistics.so\"\n\
         modparam(\"statistics\", \"variable\", \"nosuch:calls\")\nroute { exit; }\n",
    );
    assert!(
        err.contains("group `nosuch` is not in stat_groups"),
        "{err}"
    );
}

const SERIES_CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "statistics.so"
modparam("statistics", "stat_series_profile", "perc: algorithm=percentage window=3600 slots=6")
modparam("statistics", "stat_series_profile", "avg: algorithm=average")
modparam("statistics", "stat_series_profile", "acc: window=2 slots=2 group=windowed")
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    # the R-URI user: <series>_<value>, a negative value written n<value>
    $var(v) = $(rU{s.select,1,_});
    if ($(var(v){s.substr,0,1}) == "n")
        $var(v) = 0 - $(var(v){s.substr,1,0}{s.int});
    $var(v) = $(var(v){s.int});
    if ($(rU{s.select,0,_}) == "asr")
        update_stat_series("perc", "asr", $var(v));
    else if ($(rU{s.select,0,_}) == "pdd")
        update_stat_series("avg", "pdd", $var(v));
    else if ($(rU{s.select,0,_}) == "cps")
        update_stat_series("acc", "cps", $var(v));
    if (!update_stat_series("nosuch", "x", 1))
        append_to_reply("X-Bad-Profile: refused\r\n");
    append_to_reply("X-Series: asr=$stat(asr) pdd=$stat(pdd) cps=$stat(windowed:cps)\r\n");
    sl_send_reply(200, "OK");
}
"#;

/// Statistic series: a percentage (ASR-like), an average and a windowed sum, read through
/// `$stat` and the MI; the windowed one forgets what its 2 s window left behind.
#[test]
fn statistic_series_over_their_windows() {
    let port = common::free_port();
    let dir = common::test_dir("stats-series", &port.to_string());
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        SERIES_CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    let peer = Peer::new();
    let series = |user: &str, n: u32| {
        let r = ask(&peer, port, "OPTIONS", user, n);
        assert_eq!(header(&r, "X-Bad-Profile"), ["refused"], "{r}");
        header(&r, "X-Series")[0].to_owned()
    };
    series("asr_1", 1);
    series("asr_n1", 2);
    series("asr_1", 3);
    // A series is a statistic once it is first fed (as in OpenSIPS): NULL before.
    assert_eq!(series("asr_1", 4), "asr=75 pdd=<null> cps=<null>");
    series("pdd_100", 5);
    assert_eq!(series("pdd_301", 6), "asr=75 pdd=200 cps=<null>");
    series("cps_2", 7);
    assert_eq!(series("cps_3", 8), "asr=75 pdd=200 cps=5");
    let (ok, out) = common::opensips_cli(&fifo, &["get_statistics", "perc:", "windowed:"]);
    assert!(ok, "{out}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["perc:asr"], 75, "{out}");
    assert_eq!(stats["windowed:cps"], 5, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(series("none_0", 9), "asr=75 pdd=200 cps=0");
}

#[test]
fn a_bad_series_profile_stops_the_start() {
    let err = common::refused_start(
        "stats-bad-series",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"statistics.so\"\n\
         modparam(\"statistics\", \"stat_series_profile\", \"p: algorithm=median\")\nroute { exit; }\n",
    );
    assert!(err.contains("unknown algorithm `median`"), "{err}");
}
