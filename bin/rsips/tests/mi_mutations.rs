//! Hostile MI calls against a running rsips, over mi_datagram (JSON-RPC in one UDP datagram):
//! every command the server lists (`which`), called again and again with parameters drawn at
//! random — missing, extra, of the wrong type, empty, huge, positional or named — and some
//! requests damaged byte by byte. Each call gets one well-formed JSON-RPC answer (a result or
//! an error, its id echoed), nothing panics, and the server still answers MI and SIP after.
//!
//! `RSIPS_MI_MUTATIONS=N` sets the number of calls (default 3,000); `RSIPS_MUTATION_SEED`
//! the sequence.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use serde_json::{Value, json};

/// xorshift64*: deterministic picks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Parameter names MI commands take (OpenSIPS' own), to build named calls from.
const NAMES: &[&str] = &[
    "aor",
    "table_name",
    "contact",
    "expires",
    "q",
    "flags",
    "cflags",
    "methods",
    "callid",
    "from_tag",
    "to_tag",
    "dialog_id",
    "extra",
    "group",
    "partition",
    "address",
    "state",
    "destination",
    "set",
    "name",
    "value",
    "level",
    "pid",
    "params",
    "id",
    "key",
    "event",
    "socket",
    "expire",
    "filter",
    "attr",
    "mode",
    "ip",
    "port",
    "proto",
    "domain",
    "method",
    "ruri",
    "next_hop",
    "headers",
    "body",
    "code",
    "reason",
    "trans_id",
    "to_tag",
    "pipe",
    "algorithm",
    "limit",
    "statistics",
    "stat",
    "clusters",
    "node_id",
    "cluster_id",
    "size",
    "queue",
    "timer",
    "enable",
    "interval",
    "clear",
    "trace_name",
    "uri",
    "type",
    "scenario",
    "entity",
    "dlg_val_name",
    "profile",
    "sharing_tag",
    "realm",
    "description",
];

/// Values of every JSON type, hostile ones first among strings.
fn value(rng: &mut Rng) -> Value {
    let strings = [
        "",
        " ",
        "0",
        "1",
        "-1",
        "65536",
        "99999999999999999999999",
        "1.5",
        "abc",
        "*",
        "%",
        "%00",
        "\u{0}",
        "\u{1f600}",
        "a:b:c",
        "127.0.0.1",
        "127.0.0.1:9",
        "udp:127.0.0.1:9",
        "tcp:127.0.0.1:9",
        "sip:a@127.0.0.1:9",
        "sip:127.0.0.1:5090",
        "<sip:a@127.0.0.1:9>;expires=0",
        "[::1]",
        "location",
        "q1",
        "mut_counter",
        "INVITE",
        "200",
        "on",
        "Call-ID: x\r\n",
        "1234.5678",
    ];
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => [
            json!(0),
            json!(-1),
            json!(1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
        ][rng.below(6)]
        .clone(),
        3 => json!(1e308 * if rng.below(2) == 0 { 1.0 } else { -1.0 }),
        4 => json!([]),
        5 => json!({"a": [1, {"b": null}]}),
        6 => Value::from("x".repeat(1 + rng.below(3000))),
        _ => Value::from(strings[rng.below(strings.len())]),
    }
}

/// Random parameters: none, positional, or named (known names, some repeated or unknown).
fn params(rng: &mut Rng) -> Option<Value> {
    match rng.below(4) {
        0 => None,
        1 => Some(Value::Array(
            (0..rng.below(5)).map(|_| value(rng)).collect(),
        )),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                let name = if rng.below(10) == 0 {
                    "no_such_param"
                } else {
                    NAMES[rng.below(NAMES.len())]
                };
                m.insert(name.to_owned(), value(rng));
            }
            Some(Value::Object(m))
        }
    }
}

/// One datagram out, its answer back (`None`: no answer in 5 s).
fn call(sock: &UdpSocket, port: u16, request: &[u8]) -> Option<Vec<u8>> {
    sock.send_to(request, ("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A JSON-RPC 2.0 response with `id` and exactly one of result and error (an error with an
/// integer code and a message).
fn well_formed(answer: &[u8], id: &Value) -> Result<(), String> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
    if v["jsonrpc"] != "2.0" {
        return Err("no jsonrpc 2.0".into());
    }
    if &v["id"] != id {
        return Err(format!("id {} for {id}", v["id"]));
    }
    match (v.get("result"), v.get("error")) {
        (Some(_), None) => Ok(()),
        (None, Some(e)) if e["code"].is_i64() && e["message"].is_string() => Ok(()),
        _ => Err("neither one result nor one well-formed error".into()),
    }
}

#[test]
fn every_mi_command_takes_hostile_parameters_and_answers_each_call() {
    let count: usize = std::env::var("RSIPS_MI_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(std::env::var("RSIPS_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d69_5f6d_7574_0001));
    let dir = common::test_dir("mi-mut", "hostile");
    let [sip, mi] = common::free_ports();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("db/dispatcher"),
        "id(int,auto) setid(int) destination(str) socket(str,null) state(int) probe_mode(int) \
         weight(str) priority(int) attrs(str,null) description(str,null)\n\
         1:1:sip\\:127.0.0.1\\:9::0:0:1:0::gw1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\ndispatcher:9\n",
    )
    .unwrap();
    // Modules with MI commands that need no server beside rsips; tm's timers short, so a
    // request tm:uac_dlg sends ends (unanswered, to the discard port) within a few seconds.
    std::fs::write(
        dir.join("mi.cfg"),
        format!(
            "log_level=2\nsocket=udp:127.0.0.1:{sip}\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
             loadmodule \"sipmsgops.so\"\n\
             loadmodule \"rr.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
             loadmodule \"dialog.so\"\nloadmodule \"db_text.so\"\nloadmodule \"dispatcher.so\"\n\
             loadmodule \"pike.so\"\nloadmodule \"ratelimit.so\"\nloadmodule \"statistics.so\"\n\
             loadmodule \"gflags.so\"\nloadmodule \"cfgutils.so\"\nloadmodule \"tracer.so\"\n\
             loadmodule \"benchmark.so\"\nloadmodule \"mqueue.so\"\n\
             loadmodule \"topology_hiding.so\"\nloadmodule \"b2b_entities.so\"\n\
             loadmodule \"b2b_logic.so\"\nloadmodule \"uac.so\"\nloadmodule \"nathelper.so\"\n\
             loadmodule \"mi_datagram.so\"\n\
             modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{mi}\")\n\
             modparam(\"tm\", \"fr_timeout\", 1)\nmodparam(\"tm\", \"fr_inv_timeout\", 2)\n\
             modparam(\"dispatcher\", \"db_url\", \"text://{}\")\n\
             modparam(\"statistics\", \"variable\", \"mut_counter\")\n\
             modparam(\"mqueue\", \"mqueue\", \"name=q1\")\n\
             modparam(\"benchmark\", \"enable\", 1)\n\
             route {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n  \
             sl_send_reply(404, \"Not Here\");\n}}\n",
            dir.join("db").display()
        ),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "mi.cfg", |log| log.contains("MI listening on"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let which = call(&sock, mi, br#"{"jsonrpc":"2.0","method":"which","id":0}"#).unwrap();
    let which: Value = serde_json::from_slice(&which).unwrap();
    let mut names: Vec<String> = which["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert!(names.len() > 60, "{} commands: {names:?}", names.len());
    // Stopping the server is what this one is for (`which` lists aliases too).
    names.retain(|n| n != "core:kill" && n != "kill");
    let mut errors = 0usize;
    for n in 0..count {
        let id = Value::from(n as u64 + 1);
        let name = &names[rng.below(names.len())];
        let mut request = json!({"jsonrpc": "2.0", "method": name, "id": id});
        if let Some(p) = params(&mut rng) {
            request["params"] = p;
        }
        let mut bytes = serde_json::to_vec(&request).unwrap();
        // One call in ten damaged: a byte changed, or the text cut short.
        let damaged = rng.below(10) == 0;
        if damaged {
            let at = rng.below(bytes.len());
            if rng.below(2) == 0 {
                bytes[at] = rng.next() as u8;
            } else {
                bytes.truncate(at);
            }
        }
        // A request that lost its id is a notification: no answer (JSON-RPC 2.0 §4.1); a
        // stray one would show as the next call's wrong id.
        let notification = serde_json::from_slice::<Value>(&bytes)
            .is_ok_and(|v| v.is_object() && v.get("id").is_none());
        if notification {
            sock.send_to(&bytes, ("127.0.0.1", mi)).unwrap();
            continue;
        }
        let Some(answer) = call(&sock, mi, &bytes) else {
            panic!(
                "no answer to {}\n{}",
                String::from_utf8_lossy(&bytes),
                log()
            );
        };
        // A damaged request may have lost its id (answered with a null one) or still parse.
        let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let expected = if damaged { v["id"].clone() } else { id };
        if let Err(e) = well_formed(&answer, &expected) {
            panic!(
                "{e}: {}\nfor {}",
                String::from_utf8_lossy(&answer),
                String::from_utf8_lossy(&bytes)
            );
        }
        errors += usize::from(v.get("error").is_some());
    }
    // Most random calls are refused, but not all of them.
    assert!(
        errors > count / 4 && errors < count,
        "{errors} errors in {count}"
    );
    // The server kept serving: MI and SIP answer, and nothing panicked on the way.
    let up = call(
        &sock,
        mi,
        br#"{"jsonrpc":"2.0","method":"uptime","id":"u"}"#,
    )
    .unwrap();
    well_formed(&up, &Value::from("u")).unwrap();
    let sip_client = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip_client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let cport = sip_client.local_addr().unwrap().port();
    let options = format!(
        "OPTIONS sip:127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKmimut\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: mimut\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sip_client
        .send_to(options.as_bytes(), ("127.0.0.1", sip))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sip_client.recv_from(&mut buf).expect("a reply to OPTIONS");
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    assert!(!log().contains("panicked"), "{}", log());
    server.terminate(log);
    let _ = std::fs::remove_dir_all(&dir);
}
