//! event_xmlrpc: events delivered as XML-RPC calls to a real XML-RPC server (Python's
//! standard `xmlrpc.server`), subscribed from the script and through opensips-cli: the
//! event's name first, then its parameters as one-member structs (`use_struct_param`),
//! integers as integers; a socket without a method refused.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "event_xmlrpc.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
modparam("event_xmlrpc", "use_struct_param", 1)

startup_route {
    subscribe_event("E_SCRIPT", "xmlrpc:127.0.0.1:XPORT:notify");
}

route {
    $avp(n) = "who";
    $avp(v) = $fU;
    $avp(n) = "count";
    $avp(v) = 3;
    raise_event("E_SCRIPT", $avp(n), $avp(v));
    sl_send_reply(200, "OK");
}
"#;

/// An XML-RPC server that writes each call (method and parameters) as a JSON line.
const SERVER: &str = r#"
import json, sys
from xmlrpc.server import SimpleXMLRPCServer
port, out = int(sys.argv[1]), sys.argv[2]
s = SimpleXMLRPCServer(("127.0.0.1", port), logRequests=False, allow_none=True)
def record(method):
    def f(*args):
        with open(out, "a") as o:
            o.write(json.dumps([method] + list(args)) + "\n")
        return True
    return f
s.register_function(record("notify"), "notify")
s.register_function(record("second"), "second")
print("ready", flush=True)
s.serve_forever()
"#;

/// The calls the server has recorded once there are `n` of them (5 s at most).
fn calls(file: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_as_xmlrpc_calls() {
    let [port, xport] = common::free_ports::<2>();
    let dir = common::test_dir("evxmlrpc", &port.to_string());
    let out = dir.join("calls.jsonl");
    let mut server = Command::new("python3")
        .args(["-c", SERVER, &xport.to_string(), out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let _server = common::Kill(server);
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("XPORT", &xport.to_string())
            .replace("PORT", &port.to_string())
            .replace("FIFO", fifo.to_str().unwrap()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let alice = common::Peer::new();

    let r = common::options(&alice, port, "x", "xr1");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let got = calls(&out, 1);
    assert_eq!(
        got,
        vec![serde_json::json!(["notify", "E_SCRIPT", {"count": 3}, {"who": "alice"}])],
        "{}",
        log()
    );

    // A second subscriber through opensips-cli: both are called.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fifo.exists() {
        assert!(Instant::now() < deadline, "no FIFO\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let socket = format!("xmlrpc:127.0.0.1:{xport}:second");
    let (ok, text) = common::opensips_cli(&fifo, &["event_subscribe", "E_SCRIPT", &socket]);
    assert!(ok, "{text}");
    let r = common::options(&alice, port, "x", "xr2");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let mut got = calls(&out, 3);
    got.drain(..1);
    got.sort_by_key(|c| c[0].as_str().unwrap_or("").to_owned());
    assert_eq!(
        got,
        vec![
            serde_json::json!(["notify", "E_SCRIPT", {"count": 3}, {"who": "alice"}]),
            serde_json::json!(["second", "E_SCRIPT", {"count": 3}, {"who": "alice"}]),
        ],
        "{}",
        log()
    );

    // No method: refused.
    let (ok, text) = common::opensips_cli(
        &fifo,
        &[
            "event_subscribe",
            "E_SCRIPT",
            &format!("xmlrpc:127.0.0.1:{xport}"),
        ],
    );
    assert!(!ok, "{text}");
}
