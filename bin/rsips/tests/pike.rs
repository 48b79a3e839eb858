//! pike: a source flooding the server is blocked once it sends `reqs_density_per_unit`
//! requests within a sampling window (`pike_check_req` -2, logged, `E_PIKE_BLOCKED` raised;
//! -1 after), unblocked by a quiet window or MI `pike:rm`, listed by `pike:list` (the real
//! `opensips-cli`); in automatic mode (`check_route`) its messages are dropped unless that
//! route exempts them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::header;

const MANUAL: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "pike.so"
modparam("pike", "sampling_time_unit", WINDOW)
modparam("pike", "reqs_density_per_unit", DENSITY)
EXTRA
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    ROUTE
}
route[pike_check] {
    if ($si == "127.0.0.2")
        drop;
}
event_route[E_PIKE_BLOCKED] {
    xlog("L_NOTICE", "pike event: $param(ip) blocked\n");
}
"#;

const CHECK: &str = r#"pike_check_req();
    $var(rc) = $retcode;
    if ($var(rc) < 0) {
        append_to_reply("X-Pike: $var(rc)\r\n");
        sl_send_reply(403, "Flooding");
        exit;
    }
    sl_send_reply(200, "OK");"#;

struct Server {
    rsips: common::Kill,
    port: u16,
    fifo: PathBuf,
    log: PathBuf,
}

fn start(name: &str, window: u32, density: u32, extra: &str, route: &str) -> Server {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        MANUAL
            .replace("PORT", &port.to_string())
            .replace("WINDOW", &window.to_string())
            .replace("DENSITY", &density.to_string())
            .replace("EXTRA", extra)
            .replace("ROUTE", route)
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    Server {
        rsips,
        port,
        fifo,
        log: dir.join("rsips.log"),
    }
}

/// A UDP client on `ip`.
fn client(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// An OPTIONS from `sock` to the server; the reply, or `None` within `wait`.
fn ask(sock: &UdpSocket, port: u16, n: u32, wait: Duration) -> Option<String> {
    let local = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:p@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-pike-{n}-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:t@127.0.0.1>;tag=f\r\n\
         To: <sip:p@127.0.0.1>\r\n\
         Call-ID: pike-{n}-{}-{}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        local.port(),
        local.port(),
        port
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65535];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_flooding_source_is_blocked_listed_and_removed() {
    // A 30 s window: the whole flood falls in one.
    let s = start("pike", 30, 5, "", CHECK);
    let c = client("127.0.0.1");
    let wait = Duration::from_secs(5);
    // 5 per window: a fresh address grows its tree path (4 requests), then 5 more block it.
    let results: Vec<String> = (0..11)
        .map(|n| {
            let r = ask(&c, s.port, n, wait).expect("no reply");
            match header(&r, "X-Pike").first() {
                Some(rc) => (*rc).to_owned(),
                None => r[8..11].to_owned(),
            }
        })
        .collect();
    let mut want = vec!["200"; 8];
    want.extend(["-2", "-1", "-1"]);
    assert_eq!(results, want);
    let log = || std::fs::read_to_string(&s.log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log().contains("pike event: 127.0.0.1 blocked") {
        assert!(Instant::now() < deadline, "no event:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        log().contains("WARNING:PIKE - BLOCKing ip 127.0.0.1"),
        "{}",
        log()
    );

    let (ok, out) = common::opensips_cli(&s.fifo, &["pike:list"]);
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list, serde_json::json!({"IPs": ["127.0.0.1"]}));
    let (ok, out) = common::opensips_cli(&s.fifo, &["pike:rm", "ip=10.9.9.9"]);
    assert!(!ok && out.contains("Match not found"), "{out}");
    let (ok, out) = common::opensips_cli(&s.fifo, &["pike:rm", "ip=::1"]);
    assert!(!ok && out.contains("Bad IP"), "{out}");
    let (ok, out) = common::opensips_cli(&s.fifo, &["pike:rm", "ip=127.0.0.1"]);
    assert!(ok, "{out}");
    let r = ask(&c, s.port, 20, wait).unwrap();
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let (ok, out) = common::opensips_cli(&s.fifo, &["pike:rm", "ip=127.0.0.1"]);
    assert!(!ok && out.contains("IP not blocked"), "{out}");
    let (_, out) = common::opensips_cli(&s.fifo, &["pike:list"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"IPs": []})
    );
}

#[test]
fn a_quiet_window_unblocks() {
    let s = start("pike-quiet", 1, 3, "", CHECK);
    let c = client("127.0.0.1");
    let wait = Duration::from_secs(5);
    let mut n = 0;
    // Flood until blocked (a window boundary may fall in the flood: keep going).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        n += 1;
        let r = ask(&c, s.port, n, wait).unwrap();
        if r.starts_with("SIP/2.0 403") {
            break;
        }
        assert!(Instant::now() < deadline, "never blocked");
    }
    // One request a second (under 3 per window): let through again within a few windows.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        std::thread::sleep(Duration::from_millis(1_100));
        n += 1;
        let r = ask(&c, s.port, n, wait).unwrap();
        if r.starts_with("SIP/2.0 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still blocked: {r}");
    }
}

#[test]
fn automatic_mode_drops_a_flood_unless_the_check_route_exempts_it() {
    let extra = "modparam(\"pike\", \"check_route\", \"pike_check\")";
    let mut s = start("pike-auto", 30, 3, extra, "sl_send_reply(200, \"OK\");");
    let flood = client("127.0.0.1");
    let short = Duration::from_millis(500);
    let answered = (0..12)
        .filter(|n| ask(&flood, s.port, *n, short).is_some())
        .count();
    // 3 per window: 4 to grow the path, 3 more to block; the rest are dropped unanswered.
    assert_eq!(answered, 6, "answered");
    let (ok, out) = common::opensips_cli(&s.fifo, &["get_statistics", "core:drop_requests"]);
    assert!(ok, "{out}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["core:drop_requests"], 6, "{out}");
    // The route drops what comes from 127.0.0.2: never counted, always answered.
    let trusted = client("127.0.0.2");
    assert!((0..20).all(|n| ask(&trusted, s.port, 100 + n, Duration::from_secs(5)).is_some()));
    let log = s.log.clone();
    s.rsips
        .terminate(|| std::fs::read_to_string(&log).unwrap_or_default());
}
