//! jsonrpc from a script against a JSON-RPC server of the test (TCP on 127.0.0.1): a request's
//! result in the variable (an integer as a number, other values as formatted JSON), a server
//! error (-3, the error object), a server that does not answer in time and one that is not
//! there (-2), parameters that are not JSON (-1), and a notification that arrives without an
//! id and is not waited for.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "jsonrpc.so"
modparam("jsonrpc", "read_timeout", 1000)

route {
    $var(r) = NULL;
    jsonrpc_request("127.0.0.1:RPC", "add", "[1, 2]", $var(r));
    append_to_reply("X-Add: $rc $var(r)\r\n");
    jsonrpc_request("127.0.0.1:RPC", "who", "{\"user\": \"$fU\"}", $var(r));
    append_to_reply("X-Who: $rc $(var(r){s.encode.hexa})\r\n");
    jsonrpc_request("127.0.0.1:RPC", "fail", "[]", $var(r));
    append_to_reply("X-Fail: $rc $(var(r){s.encode.hexa})\r\n");
    jsonrpc_request("127.0.0.1:RPC", "slow", "[]", $var(r));
    append_to_reply("X-Slow: $rc\r\n");
    jsonrpc_request("127.0.0.1:DEAD", "add", "[1]", $var(r));
    append_to_reply("X-Dead: $rc\r\n");
    jsonrpc_request("127.0.0.1:RPC", "add", "not json", $var(r));
    append_to_reply("X-Bad: $rc\r\n");
    jsonrpc_notification("127.0.0.1:RPC", "block_ip", "{\"ip\": \"$si\"}");
    append_to_reply("X-Note: $rc\r\n");
    sl_send_reply(200, "OK");
}
"#;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The test's JSON-RPC server: answers per method, reports what it got.
fn server(listener: TcpListener, seen: mpsc::Sender<serde_json::Value>) {
    std::thread::spawn(move || {
        for conn in listener.incoming().take(6) {
            let Ok(mut c) = conn else { continue };
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let req: serde_json::Value = loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break serde_json::Value::Null;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Ok(v) = serde_json::from_slice(&buf) {
                    break v;
                }
            };
            let _ = seen.send(req.clone());
            let id = req["id"].clone();
            let reply = match req["method"].as_str() {
                Some("add") => {
                    let sum: i64 = req["params"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_i64().unwrap())
                        .sum();
                    serde_json::json!({"jsonrpc": "2.0", "result": sum, "id": id})
                }
                Some("who") => {
                    serde_json::json!({"jsonrpc": "2.0", "result": {"name": req["params"]["user"], "ok": true}, "id": id})
                }
                Some("fail") => {
                    serde_json::json!({"jsonrpc": "2.0", "error": {"code": -32000, "message": "no"}, "id": id})
                }
                Some("slow") => {
                    std::thread::sleep(Duration::from_millis(2500));
                    continue;
                }
                _ => continue,
            };
            // The reply in two writes: rsips reads until it is whole.
            let text = reply.to_string();
            let (a, b) = text.split_at(text.len() / 2);
            let _ = c.write_all(a.as_bytes());
            std::thread::sleep(Duration::from_millis(20));
            let _ = c.write_all(b.as_bytes());
        }
    });
}

#[test]
fn requests_errors_timeouts_and_notifications() {
    let [port, dead] = common::free_ports::<2>();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rpc = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    server(listener, tx);
    let dir = common::test_dir("jsonrpc", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("RPC", &rpc.to_string())
            .replace("DEAD", &dead.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();
    let r = common::options(&peer, port, "x", "rpc");
    assert_eq!(header(&r, "X-Add"), ["1 3"], "{r}");
    assert_eq!(
        header(&r, "X-Who"),
        [format!(
            "1 {}",
            hex("{\n\t\"name\":\t\"alice\",\n\t\"ok\":\ttrue\n}")
        )],
        "{r}"
    );
    assert_eq!(
        header(&r, "X-Fail"),
        [format!(
            "-3 {}",
            hex("{\n\t\"code\":\t-32000,\n\t\"message\":\t\"no\"\n}")
        )],
        "{r}"
    );
    assert_eq!(header(&r, "X-Slow"), ["-2"], "{r}");
    assert_eq!(header(&r, "X-Dead"), ["-2"], "{r}");
    assert_eq!(header(&r, "X-Bad"), ["-1"], "{r}");
    assert_eq!(header(&r, "X-Note"), ["1"], "{r}");
    // What the server got: requests with ids, the notification without.
    let got: Vec<serde_json::Value> = (0..5)
        .map(|_| rx.recv_timeout(Duration::from_secs(3)).unwrap())
        .collect();
    assert_eq!(got[0]["method"], "add");
    assert!(got[0]["id"].is_u64(), "{:?}", got[0]);
    assert_eq!(got[1]["params"], serde_json::json!({"user": "alice"}));
    assert_eq!(got[4]["method"], "block_ip");
    assert_eq!(got[4]["params"]["ip"], "127.0.0.1");
    assert!(got[4].get("id").is_none(), "{:?}", got[4]);
}
