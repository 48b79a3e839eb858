//! acc's `evi` backend end to end: a proxied call accounted with
//! `do_accounting("evi", "cdr|missed|failed")` raises `E_ACC_MISSED_EVENT` and
//! `E_ACC_EVENT` when it is refused, `E_ACC_CDR` with its duration when an answered call ends;
//! `acc_evi_request()` reports a request at once. The events reach a UDP subscriber
//! (event_datagram) as JSON-RPC notifications with OpenSIPS' parameters and the `evi`
//! extra field.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Peer, reply_to};
use serde_json::Value;

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
log_level=3
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "acc.so"
loadmodule "event_datagram.so"
modparam("acc", "extra_fields", "evi: caller->caller_id")

startup_route {
    subscribe_event("E_ACC_EVENT", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_ACC_MISSED_EVENT", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_ACC_CDR", "udp:127.0.0.1:EVPORT");
}

route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("ACK") && t_check_trans())
            t_relay();
        exit;
    }
    if (is_method("OPTIONS")) {
        $acc_extra(caller) = $fU;
        acc_evi_request("404 Nobody Here");
        sl_send_reply(404, "Nobody Here");
        exit;
    }
    record_route();
    $acc_extra(caller) = $fU;
    do_accounting("evi", "cdr|missed|failed");
    $du = "sip:127.0.0.1:BOB";
    t_relay();
}
"#;

/// The next event notification: (method, params).
fn event(sock: &UdpSocket) -> (String, Value) {
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no event: {e}"));
    let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
    (
        v["method"].as_str().unwrap().to_owned(),
        v["params"].clone(),
    )
}

#[test]
fn accounting_as_events() {
    let port = common::free_port();
    let dir = common::test_dir("accevi", &port.to_string());
    let ev = UdpSocket::bind("127.0.0.1:0").unwrap();
    ev.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (a, b) = (Peer::new(), Peer::new());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("EVPORT", &ev.local_addr().unwrap().port().to_string())
            .replace("PORT", &port.to_string())
            .replace("BOB", &b.port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));

    // acc_evi_request: a 404 is reported as a missed event, at once.
    let r = common::options(&a, port, "nobody", "accevi-opt");
    assert!(r.starts_with("SIP/2.0 404"), "{r}");
    let (name, p) = event(&ev);
    assert_eq!(name, "E_ACC_MISSED_EVENT", "{p}");
    assert_eq!(p["method"], "OPTIONS");
    assert_eq!(p["sip_code"], "404");
    assert_eq!(p["sip_reason"], "Nobody Here");
    assert_eq!(p["caller_id"], "alice");
    assert!(
        p["time"].is_i64() && p["setuptime"].is_i64() && p["created"].is_i64(),
        "{p}"
    );

    // A refused call: missed (the whole INVITE failed) and failed (its final reply).
    a.send(port, &common::invite_to_bob(&a, "accevi-1"));
    let inv = b.recv("the INVITE at bob");
    b.send(port, &reply_to(&inv, "486 Busy Here", "b1", ""));
    assert!(b.recv("tm's ACK").starts_with("ACK "));
    let busy = a.recv("486");
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
    a.send(port, &common::ack_for(&busy, "sip:bob@example.com"));
    let mut got = vec![event(&ev), event(&ev)];
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["E_ACC_EVENT", "E_ACC_MISSED_EVENT"]);
    for (_, p) in &got {
        assert_eq!(p["method"], "INVITE", "{p}");
        assert_eq!(p["callid"], "accevi-1", "{p}");
        assert_eq!(p["from_tag"], "a-accevi-1", "{p}");
        assert_eq!(p["to_tag"], "b1", "{p}");
        assert_eq!(p["sip_code"], "486", "{p}");
        assert_eq!(p["caller_id"], "alice", "{p}");
    }

    // An answered call: one CDR when it ends, with its duration.
    a.send(port, &common::invite_to_bob(&a, "accevi-2"));
    let inv = b.recv("the INVITE at bob");
    b.send(
        port,
        &reply_to(
            &inv,
            "200 OK",
            "b2",
            &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", b.port),
        ),
    );
    let ok = a.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    a.send(port, &common::within(&a, &ok, "ACK", 1, "accevi-2-ack"));
    assert!(b.recv("ACK").starts_with("ACK "));
    std::thread::sleep(Duration::from_millis(1100));
    a.send(port, &common::within(&a, &ok, "BYE", 2, "accevi-2-bye"));
    let bye = b.recv("BYE");
    b.send(port, &reply_to(&bye, "200 OK", "", ""));
    let r = a.recv("BYE 200");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let (name, p) = event(&ev);
    assert_eq!(name, "E_ACC_CDR", "{p}");
    assert_eq!(p["callid"], "accevi-2");
    assert_eq!(p["sip_code"], "200");
    assert_eq!(p["caller_id"], "alice");
    assert!(p["duration"].as_i64().unwrap() >= 1, "{p}");
    assert!(p["ms_duration"].as_i64().unwrap() >= 1000, "{p}");
    assert!(p["created"].as_i64().unwrap() > 0, "{p}");
    // Nothing else: the answered INVITE's transaction is in the CDR.
    ev.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(ev.recv_from(&mut buf).is_err(), "an extra event");
}
