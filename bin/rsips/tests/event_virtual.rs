//! event_virtual: several subscribers as one — PARALLEL tells every member, FAILOVER the
//! first that takes it (a unix socket that is not there fails, the next member gets it),
//! ROUND-ROBIN one member per event in turn; a bad policy is refused over MI.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::Peer;

fn receiver() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

/// The events `s` got within the wait, by method.
fn got(s: &UdpSocket) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        out.push(format!(
            "{} {}",
            v["method"].as_str().unwrap(),
            v["params"]["n"].as_str().unwrap()
        ));
    }
    out
}

#[test]
fn parallel_failover_and_round_robin() {
    let port = common::free_port();
    let rx: Vec<(UdpSocket, u16)> = (0..5).map(|_| receiver()).collect();
    let dir = common::test_dir("evvirt", &port.to_string());
    let fifo = dir.join("fifo");
    let cfg = format!(
        r#"log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:{port}
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "mi_fifo.so"
loadmodule "event_datagram.so"
loadmodule "event_virtual.so"
modparam("mi_fifo", "fifo_name", "{fifo}")
modparam("event_virtual", "failover_timeout", 5)
startup_route {{
    subscribe_event("E_PAR", "virtual:PARALLEL udp:127.0.0.1:{p0}  udp:127.0.0.1:{p1}");
    subscribe_event("E_FO", "virtual:FAILOVER unix:{dir}/nobody-here udp:127.0.0.1:{p2}");
    subscribe_event("E_RR", "virtual:ROUND-ROBIN udp:127.0.0.1:{p3}	udp:127.0.0.1:{p4}");
}}
route {{
    $avp(k) = "n";
    $avp(v) = $cs;
    raise_event("E_PAR", $avp(k), $avp(v));
    raise_event("E_FO", $avp(k), $avp(v));
    raise_event("E_RR", $avp(k), $avp(v));
    sl_send_reply(200, "OK");
}}
"#,
        fifo = fifo.display(),
        dir = dir.display(),
        p0 = rx[0].1,
        p1 = rx[1].1,
        p2 = rx[2].1,
        p3 = rx[3].1,
        p4 = rx[4].1,
    );
    std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
    // Ready once the MI FIFO is there too (opensips-cli talks to it).
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains("listening on udp:") && fifo.exists()
    });
    let peer = Peer::new();
    for cseq in 1..=2 {
        peer.send(
            port,
            &format!(
                "OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ev{cseq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:x@127.0.0.1>\r\n\
                 Call-ID: ev-{port}\r\nCSeq: {cseq} OPTIONS\r\nContent-Length: 0\r\n\r\n",
                peer.port
            ),
        );
        assert!(peer.recv("200").starts_with("SIP/2.0 200"));
    }
    // PARALLEL: both members, both events.
    assert_eq!(got(&rx[0].0), ["E_PAR 1", "E_PAR 2"]);
    assert_eq!(got(&rx[1].0), ["E_PAR 1", "E_PAR 2"]);
    // FAILOVER: the unix socket is not there; the next member gets every event.
    assert_eq!(got(&rx[2].0), ["E_FO 1", "E_FO 2"]);
    // ROUND-ROBIN: one each.
    assert_eq!(got(&rx[3].0), ["E_RR 1"]);
    assert_eq!(got(&rx[4].0), ["E_RR 2"]);
    // Over MI: listed as subscribed; a bad policy refused.
    let (ok, out) = common::opensips_cli(&fifo, &["subscribers_list", "E_FO"]);
    assert!(ok && out.contains("virtual:FAILOVER"), "{out}");
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "event_subscribe",
            "E_PAR",
            "virtual:SOMETIMES udp:127.0.0.1:9",
        ],
    );
    assert!(!ok && out.contains("400"), "{out}");
}
