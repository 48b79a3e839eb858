//! A locally generated INVITE end to end: MI `tm:uac_dlg` sends it to a UDP socket the test
//! owns, MI `tm:uac_cancel` cancels it, and the first MI call reports the 487.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Kill;

struct Server {
    _child: Kill,
    dir: PathBuf,
    sip: u16,
    http: u16,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

fn start() -> Server {
    start_with(r#"route { sl_send_reply(404, "Not Here"); }"#)
}

fn start_with(route: &str) -> Server {
    let [sip, http] = common::free_ports::<2>();
    let dir = std::env::temp_dir().join(format!("rsips-tmlocal-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        "socket=udp:127.0.0.1:{sip}\nudp_workers=1\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"tm.so\"\nloadmodule \"httpd.so\"\nloadmodule \"mi_http.so\"\n\
         modparam(\"httpd\", \"ip\", \"127.0.0.1\")\nmodparam(\"httpd\", \"port\", {http})\n\
         modparam(\"tm\", \"fr_timeout\", 10)\nmodparam(\"tm\", \"fr_inv_timeout\", 15)\n\
         {route}\n"
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
    let server = Server {
        _child: Kill(child),
        dir,
        sip,
        http,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.log().contains("MI listening") {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsips did not start its MI:\n{}", server.log());
}

/// One JSON-RPC request over HTTP; the response body.
fn mi(http: u16, body: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", http)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(out)
}

/// The next request of `method` the UAS gets (other methods, e.g. INVITE retransmissions,
/// are skipped), within the socket's read timeout.
fn recv(uas: &UdpSocket, method: &str) -> (String, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let Ok((n, from)) = uas.recv_from(&mut buf) else {
            break;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(&format!("{method} ")) {
            return (text, from);
        }
    }
    panic!("no {method} arrived");
}

fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines()
        .find(|l| l.split(':').next() == Some(name))
        .and_then(|l| l.split_once(':'))
        .map_or("", |(_, v)| v.trim())
}

/// A reply to `req` (its Via, From, To (+ tag), Call-ID and CSeq).
fn answer(uas: &UdpSocket, to: SocketAddr, req: &str, status: &str, tag: Option<&str>) {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for l in req.lines() {
        let name = l.split(':').next().unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            r.push_str(&format!("{l}\r\n"));
        } else if name == "To" {
            match tag {
                Some(t) => r.push_str(&format!("{l};tag={t}\r\n")),
                None => r.push_str(&format!("{l}\r\n")),
            }
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    uas.send_to(r.as_bytes(), to).unwrap();
}

#[test]
fn uac_cancel_cancels_an_invite_sent_by_uac_dlg_which_reports_487() {
    let server = start();
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let uas_port = uas.local_addr().unwrap().port();

    let which = mi(server.http, r#"{"jsonrpc":"2.0","method":"which","id":1}"#);
    assert!(
        which.contains("\"tm:uac_cancel\"") && which.contains("\"t_uac_cancel\""),
        "{which}"
    );
    let unknown = mi(
        server.http,
        r#"{"jsonrpc":"2.0","method":"t_uac_cancel","params":["no-such-call","1"],"id":2}"#,
    );
    assert_eq!(
        unknown,
        r#"{"jsonrpc":"2.0","error":{"code":481,"message":"No such transaction"},"id":2}"#
    );

    let http = server.http;
    let dlg = std::thread::spawn(move || {
        let req = format!(
            r#"{{"jsonrpc":"2.0","method":"tm:uac_dlg","params":{{"method":"INVITE","ruri":"sip:bob@127.0.0.1:{uas_port}","headers":"From: <sip:mi@rsips.example>\r\nTo: <sip:bob@example.com>\r\nCall-ID: tm-local-e2e\r\nCSeq: 5 INVITE\r\nContact: <sip:mi@127.0.0.1>\r\n"}},"id":3}}"#
        );
        mi(http, &req)
    });
    let (invite, rsips) = recv(&uas, "INVITE");
    assert!(
        invite.starts_with(&format!("INVITE sip:bob@127.0.0.1:{uas_port} SIP/2.0\r\n")),
        "{invite}"
    );
    answer(&uas, rsips, &invite, "180 Ringing", Some("uas-tag"));

    let cancelled = mi(
        server.http,
        r#"{"jsonrpc":"2.0","method":"tm:uac_cancel","params":{"callid":"tm-local-e2e","cseq":"5"},"id":4}"#,
    );
    assert_eq!(cancelled, r#"{"jsonrpc":"2.0","result":"OK","id":4}"#);
    let (cancel, from) = recv(&uas, "CANCEL");
    assert_eq!(from, rsips);
    assert!(
        cancel.starts_with(&format!("CANCEL sip:bob@127.0.0.1:{uas_port} SIP/2.0\r\n")),
        "{cancel}"
    );
    assert_eq!(header(&cancel, "Call-ID"), "tm-local-e2e");
    assert_eq!(header(&cancel, "CSeq"), "5 CANCEL");
    assert_eq!(
        header(&cancel, "Via"),
        header(&invite, "Via"),
        "same branch"
    );
    assert_eq!(header(&cancel, "From"), header(&invite, "From"));
    answer(&uas, rsips, &cancel, "200 OK", None);
    answer(
        &uas,
        rsips,
        &invite,
        "487 Request Terminated",
        Some("uas-tag"),
    );
    let (ack, _) = recv(&uas, "ACK");
    assert!(
        ack.starts_with(&format!("ACK sip:bob@127.0.0.1:{uas_port} SIP/2.0\r\n")),
        "{ack}"
    );
    assert_eq!(header(&ack, "Via"), header(&invite, "Via"));
    assert_eq!(header(&ack, "CSeq"), "5 ACK");
    assert_eq!(header(&ack, "Call-ID"), "tm-local-e2e");
    assert!(header(&ack, "To").ends_with(";tag=uas-tag"), "{ack}");

    let result = dlg.join().unwrap();
    assert!(
        result.contains(r#""result":{"Status":"487 Request Terminated","Message":""#),
        "{result}"
    );
    assert!(result.contains("Call-ID: tm-local-e2e"), "{result}");
    // Positional parameters work too; a CSeq that matches nothing is refused.
    let again = mi(
        server.http,
        r#"{"jsonrpc":"2.0","method":"tm:uac_cancel","params":["tm-local-e2e","6"],"id":5}"#,
    );
    assert!(again.contains(r#""code":481"#), "{again}");
}

#[test]
fn uac_dlg_invite_answered_200_is_acked_by_rsips() {
    let server = start();
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let http = server.http;
    let dlg = std::thread::spawn(move || {
        let req = format!(
            r#"{{"jsonrpc":"2.0","method":"tm:uac_dlg","params":{{"method":"INVITE","ruri":"sip:bob@127.0.0.1:{uas_port}","headers":"From: <sip:mi@rsips.example>\r\nTo: <sip:bob@example.com>\r\n"}},"id":1}}"#
        );
        mi(http, &req)
    });
    let (invite, rsips) = recv(&uas, "INVITE");
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for l in invite.lines() {
        let name = l.split(':').next().unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            ok.push_str(&format!("{l}\r\n"));
        } else if name == "To" {
            ok.push_str(&format!("{l};tag=t200\r\n"));
        }
    }
    ok.push_str(&format!(
        "Contact: <sip:bob@127.0.0.1:{uas_port};transport=udp>\r\nContent-Length: 0\r\n\r\n"
    ));
    uas.send_to(ok.as_bytes(), rsips).unwrap();
    let (ack, _) = recv(&uas, "ACK");
    assert!(
        ack.starts_with(&format!(
            "ACK sip:bob@127.0.0.1:{uas_port};transport=udp SIP/2.0\r\n"
        )),
        "the ACK goes to the Contact: {ack}"
    );
    assert_eq!(header(&ack, "CSeq"), "1 ACK");
    // The INVITE had no Contact: neither has the ACK.
    assert_eq!(header(&ack, "Contact"), "");
    let result = dlg.join().unwrap();
    assert!(
        result.contains(&format!(
            r#""Status":"200 OK","RURI":"sip:bob@127.0.0.1:{uas_port};transport=udp","Next-hop":"#
        )),
        "{result}"
    );
}

#[test]
fn t_reply_by_callid_answers_the_invite_a_cancel_names() {
    let server = start_with(
        r#"route {
            if ($rm == "CANCEL") {
                if (t_reply_by_callid(487, "Cancelled By Callid")) { sl_send_reply(200, "Done"); }
                exit;
            }
            t_newtran();
            exit;
        }"#,
    );
    let sip = server.sip;
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = uac.local_addr().unwrap().port();
    let req = |method: &str| {
        format!(
            "{method} sip:bob@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKrbc1\r\n\
             From: <sip:a@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: rbc-e2e\r\n\
             CSeq: 9 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    uac.send_to(req("INVITE").as_bytes(), ("127.0.0.1", sip))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = uac.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 100 "));
    uac.send_to(req("CANCEL").as_bytes(), ("127.0.0.1", sip))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let (n, _) = uac.recv_from(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got.iter()
            .any(|m| m.starts_with("SIP/2.0 487 Cancelled By Callid\r\n")
                && header(m, "CSeq") == "9 INVITE"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.starts_with("SIP/2.0 200 Done\r\n") && header(m, "CSeq") == "9 CANCEL"),
        "{got:?}"
    );
}

/// `t_on_reply` and `t_on_failure` in `local_route` (as OpenSIPS allows): the request rsips
/// sends gets those routes for its own replies; an MI request the route does not arm gets
/// none.
#[test]
fn local_route_arms_reply_and_failure_routes_of_the_local_request() {
    let server = start_with(
        r#"route { sl_send_reply(404, "Not Here"); }
        local_route {
            if ($hdr(X-Arm) == "yes") {
                t_on_reply("local_rpl");
                t_on_failure("local_fail");
            }
        }
        onreply_route[local_rpl] { xlog("L_NOTICE", "local reply $rs to $ci\n"); }
        failure_route[local_fail] { xlog("L_NOTICE", "local failure $T_reply_code to $ci\n"); }"#,
    );
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    for (arm, callid) in [("yes", "armed-1"), ("no", "plain-1")] {
        let http = server.http;
        let dlg = std::thread::spawn(move || {
            let req = format!(
                r#"{{"jsonrpc":"2.0","method":"tm:uac_dlg","params":{{"method":"INVITE","ruri":"sip:bob@127.0.0.1:{uas_port}","headers":"From: <sip:mi@rsips.example>\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\nX-Arm: {arm}\r\n"}},"id":1}}"#
            );
            mi(http, &req)
        });
        let (invite, rsips) = recv(&uas, "INVITE");
        assert_eq!(header(&invite, "Call-ID"), callid);
        answer(&uas, rsips, &invite, "180 Ringing", Some("r1"));
        answer(&uas, rsips, &invite, "486 Busy Here", Some("r1"));
        let (ack, _) = recv(&uas, "ACK");
        assert_eq!(header(&ack, "Call-ID"), callid);
        let result = dlg.join().unwrap();
        assert!(result.contains(r#""Status":"486 Busy Here""#), "{result}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("local failure 486 to armed-1") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(log.contains("local reply 180 to armed-1"), "{log}");
    assert!(log.contains("local reply 486 to armed-1"), "{log}");
    assert!(log.contains("local failure 486 to armed-1"), "{log}");
    assert!(!log.contains("plain-1"), "not armed, no route: {log}");
}
