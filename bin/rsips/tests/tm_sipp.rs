//! The stateful proxy end to end: SIPp scenarios (tests/sipp/*.xml and SIPp's built-in uac/uas)
//! through a residential-shaped config — maxfwd, has_totag + loose_route, CANCEL with
//! t_check_trans, record_route, t_on_failure, t_relay to `$du`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Kill, free_port, free_ports, sipp};

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// The residential request route; `$rU` picks the UAS (`failover` tries the busy one first).
fn proxy_cfg(port: u16, uas: u16, busy: u16, ring: u16, ring2: u16, mi: u16) -> String {
    format!(
        r#"loadmodule "httpd.so"
loadmodule "mi_http.so"
modparam("httpd", "port", {mi})
socket=udp:127.0.0.1:{port}
socket=tcp:127.0.0.1:{port}
udp_workers=2
tcp_workers=2
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "sipmsgops.so"
loadmodule "acc.so"
modparam("tm", "fr_timeout", 15)
modparam("tm", "fr_inv_timeout", 3)
modparam("acc", "extra_fields", "log: src_ip; dst_ip->callee_ip")
onreply_route {{
    if ($rs >= 200) $acc_extra(dst_ip) = $si;
}}
route {{
    if (!mf_process_maxfwd_header(10)) {{ sl_send_reply(483, "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{
            # A caller that asks for it gets a short final-response timer.
            if (is_present_hf("X-Short-Timer")) $T_fr_timeout = 2;
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{ if (t_check_trans()) t_relay(); exit; }}
        sl_send_reply(404, "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    t_check_trans();
    if (is_method("INVITE")) {{
        record_route();
        do_accounting("log", "missed|failed");
        $acc_extra(src_ip) = $si;
    }}
    if ($rU == "failover" || $rU == "busy") $du = "sip:127.0.0.1:{busy}";
    else $du = "sip:127.0.0.1:{uas}";
    if ($rU == "fork") {{
        append_msg_branch("sip:ring1@127.0.0.1:{ring}");
        append_msg_branch("sip:ring2@127.0.0.1:{ring2}");
    }}
    if ($rU == "fork1000") {{
        $du = "sip:127.0.0.1:{ring}";
        $var(i) = 1;
        while ($var(i) < 1000) {{
            append_msg_branch("sip:b$var(i)@127.0.0.1:{ring}");
            $var(i) = $var(i) + 1;
        }}
    }}
    t_on_failure("missed");
    # Headers for the CANCELs and ACKs tm builds: the transaction must exist first.
    t_newtran();
    t_add_hdrs("X-Relayed: rsips\r\n");
    if (!t_relay()) sl_reply_error();
}}
failure_route[missed] {{
    xlog("L_NOTICE", "failure_route $T_reply_code $T_ruri\n");
    if (t_was_cancelled()) exit;
    if ($rU == "failover" && t_check_status("486")) {{
        $du = "sip:127.0.0.1:{uas}";
        t_relay();
    }}
}}
"#
    )
}

struct Setup {
    dir: PathBuf,
    proxy: u16,
    /// The MI (mi_http) port.
    mi: u16,
    _rsips: Kill,
    _uas: Vec<Kill>,
    /// SIPp scenarios run one at a time: in parallel on two cores they time out under load.
    /// Last, so it is released after the processes above are stopped.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// Starts rsips and the UASes (`uas` runs `uas_args`, `busy` runs uas_busy.xml).
fn setup(name: &str, uas_args: &[&str]) -> Setup {
    setup_with_ring(name, uas_args, None)
}

/// `setup` with the forking UASes: `ring` is a responder the test runs itself, else two
/// `uas_ring.xml` SIPps.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup_with_ring(name: &str, uas_args: &[&str], ring: Option<u16>) -> Setup {
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let [proxy, uas, busy, spare, ring2, mi] = free_ports::<6>();
    let ring_port = ring.unwrap_or(spare);
    let dir = std::env::temp_dir().join(format!("rsips-tm-{name}-{}-{proxy}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("proxy.cfg");
    std::fs::write(&cfg, proxy_cfg(proxy, uas, busy, ring_port, ring2, mi)).unwrap();
    let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
    let rsips = Kill(
        Command::new(env!("CARGO_BIN_EXE_rsips"))
            .arg("-F")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let spawn = |port: u16, args: &[&str]| {
        Kill(
            sipp()
                .args(args)
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-nostdin",
                    "-trace_logs",
                ])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("sipp-{port}.err"))).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let mut uases = vec![
        spawn(uas, uas_args),
        spawn(busy, &["-sf", scenario("uas_busy.xml").to_str().unwrap()]),
    ];
    if ring.is_none() {
        // Two ringing UASes (a fork's branches go to different user agents).
        for port in [ring_port, ring2] {
            uases.push(spawn(
                port,
                &["-sf", scenario("uas_ring.xml").to_str().unwrap()],
            ));
        }
    }
    // Ready when rsips says its MI listens (its last start step) and the UASes had a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline
        && !std::fs::read_to_string(dir.join("rsips.log"))
            .unwrap_or_default()
            .contains("MI listening")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    Setup {
        _serial: serial,
        dir,
        proxy,
        mi,
        _rsips: rsips,
        _uas: uases,
    }
}

/// Runs a SIPp uac against the proxy; asserts every call succeeded.
fn uac(s: &Setup, service: &str, calls: u32, extra: &[&str]) {
    let port = free_port();
    // Every message the uac saw, for the failure report.
    let trace = s.dir.join(format!("uac-{port}-messages.log"));
    let out = sipp()
        .args(extra)
        .args(["-trace_msg", "-message_file"])
        .arg(&trace)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-s", service])
        .arg(format!("127.0.0.1:{}", s.proxy))
        .args(["-m", &calls.to_string(), "-r", "20", "-timeout", "40s"])
        .args(["-timeout_error", "-nostdin"])
        .current_dir(&s.dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let successful = report
        .lines()
        .rfind(|l| l.trim_start().starts_with("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|c| c.trim().parse::<u32>().ok());
    let log = std::fs::read_to_string(s.dir.join("rsips.log")).unwrap_or_default();
    let messages = std::fs::read_to_string(&trace).unwrap_or_default();
    let lines: Vec<&str> = messages.lines().collect();
    let last = lines[lines.len().saturating_sub(300)..].join("\n");
    assert!(
        out.status.success(),
        "sipp uac ({service}) failed (exit {:?}):\n{report}\nrsips:\n{log}\n\
         the uac's last messages:\n{last}",
        out.status.code()
    );
    assert_eq!(
        successful,
        Some(calls),
        "{report}\nthe uac's last messages:\n{last}"
    );
}

/// What the UAS scenarios logged (`-trace_logs`).
fn uas_logs(s: &Setup, scenario: &str) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(&s.dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(scenario) && name.ends_with("_logs.log") {
            all.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    all
}

/// The answering UAS (echoes Record-Route, unlike SIPp's built-in uas).
fn answer() -> Vec<&'static str> {
    let path: &'static str = Box::leak(
        scenario("uas_answer.xml")
            .to_str()
            .unwrap()
            .to_owned()
            .into_boxed_str(),
    );
    vec!["-sf", path]
}

/// The calling UAC that follows the route set (SIPp's built-in uac ignores it).
fn call() -> Vec<&'static str> {
    let path: &'static str = Box::leak(
        scenario("uac_call.xml")
            .to_str()
            .unwrap()
            .to_owned()
            .into_boxed_str(),
    );
    vec!["-sf", path]
}

#[test]
fn basic_calls_with_record_route_and_loose_routed_bye() {
    let s = setup("basic", &answer());
    uac(&s, "alice", 20, &call());
    let log = rsips_log(&s);
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ACC: transaction answered:"))
        .collect();
    assert_eq!(answered.len(), 20, "acc logs every answered INVITE:\n{log}");
    let line = answered[0];
    for part in [
        ";method=INVITE;from_tag=",
        ";to_tag=",
        ";call_id=",
        ";code=200;reason=OK",
        // extra_fields: one value set in the request route, one in the onreply route.
        ";src_ip=127.0.0.1;callee_ip=127.0.0.1",
    ] {
        assert!(line.contains(part), "{line}");
    }
    assert!(
        // As OpenSIPS' LM_GEN2 writes it on stderr: time, pid, the level, then the text with no
        // module tag.
        line.split_once("] ").is_some_and(
            |(_, rest)| rest.starts_with("NOTICE:ACC: transaction answered: timestamp=")
        ),
        "{line}"
    );
}

fn rsips_log(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.join("rsips.log")).unwrap_or_default()
}

/// The `acc` lines of the rsips log that start with `ACC: {what}:`.
fn acc_lines<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    let prefix = format!("ACC: {what}:");
    log.lines().filter(|l| l.contains(&prefix)).collect()
}

#[test]
fn busy_is_acked_hop_by_hop_and_relayed() {
    let s = setup("busy", &answer());
    uac(
        &s,
        "busy",
        5,
        &["-sf", scenario("uac_busy.xml").to_str().unwrap()],
    );
    // `do_accounting("log", "missed|failed")`: each busy call is one missed call and one
    // failed transaction, with the busy reply's code.
    let log = rsips_log(&s);
    let missed = acc_lines(&log, "call missed");
    assert_eq!(missed.len(), 5, "{log}");
    assert!(missed.iter().all(|l| l.contains(";code=486;")), "{log}");
    let answered = acc_lines(&log, "transaction answered");
    assert_eq!(answered.len(), 5, "{log}");
    assert!(answered.iter().all(|l| l.contains(";code=486;")), "{log}");
}

#[test]
fn serial_failover_from_failure_route() {
    let s = setup("failover", &answer());
    uac(&s, "failover", 5, &call());
    let log = rsips_log(&s);
    assert_eq!(
        log.matches("NOTICE:script: failure_route 486 sip:failover@")
            .count(),
        5,
        "failure_route sees the 486 and the request's R-URI:\n{log}"
    );
    // The first attempt's failure is the missed call (once: the flag is spent, as in
    // OpenSIPS); the second attempt is answered.
    let missed = acc_lines(&log, "call missed");
    assert_eq!(missed.len(), 5, "{log}");
    assert!(missed.iter().all(|l| l.contains(";code=486;")), "{log}");
    let answered = acc_lines(&log, "transaction answered");
    assert_eq!(answered.len(), 5, "{log}");
    assert!(answered.iter().all(|l| l.contains(";code=200;")), "{log}");
}

#[test]
fn cancel_during_ringing() {
    let ring = scenario("uas_ring.xml");
    let s = setup("cancel", &["-sf", ring.to_str().unwrap()]);
    uac(
        &s,
        "alice",
        3,
        &["-sf", scenario("uac_cancel.xml").to_str().unwrap()],
    );
    let logs = uas_logs(&s, "uas_ring");
    assert_eq!(logs.matches("CANCEL Reason cause=487").count(), 3, "{logs}");
    // A call the caller gave up on is a missed call.
    let log = rsips_log(&s);
    let missed = acc_lines(&log, "call missed");
    assert_eq!(missed.len(), 3, "{log}");
    assert!(missed.iter().all(|l| l.contains(";code=487;")), "{log}");
}

#[test]
fn no_answer_gives_408_and_cancel_with_reason() {
    let ring = scenario("uas_ring.xml");
    let s = setup("noanswer", &["-sf", ring.to_str().unwrap()]);
    uac(
        &s,
        "alice",
        2,
        &["-sf", scenario("uac_noanswer.xml").to_str().unwrap()],
    );
    let logs = uas_logs(&s, "uas_ring");
    assert_eq!(logs.matches("CANCEL Reason cause=480").count(), 2, "{logs}");
}

#[test]
fn udp_packet_loss_is_recovered_by_retransmission() {
    // The UAS loses 10% of the INVITEs and BYEs it receives: only the proxy's retransmissions
    // (T1, 2·T1 …) get them through (uas_lossy.xml says why 10%).
    let lossy = scenario("uas_lossy.xml");
    let s = setup("lossy", &["-sf", lossy.to_str().unwrap()]);
    uac(&s, "alice", 20, &call());
}

#[test]
fn tcp_in_udp_out_and_back() {
    let s = setup("tcp-udp", &answer());
    uac(
        &s,
        "alice",
        10,
        &[call().as_slice(), &["-t", "t1"]].concat(),
    );
}

#[test]
fn parallel_fork_one_answers_and_the_others_are_cancelled() {
    let s = setup("fork", &answer());
    uac(&s, "fork", 3, &call());
    // SIPp writes its log lines when it gets to them: wait (bounded) for both UASes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut logs = uas_logs(&s, "uas_ring");
    while logs.matches("cause=200").count() < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        logs = uas_logs(&s, "uas_ring");
    }
    assert_eq!(
        logs.matches("CANCEL Reason cause=200").count(),
        6,
        "both ringing branches of each call get CANCEL with Reason 200: {logs}"
    );
    // Answered calls: the cancelled branches are no missed calls.
    let log = rsips_log(&s);
    assert_eq!(acc_lines(&log, "call missed"), Vec::<&str>::new(), "{log}");
}

/// One INVITE forked to 1,000 branches (a UDP responder of our own answers each with 480,
/// and one with 415, which ranks first): every branch is ACKed and exactly one final reply reaches the caller.
#[test]
fn a_fork_with_a_thousand_branches() {
    // A large receive buffer: 1,000 INVITEs and ACKs arrive in a burst.
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = raw.set_recv_buffer_size(8 << 20);
    raw.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let responder: UdpSocket = raw.into();
    let ring = responder.local_addr().unwrap().port();
    responder
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let counts = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let seen = std::sync::Arc::clone(&counts);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = std::sync::Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        // Final reply per branch (resent for a retransmitted INVITE, as a UAS does), and the
        // branches whose reply was ACKed.
        let mut replies: std::collections::HashMap<String, String> = Default::default();
        let mut acked = std::collections::HashSet::new();
        while !halt.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((n, from)) = responder.recv_from(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let header = |name: &str| {
                msg.lines()
                    .find(|l| l.starts_with(name))
                    .unwrap_or("")
                    .to_owned()
            };
            let via = header("Via:");
            if msg.starts_with("INVITE ") {
                let reply = replies.entry(via.clone()).or_insert_with(|| {
                    let user = msg.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (code, reason) = if user.starts_with("sip:b500@") {
                        (415, "Unsupported Media Type")
                    } else {
                        (480, "Temporarily Unavailable")
                    };
                    format!(
                        "SIP/2.0 {code} {reason}\r\n{via}\r\n{}\r\n{};tag=r\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
                        header("From:"),
                        header("To:"),
                        header("Call-ID:"),
                        header("CSeq:")
                    )
                });
                let _ = responder.send_to(reply.as_bytes(), from);
            } else if msg.starts_with("ACK ") {
                acked.insert(via);
            }
            *seen.lock().unwrap() = (replies.len(), acked.len());
        }
    });
    let s = setup_with_ring("fork1000", &answer(), Some(ring));
    uac(
        &s,
        "fork1000",
        1,
        &["-sf", scenario("uac_fork_fail.xml").to_str().unwrap()],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    thread.join().unwrap();
    let (invites, acks) = *counts.lock().unwrap();
    assert_eq!(invites, 1000, "one INVITE per branch");
    assert_eq!(
        acks, 1000,
        "every negative reply is acknowledged hop by hop"
    );
}

#[test]
fn a_bye_the_callee_never_answers_gets_408_from_the_proxy() {
    let mute = scenario("uas_mute_bye.xml");
    let s = setup("mutebye", &["-sf", mute.to_str().unwrap()]);
    uac(
        &s,
        "alice",
        2,
        &["-sf", scenario("uac_bye_timeout.xml").to_str().unwrap()],
    );
}

/// One MI call over HTTP; the response body.
fn mi_call(s: &Setup, method: &str) -> String {
    use std::io::{Read, Write};
    let body = format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":1}}"#);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.mi)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        format!(
            "POST /mi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

/// reload_routes with a good, a broken and the original script while SIPp places calls at a
/// steady rate: the broken one is refused with its diagnostics, and no call fails.
#[test]
fn reload_routes_under_load_with_a_good_and_a_broken_script() {
    let s = setup("reload", &answer());
    let cfg = s.dir.join("proxy.cfg");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let calls = std::thread::scope(|scope| {
        let load = scope.spawn(|| uac(&s, "alice", 100, &call()));
        std::thread::sleep(Duration::from_millis(1000));
        let good = original.replace(
            "    t_on_failure(\"missed\");",
            "    xlog(\"L_NOTICE\", \"reloaded route $ci\\n\");\n    t_on_failure(\"missed\");",
        );
        assert_ne!(good, original);
        std::fs::write(&cfg, &good).unwrap();
        let ok = mi_call(&s, "core:reload_routes");
        assert_eq!(ok, r#"{"jsonrpc":"2.0","result":"OK","id":1}"#);
        std::thread::sleep(Duration::from_millis(1000));
        std::fs::write(&cfg, good.replace("t_relay();", "t_relay(")).unwrap();
        let refused = mi_call(&s, "reload_routes");
        assert!(
            refused.contains(r#""code":500,"message":"Failed to reload""#)
                && refused.contains("proxy.cfg:"),
            "{refused}"
        );
        std::thread::sleep(Duration::from_millis(1000));
        std::fs::write(&cfg, &original).unwrap();
        assert!(mi_call(&s, "core:reload_routes").contains(r#""result":"OK""#));
        load.join()
    });
    assert!(calls.is_ok(), "every call succeeded through the reloads");
    let log = rsips_log(&s);
    assert_eq!(log.matches("routes reloaded").count(), 2, "{log}");
    assert!(log.contains("reloaded route "), "the new script ran: {log}");
}
