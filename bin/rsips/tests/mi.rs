//! The management interface end to end, driven by the real clients from PyPI (`opensips-cli`
//! and `opensips-mi`, installed by .ci/run) over HTTP, FIFO and datagram, plus the protocol
//! error paths over raw HTTP and FIFO.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::free_ports;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Rsips {
    child: Child,
    dir: PathBuf,
    sip: u16,
    http: u16,
    datagram: u16,
    fifo: PathBuf,
}

impl Drop for Rsips {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsips {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mi", self.http)
    }
}

fn start(extra: &str) -> Rsips {
    start_with(extra, "route { sl_send_reply(200, \"OK\"); }")
}

fn start_with(extra: &str, route: &str) -> Rsips {
    let [sip, http, datagram] = free_ports::<3>();
    let dir = std::env::temp_dir().join(format!("rsips-mi-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("rsips_fifo");
    let cfg = format!(
        "socket=udp:127.0.0.1:{sip}\nudp_workers=1\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"tm.so\"\nloadmodule \"httpd.so\"\nloadmodule \"mi_http.so\"\n\
         loadmodule \"mi_fifo.so\"\nloadmodule \"mi_datagram.so\"\n\
         modparam(\"httpd\", \"port\", {http})\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{}\")\n\
         modparam(\"mi_fifo\", \"reply_dir\", \"{}/\")\n\
         modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{datagram}\")\n{extra}\n{route}\n",
        fifo.display(),
        dir.display()
    );
    std::fs::write(dir.join("t.cfg"), cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(dir.join("t.cfg"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsips.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Rsips {
        child,
        dir,
        sip,
        http,
        datagram,
        fifo,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.log().matches("MI listening").count() >= 3 {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsips did not start its MI:\n{}", server.log());
}

fn tool(name: &str) -> Command {
    common::installed(name, "--help", "pip install opensipscli opensips")
}

/// Runs a client, killing it if it has not finished within 20 s (a test must not hang).
fn bounded(c: &mut Command) -> std::process::Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "client timed out: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `opensips-cli` with a throw-away config (no ~/.opensips-cli.cfg needed).
fn cli(server: &Rsips, transport: &str, args: &[&str]) -> String {
    let mut c = tool("opensips-cli");
    c.arg("-o").arg(format!("communication_type={transport}"));
    match transport {
        "http" => c.arg("-o").arg(format!("url={}", server.url())),
        _ => c
            .arg("-o")
            .arg(format!("fifo_file={}", server.fifo.display()))
            .arg("-o")
            .arg(format!("fifo_reply_dir={}", server.dir.display())),
    };
    let out = bounded(c.arg("-x").arg("mi").args(args));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "opensips-cli {args:?}: {text}");
    text
}

fn mi_tool(server: &Rsips, args: &[&str]) -> String {
    let out = bounded(tool("opensips-mi").args(args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "opensips-mi {args:?}: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    text
}

#[test]
fn opensips_cli_over_http_and_fifo() {
    let server = start("");
    for transport in ["http", "fifo"] {
        let ps = cli(&server, transport, &["core:ps"]);
        assert!(
            ps.contains("\"Processes\"") && ps.contains("\"Type\": \"timer\""),
            "{ps}"
        );
        let up = cli(&server, transport, &["core:uptime"]);
        assert!(up.contains("\"Up time\"") && up.contains("[sec]"), "{up}");
        let v = cli(&server, transport, &["core:version"]);
        assert!(v.contains("\"Server\": \"rsips ("), "{v}");
        let which = cli(&server, transport, &["which"]);
        assert!(
            which.contains("\"core:ps\"") && which.contains("\"statistics:get\""),
            "{which}"
        );
        // Only loaded modules have commands: tm and httpd are loaded here, tls_mgm is not.
        assert!(
            which.contains("\"tm:uac_dlg\"") && which.contains("\"httpd:list_root_path\""),
            "{which}"
        );
        assert!(!which.contains("tls_mgm:"), "{which}");
        let level = cli(&server, transport, &["log_level", "4"]);
        assert!(level.contains("\"Log level\": 4"), "{level}");
    }
    // Counters move: one request in, one reply out.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = c.local_addr().unwrap().port();
    let req = format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKmi\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: mi-stats\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    c.send_to(req.as_bytes(), ("127.0.0.1", server.sip))
        .unwrap();
    let mut buf = [0u8; 2048];
    c.recv_from(&mut buf).unwrap();
    let stats = cli(
        &server,
        "http",
        &["get_statistics", "core:", "tm:", "sl:", "net:"],
    );
    assert!(
        stats.contains("\"net:waiting_udp\": 0"),
        "nothing queued when idle: {stats}"
    );
    assert!(stats.contains("\"core:rcv_requests\": 1"), "{stats}");
    assert!(stats.contains("\"sl:2xx_replies\": 1"), "{stats}");
    assert!(stats.contains("\"tm:inuse_transactions\": 0"), "{stats}");
    let reset = cli(&server, "fifo", &["reset_statistics", "core:rcv_requests"]);
    assert!(reset.contains("OK"), "{reset}");
    let stats = cli(&server, "fifo", &["statistics:get", "core:rcv_requests"]);
    assert!(stats.contains("\"core:rcv_requests\": 0"), "{stats}");
}

/// The statistics monitoring reads as OpenSIPS names them: the `shmem:`, `pkmem:` and
/// `load:` groups, `core:timestamp` in seconds, names without case, a 404 for none; and the
/// core counters OpenSIPS keeps for a bad header and for the ACK sl absorbs.
#[test]
fn statistics_groups_names_and_core_counters_as_opensips() {
    let server = start_with("", r#"route { sl_send_reply(404, "Not Here"); }"#);
    let stats = cli(
        &server,
        "http",
        &["get_statistics", "shmem:", "load:", "pkmem:"],
    );
    for name in [
        "\"shmem:used_size\"",
        "\"shmem:free_size\"",
        "\"load:load1m\"",
        "\"load:processes_number\"",
        "\"pkmem:0-real_used_size\"",
    ] {
        assert!(stats.contains(name), "{name}: {stats}");
    }
    let (_, none) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"get_statistics","params":[["nosuchstat"]],"id":1}"#,
    );
    assert!(
        none.contains(r#""code":404,"message":"Statistics Not Found""#),
        "{none}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let ts = cli(&server, "http", &["get_statistics", "TIMESTAMP"]);
    assert!(
        ts.contains("\"core:timestamp\"") && !ts.contains("\"core:timestamp\": 0"),
        "seconds since start, found without case: {ts}"
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = c.local_addr().unwrap().port();
    let req = |method: &str, to_tag: &str| {
        format!(
            "{method} sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKst\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>{to_tag}\r\nCall-ID: st\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    c.send_to(req("INVITE", "").as_bytes(), ("127.0.0.1", server.sip))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let to = reply.lines().find(|l| l.starts_with("To:")).unwrap();
    let tag = to.split(";tag=").nth(1).unwrap();
    c.send_to(
        req("ACK", &format!(";tag={tag}")).as_bytes(),
        ("127.0.0.1", server.sip),
    )
    .unwrap();
    let bad = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: garbage;;;\r\nCall-ID: x\r\n\r\n";
    c.send_to(bad.as_bytes(), ("127.0.0.1", server.sip))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = cli(&server, "http", &["get_statistics", "core:", "sl:"]);
        let done = stats.contains("\"core:drop_requests\": 1")
            && stats.contains("\"core:bad_msg_hdr\": 1")
            && stats.contains("\"sl:received_ACKs\": 1");
        if done {
            assert!(stats.contains("\"core:err_requests\": 0"), "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn opensips_mi_over_http_fifo_and_datagram() {
    let server = start("");
    let http = server.http.to_string();
    let dg = server.datagram.to_string();
    let fifo = server.fifo.display().to_string();
    let dir = format!("{}/", server.dir.display());
    for args in [
        vec!["-t", "http", "-i", "127.0.0.1", "-p", &http, "core:version"],
        vec![
            "-t",
            "datagram",
            "-i",
            "127.0.0.1",
            "-p",
            &dg,
            "core:version",
        ],
        vec!["-t", "fifo", "-f", &fifo, "-fd", &dir, "core:version"],
    ] {
        let out = mi_tool(&server, &args);
        assert!(out.contains("rsips ("), "{args:?}: {out}");
    }
    // Kill over MI stops the server cleanly.
    let out = mi_tool(
        &server,
        &["-t", "http", "-i", "127.0.0.1", "-p", &http, "core:kill"],
    );
    assert!(out.contains("OK"), "{out}");
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("core:kill did not stop rsips:\n{}", server.log());
}

/// One raw HTTP exchange: status code and body.
fn http(server: &Rsips, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn post(server: &Rsips, body: &str) -> (u16, String) {
    http(
        server,
        format!(
            "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn bad_requests_get_json_rpc_errors_and_the_server_keeps_running() {
    let server = start("");
    assert_eq!(
        post(&server, "{oops"),
        (
            200,
            r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#.into()
        )
    );
    assert_eq!(
        post(&server, r#"{"jsonrpc":"2.0","method":"no:such","id":1}"#),
        (
            200,
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}"#
                .into()
        )
    );
    let (code, body) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"core:log_level","params":[1,2,3],"id":2}"#,
    );
    assert_eq!(code, 200);
    assert!(
        body.contains(r#""code":-32602"#) && body.contains("Too few or too many parameters"),
        "{body}"
    );
    assert_eq!(
        post(&server, r#"{"jsonrpc":"2.0","method":"core:ps"}"#).0,
        202,
        "notification"
    );
    assert_eq!(http(&server, b"GET /mi HTTP/1.1\r\nHost: x\r\n\r\n").0, 405);
    assert_eq!(
        http(
            &server,
            b"POST /mi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
        )
        .0,
        400
    );
    assert_eq!(
        http(&server, b"POST /other HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").0,
        404
    );
    assert_eq!(
        http(&server, b"POST /mi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n").0,
        413
    );
    // No JSON content type: dropped without a reply.
    assert_eq!(
        http(
            &server,
            b"POST /mi HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"
        )
        .0,
        0
    );
    // A FIFO reply name that would leave reply_dir is refused: nothing is written outside it.
    let escape = server.dir.join("..").join("escaped-reply");
    let _ = std::fs::remove_file(&escape);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&server.fifo)
        .unwrap();
    f.write_all(b":../escaped-reply:{\"jsonrpc\":\"2.0\",\"method\":\"core:ps\",\"id\":1}\n")
        .unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!escape.exists());
    // Still serving.
    let (code, body) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"core:version","id":9}"#,
    );
    assert_eq!(code, 200);
    assert!(body.contains("rsips"), "{body}");
}

#[test]
fn basic_auth_when_configured() {
    let server = start(
        "modparam(\"httpd\", \"auth_username\", \"admin\")\nmodparam(\"httpd\", \"auth_password\", \"s3cret\")",
    );
    let body = r#"{"jsonrpc":"2.0","method":"core:version","id":1}"#;
    let (code, _) = post(&server, body);
    assert_eq!(code, 401);
    // admin:s3cret
    let (code, reply) = http(
        &server,
        format!(
            "POST /mi HTTP/1.1\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 200, "{reply}");
}

#[test]
fn without_an_mi_module_nothing_listens() {
    let [sip] = free_ports::<1>();
    let dir = std::env::temp_dir().join(format!("rsips-nomi-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t.cfg"),
        format!("socket=udp:127.0.0.1:{sip}\nloadmodule \"proto_udp.so\"\nroute {{ exit; }}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(dir.join("t.cfg"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("listening on udp:"), "{log}");
    assert!(!log.contains("MI listening"), "{log}");
}

#[test]
fn prometheus_exposes_the_selected_statistics_with_group_labels() {
    let server = start(
        "loadmodule \"prometheus.so\"\nmodparam(\"prometheus\", \"statistics\", \"core: tm:inuse_transactions\")",
    );
    let (code, body) = http(&server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(
            "# TYPE opensips_rcv_requests counter\nopensips_rcv_requests{group=\"core\"} 0\n"
        ),
        "{body}"
    );
    assert!(
        body.contains("# TYPE opensips_inuse_transactions gauge\nopensips_inuse_transactions{group=\"tm\"} 0\n"),
        "{body}"
    );
    assert!(
        !body.contains("UAS_transactions"),
        "only what `statistics` selects: {body}"
    );
    // The MI still answers on its own root, and httpd lists both roots.
    let (code, _) = post(&server, r#"{"jsonrpc":"2.0","method":"core:ps","id":1}"#);
    assert_eq!(code, 200);
    for name in ["httpd:list_root_path", "httpd_list_root_path"] {
        let (code, body) = post(
            &server,
            &format!(r#"{{"jsonrpc":"2.0","method":"{name}","id":2}}"#),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","result":[{"http_root":"metrics","module":"prometheus"},{"http_root":"mi","module":"mi_http"}],"id":2}"#
        );
    }
}

/// `script_route`: the route runs for every scrape; what it declares and pushes
/// (`prometheus_declare_stat`, `prometheus_push_stat` with and without labels) and the JSON it
/// returns are added to the page; the functions refuse to run in any other route.
#[test]
fn prometheus_script_route_adds_custom_statistics() {
    let server = start_with(
        "loadmodule \"prometheus.so\"\nmodparam(\"prometheus\", \"statistics\", \"core:rcv_requests\")\n\
         modparam(\"prometheus\", \"script_route\", \"custom\")",
        "route { if (!prometheus_push_stat(1)) xlog(\"L_ERR\", \"push refused outside\\n\"); sl_send_reply(200, \"OK\"); }\n\
         route[custom] {\n\
             $var(n) = $var(n) + 1;\n\
             prometheus_declare_stat(\"opensips_cps\");\n\
             prometheus_push_stat(3);\n\
             prometheus_declare_stat(\"opensips_calls\", \"counter\", \"Calls per gateway\");\n\
             prometheus_push_stat(10, \"{gateway=\\\"gw1\\\"}\");\n\
             prometheus_push_stat(7, \"gateway\", \"gw2\");\n\
             return(1, \"[{\\\"header\\\": \\\"# TYPE opensips_total gauge\\\", \\\"values\\\": [{\\\"name\\\": \\\"opensips_total\\\", \\\"value\\\": 42}]}]\");\n\
         }",
    );
    let (code, body) = http(&server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("opensips_rcv_requests{group=\"core\"} "),
        "{body}"
    );
    assert!(
        body.contains(
            "# TYPE opensips_cps gauge\nopensips_cps 3\n\
             # HELP opensips_calls Calls per gateway\n# TYPE opensips_calls counter\n\
             opensips_calls{gateway=\"gw1\"} 10\nopensips_calls{gateway=\"gw2\"} 7\n\
             # TYPE opensips_total gauge\nopensips_total 42\n"
        ),
        "{body}"
    );
    // Outside that route the functions refuse.
    let peer = common::Peer::new();
    let r = common::options(&peer, server.sip, "x", "prom-outside");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !server.log().contains("push refused outside") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tm_uac_dlg_sends_a_request_and_reports_its_final_reply() {
    let server = start("");
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let answer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (n, from) = uas.recv_from(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut reply = String::from("SIP/2.0 200 Fine\r\n");
        for l in req.lines() {
            let name = l.split(':').next().unwrap_or("");
            if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
                reply.push_str(l);
                reply.push_str("\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        uas.send_to(reply.as_bytes(), from).unwrap();
        req
    });
    let ruri = format!("ruri=sip:bob@127.0.0.1:{uas_port}");
    let headers = "headers=From: <sip:mi@rsips.example>\r\nTo: <sip:bob@example.com>\r\n";
    let out = cli(
        &server,
        "http",
        &["tm:uac_dlg", "method=OPTIONS", &ruri, headers],
    );
    assert!(out.contains("\"Status\": \"200 Fine\""), "{out}");
    let req = answer.join().unwrap();
    assert!(
        req.starts_with(&format!("OPTIONS sip:bob@127.0.0.1:{uas_port} SIP/2.0\r\n")),
        "{req}"
    );
    assert!(
        req.contains(&format!(
            "\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK",
            server.sip
        )),
        "{req}"
    );
    assert!(
        req.contains("\r\nFrom: <sip:mi@rsips.example>;tag="),
        "a From tag is added: {req}"
    );
    assert!(
        req.contains("\r\nCSeq: 1 OPTIONS\r\n") && req.contains("@rsips\r\n"),
        "{req}"
    );
    // Positional parameters are refused for this named-only command.
    let (_, body) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"tm:uac_dlg","params":["OPTIONS","sip:a@b","From: <sip:a@b>"],"id":1}"#,
    );
    assert!(
        body.contains("Command only supports named parameters"),
        "{body}"
    );
}

#[test]
fn tm_reply_answers_a_transaction_the_script_left_open() {
    let server = start_with(
        "",
        r#"route { t_newtran(); xlog("L_NOTICE", "tid=$T_id\n"); exit; }"#,
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = c.local_addr().unwrap().port();
    let req = format!(
        "MESSAGE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKtmreply\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: tm-reply\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    c.send_to(req.as_bytes(), ("127.0.0.1", server.sip))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let tid = loop {
        if let Some(t) = server
            .log()
            .lines()
            .find_map(|l| l.split("tid=").nth(1).map(str::to_owned))
        {
            break t;
        }
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"tm:reply","params":{{"code":486,"reason":"Busy Here","trans_id":"{tid}","to_tag":"x"}},"id":1}}"#
    );
    assert_eq!(
        post(&server, &body).1,
        r#"{"jsonrpc":"2.0","result":"OK","id":1}"#
    );
    let mut buf = [0u8; 4096];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 486 Busy Here\r\n"));
    // A second final reply is refused; an unknown transaction is 404.
    assert!(post(&server, &body).1.contains(r#""code":500"#));
    let unknown = body.replace(&tid, "ffff:1");
    assert!(
        post(&server, &unknown)
            .1
            .contains(r#""code":404,"message":"Transaction not found""#)
    );
}

#[test]
fn tcp_list_xlog_level_and_a_unix_datagram_socket() {
    let [tcp] = free_ports::<1>();
    let unix =
        std::env::temp_dir().join(format!("rsips-mi-unix-{}-{tcp}.sock", std::process::id()));
    let server = start_with(
        &format!(
            "socket=tcp:127.0.0.1:{tcp}\nloadmodule \"proto_tcp.so\"\n\
             modparam(\"mi_datagram\", \"socket_name\", \"{}\")",
            unix.display()
        ),
        r#"route { xlog("L_INFO", "seen $ci\n"); sl_send_reply(200, "OK"); }"#,
    );
    // A connection that stays open appears in tcp:list.
    let mut conn = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = conn.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKlist\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: tcp-list\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 2048];
    assert!(conn.read(&mut buf).unwrap() > 0);
    let (_, body) = post(&server, r#"{"jsonrpc":"2.0","method":"tcp:list","id":1}"#);
    assert!(
        body.contains(&format!(r#""Remote":"{local}""#)) && body.contains(r#""Type":"TCP""#),
        "{body}"
    );
    // xlog_level: L_INFO (3) lines show at 3, not at 2.
    let (_, body) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"xlog_level","params":[2],"id":2}"#,
    );
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","result":{"xLog Level":2},"id":2}"#
    );
    conn.write_all(req.replace("tcp-list", "quiet").as_bytes())
        .unwrap();
    assert!(conn.read(&mut buf).unwrap() > 0);
    post(
        &server,
        r#"{"jsonrpc":"2.0","method":"xlog_level","params":[3],"id":3}"#,
    );
    conn.write_all(req.replace("tcp-list", "loud").as_bytes())
        .unwrap();
    assert!(conn.read(&mut buf).unwrap() > 0);
    let log = server.log();
    assert!(
        log.contains("seen loud") && !log.contains("seen quiet"),
        "{log}"
    );
    // mi_datagram on a unix socket.
    let client_path = unix.with_extension("client");
    let _ = std::fs::remove_file(&client_path);
    let client = std::os::unix::net::UnixDatagram::bind(&client_path).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .send_to(
            br#"{"jsonrpc":"2.0","method":"core:version","id":4}"#,
            &unix,
        )
        .unwrap();
    let n = client.recv(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.contains("rsips (") && reply.ends_with(r#""id":4}"#),
        "{reply}"
    );
    let _ = std::fs::remove_file(&client_path);
}

#[test]
fn fifo_owner_comes_from_fifo_user_and_group_and_a_bad_one_stops_the_start() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let [sip] = free_ports::<1>();
    let dir = std::env::temp_dir().join(format!("rsips-fifo-own-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let cfg = |user: &str| {
        format!(
            "socket=udp:127.0.0.1:{sip}\nloadmodule \"proto_udp.so\"\nloadmodule \"mi_fifo.so\"\n\
             modparam(\"mi_fifo\", \"fifo_name\", \"{}\")\n\
             modparam(\"mi_fifo\", \"fifo_mode\", 0600)\n\
             modparam(\"mi_fifo\", \"fifo_user\", \"{user}\")\n\
             modparam(\"mi_fifo\", \"fifo_group\", \"nogroup\")\n\
             route {{ exit; }}\n",
            fifo.display()
        )
    };

    // A user that does not exist: the start fails and says why.
    std::fs::write(dir.join("bad.cfg"), cfg("no_such_user_rsips")).unwrap();
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_rsips"))
            .arg("-F")
            .arg("-f")
            .arg(dir.join("bad.cfg")),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("mi_fifo: bad user `no_such_user_rsips`"),
        "{log}"
    );

    // `nobody`/`nogroup` exist on Debian; giving the FIFO away needs root.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let id = |table: &str, name: &str| -> Option<u32> {
        table.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
        })
    };
    let (Some(uid), Some(gid)) = (id(&passwd, "nobody"), id(&group, "nogroup")) else {
        return;
    };
    if !root {
        return;
    }
    std::fs::write(dir.join("good.cfg"), cfg("nobody")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(dir.join("good.cfg"))
        .stderr(std::fs::File::create(dir.join("good.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !std::fs::read_to_string(dir.join("good.log"))
            .unwrap_or_default()
            .contains("MI listening")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let meta = std::fs::metadata(&fifo);
    let seen = meta
        .as_ref()
        .map(|m| (m.file_type().is_fifo(), m.uid(), m.gid(), m.mode() & 0o777));
    // Stopped with SIGTERM, rsips removes its FIFO.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("good.log")).unwrap_or_default();
    assert_eq!(seen.ok(), Some((true, uid, gid, 0o600)), "{log}");
    assert!(!fifo.exists(), "the FIFO outlived the server:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One JSON-RPC request over the server's `mi_datagram` socket; its reply, or `None` within `wait`.
fn datagram_call(server: &Rsips, request: &str, wait: Duration) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(request.as_bytes(), ("127.0.0.1", server.datagram))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_waiting_uac_dlg_over_datagram_does_not_hold_up_other_commands() {
    let server = start("");
    // A destination that never answers: tm:uac_dlg waits for its final reply.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = silent.local_addr().unwrap().port();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let request = format!(
        r#"{{"jsonrpc":"2.0","method":"tm:uac_dlg","params":{{"method":"OPTIONS","ruri":"sip:x@127.0.0.1:{port}","headers":"From: <sip:mi@rsips.example>\r\nTo: <sip:x@example.com>\r\n"}},"id":7}}"#
    );
    sock.send_to(request.as_bytes(), ("127.0.0.1", server.datagram))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = silent.recv_from(&mut buf).expect("the OPTIONS is sent");
    assert!(buf[..n].starts_with(b"OPTIONS sip:x@127.0.0.1:"));
    // Meanwhile another command over the same MI socket answers at once.
    let reply = datagram_call(
        &server,
        r#"{"jsonrpc":"2.0","method":"core:uptime","id":8}"#,
        Duration::from_secs(3),
    );
    let reply = reply.expect("core:uptime answered while tm:uac_dlg waits");
    assert!(reply.contains("\"Up time\""), "{reply}");
    assert!(reply.ends_with("\"id\":8}"), "{reply}");
}

#[test]
fn the_event_interface_lists_and_raises_the_scripts_events() {
    let server = start(
        "event_route[E_MY_EVENT] {\n\
             xlog(\"L_NOTICE\", \"MY EVENT a=$param(a) n=$param(n) 1=$param(1) 2=$param(2)\\n\");\n\
         }\n",
    );
    let (code, list) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"events_list","id":1}"#,
    );
    assert_eq!(code, 200);
    assert!(
        list.contains(r#"{"name":"E_CORE_THRESHOLD","id":0}"#)
            && list.contains(r#"{"name":"E_CORE_TCP_DISCONNECT","id":4}"#)
            && list.contains(r#"{"name":"E_PROFILING_SCRIPT","id":5}"#)
            && list.contains(r#"{"name":"E_PROFILING_PROC","id":6}"#)
            && list.contains(r#"{"name":"E_MY_EVENT","id":7}"#),
        "{list}"
    );
    let (_, subs) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"evi:subscribers","params":["E_MY_EVENT"],"id":2}"#,
    );
    assert!(subs.contains(r#""socket":"route:E_MY_EVENT""#), "{subs}");
    // Named parameters as a JSON object, then positional ones as an array.
    let (_, ok) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"raise_event","params":{"event":"E_MY_EVENT","params":"{\"a\":\"x\",\"n\":3}"},"id":3}"#,
    );
    assert_eq!(ok, r#"{"jsonrpc":"2.0","result":"OK","id":3}"#);
    let (_, ok) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"evi:raise","params":["E_MY_EVENT",["p1","p2"]],"id":4}"#,
    );
    assert_eq!(ok, r#"{"jsonrpc":"2.0","result":"OK","id":4}"#);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && server.log().matches("MY EVENT").count() < 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(log.contains("MY EVENT a=x n=3 "), "{log}");
    assert!(log.contains("1=p1 2=p2"), "{log}");
    // An unknown event, one nobody listens to, and bad parameters.
    let (_, e) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"raise_event","params":["E_NOPE"],"id":5}"#,
    );
    assert!(
        e.contains(r#""code":404,"message":"Event not registered""#),
        "{e}"
    );
    let (_, e) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"raise_event","params":["E_CORE_PKG_THRESHOLD"],"id":6}"#,
    );
    assert!(e.contains(r#""code":480"#), "{e}");
    let (_, e) = post(
        &server,
        r#"{"jsonrpc":"2.0","method":"raise_event","params":["E_MY_EVENT","not json"],"id":7}"#,
    );
    assert!(e.contains(r#""code":400,"message":"Bad Params""#), "{e}");
}
