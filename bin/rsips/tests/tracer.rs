//! tracer + proto_hep: a call through a stateful proxy traced to two HEP collectors of the
//! test — one over UDP (`transport=udp`, the transaction scope), one over TCP (the default,
//! the dialog scope `trace()` picks for an initial INVITE with the dialog module) together
//! with a db_text `sip_trace` table under the same trace id. Each HEPv3 packet is decoded:
//! the exact SIP message, the addresses and ports it went between, the Call-ID as correlation
//! id, the capture agent id; the table rows carry method, status, addresses, From tag,
//! direction and the trace attributes; MI `trace` lists the destinations and turns tracing
//! off and on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
socket=hep_udp:127.0.0.1:HEPFROM
socket=hep_tcp:127.0.0.1:HEPFROM
udp_workers=1
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "proto_hep.so"
loadmodule "tracer.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
modparam("httpd", "port", HTTP)
modparam("proto_hep", "hep_id", "[hu]127.0.0.1:HEPUDP;transport=udp")
modparam("proto_hep", "hep_id", "[ht] 127.0.0.1:HEPTCP")
modparam("proto_hep", "hep_capture_id", 42)
modparam("tracer", "trace_id", "[tu]uri=hep:hu")
modparam("tracer", "trace_id", "[tt]uri=hep:ht")
modparam("tracer", "trace_id", "[tt]uri=text://DBDIR")
loadmodule "db_text.so"
route {
    if (is_method("OPTIONS")) {
        # Types: xlog alone traces no SIP; with sip it does (xlog lines are not captured).
        if ($hdr(X-Types) == "xlog") trace("tu", "m", "xlog");
        else trace("tu", "m", "sip|xlog");
        sl_send_reply(200, "OK");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("ACK") && t_check_trans()) {
            t_relay();
            exit;
        }
        sl_send_reply(404, "Not here");
        exit;
    }
    trace("tu", "t");
    trace("tt", , , "acct-7");
    record_route();
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
"#;

/// One decoded HEP packet: the generic chunks that matter here.
#[derive(Debug)]
struct Hep {
    proto: u8,
    src: (Vec<u8>, u16),
    dst: (Vec<u8>, u16),
    capture_id: u32,
    payload: String,
    correlation: String,
}

fn decode(packet: &[u8]) -> Hep {
    let chunks = tracer::hep::decode(packet).expect("a HEPv3 packet");
    let get = |t: u16| {
        chunks
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let port = |v: Vec<u8>| u16::from_be_bytes([v[0], v[1]]);
    Hep {
        proto: get(2)[0],
        src: (get(3), port(get(7))),
        dst: (get(4), port(get(8))),
        capture_id: u32::from_be_bytes(get(0x0c).try_into().unwrap()),
        payload: String::from_utf8(get(0x0f)).unwrap(),
        correlation: String::from_utf8(get(0x11)).unwrap(),
    }
}

/// The packets waiting on the UDP collector (each within `wait` of the last).
fn udp_packets(sock: &UdpSocket, wait: Duration) -> Vec<Hep> {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(decode(&buf[..n]));
    }
    out
}

/// HEP packets on a TCP stream, split by their length field, until `want` arrived.
fn tcp_packets(conn: &mut TcpStream, want: usize) -> Vec<Hep> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 65_536];
    loop {
        let mut out = Vec::new();
        let mut at = 0;
        while data.len() >= at + 6 {
            let len = usize::from(u16::from_be_bytes([data[at + 4], data[at + 5]]));
            if data.len() < at + len {
                break;
            }
            out.push(decode(&data[at..at + len]));
            at += len;
        }
        if out.len() >= want {
            return out;
        }
        let n = conn.read(&mut buf).expect("HEP over TCP");
        assert!(
            n > 0,
            "the HEP connection closed after {} packets",
            out.len()
        );
        data.extend_from_slice(&buf[..n]);
    }
}

fn first_line(p: &Hep) -> &str {
    p.payload.lines().next().unwrap_or_default()
}

fn invite(caller: &Peer, call_id: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{cp}>\r\n\
         Content-Length: 0\r\n\r\n",
        cp = caller.port
    )
}

#[test]
fn a_call_is_traced_to_hep_collectors() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let hep_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let hep_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let [port, http, hep_from] = common::free_ports::<3>();
    let dir = std::env::temp_dir().join(format!("rsips-tracer-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The table the database destination writes to (db_text, written out at shutdown).
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nsip_trace:5\n",
    )
    .unwrap();
    std::fs::write(
        db.join("sip_trace"),
        "id(int,auto) time_stamp(int) callid(string) trace_attrs(string,null) msg(string) \
         method(string) status(string,null) from_proto(string) from_ip(string) from_port(int) \
         to_proto(string) to_ip(string) to_port(int) fromtag(string) direction(string)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("DBDIR", db.to_str().unwrap())
            .replace("HEPUDP", &hep_udp.local_addr().unwrap().port().to_string())
            .replace("HEPTCP", &hep_tcp.local_addr().unwrap().port().to_string())
            .replace("HTTP", &http.to_string())
            .replace("HEPFROM", &hep_from.to_string())
            .replace("CALLEE", &callee.port.to_string())
            .replace("PORT", &port.to_string()),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));

    // The call: INVITE, 180, 200, ACK, then the callee's BYE and its 200.
    caller.send(port, &invite(&caller, "tr-1"));
    let inv = callee.recv("INVITE");
    callee.send(port, &reply_to(&inv, "180 Ringing", "b1", ""));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", "b1", &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let rr = header(&ok, "Record-Route")[0].to_owned();
    caller.send(
        port,
        &format!(
            "ACK sip:bob@127.0.0.1:{ep} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-ack1\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>;tag=b1\r\nCall-ID: tr-1\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            ep = callee.port,
            cp = caller.port
        ),
    );
    assert!(callee.recv("ACK").starts_with("ACK "));
    callee.send(
        port,
        &format!(
            "BYE sip:alice@127.0.0.1:{cp} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{ep};branch=z9hG4bK-bye1\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b1\r\n\
             To: <sip:alice@example.com>;tag=a1\r\nCall-ID: tr-1\r\nCSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            ep = callee.port,
            cp = caller.port
        ),
    );
    let bye = caller.recv("BYE");
    caller.send(port, &reply_to(&bye, "200 OK", "a1", ""));
    assert!(callee.recv("200 to BYE").starts_with("SIP/2.0 200"));

    // Transaction scope over UDP: the INVITE transaction (with the ACK of its 2xx), not the
    // BYE's, though the callee's BYE has CSeq number 1 too.
    // HEP over UDP leaves from the script's hep_udp socket, as in OpenSIPS.
    hep_udp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (_, from) = hep_udp.peek_from(&mut [0u8; 65_535]).unwrap();
    assert_eq!(from.to_string(), format!("127.0.0.1:{hep_from}"));
    let got = udp_packets(&hep_udp, Duration::from_millis(700));
    let lines: Vec<(&str, u16, u16)> = got
        .iter()
        .map(|p| (first_line(p), p.src.1, p.dst.1))
        .collect();
    let (cp, ep) = (caller.port, callee.port);
    assert_eq!(
        lines,
        [
            ("INVITE sip:bob@example.com SIP/2.0", cp, port),
            ("SIP/2.0 100 Giving it a try", port, cp),
            ("INVITE sip:bob@example.com SIP/2.0", port, ep),
            ("SIP/2.0 180 Ringing", ep, port),
            ("SIP/2.0 180 Ringing", port, cp),
            ("SIP/2.0 200 OK", ep, port),
            ("SIP/2.0 200 OK", port, cp),
            (&*format!("ACK sip:bob@127.0.0.1:{ep} SIP/2.0"), cp, port),
            (&*format!("ACK sip:bob@127.0.0.1:{ep} SIP/2.0"), port, ep),
        ],
        "{got:#?}"
    );
    for p in &got {
        assert_eq!((p.proto, p.capture_id), (17, 42));
        assert_eq!(
            (p.src.0.as_slice(), p.dst.0.as_slice()),
            (&[127, 0, 0, 1][..], &[127, 0, 0, 1][..])
        );
        assert_eq!(p.correlation, "tr-1");
    }
    // The captured INVITE is the caller's, byte for byte; the relayed one has our Via.
    assert_eq!(got[0].payload, invite(&caller, "tr-1"));
    assert!(
        got[2]
            .payload
            .contains(&format!("Via: SIP/2.0/UDP 127.0.0.1:{port};branch="))
    );

    // Dialog scope over TCP: the same, then the BYE transaction as well.
    let mut conn = common::accept_within(&hep_tcp);
    let got = tcp_packets(&mut conn, 13);
    let lines: Vec<&str> = got.iter().map(first_line).collect();
    assert_eq!(lines.len(), 13, "{lines:#?}");
    assert_eq!(
        &lines[9..],
        [
            &*format!("BYE sip:alice@127.0.0.1:{cp} SIP/2.0"),
            &*format!("BYE sip:alice@127.0.0.1:{cp} SIP/2.0"),
            "SIP/2.0 200 OK",
            "SIP/2.0 200 OK",
        ],
        "{lines:#?}"
    );
    assert!(got.iter().all(|p| p.correlation == "tr-1" && p.proto == 17));

    // MI: the switch and the destinations; off, a new call is not traced; on again, it is.
    let state = common::mi_http(http, r#"{"jsonrpc":"2.0","method":"trace","id":1}"#);
    assert!(
        state.contains(r#""global":"on""#)
            && state.contains(&format!(
                r#"{{"name":"tt","type":"HEP","uri":"127.0.0.1:{}","state":"on"}}"#,
                hep_tcp.local_addr().unwrap().port()
            ))
            && state.contains(r#""type":"Database","uri":"text://"#),
        "{state}"
    );
    let off = common::mi_http(
        http,
        r#"{"jsonrpc":"2.0","method":"tracer:trace","params":{"mode":"off"},"id":2}"#,
    );
    assert_eq!(off, r#"{"jsonrpc":"2.0","result":"OK","id":2}"#);
    caller.send(port, &invite(&caller, "tr-2"));
    let inv2 = callee.recv("INVITE 2");
    callee.send(port, &reply_to(&inv2, "486 Busy Here", "b2", ""));
    assert!(caller.recv("486").starts_with("SIP/2.0 486"));
    assert!(callee.recv("the ACK of the 486").starts_with("ACK "));
    assert!(udp_packets(&hep_udp, Duration::from_millis(500)).is_empty());
    common::mi_http(
        http,
        r#"{"jsonrpc":"2.0","method":"trace","params":{"mode":"on"},"id":3}"#,
    );
    caller.send(port, &invite(&caller, "tr-3"));
    let inv3 = callee.recv("INVITE 3");
    callee.send(port, &reply_to(&inv3, "486 Busy Here", "b3", ""));
    assert!(caller.recv("486").starts_with("SIP/2.0 486"));
    assert!(callee.recv("the ACK of the 486").starts_with("ACK "));
    caller.send(
        port,
        &format!(
            "ACK sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-tr-3\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>;tag=b3\r\nCall-ID: tr-3\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    );
    // The hop-by-hop ACKs of the 486 (ours to the callee, the caller's to us) belong to the
    // transaction too.
    let got = udp_packets(&hep_udp, Duration::from_millis(700));
    let lines: Vec<&str> = got.iter().map(first_line).collect();
    assert_eq!(
        lines,
        [
            "INVITE sip:bob@example.com SIP/2.0",
            "SIP/2.0 100 Giving it a try",
            "INVITE sip:bob@example.com SIP/2.0",
            "SIP/2.0 486 Busy Here",
            "ACK sip:bob@example.com SIP/2.0",
            "SIP/2.0 486 Busy Here",
            "ACK sip:bob@example.com SIP/2.0",
        ],
        "{got:#?}"
    );
    assert!(got.iter().all(|p| p.correlation == "tr-3"));
    let asker = Peer::new();
    for (types, traced) in [("xlog", false), ("sip|xlog", true)] {
        asker.send(
            port,
            &format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ap};branch=z9hG4bK-o{traced}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=o1\r\nTo: <sip:bob@example.com>\r\n\
                 Call-ID: opt-{traced}\r\nCSeq: 1 OPTIONS\r\nX-Types: {types}\r\nContent-Length: 0\r\n\r\n",
                ap = asker.port
            ),
        );
        let ok = asker.recv("200 to OPTIONS");
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        let got = udp_packets(&hep_udp, Duration::from_millis(500));
        assert_eq!(
            got.iter().any(|p| first_line(p).starts_with("OPTIONS ")),
            traced,
            "{types}: {got:#?}"
        );
    }

    // The database destination of "tt": a sip_trace row per message it traced (tr-1's 13
    // and tr-3's 7), written out when rsips stops.
    server.terminate(|| std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default());
    let table = std::fs::read_to_string(db.join("sip_trace")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 20, "{table}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(":tr-1:acct-7:")).count(),
        13,
        "{table}"
    );
    let ends = |suffix: &str| rows.iter().any(|r| r.ends_with(suffix));
    assert!(
        ends(&format!(
            ":INVITE::udp:127.0.0.1:{cp}:udp:127.0.0.1:{port}:a1:in"
        )),
        "{table}"
    );
    assert!(
        ends(&format!(
            ":INVITE:180:udp:127.0.0.1:{port}:udp:127.0.0.1:{cp}:a1:out"
        )),
        "{table}"
    );
    assert!(
        ends(&format!(
            ":BYE::udp:127.0.0.1:{ep}:udp:127.0.0.1:{port}:b1:in"
        )),
        "{table}"
    );
}

#[test]
fn trace_destinations_rsips_lacks_stop_the_start() {
    for (param, want) in [
        (
            r#"modparam("tracer", "trace_id", "[s]uri=sip:127.0.0.1:5090")"#,
            "SIP, file and syslog destinations are not available in rsips yet",
        ),
        (
            r#"modparam("tracer", "trace_id", "[db]uri=mysql://u:p@127.0.0.1/opensips")"#,
            "needs loadmodule \"db_mysql.so\"",
        ),
        (
            r#"modparam("proto_hep", "hep_id", "[h]127.0.0.1:9060;version=2")"#,
            "HEP version 2 is not available in rsips",
        ),
        (
            r#"modparam("tracer", "trace_id", "[t]uri=hep:nosuch")"#,
            "no hep_id named `nosuch`",
        ),
    ] {
        let err = common::refused_start(
            "tracer-bad",
            &format!(
                "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\n\
                 loadmodule \"proto_hep.so\"\nloadmodule \"tracer.so\"\n{param}\nroute {{ exit; }}\n"
            ),
        );
        assert!(err.contains(want), "{param}: {err}");
    }
}
