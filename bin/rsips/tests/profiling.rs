//! OpenSIPS 4.0 profiling end to end: MI `core:profiling_proc` over HTTP sets the level of a
//! `core:ps` entry, UDP subscribers of `E_PROFILING_PROC` and `E_PROFILING_SCRIPT` receive the
//! records of a request whose script nests `route()` calls (names, verbs, depths, file:line,
//! statuses, one session, time never going back), and both stop when turned off; bad
//! parameters give JSON-RPC errors; level 3 reports the timer jobs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CFG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "event_datagram.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
modparam("httpd", "port", HTTP)

route {
    route(outer);
    sl_send_reply(200, "OK");
    exit;
}

route[outer] {
    $var(x) = 1;
    route(inner);
    return(2);
}

route[inner] {
    return(3);
}

timer_route[tick, 1] {
    $var(t) = 1;
}
"#;

/// The 1-based line of the first line of `CFG` holding `text`.
fn line_of(text: &str) -> i64 {
    CFG.lines().position(|l| l.contains(text)).unwrap() as i64 + 1
}

struct Server {
    _rsips: common::Kill,
    dir: PathBuf,
    port: u16,
    http: u16,
}

/// tm's routes: a branch route, the reply of the next hop in an onreply route, then the
/// failure route.
const TM_CFG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "event_datagram.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
modparam("httpd", "port", HTTP)

route {
    t_on_branch("b");
    t_on_reply("r");
    t_on_failure("f");
    $du = "sip:127.0.0.1:UAS";
    t_relay();
    exit;
}

branch_route[b] {
    $var(b) = 1;
}

onreply_route[r] {
    $var(r) = 1;
}

failure_route[f] {
    t_reply(500, "Next hop busy");
}
"#;

impl Server {
    fn start(name: &str) -> Server {
        Server::start_with(name, CFG, 0)
    }

    fn start_with(name: &str, cfg: &str, uas: u16) -> Server {
        let [port, http] = common::free_ports::<2>();
        let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rsips.cfg"),
            cfg.replace("PORT", &port.to_string())
                .replace("HTTP", &http.to_string())
                .replace("UAS", &uas.to_string()),
        )
        .unwrap();
        let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
        Server {
            _rsips: rsips,
            dir,
            port,
            http,
        }
    }

    /// One JSON-RPC call over HTTP; the parsed response.
    fn mi(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let text = common::mi_http(self.http, &body.to_string());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn result(&self, method: &str, params: Value) -> Value {
        let r = self.mi(method, params);
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    /// The `core:ps` ID of the entry described `desc`.
    fn ps_id(&self, desc: &str) -> u64 {
        let ps = self.result("core:ps", json!({}));
        ps["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Type"] == desc)
            .unwrap_or_else(|| panic!("no {desc} in {ps}"))["ID"]
            .as_u64()
            .unwrap()
    }

    fn subscribe(&self, event: &str, port: u16, expire: i64) {
        let r = self.result(
            "evi:subscribe",
            json!({"event": event, "socket": format!("udp:127.0.0.1:{port}"), "expire": expire}),
        );
        assert_eq!(r, "OK");
    }

    /// An OPTIONS; waits for its 200.
    fn options(&self, n: u32) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        let msg = format!(
            "OPTIONS sip:p@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-prof-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@127.0.0.1>;tag=f{n}\r\n\
             To: <sip:p@127.0.0.1>\r\n\
             Call-ID: prof-{n}-{port}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.port
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", self.port))
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let got = sock.recv(&mut buf).expect("a reply to the OPTIONS");
        assert!(buf[..got].starts_with(b"SIP/2.0 200 OK"));
    }

    fn cfg_path(&self) -> String {
        self.dir.join("rsips.cfg").display().to_string()
    }
}

fn listener() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// The params of the `event` notifications received on `sock` until `done` holds for those
/// kept by `keep` (5 s at most).
fn records(
    sock: &UdpSocket,
    event: &str,
    keep: impl Fn(&Value) -> bool,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65535];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{event}: only got {got:#?}");
        sock.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = sock.recv(&mut buf) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], event, "{v}");
        if keep(&v["params"]) {
            got.push(v["params"].clone());
        }
    }
    got
}

/// Nothing arrives on `sock` for `wait`.
fn quiet(sock: &UdpSocket, wait: Duration) -> Option<String> {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65535];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// (verb, name, depth) of each record.
fn shape(recs: &[Value]) -> Vec<(String, String, i64)> {
    recs.iter()
        .map(|r| {
            (
                r["verb"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
                r["depth"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Every record has one session and `type`, and its time never goes back.
fn one_session_in_order(recs: &[Value], kind: i64) {
    let session = &recs[0]["session"];
    assert!(session.as_i64().is_some_and(|s| s > 0), "{recs:#?}");
    let mut last = 0;
    for r in recs {
        assert_eq!(&r["session"], session, "{recs:#?}");
        assert_eq!(r["type"], kind, "{recs:#?}");
        let t = r["sec"].as_i64().unwrap() * 1_000_000 + r["usec"].as_i64().unwrap();
        assert!((0..1_000_000).contains(&r["usec"].as_i64().unwrap()));
        assert!(t >= last, "time went back in {recs:#?}");
        last = t;
        // file/line only on enter/exit, status only on exit/end.
        let verb = r["verb"].as_str().unwrap();
        assert_eq!(
            r.get("file").is_some(),
            verb == "enter" || verb == "exit",
            "{r}"
        );
        assert_eq!(r.get("line").is_some(), r.get("file").is_some(), "{r}");
        assert_eq!(
            r.get("status").is_some(),
            verb == "exit" || verb == "end",
            "{r}"
        );
    }
}

#[test]
fn a_request_reports_its_routes_and_its_worker_until_turned_off() {
    let srv = Server::start("profiling-req");
    let (script_sock, script_port) = listener();
    let (proc_sock, proc_port) = listener();
    let desc = format!("UDP receiver udp:127.0.0.1:{}", srv.port);
    let worker = srv.ps_id(&desc);

    // Both events are published by the core, as in OpenSIPS.
    let list = srv.result("evi:list", json!({})).to_string();
    assert!(list.contains("E_PROFILING_SCRIPT") && list.contains("E_PROFILING_PROC"));

    // Off by default.
    let before = srv.result("core:profiling_proc", json!({"id": worker}));
    assert_eq!(
        before,
        json!({"Processes": [{"ID": worker, "PID": before["Processes"][0]["PID"],
            "Profiling level": 0, "Type": desc}]})
    );
    assert!(
        before["Processes"][0]["PID"]
            .as_u64()
            .is_some_and(|p| p > 0)
    );

    srv.subscribe("E_PROFILING_SCRIPT", script_port, 3600);
    srv.subscribe("E_PROFILING_PROC", proc_port, 3600);
    assert_eq!(
        srv.result("core:profiling_proc", json!({"id": worker, "level": 1})),
        "OK"
    );
    assert_eq!(
        srv.result("core:profiling_proc", json!({"id": worker}))["Processes"][0]["Profiling level"],
        1
    );

    srv.options(1);

    // The script: the request route (named <root>), then route(outer) calling route(inner).
    let script = records(
        &script_sock,
        "E_PROFILING_SCRIPT",
        |r| r["type"] == 1,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    let s = |v: &str, n: &str, d: i64| (v.to_owned(), n.to_owned(), d);
    assert_eq!(
        shape(&script),
        [
            s("start", "<root>", 1),
            s("enter", "<root>", 1),
            s("enter", "outer", 2),
            s("enter", "inner", 3),
            s("exit", "inner", 3),
            s("exit", "outer", 2),
            s("exit", "<root>", 1),
            s("end", "<root>", 1),
        ],
        "{script:#?}"
    );
    one_session_in_order(&script, 1);
    let file = srv.cfg_path();
    let at = |i: usize| {
        (
            script[i]["file"].as_str().unwrap(),
            script[i]["line"].as_i64().unwrap(),
        )
    };
    // The top route is placed at its first statement, a call at the route() call.
    assert_eq!(at(1), (file.as_str(), line_of("    route(outer);")));
    assert_eq!(at(2), (file.as_str(), line_of("    route(outer);")));
    assert_eq!(at(3), (file.as_str(), line_of("    route(inner);")));
    assert_eq!(at(4), at(3));
    assert_eq!(at(5), at(2));
    assert_eq!(at(6), at(1));
    // Statuses: each route's return code, then `exit` (OpenSIPS' action flag 1).
    let status: Vec<i64> = script
        .iter()
        .filter_map(|r| r.get("status").and_then(Value::as_i64))
        .collect();
    assert_eq!(status, [3, 2, 1, 1]);

    // The worker: reading, receive_msg, the request script.
    let procs = records(
        &proc_sock,
        "E_PROFILING_PROC",
        |_| true,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    assert_eq!(
        shape(&procs),
        [
            s("start", &desc, 0),
            s("enter", "udp proto reading", 1),
            s("enter", "receive_msg", 2),
            s("enter", "request_script", 3),
            s("exit", "request_script", 2),
            s("exit", "receive_msg", 1),
            s("exit", "reading done", 0),
            s("end", &desc, 0),
        ],
        "{procs:#?}"
    );
    one_session_in_order(&procs, 1);
    assert_eq!(procs[4]["status"], 1, "the script's status");
    assert_eq!(procs[2]["file"], "handle");
    assert_eq!(procs[3]["file"], "run");
    // The session of a worker is its thread, not the message: the next message has the same.
    srv.options(2);
    let again = records(
        &proc_sock,
        "E_PROFILING_PROC",
        |_| true,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    assert_eq!(again[0]["session"], procs[0]["session"]);
    let next = records(
        &script_sock,
        "E_PROFILING_SCRIPT",
        |r| r["type"] == 1,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    assert_ne!(
        next[0]["session"], script[0]["session"],
        "a session per message"
    );

    // Off: level 0 for all, and the script subscriber gone (an expire of 0 ends it).
    assert_eq!(srv.result("core:profiling_proc", json!({"level": 0})), "OK");
    srv.subscribe("E_PROFILING_SCRIPT", script_port, 0);
    std::thread::sleep(Duration::from_millis(1200));
    // Whatever was under way before is drained.
    while quiet(&script_sock, Duration::from_millis(100)).is_some() {}
    while quiet(&proc_sock, Duration::from_millis(100)).is_some() {}
    srv.options(3);
    srv.options(4);
    assert_eq!(quiet(&proc_sock, Duration::from_millis(500)), None);
    assert_eq!(quiet(&script_sock, Duration::from_millis(1500)), None);
    assert_eq!(
        srv.result("core:profiling_proc", json!({"id": worker}))["Processes"][0]["Profiling level"],
        0
    );
}

#[test]
fn bad_parameters_are_json_rpc_errors() {
    let srv = Server::start("profiling-mi");
    let count = srv.result("core:ps", json!({}))["Processes"]
        .as_array()
        .unwrap()
        .len();
    let error = |method: &str, params: Value| -> (i64, String) {
        let r = srv.mi(method, params);
        let e = r.get("error").unwrap_or_else(|| panic!("no error: {r}"));
        (
            e["code"].as_i64().unwrap(),
            e["data"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        error("core:profiling_proc", json!({"id": count, "level": 1})),
        (-32602, "Bad process ID".into())
    );
    assert_eq!(
        error("core:profiling_proc", json!({"id": -1})),
        (-32602, "Bad process ID".into())
    );
    assert_eq!(
        error("core:profiling_proc", json!({"pid": 1, "level": 1})),
        (-32602, "Bad PID".into())
    );
    assert_eq!(
        error("core:profiling_proc", json!({"id": "one"})),
        (-32602, "Bad type for parameter 'id'".into())
    );
    assert_eq!(
        error("core:profiling_proc", json!({"level": "high"})),
        (-32602, "Bad type for parameter 'level'".into())
    );
    // One positional parameter could be id, pid or level.
    assert_eq!(
        error("core:profiling_proc", json!([1])),
        (
            -32602,
            "Ambiguous call, use named parameters instead".into()
        )
    );
    assert_eq!(
        error("core:profiling_proc", json!({"id": 1, "pid": 1})).0,
        -32602
    );
    assert_eq!(
        error("core:profiling_proc", json!({"level": 1, "x": 1})).0,
        -32602
    );

    // The unqualified name works; levels are clamped to 0..3; the server's pid means all.
    let all = srv.result("profiling_proc", json!({}));
    let procs = all["Processes"].as_array().unwrap();
    assert_eq!(procs.len(), count);
    assert!(procs.iter().all(|p| p["Profiling level"] == 0));
    let pid = procs[0]["PID"].clone();
    assert_eq!(
        srv.result("core:profiling_proc", json!({"pid": pid, "level": 9})),
        "OK"
    );
    let all = srv.result("core:profiling_proc", json!({"pid": pid}));
    assert_eq!(all["Processes"].as_array().unwrap().len(), count);
    assert!(
        all["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["Profiling level"] == 3),
        "{all}"
    );
    assert_eq!(
        srv.result("core:profiling_proc", json!({"id": 0, "level": -5})),
        "OK"
    );
    assert_eq!(
        srv.result("core:profiling_proc", json!({"id": 0}))["Processes"][0]["Profiling level"],
        0
    );
}

#[test]
fn level_three_reports_timer_jobs_and_level_one_does_not() {
    let srv = Server::start("profiling-timer");
    let (proc_sock, proc_port) = listener();
    let (script_sock, script_port) = listener();
    let timer = srv.ps_id("timer");
    srv.subscribe("E_PROFILING_PROC", proc_port, 3600);
    srv.subscribe("E_PROFILING_SCRIPT", script_port, 3600);

    // The timer_route's own script records: a timer route named by its name.
    let tick = records(
        &script_sock,
        "E_PROFILING_SCRIPT",
        |r| r["type"] == 128,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    let start = tick.iter().position(|r| r["verb"] == "start").unwrap();
    let tick = &tick[start..];
    assert_eq!(
        shape(tick),
        [
            ("start".to_owned(), "tick".to_owned(), 1),
            ("enter".to_owned(), "tick".to_owned(), 1),
            ("exit".to_owned(), "tick".to_owned(), 1),
            ("end".to_owned(), "tick".to_owned(), 1),
        ]
    );
    assert_eq!(tick[1]["line"], line_of("    $var(t) = 1;"));
    assert_eq!(tick[2]["status"], 0);

    // Level 1 on the timer: a timer job is not SIP processing, nothing is reported.
    srv.result("core:profiling_proc", json!({"id": timer, "level": 1}));
    assert_eq!(quiet(&proc_sock, Duration::from_millis(2500)), None);

    srv.result("core:profiling_proc", json!({"id": timer, "level": 3}));
    let jobs = records(
        &proc_sock,
        "E_PROFILING_PROC",
        |_| true,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    let start = jobs.iter().position(|r| r["verb"] == "start").unwrap();
    let jobs = &jobs[start..];
    let s = |v: &str, n: &str, d: i64| (v.to_owned(), n.to_owned(), d);
    assert_eq!(
        shape(jobs),
        [
            s("start", "timer", 0),
            s("enter", "timer_job", 1),
            s("enter", "tick", 2),
            s("exit", "tick", 1),
            s("exit", "timer_job", 0),
            s("end", "timer", 0),
        ],
        "{jobs:#?}"
    );
    one_session_in_order(jobs, 3);
    srv.result("core:profiling_proc", json!({"level": 0}));
}

#[test]
fn tm_routes_are_reported_with_their_types_and_names() {
    let (uas, uas_port) = listener();
    let srv = Server::start_with("profiling-tm", TM_CFG, uas_port);
    let (script_sock, script_port) = listener();
    srv.subscribe("E_PROFILING_SCRIPT", script_port, 3600);

    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = uac.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:p@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-prof-tm\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@127.0.0.1>;tag=ftm\r\n\
         To: <sip:p@127.0.0.1>\r\n\
         Call-ID: prof-tm-{port}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        port = srv.port
    );
    uac.send_to(req.as_bytes(), ("127.0.0.1", srv.port))
        .unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = uas.recv_from(&mut buf).expect("the relayed OPTIONS");
    let relayed = String::from_utf8_lossy(&buf[..n]).into_owned();
    uas.send_to(
        common::reply_to(&relayed, "486 Busy Here", "uas", "").as_bytes(),
        from,
    )
    .unwrap();
    let n = uac.recv(&mut buf).expect("the failure route's reply");
    assert!(buf[..n].starts_with(b"SIP/2.0 500 Next hop busy"));

    // Four top-level runs, each start..end at depth 1, in the order tm runs them.
    let recs = records(
        &script_sock,
        "E_PROFILING_SCRIPT",
        |_| true,
        |g| g.iter().filter(|r| r["verb"] == "end").count() >= 4,
    );
    let runs: Vec<(String, i64)> = recs
        .iter()
        .filter(|r| r["verb"] == "start")
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["type"].as_i64().unwrap(),
            )
        })
        .collect();
    let run = |n: &str, t: i64| (n.to_owned(), t);
    assert_eq!(
        runs,
        [run("<root>", 1), run("b", 8), run("r", 4), run("f", 2)],
        "{recs:#?}"
    );
    assert!(recs.iter().all(|r| r["depth"] == 1), "{recs:#?}");
    let enter_line = |name: &str| {
        recs.iter()
            .find(|r| r["verb"] == "enter" && r["name"] == name)
            .unwrap()["line"]
            .as_i64()
            .unwrap()
    };
    let tm_line = |text: &str| TM_CFG.lines().position(|l| l.contains(text)).unwrap() as i64 + 1;
    assert_eq!(enter_line("<root>"), tm_line("t_on_branch(\"b\")"));
    assert_eq!(enter_line("b"), tm_line("$var(b) = 1;"));
    assert_eq!(enter_line("r"), tm_line("$var(r) = 1;"));
    assert_eq!(enter_line("f"), tm_line("t_reply(500"));
    // The request, branch and failure routes share the request's session; the reply has its own.
    let session = |name: &str| recs.iter().find(|r| r["name"] == name).unwrap()["session"].clone();
    assert_eq!(session("b"), session("<root>"));
    assert_eq!(session("f"), session("<root>"));
    assert_ne!(session("r"), session("<root>"));
}

#[test]
fn a_tcp_worker_reports_the_messages_it_handles() {
    let cfg = CFG
        .replace(
            "udp_workers=1\n",
            "udp_workers=1\ntcp_workers=1\nsocket=tcp:127.0.0.1:PORT\n",
        )
        .replace(
            "loadmodule \"proto_udp.so\"\n",
            "loadmodule \"proto_udp.so\"\nloadmodule \"proto_tcp.so\"\n",
        );
    let srv = Server::start_with("profiling-tcp", &cfg, 0);
    let (proc_sock, proc_port) = listener();
    srv.subscribe("E_PROFILING_PROC", proc_port, 3600);
    let worker = srv.ps_id("TCP worker");
    srv.result("core:profiling_proc", json!({"id": worker, "level": 1}));

    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = conn.local_addr().unwrap();
    write!(
        conn,
        "OPTIONS sip:p@127.0.0.1:{port};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-prof-tcp\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@127.0.0.1>;tag=ftcp\r\n\
         To: <sip:p@127.0.0.1>\r\n\
         Call-ID: prof-tcp-{port}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        port = srv.port
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));

    let procs = records(
        &proc_sock,
        "E_PROFILING_PROC",
        |_| true,
        |g| g.iter().any(|r| r["verb"] == "end"),
    );
    let s = |v: &str, n: &str, d: i64| (v.to_owned(), n.to_owned(), d);
    assert_eq!(
        shape(&procs),
        [
            s("start", "TCP worker", 0),
            s("enter", "tcp proto handling", 1),
            s("enter", "receive_msg", 2),
            s("enter", "request_script", 3),
            s("exit", "request_script", 2),
            s("exit", "receive_msg", 1),
            s("exit", "handling done", 0),
            s("end", "TCP worker", 0),
        ],
        "{procs:#?}"
    );
    one_session_in_order(&procs, 2);
    // Only that worker: the UDP one stays quiet.
    srv.options(1);
    assert_eq!(quiet(&proc_sock, Duration::from_millis(500)), None);
}
