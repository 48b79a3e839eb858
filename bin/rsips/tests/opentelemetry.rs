//! OpenSIPS 4.0's `opentelemetry` module end to end: rsips exports to an OTLP/HTTP collector
//! of the test's own (a TCP server recording the POSTs) one trace per request — the message
//! span with its SIP attributes, a child span per route entered, nested as the script nests
//! `route()` calls — under the configured service name; MI `opentelemetry:enable 0` stops the
//! export; a collector that is down or never answers does not hold up SIP replies; bad
//! parameters refuse the start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CFG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "opentelemetry.so"
modparam("httpd", "port", HTTP)
modparam("opentelemetry", "enable", 1)
modparam("opentelemetry", "use_batch", 0)
modparam("opentelemetry", "service_name", "edge-proxy")
modparam("opentelemetry", "exporter_endpoint", "http://127.0.0.1:COLLECTOR/v1/traces")

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
    xlog("L_NOTICE", "inner ran for $ci\n");
    return(-2);
}
"#;

/// tm's routes: a branch route (run from inside the request route), the next hop's reply in
/// an onreply route, then the failure route.
const TM_CFG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "opentelemetry.so"
modparam("httpd", "port", HTTP)
modparam("opentelemetry", "enable", 1)
modparam("opentelemetry", "use_batch", 0)
modparam("opentelemetry", "exporter_endpoint", "http://127.0.0.1:COLLECTOR/v1/traces")

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

/// The default `use_batch` 1: spans wait (5 s at most) to leave together.
const BATCH_CFG: &str = r#"
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "opentelemetry.so"
modparam("httpd", "port", HTTP)
modparam("opentelemetry", "enable", 1)
modparam("opentelemetry", "exporter_endpoint", "http://127.0.0.1:COLLECTOR/v1/traces")

route {
    route(one);
    sl_send_reply(200, "OK");
}

route[one] {
    return(1);
}
"#;

/// `proc_profiling` 1: the worker's unit of work becomes the root span (once MI
/// `core:profiling_proc` gives the worker a level).
fn proc_cfg() -> String {
    CFG.replace(
        "modparam(\"opentelemetry\", \"use_batch\", 0)",
        "modparam(\"opentelemetry\", \"use_batch\", 0)\nmodparam(\"opentelemetry\", \"proc_profiling\", 1)",
    )
}

/// The 1-based line of the first line of `CFG` holding `text`.
fn line_of(text: &str) -> i64 {
    CFG.lines().position(|l| l.contains(text)).unwrap() as i64 + 1
}

/// One POST the collector got.
#[derive(Debug)]
struct Post {
    path: String,
    content_type: String,
    body: Value,
}

/// Serves HTTP/1.1 on `l` (keep-alive), answering 200 to every request and handing it on.
fn collector(l: TcpListener, tx: Sender<Post>) {
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(conn, &tx));
        }
    });
}

fn serve(conn: std::net::TcpStream, tx: &Sender<Post>) {
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let post = Post {
            path,
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        if w.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        )
        .is_err()
            || tx.send(post).is_err()
        {
            return;
        }
    }
}

struct Server {
    rsips: common::Kill,
    port: u16,
    http: u16,
}

impl Server {
    /// rsips on `CFG` exporting to 127.0.0.1:`collector`.
    fn start(name: &str, collector: u16) -> Server {
        Server::start_with(name, CFG, collector, 0)
    }

    /// rsips on `cfg` exporting to 127.0.0.1:`collector`, relaying to 127.0.0.1:`uas`.
    fn start_with(name: &str, cfg: &str, collector: u16, uas: u16) -> Server {
        let [port, http] = common::free_ports::<2>();
        let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rsips.cfg"),
            cfg.replace("PORT", &port.to_string())
                .replace("HTTP", &http.to_string())
                .replace("COLLECTOR", &collector.to_string())
                .replace("UAS", &uas.to_string()),
        )
        .unwrap();
        let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
        Server { rsips, port, http }
    }

    fn mi(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let text = common::mi_http(self.http, &body.to_string());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// An OPTIONS with Call-ID `call_id`; waits (5 s at most) for its 200.
    fn options(&self, call_id: &str) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        let msg = format!(
            "OPTIONS sip:p@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@127.0.0.1>;tag=f1\r\n\
             To: <sip:p@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 7 OPTIONS\r\n\
             User-Agent: otel-test\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.port
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", self.port))
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let got = sock.recv(&mut buf).expect("a reply to the OPTIONS");
        assert!(buf[..got].starts_with(b"SIP/2.0 200 OK"));
    }
}

/// The value of attribute `key` in an OTLP attribute list, as text.
fn attr(attrs: &Value, key: &str) -> Option<String> {
    let v = &attrs.as_array()?.iter().find(|a| a["key"] == key)?["value"];
    v["stringValue"]
        .as_str()
        .or_else(|| v["intValue"].as_str())
        .map(str::to_owned)
}

/// The spans (with their resource's `service.name`) of the posts received until `done`
/// holds for them (5 s at most).
fn spans(rx: &Receiver<Post>, done: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
    spans_within(rx, Duration::from_secs(5), done).1
}

/// [`spans`], waiting `limit` at most; also how many posts brought them.
fn spans_within(
    rx: &Receiver<Post>,
    limit: Duration,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> (usize, Vec<(String, Value)>) {
    let deadline = Instant::now() + limit;
    let mut posts = 0;
    let mut out = Vec::new();
    while !done(&out) {
        let wait = deadline.saturating_duration_since(Instant::now());
        let post = rx
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("collector got no more spans; so far: {out:#?}"));
        posts += 1;
        assert_eq!(post.path, "/v1/traces");
        assert_eq!(post.content_type, "application/json");
        for rs in post.body["resourceSpans"].as_array().unwrap() {
            let service = attr(&rs["resource"]["attributes"], "service.name").unwrap();
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    out.push((service.clone(), s.clone()));
                }
            }
        }
    }
    (posts, out)
}

fn of_call<'a>(spans: &'a [(String, Value)], call_id: &str) -> Vec<&'a Value> {
    let Some(root) = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| attr(&s["attributes"], "sip.call_id").as_deref() == Some(call_id))
    else {
        return Vec::new();
    };
    spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["traceId"] == root["traceId"])
        .collect()
}

#[test]
fn a_request_becomes_a_trace_of_nested_route_spans() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let s = Server::start("otel-trace", col);
    s.options("otel-1");
    let got = spans(&rx, |v| of_call(v, "otel-1").len() >= 4);
    assert!(got.iter().all(|(svc, _)| svc == "edge-proxy"), "{got:#?}");
    let trace = of_call(&got, "otel-1");
    assert_eq!(trace.len(), 4, "{trace:#?}");
    let by: HashMap<&str, &Value> = trace
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), *s))
        .collect();
    let msg = by["OPTIONS request"];
    let (main, outer, inner) = (by["<route>"], by["outer"], by["inner"]);
    // Nesting: message span → the request route → route[outer] → route[inner].
    assert!(msg.get("parentSpanId").is_none_or(|p| p == ""), "{msg}");
    assert_eq!(main["parentSpanId"], msg["spanId"]);
    assert_eq!(outer["parentSpanId"], main["spanId"]);
    assert_eq!(inner["parentSpanId"], outer["spanId"]);
    assert_eq!(msg["kind"], 2, "SERVER");
    assert_eq!(inner["kind"], 1, "INTERNAL");
    for s in &trace {
        assert_eq!(s["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(s["spanId"].as_str().unwrap().len(), 16);
        let start: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start < end, "{s}");
    }
    let time = |s: &Value, k: &str| s[k].as_str().unwrap().parse::<u64>().unwrap();
    assert!(time(msg, "startTimeUnixNano") <= time(inner, "startTimeUnixNano"));
    assert!(time(inner, "endTimeUnixNano") <= time(msg, "endTimeUnixNano"));
    let a = &msg["attributes"];
    assert_eq!(attr(a, "sip.request.method").as_deref(), Some("OPTIONS"));
    assert_eq!(attr(a, "sip.cseq").as_deref(), Some("7 OPTIONS"));
    assert_eq!(attr(a, "sip.message.type").as_deref(), Some("request"));
    assert_eq!(attr(a, "network.transport").as_deref(), Some("udp"));
    assert_eq!(attr(a, "user_agent.original").as_deref(), Some("otel-test"));
    assert_eq!(attr(a, "opensips.route.type").as_deref(), Some("request"));
    assert_eq!(
        attr(a, "server.port").as_deref(),
        Some(s.port.to_string().as_str())
    );
    assert!(
        attr(a, "sip.raw")
            .unwrap()
            .starts_with("OPTIONS sip:p@127.0.0.1")
    );
    assert_eq!(
        attr(&outer["attributes"], "opensips.route.name").as_deref(),
        Some("outer")
    );
    assert_eq!(
        attr(&outer["attributes"], "code.lineno"),
        Some(line_of("route(outer);").to_string())
    );
    assert_eq!(
        attr(&inner["attributes"], "code.lineno"),
        Some(line_of("route(inner);").to_string())
    );
    // route[inner] returned -2: an error span; the others are not.
    assert_eq!(inner["status"]["code"], 2, "{inner}");
    assert_eq!(
        attr(&inner["attributes"], "error.type").as_deref(),
        Some("-2")
    );
    assert!(outer.get("status").is_none());
    // The script's log line, as an event of the route that wrote it.
    let events = inner["events"].as_array().expect("events on route[inner]");
    assert_eq!(events.len(), 1, "{inner}");
    assert_eq!(events[0]["name"], "log");
    assert_eq!(
        attr(&events[0]["attributes"], "log.message").as_deref(),
        Some("inner ran for otel-1")
    );
    assert_eq!(
        attr(&events[0]["attributes"], "log.level").as_deref(),
        Some("notice")
    );
    assert!(
        outer
            .get("events")
            .is_none_or(|e| e.as_array().unwrap().is_empty())
    );
}

#[test]
fn mi_enable_0_stops_the_export_and_1_resumes_it() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let s = Server::start("otel-mi", col);
    s.options("otel-on");
    spans(&rx, |v| of_call(v, "otel-on").len() >= 4);

    let r = s.mi("opentelemetry:enable", json!({"enable": 0}));
    assert_eq!(r["result"], json!({"enabled": 0}), "{r}");
    s.options("otel-off");
    // use_batch 0: spans leave as soon as they end; nothing may come in 1.5 s.
    match rx.recv_timeout(Duration::from_millis(1500)) {
        Err(_) => {}
        Ok(p) => panic!("exported while disabled: {}", p.body),
    }

    let r = s.mi("otel_enable", json!(["1"]));
    assert_eq!(r["result"], json!({"enabled": 1}), "{r}");
    s.options("otel-again");
    let got = spans(&rx, |v| of_call(v, "otel-again").len() >= 4);
    assert!(of_call(&got, "otel-off").is_empty());

    let r = s.mi("opentelemetry:enable", json!({"enable": 2}));
    assert_eq!(r["error"]["code"], 400, "{r}");
    assert_eq!(r["error"]["message"], "Bad enable value");
    let r = s.mi("opentelemetry:enable", json!({}));
    assert!(r.get("error").is_some(), "{r}");
}

#[test]
fn a_collector_down_or_silent_does_not_hold_up_replies() {
    // Down: nothing listens on the port.
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Silent: takes connections (the kernel does) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    for (name, port) in [
        ("otel-down", down),
        ("otel-silent", silent.local_addr().unwrap().port()),
    ] {
        let s = Server::start(name, port);
        let started = Instant::now();
        for n in 0..40 {
            s.options(&format!("{name}-{n}"));
        }
        // 40 round trips on loopback: far below a single export timeout (10 s).
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{name}: {:?}",
            started.elapsed()
        );
        let r = s.mi("opentelemetry:enable", json!({"enable": 0}));
        assert_eq!(r["result"]["enabled"], 0, "{name}: MI answers: {r}");
    }
}

#[test]
fn bad_parameters_refuse_the_start() {
    let base = |extra: &str| {
        format!(
            "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"opentelemetry.so\"\n{extra}\nroute {{ exit; }}\n"
        )
    };
    for (extra, what) in [
        (
            r#"modparam("opentelemetry", "exporter_endpoint", "127.0.0.1:4318")"#,
            "exporter_endpoint",
        ),
        (
            r#"modparam("opentelemetry", "exporter_endpoint", "ftp://h/v1/traces")"#,
            "exporter_endpoint",
        ),
        (r#"modparam("opentelemetry", "enable", 7)"#, "enable"),
        (r#"modparam("opentelemetry", "use_batch", -1)"#, "use_batch"),
        (r#"modparam("opentelemetry", "log_level", 12)"#, "log_level"),
        (
            r#"modparam("opentelemetry", "service_name", "")"#,
            "service_name",
        ),
        (
            r#"modparam("opentelemetry", "no_such_param", 1)"#,
            "no_such_param",
        ),
    ] {
        let err = common::refused_start("otel-bad", &base(extra));
        assert!(err.contains(what), "{extra}:\n{err}");
    }
}

/// The span named `name` in `spans`.
fn named<'a>(spans: &'a [(String, Value)], name: &str) -> &'a Value {
    spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[test]
fn tm_routes_get_their_spans_and_a_reply_its_status() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let srv = Server::start_with("otel-tm", TM_CFG, col, uas_port);

    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = uac.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:p@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-otel-tm\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@127.0.0.1>;tag=ftm\r\n\
         To: <sip:p@127.0.0.1>\r\n\
         Call-ID: otel-tm\r\n\
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

    let want = [
        "OPTIONS request",
        "OPTIONS branch",
        "b",
        "OPTIONS onreply",
        "r",
        "f",
    ];
    let got = spans(&rx, |v| {
        want.iter().all(|w| v.iter().any(|(_, s)| s["name"] == *w))
    });
    // The branch route runs inside the request route (t_relay): its spans join that trace.
    let (req, main) = (named(&got, "OPTIONS request"), named(&got, "<route>"));
    let (branch, b) = (named(&got, "OPTIONS branch"), named(&got, "b"));
    assert_eq!(branch["traceId"], req["traceId"]);
    assert_eq!(main["parentSpanId"], req["spanId"]);
    assert_eq!(branch["parentSpanId"], main["spanId"], "{got:#?}");
    assert_eq!(b["parentSpanId"], branch["spanId"]);
    assert_eq!(
        attr(&branch["attributes"], "opensips.route.is_root").as_deref(),
        Some("0")
    );
    assert_eq!(
        attr(&b["attributes"], "opensips.route.type").as_deref(),
        Some("branch")
    );
    // The next hop's reply: a message span of its own, with the status.
    let (reply, r) = (named(&got, "OPTIONS onreply"), named(&got, "r"));
    assert_eq!(r["parentSpanId"], reply["spanId"]);
    assert_ne!(reply["traceId"], req["traceId"]);
    let a = &reply["attributes"];
    assert_eq!(attr(a, "sip.message.type").as_deref(), Some("response"));
    assert_eq!(attr(a, "sip.response.status_code").as_deref(), Some("486"));
    assert_eq!(attr(a, "sip.response.reason").as_deref(), Some("Busy Here"));
    assert_eq!(attr(a, "sip.call_id").as_deref(), Some("otel-tm"));
    assert_eq!(attr(a, "opensips.route.type").as_deref(), Some("onreply"));
    assert_eq!(
        attr(&named(&got, "f")["attributes"], "opensips.route.type").as_deref(),
        Some("failure")
    );
}

#[test]
fn use_batch_sends_a_request_s_spans_together() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let s = Server::start_with("otel-batch", BATCH_CFG, col, 0);
    s.options("otel-batch");
    // The batch processor's 5 s delay, and some slack.
    let (posts, got) = spans_within(&rx, Duration::from_secs(8), |v| {
        of_call(v, "otel-batch").len() >= 3
    });
    assert_eq!(posts, 1, "{got:#?}");
    let names: Vec<&str> = of_call(&got, "otel-batch")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "<route>", "OPTIONS request"]);
    assert!(got.iter().all(|(svc, _)| svc == "opensips"));
}

/// A graceful stop sends what the batch processor still holds, instead of dropping up to its
/// 5 s delay of spans.
#[test]
fn a_graceful_stop_sends_the_queued_spans() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let mut s = Server::start_with("otel-stop", BATCH_CFG, col, 0);
    s.options("otel-stop");
    let stopped = std::time::Instant::now();
    s.rsips.terminate(String::new);
    let (posts, got) = spans_within(&rx, Duration::from_secs(2), |v| {
        of_call(v, "otel-stop").len() >= 3
    });
    assert_eq!(posts, 1, "{got:#?}");
    assert_eq!(of_call(&got, "otel-stop").len(), 3, "{got:#?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "sent at the stop, not after the batch delay: {:?}",
        stopped.elapsed()
    );
}

#[test]
fn proc_profiling_puts_the_script_inside_the_worker_s_steps() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let col = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    collector(l, tx);
    let cfg = proc_cfg();
    assert!(cfg.contains("proc_profiling"));
    let s = Server::start_with("otel-proc", &cfg, col, 0);
    // Level 0 (the default): the script spans only, as without proc_profiling.
    s.options("otel-proc-0");
    let got = spans(&rx, |v| of_call(v, "otel-proc-0").len() >= 4);
    assert!(!got.iter().any(|(_, s)| s["name"] == "Process Profiling"));

    let r = s.mi("core:profiling_proc", json!({"level": 1}));
    assert!(r.get("error").is_none(), "{r}");
    s.options("otel-proc-1");
    let got = spans(&rx, |v| {
        of_call(v, "otel-proc-1").len() >= 4
            && v.iter().any(|(_, s)| s["name"] == "Process Profiling")
            && v.iter().any(|(_, s)| s["name"] == "udp proto reading")
    });
    let msg = of_call(&got, "otel-proc-1")
        .into_iter()
        .find(|s| s["name"] == "OPTIONS request")
        .unwrap();
    // Walk up from the message span: request_script → receive_msg → udp proto reading → root.
    let by_id: HashMap<&str, &Value> = got
        .iter()
        .map(|(_, s)| (s["spanId"].as_str().unwrap(), s))
        .collect();
    let mut chain = Vec::new();
    let mut at = msg;
    while let Some(p) = at.get("parentSpanId").and_then(Value::as_str) {
        at = by_id
            .get(p)
            .unwrap_or_else(|| panic!("no parent {p} in {got:#?}"));
        chain.push(at["name"].as_str().unwrap());
    }
    assert_eq!(
        chain,
        [
            "request_script",
            "receive_msg",
            "udp proto reading",
            "Process Profiling"
        ],
        "{got:#?}"
    );
    assert_eq!(
        attr(&at["attributes"], "opensips.route.is_root").as_deref(),
        Some("1")
    );
}
