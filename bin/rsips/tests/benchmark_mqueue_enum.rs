//! Three OpenSIPS modules end to end: `benchmark` (timers switched on through MI, the log
//! line every `granularity` measures, `$BM_time_diff`, `benchmark:poll_results`), `mqueue`
//! (pairs added by one request and fetched by another and through MI, the oldest dropped when
//! a queue is full, the return codes, the MI sizes) and `enum` (`enum_query`, `i_enum_query`,
//! `isn_query`, `is_from_user_enum` against NAPTR records of a test DNS server), plus the
//! load-time errors for bad arguments.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/resolve/tests/common/mod.rs"]
mod dns;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kill, Peer, header, refused_start};
use dns::{Data, Mode, TestDns, Zone};

const HEAD: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=4
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
"#;

/// rsips on `cfg` (PORT and FIFO replaced) in `dir`, with its resolver pointed at `dns`
/// when given; ready once it listens.
struct Server {
    dir: std::path::PathBuf,
    proc: Kill,
    port: u16,
    stopped: bool,
}

impl Server {
    fn start(name: &str, cfg: &str, dns: Option<&TestDns>) -> Server {
        Server::start_with(name, cfg, dns, &[])
    }

    /// As [`Server::start`], with `files` (relative path, content) written into the test's
    /// directory first; `DIR` in the config is that directory.
    fn start_with(name: &str, cfg: &str, dns: Option<&TestDns>, files: &[(&str, &str)]) -> Server {
        let dir = common::test_dir("bme", name);
        for (path, content) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let port = common::free_port();
        let fifo = dir.join("fifo");
        let text = format!("{HEAD}{cfg}")
            .replace("PORT", &port.to_string())
            .replace("FIFO", fifo.to_str().unwrap())
            .replace("DIR", dir.to_str().unwrap());
        std::fs::write(dir.join("rsips.cfg"), text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rsips"));
        cmd.args(["-F", "-f"])
            .arg(dir.join("rsips.cfg"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsips.log")).unwrap());
        if let Some(dns) = dns {
            std::fs::write(
                dir.join("resolv.conf"),
                format!("nameserver {}\noptions timeout:1 attempts:1\n", dns.addr),
            )
            .unwrap();
            cmd.env("RSIPS_RESOLV_CONF", dir.join("resolv.conf"));
        }
        let mut proc = Kill(cmd.spawn().unwrap());
        let server = |proc| Server {
            dir: dir.clone(),
            proc,
            port,
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
        while !log().contains("listening on udp:") {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("rsips exited ({status}) at start:\n{}", log());
            }
            assert!(Instant::now() < deadline, "rsips not ready:\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server(proc)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    /// A graceful stop (SIGTERM), waited for.
    fn stop(&mut self) {
        let log = self.dir.join("rsips.log");
        self.proc
            .terminate(|| std::fs::read_to_string(&log).unwrap_or_default());
        self.stopped = true;
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        common::opensips_cli(&self.dir.join("fifo"), args)
    }

    fn mi(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = self.cli(args);
        assert!(ok, "opensips-cli {args:?}: {out}\n{}", self.log());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn mi_error(&self, args: &[&str]) -> String {
        let (ok, out) = self.cli(args);
        assert!(!ok, "opensips-cli {args:?} should fail: {out}");
        out
    }

    /// Sends a request from `peer` with `extra` headers and returns the reply.
    fn ask(&self, peer: &Peer, ruri: &str, from_user: &str, extra: &str) -> String {
        let n = CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        peer.send(
            self.port,
            &format!(
                "MESSAGE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-bme{n}\r\n\
                 From: <sip:{from_user}@example.com>;tag=b{n}\r\nTo: <sip:b@example.com>\r\n\
                 Call-ID: bme-{n}\r\nCSeq: 1 MESSAGE\r\n{extra}Max-Forwards: 70\r\n\
                 Content-Length: 0\r\n\r\n",
                peer.port
            ),
        );
        peer.recv("reply")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            if !self.stopped {
                self.stop();
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

static CALL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn one<'a>(msg: &'a str, name: &str) -> &'a str {
    header(msg, name)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} in:\n{msg}"))
}

const BENCHMARK: &str = r#"
loadmodule "benchmark.so"
modparam("benchmark", "granularity", 2)
modparam("benchmark", "loglevel", 2)
route {
    if ($hdr(X-Never) != NULL) {
        bm_start_timer("never-run");
        bm_log_timer("never-run");
    }
    bm_start_timer("t1");
    $var(i) = 0;
    while ($var(i) < 50) { $var(i) = $var(i) + 1; }
    bm_log_timer("t1");
    append_to_reply("X-Diff: $BM_time_diff\r\n");
    sl_send_reply(200, "Timed");
}
"#;

#[test]
fn benchmark_timers_log_and_poll() {
    let s = Server::start("bench", BENCHMARK, None);
    let ua = Peer::new();
    // enable 0 and the timer off: nothing measured.
    for _ in 0..2 {
        let r = s.ask(&ua, "sip:x@127.0.0.1", "a", "");
        assert_eq!(one(&r, "X-Diff"), "0", "{r}");
    }
    assert!(!s.log().contains("benchmark (timer"), "{}", s.log());
    // The timer switched on by name: every second measure logs a line.
    assert_eq!(s.mi(&["benchmark:enable_timer", "t1", "1"]), "OK");
    assert!(
        s.mi_error(&["benchmark:enable_timer", "nosuch", "1"])
            .contains("Failed to register timer")
    );
    assert!(
        s.mi_error(&["bm_enable_timer", "t1", "2"])
            .contains("Bad parameter value")
    );
    for _ in 0..2 {
        let r = s.ask(&ua, "sip:x@127.0.0.1", "a", "");
        assert!(one(&r, "X-Diff").parse::<i64>().unwrap() >= 0, "{r}");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let line = loop {
        let log = s.log();
        if let Some(l) = log.lines().find(|l| l.contains("benchmark (timer t1 [")) {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "no benchmark line:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // t1 is the second timer the script names; NOTICE is loglevel 2.
    assert!(line.contains("NOTICE:benchmark (timer t1 [1]): "), "{line}");
    assert!(
        line.contains(" [ msgs/total/min/max/avg - LR: 2/"),
        "{line}"
    );
    assert!(line.contains(" | GB: 2/"), "{line}");
    // poll_results is refused while granularity is not 0.
    assert!(
        s.mi_error(&["benchmark:poll_results"])
            .contains("granularity")
    );
    assert_eq!(s.mi(&["bm_granularity", "0"]), "OK");
    for _ in 0..3 {
        s.ask(&ua, "sip:x@127.0.0.1", "a", "");
    }
    let polled = s.mi(&["benchmark:poll_results"]);
    let timers = polled["Timers"].as_array().unwrap();
    // Newest first; `global` is the interval, `local` the whole run (OpenSIPS' labels).
    assert_eq!(timers[0]["name"], "t1", "{polled}");
    assert_eq!(timers[1]["name"], "never-run", "{polled}");
    assert!(
        timers[0]["global"].as_str().unwrap().starts_with("3/"),
        "{polled}"
    );
    assert!(
        timers[0]["local"].as_str().unwrap().starts_with("5/"),
        "{polled}"
    );
    assert_eq!(timers[1]["local"], "0/0/0/0/0.000000", "{polled}");
    let again = s.mi(&["bm_poll_results"]);
    assert_eq!(again["Timers"][0]["global"], "0/0/0/0/0.000000", "{again}");
    assert!(
        again["Timers"][0]["local"]
            .as_str()
            .unwrap()
            .starts_with("5/"),
        "{again}"
    );
    // Switched off by name: no longer measured.
    assert_eq!(s.mi(&["benchmark:enable_timer", "t1", "0"]), "OK");
    s.ask(&ua, "sip:x@127.0.0.1", "a", "");
    let after = s.mi(&["benchmark:poll_results"]);
    assert_eq!(after["Timers"][0]["global"], "0/0/0/0/0.000000", "{after}");
    assert!(
        s.mi_error(&["benchmark:loglevel", "9"])
            .contains("Bad value")
    );
    assert!(
        s.mi_error(&["benchmark:enable_global", "2"])
            .contains("Bad parameter value")
    );
}

const MQUEUE: &str = r#"
loadmodule "mqueue.so"
modparam("mqueue", "mqueue", "name=jobs;size=2;")
modparam("mqueue", "mqueue", "name=uniq;addmode=1")
modparam("mqueue", "mqueue", "name=other")
route {
    if ($hdr(X-Op) == "add") {
        mq_add("$hdr(X-Q)", "$hdr(X-Key)", "$hdr(X-Val)");
        append_to_reply("X-Ret: $rc\r\nX-Size: $mq_size(jobs)\r\n");
    } else if ($hdr(X-Op) == "fetch") {
        mq_fetch("$hdr(X-Q)");
        $var(r) = $rc;
        append_to_reply("X-Ret: $var(r)\r\n");
        if ($var(r) == 1) {
            append_to_reply("X-K: $mqk(jobs)\r\nX-V: $mqv(jobs)\r\n");
            mq_pv_free("jobs");
            if ($mqk(jobs) == NULL) append_to_reply("X-Freed: yes\r\n");
        }
    } else if ($hdr(X-Op) == "size") {
        mq_size("$hdr(X-Q)");
        append_to_reply("X-Ret: $rc\r\n");
    }
    sl_send_reply(200, "Queued");
}
"#;

fn op(s: &Server, ua: &Peer, op: &str, q: &str, key: &str, val: &str) -> String {
    s.ask(
        ua,
        "sip:q@127.0.0.1",
        "a",
        &format!("X-Op: {op}\r\nX-Q: {q}\r\nX-Key: {key}\r\nX-Val: {val}\r\n"),
    )
}

#[test]
fn mqueue_pairs_shared_between_workers_and_mi() {
    let s = Server::start("mqueue", MQUEUE, None);
    let ua = Peer::new();
    for (i, (k, v)) in [("k1", "v1"), ("k2", "v2"), ("k3", "v3")]
        .iter()
        .enumerate()
    {
        let r = op(&s, &ua, "add", "jobs", k, v);
        assert_eq!(one(&r, "X-Ret"), "1", "{r}");
        // Bounded at 2: the third pair pushes the first out.
        assert_eq!(one(&r, "X-Size"), (i + 1).min(2).to_string(), "{r}");
    }
    assert_eq!(one(&op(&s, &ua, "add", "nosuch", "k", "v"), "X-Ret"), "-1");
    let sizes = s.mi(&["mqueue:get_sizes"]);
    assert_eq!(
        sizes,
        serde_json::json!({"Queue": [
            {"name": "other", "size": 0},
            {"name": "uniq", "size": 0},
            {"name": "jobs", "size": 2}
        ]})
    );
    assert_eq!(
        s.mi(&["mq_get_size", "jobs"]),
        serde_json::json!({"Queue": {"name": "jobs", "size": 2}})
    );
    assert!(
        s.mi_error(&["mqueue:get_size", "nosuch"])
            .contains("No such queue")
    );
    // Another request (any worker) takes the oldest pair left.
    let r = op(&s, &ua, "fetch", "jobs", "", "");
    assert_eq!(one(&r, "X-Ret"), "1", "{r}");
    assert_eq!((one(&r, "X-K"), one(&r, "X-V")), ("k2", "v2"), "{r}");
    assert_eq!(one(&r, "X-Freed"), "yes", "{r}");
    // The MI process takes the next one.
    assert_eq!(
        s.mi(&["mqueue:fetch", "jobs"]),
        serde_json::json!({"Item": {"key": "k3", "value": "v3"}})
    );
    assert!(s.mi_error(&["mq_fetch", "jobs"]).contains("Empty queue"));
    assert_eq!(one(&op(&s, &ua, "fetch", "jobs", "", ""), "X-Ret"), "-2");
    assert_eq!(one(&op(&s, &ua, "fetch", "nosuch", "", ""), "X-Ret"), "-1");
    assert_eq!(one(&op(&s, &ua, "size", "jobs", "", ""), "X-Ret"), "-1");
    assert_eq!(one(&op(&s, &ua, "size", "nosuch", "", ""), "X-Ret"), "-2");
    // addmode=1 keeps the first pair of a key; a bulk fetch through MI.
    for v in ["first", "second"] {
        op(&s, &ua, "add", "uniq", "same", v);
    }
    op(&s, &ua, "add", "uniq", "other", "x");
    assert_eq!(one(&op(&s, &ua, "size", "uniq", "", ""), "X-Ret"), "2");
    assert_eq!(
        s.mi(&["mqueue:fetch", "uniq", "5"]),
        serde_json::json!([{"key": "same", "value": "first"}, {"key": "other", "value": "x"}])
    );
}

#[test]
fn mqueue_dbmode_loads_at_start_and_saves_at_stop() {
    let cfg = r#"
loadmodule "db_text.so"
loadmodule "mqueue.so"
modparam("mqueue", "db_url", "text://DIR/db")
modparam("mqueue", "mqueue", "name=kept;dbmode=1")
modparam("mqueue", "mqueue", "name=readonly;dbmode=2")
route {
    mq_add("kept", "$hdr(X-Key)", "$hdr(X-Val)");
    mq_add("readonly", "$hdr(X-Key)", "$hdr(X-Val)");
    sl_send_reply(200, "Queued");
}
"#;
    let table = "id(int,auto) key(string) val(string)\n";
    let mut s = Server::start_with(
        "mqueue-db",
        cfg,
        None,
        &[
            ("db/kept", &format!("{table}1:a:1\n2:b:2\n")),
            ("db/readonly", &format!("{table}1:r:9\n")),
        ],
    );
    // Both tables read at start (in id order), then emptied.
    assert_eq!(s.mi(&["mqueue:get_size", "kept"])["Queue"]["size"], 2);
    assert_eq!(s.mi(&["mqueue:get_size", "readonly"])["Queue"]["size"], 1);
    assert_eq!(
        s.mi(&["mqueue:fetch", "kept"]),
        serde_json::json!({"Item": {"key": "a", "value": "1"}})
    );
    let ua = Peer::new();
    s.ask(&ua, "sip:q@127.0.0.1", "a", "X-Key: c\r\nX-Val: 3\r\n");
    s.stop();
    // dbmode 1 writes what is left back; dbmode 2 does not.
    let kept = std::fs::read_to_string(s.dir.join("db/kept")).unwrap();
    let rows: Vec<_> = kept.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{kept}");
    assert!(
        rows[0].ends_with(":b:2") && rows[1].ends_with(":c:3"),
        "{kept}"
    );
    let readonly = std::fs::read_to_string(s.dir.join("db/readonly")).unwrap();
    assert_eq!(readonly.lines().skip(1).count(), 0, "{readonly}");
}

#[test]
fn enum_queries_rewrite_the_request_uri() {
    let zone = Zone::new()
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(20, 10, "u", "E2U+sip", "!^.*$!sip:third@gw3.example.com!"),
        )
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(10, 20, "u", "E2U+sip", "!^.*$!sip:backup@gw2.example.com!"),
        )
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(
                10,
                10,
                "u",
                "E2U+sip",
                "!^\\+(.*)$!sip:\\1@gw1.example.com!",
            ),
        )
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(5, 10, "u", "E2U+h323", "!^.*$!h323:x@gw.example.com!"),
        )
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(
                5,
                10,
                "u",
                "E2U+voice:sip",
                "!^.*$!sip:voice@gw4.example.com!",
            ),
        )
        .add(
            "gw1.example.com",
            Data::A(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        )
        .add(
            "gw2.example.com",
            Data::A(std::net::Ipv4Addr::new(192, 0, 2, 2)),
        )
        .add(
            "gw3.example.com",
            Data::A(std::net::Ipv4Addr::new(192, 0, 2, 3)),
        )
        .add(
            "1.2.3.4.e164.arpa",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^.*$!sip:me@127.0.0.1!"),
        )
        .add(
            "4.3.2.1.i.3.4.e164.arpa",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^.*$!sip:infra@gw.example.com!"),
        )
        .add(
            "6.5.1212.freenum.org",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^(.*)$!sip:\\1@isn.example.com!"),
        );
    let dns = TestDns::start(zone, Mode::Normal);
    let cfg = r#"
loadmodule "enum.so"
modparam("enum", "tel_uri_params", ";npdi")
route {
    $var(r) = 0;
    if ($hdr(X-Enum) == "plain") { enum_query(); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "voice") { enum_query("e164.arpa.", "voice"); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "compound") { enum_query("e164.arpa.", "+video:sip+voice:sip"); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "number") { enum_query("e164.arpa.", "", "+1234"); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "infra") { i_enum_query(); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "isn") { isn_query(); $var(r) = $rc; }
    else if ($hdr(X-Enum) == "from") { is_from_user_enum(); $var(r) = $rc; }
    append_to_reply("X-Ret: $var(r)\r\nX-Ruri: $ru\r\nX-Q: $ru_q\r\n");
    if ($(msg.branch.uri[1]) != NULL)
        append_to_reply("X-B0: $(msg.branch.uri[1]) $(msg.branch.q[1])\r\n");
    if ($(msg.branch.uri[2]) != NULL)
        append_to_reply("X-B1: $(msg.branch.uri[2]) $(msg.branch.q[2])\r\n");
    sl_send_reply(200, "Looked up");
}
"#;
    let s = Server::start("enum", cfg, Some(&dns));
    let ua = Peer::new();
    let ask =
        |ruri: &str, from: &str, how: &str| s.ask(&ua, ruri, from, &format!("X-Enum: {how}\r\n"));
    // E2U+sip records by (order, preference): the first rewrites the R-URI, the others are
    // branches whose q falls as (order, preference) grows.
    let r = ask("sip:+1234@127.0.0.1", "a", "plain");
    assert_eq!(one(&r, "X-Ret"), "1", "{r}\n{}", s.log());
    assert_eq!(one(&r, "X-Ruri"), "sip:1234@gw1.example.com;npdi", "{r}");
    assert_eq!(one(&r, "X-Q"), "990", "{r}");
    assert_eq!(
        one(&r, "X-B0"),
        "sip:backup@gw2.example.com;npdi 0.98",
        "{r}"
    );
    assert_eq!(
        one(&r, "X-B1"),
        "sip:third@gw3.example.com;npdi 0.97",
        "{r}"
    );
    let r = ask("sip:+1234@127.0.0.1", "a", "voice");
    assert_eq!(one(&r, "X-Ruri"), "sip:voice@gw4.example.com;npdi", "{r}");
    assert!(header(&r, "X-B0").is_empty(), "{r}");
    // A list of services: voice:sip is one of them (h323 and sip are not).
    let r = ask("sip:+1234@127.0.0.1", "a", "compound");
    assert_eq!(one(&r, "X-Ret"), "1", "{r}");
    assert_eq!(one(&r, "X-Ruri"), "sip:voice@gw4.example.com;npdi", "{r}");
    // The number given as an argument, whatever the R-URI.
    let r = ask("sip:alice@127.0.0.1", "a", "number");
    assert_eq!(one(&r, "X-Ruri"), "sip:1234@gw1.example.com;npdi", "{r}");
    // No record, or no E.164 number: -1 and the R-URI untouched.
    let r = ask("sip:+9999@127.0.0.1", "a", "plain");
    assert_eq!(one(&r, "X-Ret"), "-1", "{r}");
    assert_eq!(one(&r, "X-Ruri"), "sip:+9999@127.0.0.1", "{r}");
    let r = ask("sip:alice@127.0.0.1", "a", "plain");
    assert_eq!(one(&r, "X-Ret"), "-1", "{r}");
    // Infrastructure ENUM: the `i` label after the country code (43).
    let r = ask("sip:+431234@127.0.0.1", "a", "infra");
    assert_eq!(one(&r, "X-Ruri"), "sip:infra@gw.example.com;npdi", "{r}");
    // ISN: digits reversed, the ITAD kept.
    let r = ask("sip:56*1212@127.0.0.1", "a", "isn");
    assert_eq!(one(&r, "X-Ruri"), "sip:56*1212@isn.example.com;npdi", "{r}");
    // is_from_user_enum: the From number's URI host is our source (127.0.0.1) …
    assert_eq!(one(&ask("sip:x@127.0.0.1", "+4321", "from"), "X-Ret"), "1");
    // … or resolves elsewhere (-8), or has no record (-3), or is no E.164 number (-1).
    assert_eq!(one(&ask("sip:x@127.0.0.1", "+1234", "from"), "X-Ret"), "-8");
    assert_eq!(one(&ask("sip:x@127.0.0.1", "+9999", "from"), "X-Ret"), "-3");
    assert_eq!(one(&ask("sip:x@127.0.0.1", "bob", "from"), "X-Ret"), "-1");
}

#[test]
fn i_enum_query_follows_txt_and_ebl_records() {
    let zone = Zone::new()
        // The branch-location records of +43 (label `i`).
        .add("i.3.4.e164.arpa", Data::Txt("3"))
        .add("i.3.4.e164.arpa", Data::Ebl(2, "infra", "ienum.example"))
        .add(
            "4.3.2.i.1.3.4.e164.arpa",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^.*$!sip:txt@gw.example.com!"),
        )
        .add(
            "4.3.2.1.infra.3.4.ienum.example",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^.*$!sip:ebl@gw.example.com!"),
        )
        // No EBL for +1: user ENUM under the suffix.
        .add(
            "4.3.2.1.e164.arpa",
            Data::NaptrRegexp(10, 10, "u", "E2U+sip", "!^.*$!sip:user@gw.example.com!"),
        );
    let dns = TestDns::start(zone, Mode::Normal);
    let route = r#"
route {
    i_enum_query();
    append_to_reply("X-Ret: $rc\r\nX-Ruri: $ru\r\n");
    sl_send_reply(200, "Looked up");
}
"#;
    let ua = Peer::new();
    for (alg, user, expected) in [
        ("txt", "+431234", "sip:txt@gw.example.com"),
        ("ebl", "+431234", "sip:ebl@gw.example.com"),
        ("ebl", "+1234", "sip:user@gw.example.com"),
    ] {
        let cfg = format!(
            "loadmodule \"enum.so\"\nmodparam(\"enum\", \"bl_algorithm\", \"{alg}\")\n{route}"
        );
        let s = Server::start(&format!("ienum-{alg}"), &cfg, Some(&dns));
        let r = s.ask(&ua, &format!("sip:{user}@127.0.0.1"), "a", "");
        assert_eq!(one(&r, "X-Ret"), "1", "{alg} {user}: {r}\n{}", s.log());
        assert_eq!(one(&r, "X-Ruri"), expected, "{alg} {user}: {r}");
    }
}

#[test]
fn bad_arguments_fail_the_load_at_their_position() {
    let head = "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\n";
    let err = refused_start(
        "bme-bad-timer",
        &format!("{head}loadmodule \"benchmark.so\"\nroute {{\n    bm_start_timer(\"\");\n}}\n"),
    );
    assert!(err.contains("rsips.cfg:5:20"), "{err}");
    assert!(err.contains("empty"), "{err}");
    let long = "x".repeat(32);
    let err = refused_start(
        "bme-long-timer",
        &format!(
            "{head}loadmodule \"benchmark.so\"\nroute {{\n    bm_log_timer(\"{long}\");\n}}\n"
        ),
    );
    assert!(err.contains("rsips.cfg:5:18"), "{err}");
    assert!(err.contains("longer than 31"), "{err}");
    let err = refused_start(
        "bme-bad-queue",
        &format!(
            "{head}loadmodule \"mqueue.so\"\nmodparam(\"mqueue\", \"mqueue\", \"size=3;colour=red\")\nroute {{ exit; }}\n"
        ),
    );
    assert!(err.contains("rsips.cfg:4:"), "{err}");
    assert!(err.contains("colour"), "{err}");
    let err = refused_start(
        "bme-granularity",
        &format!(
            "{head}loadmodule \"benchmark.so\"\nmodparam(\"benchmark\", \"granularity\", -1)\nroute {{ exit; }}\n"
        ),
    );
    assert!(err.contains("granularity cannot be negative"), "{err}");
    let err = refused_start(
        "bme-pv-no-module",
        &format!("{head}route {{ xlog(\"$mqk(q)\"); }}\n"),
    );
    assert!(err.contains("rsips.cfg:3:"), "{err}");
    assert!(err.contains("mqueue"), "{err}");
    let err = refused_start(
        "bme-enum-route",
        &format!(
            "{head}loadmodule \"enum.so\"\nroute {{ exit; }}\nonreply_route {{\n    enum_query();\n}}\n"
        ),
    );
    assert!(err.contains("rsips.cfg:6:"), "{err}");
}
