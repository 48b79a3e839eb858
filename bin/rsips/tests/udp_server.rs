//! End to end over UDP on 127.0.0.1: rsips runs a script, answers statelessly with
//! `sl_send_reply`, routes replies back per Via (rport), answers malformed requests with
//! 400/416/505, drops malformed responses, survives garbage, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server process; killed if a test fails before stopping it.
struct Rsips {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Rsips {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(route: &str) -> Rsips {
    start_on("127.0.0.1", route)
}

/// Starts rsips on `host` (an IPv4 address or a bracketed IPv6 one) and waits until it answers.
fn start_on(host: &str, route: &str) -> Rsips {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = UdpSocket::bind((bare, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("rsips-udp-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "socket=udp:{host}:{port}\nudp_workers=2\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n{route}\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Rsips {
        child,
        port,
        _dir: dir,
    };
    // Wait (bounded) until it answers.
    let client = UdpSocket::bind((bare, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        client
            .send_to(options("probe").as_bytes(), (bare, port))
            .unwrap();
        if recv(&client).is_some() {
            return server;
        }
    }
    let log = std::fs::read_to_string(server._dir.join("rsips.log")).unwrap_or_default();
    panic!("rsips did not start answering on udp:{host}:{port}:\n{log}");
}

/// How long a test waits for a datagram it expects. Generous: a loaded CI machine can stall a
/// process for a second; silence is asserted with [`QUIET`] instead.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to conclude that nothing was sent.
const QUIET: Duration = Duration::from_millis(700);

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 65_535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn request(method: &str, call_id: &str) -> String {
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\n\
         CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn options(call_id: &str) -> String {
    request("OPTIONS", call_id)
}

fn exchange(server: &Rsips, c: &UdpSocket, msg: &str) -> Option<String> {
    c.send_to(msg.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    recv(c)
}

/// Sends `msg` and listens for [`QUIET`]: for the messages that must get no answer.
fn exchange_quiet(server: &Rsips, c: &UdpSocket, msg: &str) -> Option<String> {
    c.set_read_timeout(Some(QUIET)).unwrap();
    let got = exchange(server, c, msg);
    c.set_read_timeout(Some(WAIT)).unwrap();
    got
}

const ROUTE: &str = r#"route {
    if (is_method("OPTIONS")) {
        append_to_reply("X-Seen: $ci\r\n");
        sl_send_reply(200, "OK");
        exit;
    }
    sl_send_reply(404, "Not Here");
}"#;

#[test]
fn replies_are_built_and_routed_back_per_via() {
    let server = start(ROUTE);
    let c = client();
    let reply = exchange(&server, &c, &options("opt1")).expect("a reply");
    let port = c.local_addr().unwrap().port();
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains(&format!(
            "Via: SIP/2.0/UDP 127.0.0.1:9;received=127.0.0.1;branch=z9hG4bKopt1;rport={port}\r\n"
        )),
        "rport asked: received too, even when it equals sent-by (RFC 3581 §4): {reply}"
    );
    assert!(
        reply.contains("Call-ID: opt1\r\n") && reply.contains("CSeq: 7 OPTIONS\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("To: <sip:bob@example.com>;tag="),
        "a To tag is added: {reply}"
    );
    assert!(
        reply.contains("X-Seen: opt1\r\n"),
        "append_to_reply with a PV: {reply}"
    );
    let again = exchange(&server, &c, &options("opt1")).unwrap();
    assert_eq!(
        again, reply,
        "a retransmission gets the same reply (same To tag)"
    );
    let reply = exchange(&server, &c, &request("INVITE", "inv1")).unwrap();
    assert!(reply.starts_with("SIP/2.0 404 Not Here\r\n"), "{reply}");
}

#[test]
fn malformed_requests_get_the_right_error_and_the_server_keeps_serving() {
    let server = start(ROUTE);
    let c = client();
    let ok = options("ok1");
    let cases = [
        (
            ok.replacen("OPTIONS sip", "OPTIONS  sip", 1),
            "SIP/2.0 400 Bad Request-URI",
        ),
        (
            ok.replacen("SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1),
            "SIP/2.0 505 Version Not Supported",
        ),
        (
            ok.replacen("sip:bob@127.0.0.1", "soap.beep://127.0.0.1", 1),
            "SIP/2.0 416 Unsupported URI Scheme",
        ),
        (
            ok.replacen("CSeq: 7 OPTIONS", "CSeq: 7 INVITE", 1),
            "SIP/2.0 400 CSeq method does not match request method",
        ),
        (
            ok.replacen("Content-Length: 0", "Content-Length: 99", 1),
            "SIP/2.0 400 Content-Length larger than body",
        ),
        (
            ok.replacen("CSeq: 7", "CSeq: 99999999999", 1),
            "SIP/2.0 400 Bad CSeq header",
        ),
    ];
    for (msg, want) in &cases {
        let reply = exchange(&server, &c, msg).unwrap_or_else(|| panic!("no reply for {want}"));
        assert_eq!(reply.lines().next(), Some(*want));
    }
    // Garbage and a malformed response: silence, and the server is still there.
    assert_eq!(exchange_quiet(&server, &c, "\x00\x01garbage\r\n\r\n"), None);
    assert_eq!(
        exchange_quiet(
            &server,
            &c,
            "SIP/2.0 4294967301 Huge\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport\r\n\r\n"
        ),
        None
    );
    assert_eq!(
        exchange_quiet(&server, &c, "\r\n\r\n"),
        None,
        "keepalives are ignored"
    );
    assert!(
        exchange(&server, &c, &options("after"))
            .unwrap()
            .starts_with("SIP/2.0 200 OK")
    );
}

#[test]
fn error_route_takes_over_malformed_requests() {
    let server = start(
        r#"error_route {
    xlog("L_NOTICE", "error_route class=$err.class level=$err.level rcode=$err.rcode info=$err.info\n");
    if ($ci == "quiet") exit;
    append_to_reply("X-Err: $err.class/$err.level\r\n");
    sl_send_reply($err.rcode, "Custom $err.rreason");
}
route { if ($err.class == NULL) sl_send_reply(200, "OK"); }"#,
    );
    let c = client();
    let bad = options("loud").replacen("CSeq: 7", "CSeq: 99999999999", 1);
    let reply = exchange(&server, &c, &bad).expect("error_route replies");
    assert_eq!(
        reply.lines().next(),
        Some("SIP/2.0 400 Custom Bad CSeq header"),
        "{reply}"
    );
    assert!(reply.contains("\r\nX-Err: 1/3\r\n"), "{reply}");
    let bad = options("quiet").replacen("SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1);
    assert_eq!(
        exchange_quiet(&server, &c, &bad),
        None,
        "an error_route that sends nothing: nothing is sent"
    );
    // Good requests still take the request route, where $err is NULL.
    let ok = exchange(&server, &c, &options("fine")).unwrap();
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let log = std::fs::read_to_string(server._dir.join("rsips.log")).unwrap();
    assert!(
        log.contains("error_route class=1 level=3 rcode=505 info="),
        "{log}"
    );
}

#[test]
fn sigterm_stops_the_server() {
    let mut server = start(ROUTE);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(code.success(), "clean exit: {code:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rsips did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// uac → rsips `forward()` → uas, and the uas's reply back along the Vias.
#[test]
fn stateless_forwarding_and_replies_back_by_via() {
    let uas = client();
    let uas_port = uas.local_addr().unwrap().port();
    let server = start(&format!(
        "disable_stateless_fwd=no\nroute {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  $du = \"sip:127.0.0.1:{uas_port}\";\n  forward();\n}}"
    ));
    let uac = client();
    let invite = request("INVITE", "fwd1");
    uac.send_to(invite.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let mut buf = [0u8; 65_535];
    let (n, from) = uas
        .recv_from(&mut buf)
        .expect("the uas receives the forwarded INVITE");
    let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(from.port(), server.port, "sent from rsips' socket");
    let top = fwd.lines().nth(1).unwrap();
    assert!(
        top.starts_with(&format!(
            "Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK",
            server.port
        )),
        "{fwd}"
    );
    let uac_port = uac.local_addr().unwrap().port();
    let uac_via = format!(
        "Via: SIP/2.0/UDP 127.0.0.1:9;received=127.0.0.1;branch=z9hG4bKfwd1;rport={uac_port}"
    );
    assert!(
        fwd.contains(&format!("\r\n{uac_via}\r\n")),
        "the uac's Via follows, rport filled in (RFC 3581): {fwd}"
    );
    assert!(
        fwd.starts_with("INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"),
        "R-URI unchanged ($du only): {fwd}"
    );
    // A retransmission is forwarded with the same branch (stateless proxy, RFC 3261 §16.11).
    uac.send_to(invite.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let (n2, _) = uas.recv_from(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n2]).lines().nth(1),
        Some(top)
    );
    // The uas answers to the top Via (rsips), which relays to the uac (rport).
    let vias: Vec<&str> = fwd.lines().filter(|l| l.starts_with("Via:")).collect();
    let reply = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b2\r\nCall-ID: fwd1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        vias[0], vias[1]
    );
    uas.send_to(reply.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let back = recv(&uac).expect("the uac receives the 200");
    assert!(
        back.starts_with(&format!("SIP/2.0 200 OK\r\n{uac_via}\r\n")),
        "rsips' Via removed: {back}"
    );
    assert_eq!(back.matches("Via:").count(), 1);
}

#[test]
fn force_send_socket_forwards_from_another_configured_socket() {
    let uas = client();
    let uas_port = uas.local_addr().unwrap().port();
    let out_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = start(&format!(
        "socket=udp:127.0.0.1:{out_port}\ndisable_stateless_fwd=no\nroute {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  $du = \"sip:127.0.0.1:{uas_port}\";\n  if ($ci == \"pv\") $socket_out = \"udp:127.0.0.1:{out_port}\"; else force_send_socket(\"udp:127.0.0.1:{out_port}\");\n  forward();\n}}"
    ));
    let uac = client();
    for call_id in ["fn", "pv"] {
        uac.send_to(
            request("INVITE", call_id).as_bytes(),
            ("127.0.0.1", server.port),
        )
        .unwrap();
        let mut buf = [0u8; 65_535];
        let (n, from) = uas
            .recv_from(&mut buf)
            .expect("the uas receives the forwarded INVITE");
        let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert_eq!(
            from.port(),
            out_port,
            "{call_id}: sent from the forced socket"
        );
        assert_ne!(out_port, server.port);
        assert!(
            fwd.lines()
                .nth(1)
                .unwrap()
                .starts_with(&format!("Via: SIP/2.0/UDP 127.0.0.1:{out_port};branch=")),
            "{call_id}: our Via names the socket it left by: {fwd}"
        );
    }
}

#[test]
fn startup_route_seeds_workers_and_timer_routes_tick() {
    let server = start(
        r#"startup_route { $var(boot) = "seeded"; xlog("L_NOTICE", "startup ran\n"); }
timer_route[tick, 1] { xlog("L_NOTICE", "tick $route.type\n"); }
route {
    append_to_reply("X-Boot: $var(boot)\r\n");
    sl_send_reply(200, "OK");
}"#,
    );
    let reply = exchange(&server, &client(), &options("boot")).unwrap();
    assert!(reply.contains("\r\nX-Boot: seeded\r\n"), "{reply}");
    // The 1 s timer has ticked at least twice within a bounded wait.
    let log_path = server._dir.join("rsips.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.matches("tick timer").count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log.matches("tick timer").count() >= 2, "{log}");
    assert_eq!(log.matches("startup ran").count(), 1, "{log}");
}

#[test]
fn a_failing_startup_route_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("rsips-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("t.cfg");
    let port = client().local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!("socket=udp:127.0.0.1:{port}\nloadmodule \"proto_udp.so\"\nstartup_route {{ route(r); }}\nroute[r] {{ route(r); }}\nroute {{ exit; }}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(
        err.contains("startup_route failed: route recursion limit reached"),
        "{err}"
    );
}

/// `disable_stateless_fwd` as OpenSIPS reads it: unset, a script that calls `forward()` has
/// stateless forwarding (the request goes out); an explicit `yes` with a `forward()` in the
/// script is a start-up error at the call.
#[test]
fn forward_works_unless_stateless_forwarding_is_disabled_explicitly() {
    let uas = client();
    let uas_port = uas.local_addr().unwrap().port();
    let route = format!(
        "route {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  $du = \"sip:127.0.0.1:{uas_port}\";\n  if (!forward()) sl_send_reply(500, \"No Stateless Forwarding\");\n}}"
    );
    let server = start(&route);
    let uac = client();
    uac.send_to(
        request("INVITE", "fwd-default").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let mut buf = [0u8; 65_535];
    let (n, _) = uas
        .recv_from(&mut buf)
        .expect("forward() relays by default");
    assert!(buf[..n].starts_with(b"INVITE "));
    drop(server);
    let dir = std::env::temp_dir().join(format!("rsips-nofwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("nofwd.cfg");
    std::fs::write(
        &cfg,
        format!("socket=udp:127.0.0.1:5060\ndisable_stateless_fwd=yes\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n{route}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("stateless forwarding is disabled") && err.contains("nofwd.cfg:9:8"),
        "{err}"
    );
}

#[test]
fn ipv6_on_the_loopback() {
    let server = start_on(
        "[::1]",
        r#"route { xlog("L_ERR", "$si $socket_in(af)\n"); sl_send_reply(200, "OK"); }"#,
    );
    let c = UdpSocket::bind("[::1]:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let port = c.local_addr().unwrap().port();
    let msg = options("v6").replace(
        "Via: SIP/2.0/UDP 127.0.0.1:9",
        &format!("Via: SIP/2.0/UDP [::1]:{port}"),
    );
    c.send_to(msg.as_bytes(), ("::1", server.port)).unwrap();
    let reply = recv(&c).expect("a reply over IPv6");
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains(&format!(
            "Via: SIP/2.0/UDP [::1]:{port};received=::1;branch=z9hG4bKv6;rport={port}\r\n"
        )),
        "{reply}"
    );
}

/// `stderror_enabled=no` + `syslog_enabled=yes`: core and script lines go to syslog (the socket
/// `RSIPS_SYSLOG_SOCKET` names, instead of /dev/log) with the facility and severity as PRI,
/// nothing to stderr; `log_level` filters core lines.
#[test]
fn logs_go_to_syslog_with_facility_and_severity() {
    use std::os::unix::net::UnixDatagram;
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("rsips-syslog-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let _ = std::fs::remove_file(&path);
    let syslog = UnixDatagram::bind(&path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "log_level=1\nstderror_enabled=no\nsyslog_enabled=yes\nsyslog_facility=LOG_LOCAL0\n\
             socket=udp:127.0.0.1:{port}\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
             route {{ xlog(\"L_ERR\", \"seen $ci\\n\"); sl_send_reply(200, \"OK\"); }}\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(&cfg)
        .env("RSIPS_SYSLOG_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Rsips {
        child,
        port,
        _dir: dir,
    };
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reply = None;
    while reply.is_none() && Instant::now() < deadline {
        reply = exchange(&server, &c, &options("syslog-1"));
    }
    assert!(reply.unwrap().starts_with("SIP/2.0 200 OK"));
    let mut buf = [0u8; 2048];
    let n = syslog.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    // LOCAL0 (16) × 8 + err (3) = 131.
    assert!(
        line.starts_with("<131>rsips[") && line.ends_with("]: ERROR:script: seen syslog-1"),
        "{line}"
    );
    // Stop; nothing went to stderr: the NOTICE lines are under log_level 1 and stderr is off.
    let _ = Command::new("kill")
        .arg(server.child.id().to_string())
        .status();
    let out = std::mem::replace(&mut server.child, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

// A reply to a statelessly forwarded request runs the main onreply_route before it is relayed
// (OpenSIPS runs it for every reply): `drop` there stops a provisional reply but not a final
// one (OpenSIPS' receive path drops only replies below 200), header edits go with it.
#[test]
fn stateless_replies_run_the_main_onreply_route() {
    let uas = client();
    let uas_port = uas.local_addr().unwrap().port();
    let tap = client();
    let tap_port = tap.local_addr().unwrap().port();
    let server = start(&format!(
        "disable_stateless_fwd=no\nroute {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  $du = \"sip:127.0.0.1:{uas_port}\";\n  forward();\n}}\n\
         onreply_route {{\n  if ($rs == 180) {{ send(\"udp:127.0.0.1:{tap_port}\"); drop; }}\n  append_hf(\"X-Reply-Route: $rs\\r\\n\");\n  if ($rs == 200) drop;\n}}"
    ));
    let uac = client();
    uac.send_to(
        request("INVITE", "onreply1").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let mut buf = [0u8; 65_535];
    let (n, _) = uas.recv_from(&mut buf).expect("the forwarded INVITE");
    let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
    let vias: Vec<&str> = fwd.lines().filter(|l| l.starts_with("Via:")).collect();
    let reply = |code: &str| {
        format!(
            "SIP/2.0 {code}\r\n{}\r\n{}\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b2\r\nCall-ID: onreply1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
            vias[0], vias[1]
        )
    };
    for code in ["180 Ringing", "200 OK"] {
        uas.send_to(reply(code).as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    }
    let back = recv(&uac).expect("the 200, relayed though the route dropped it");
    assert!(
        back.starts_with("SIP/2.0 200 OK\r\n"),
        "the 180 was dropped: {back}"
    );
    assert!(back.contains("\r\nX-Reply-Route: 200\r\n"), "{back}");
    // What the route sent itself went out, even for the reply it dropped.
    let copy = recv(&tap).expect("the route's send() of the 180");
    assert!(copy.starts_with("SIP/2.0 180 Ringing\r\n"), "{copy}");
}

// A textops edit of the top Via survives forwarding: received/rport go in beside it (before,
// rewriting the line for them dropped the script's change).
#[test]
fn a_script_edit_of_the_top_via_survives_received_and_rport() {
    let uas = client();
    let uas_port = uas.local_addr().unwrap().port();
    let server = start(&format!(
        "disable_stateless_fwd=no\nloadmodule \"textops.so\"\nroute {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  subst('/;branch=z9hG4bKtv1/;x-edited=1;branch=z9hG4bKtv1/');\n  $du = \"sip:127.0.0.1:{uas_port}\";\n  forward();\n}}"
    ));
    let uac = client();
    uac.send_to(
        request("INVITE", "tv1").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let mut buf = [0u8; 65_535];
    let (n, _) = uas.recv_from(&mut buf).expect("the forwarded INVITE");
    let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
    let uac_port = uac.local_addr().unwrap().port();
    let want = format!(
        "\r\nVia: SIP/2.0/UDP 127.0.0.1:9;received=127.0.0.1;x-edited=1;branch=z9hG4bKtv1;rport={uac_port}\r\n"
    );
    assert!(fwd.contains(&want), "{fwd}");
}

/// A reply no transaction takes (OpenSIPS forward.c `forward_reply`): dropped unless stateless
/// forwarding is on (the script calls `forward()`); then relayed to the next Via whatever the
/// top one names, unless `check_via=1` asks that it names this server.
#[test]
fn replies_without_a_transaction_go_on_only_with_stateless_forwarding() {
    let next = client();
    next.set_read_timeout(Some(QUIET)).unwrap();
    let next_port = next.local_addr().unwrap().port();
    let reply = |top: &str| {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {top};branch=z9hG4bKtop\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{next_port};branch=z9hG4bKnext\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
             Call-ID: stray\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let relayed = |server: &Rsips, top: &str| {
        client()
            .send_to(reply(top).as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
        let mut buf = [0u8; 65_535];
        next.recv_from(&mut buf)
            .ok()
            .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let forwarding = "route {\n  if (is_method(\"OPTIONS\")) { sl_send_reply(200, \"OK\"); exit; }\n  forward(\"udp:127.0.0.1:9\");\n}";
    let server = start(ROUTE);
    let ours = format!("127.0.0.1:{}", server.port);
    assert_eq!(relayed(&server, &ours), None, "no forward() in the script");
    drop(server);
    let server = start(forwarding);
    let got = relayed(&server, "192.0.2.9:5060").expect("relayed: check_via is off");
    assert!(
        got.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:")
            && !got.contains("z9hG4bKtop"),
        "{got}"
    );
    drop(server);
    let server = start(&format!("check_via=1\n{forwarding}"));
    assert_eq!(
        relayed(&server, "192.0.2.9:5060"),
        None,
        "check_via: not ours"
    );
    let ours = format!("127.0.0.1:{}", server.port);
    assert!(relayed(&server, &ours).is_some(), "check_via: ours goes on");
}

/// stderr lines as OpenSIPS writes them: `Mmm dd hh:mm:ss [pid] `, then `log_prefix`, then
/// `LEVEL:module: text`.
#[test]
fn stderr_lines_carry_time_pid_and_log_prefix() {
    let server = start(
        "log_prefix=\"[edge-1] \"\nroute { xlog(\"L_ERR\", \"seen $ci\\n\"); sl_send_reply(200, \"OK\"); }",
    );
    let c = client();
    assert!(exchange(&server, &c, &options("stamped")).is_some());
    let log_path = server._dir.join("rsips.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(l) = log
            .lines()
            .find(|l| l.ends_with("ERROR:script: seen stamped"))
        {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = server.child.id();
    let (time, rest) = line.split_at(15);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = time.as_bytes();
    assert!(
        months.contains(&&time[..3])
            && b[3] == b' '
            && (b[4] == b' ' || b[4].is_ascii_digit())
            && b[5].is_ascii_digit()
            && &time[9..10] == ":"
            && &time[12..13] == ":",
        "{line}"
    );
    assert_eq!(
        rest,
        format!(" [{pid}] [edge-1] ERROR:script: seen stamped"),
        "{line}"
    );
}

/// `stderror_log_format="json"`: one JSON object a line, with OpenSIPS' keys; an unknown
/// format is refused at load.
#[test]
fn stderr_lines_in_json() {
    let server = start(
        "stderror_log_format=\"json\"\nlog_prefix=\"edge:\"\nroute { xlog(\"L_ERR\", \"seen \\\"$ci\\\"\\n\"); sl_send_reply(200, \"OK\"); }",
    );
    let c = client();
    assert!(exchange(&server, &c, &options("json")).is_some());
    let log_path = server._dir.join("rsips.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(l) = log.lines().find(|l| l.contains(r#"seen \"json\""#)) {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "ERROR", "{line}");
    assert_eq!(v["module"], "script", "{line}");
    assert_eq!(v["prefix"], "edge", "{line}");
    assert_eq!(v["message"], "seen \"json\"", "{line}");
    assert_eq!(v["pid"], u64::from(server.child.id()), "{line}");
    let dir = std::env::temp_dir().join(format!("rsips-badfmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.cfg"),
        "socket=udp:127.0.0.1:5060\nstderror_log_format=\"xml\"\nloadmodule \"proto_udp.so\"\nroute { exit; }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(dir.join("bad.cfg"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("unknown log format `xml`")
            && err.contains("bad.cfg:2:"),
        "{err}"
    );
}

/// tm parameters rsips accepts without acting on them are named at start, not ignored in
/// silence.
#[test]
fn unapplied_tm_parameters_are_named_at_start() {
    let server = start(
        "loadmodule \"tm.so\"\nmodparam(\"tm\", \"local_reply_route\", \"lr\")\nmodparam(\"tm\", \"fr_timeout\", 5)\nroute { sl_send_reply(200, \"OK\"); }",
    );
    assert!(exchange(&server, &client(), &options("unapplied")).is_some());
    let log = std::fs::read_to_string(server._dir.join("rsips.log")).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains("not applied"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("WARNING:tm: tm parameters set but not applied by rsips: local_reply_route"),
        "{line}"
    );
    assert!(!line.contains("fr_timeout"), "{line}");
}
