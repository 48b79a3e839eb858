//! RFC 3263 server location for `forward()` through a DNS server of the test's own (the
//! resolve crate's test server, on 127.0.0.1, named to rsips by `RSIPS_RESOLV_CONF`): NAPTR
//! choosing TCP, SRV giving the port, a name with a port going straight to its A record, and an
//! /etc/hosts name DNS does not know.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/resolve/tests/common/mod.rs"]
mod dns;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kill, free_port};
use dns::{Data, Mode, TestDns, Zone};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn invite(user: &str) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{user}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {user}\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// rsips on 127.0.0.1:`port` with `cfg`, its resolver pointed at `dns` (`RSIPS_RESOLV_CONF`);
/// returns once it listens on `listening`. The directory and the process go when dropped.
struct Rsips {
    dir: std::path::PathBuf,
    _child: Kill,
}

impl Rsips {
    fn start(name: &str, dns: &TestDns, port: u16, cfg: &str, listening: &str) -> Rsips {
        let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {}\noptions timeout:1 attempts:1\n", dns.addr),
        )
        .unwrap();
        std::fs::write(dir.join("t.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
        let child = Kill(
            Command::new(env!("CARGO_BIN_EXE_rsips"))
                .args(["-F", "-f"])
                .arg(dir.join("t.cfg"))
                .env("RSIPS_RESOLV_CONF", dir.join("resolv.conf"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let rsips = Rsips { dir, _child: child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !rsips.log().contains(listening) {
            assert!(
                Instant::now() < deadline,
                "rsips did not start:\n{}",
                rsips.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rsips
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

impl Drop for Rsips {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn forward_locates_names_by_naptr_srv_and_a() {
    let udp_uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_uas
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let udp_port = udp_uas.local_addr().unwrap().port();
    let tcp_uas = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp_uas.local_addr().unwrap().port();
    let zone = Zone::new()
        // No transport, no port: NAPTR picks TCP, its SRV the port.
        .add(
            "naptr.test",
            Data::Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.naptr.test"),
        )
        .add(
            "_sip._tcp.naptr.test",
            Data::Srv(10, 10, tcp_port, "host.test"),
        )
        // No NAPTR: the UDP SRV.
        .add(
            "_sip._udp.srv.test",
            Data::Srv(10, 10, udp_port, "host.test"),
        )
        .add("host.test", Data::A(LOCAL))
        .add("srv.test", Data::A(Ipv4Addr::new(192, 0, 2, 1)));
    let server = TestDns::start(zone, Mode::Normal);
    let port = free_port();
    let route = format!(
        "route {{\n\
         if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n\
         if ($rU == \"naptr\") forward(\"sip:naptr.test\");\n\
         if ($rU == \"srv\") forward(\"sip:srv.test\");\n\
         if ($rU == \"port\") forward(\"sip:host.test:{udp_port}\");\n\
         if ($rU == \"hosts\") forward(\"sip:localhost:{udp_port}\");\n}}"
    );
    let rsips = Rsips::start(
        "dns",
        &server,
        port,
        &format!(
            "socket=udp:127.0.0.1:{port}\nsocket=tcp:127.0.0.1:{port}\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"proto_tcp.so\"\nloadmodule \"sl.so\"\n\
             loadmodule \"sipmsgops.so\"\n{route}\n"
        ),
        &format!("listening on tcp:127.0.0.1:{port}"),
    );
    let rsips_log = || rsips.log();
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |user: &str| {
        uac.send_to(invite(user).as_bytes(), ("127.0.0.1", port))
            .unwrap();
    };
    let mut buf = [0u8; 65_535];
    for user in ["srv", "port", "hosts"] {
        send(user);
        let (n, _) = udp_uas
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{user}: nothing on the UDP UAS ({e}):\n{}", rsips_log()));
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            got.contains(&format!("Call-ID: {user}\r\n")),
            "{user}: {got}"
        );
    }
    send("naptr");
    tcp_uas.set_nonblocking(false).unwrap();
    let (mut conn, _) = tcp_uas.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("naptr: {e}\n{}", rsips_log()));
        assert!(n > 0, "closed");
        got.extend_from_slice(&chunk[..n]);
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        got.starts_with("INVITE ") && got.contains("Via: SIP/2.0/TCP 127.0.0.1:"),
        "NAPTR chose TCP: {got}"
    );
    assert!(server.queries() > 0);
}

/// Answers every request arriving on `sock` with `code` (copying the headers a reply needs)
/// until `count` requests were seen; returns the request lines it got.
fn answering(sock: UdpSocket, code: u16, count: usize) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 65_535];
        while seen.len() < count {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(req.lines().next().unwrap_or("").to_owned());
            if req.starts_with("ACK ") {
                continue;
            }
            let mut reply = format!("SIP/2.0 {code} Code {code}\r\n");
            for l in req.lines().take_while(|l| !l.is_empty()) {
                let name = l.split(':').next().unwrap_or("");
                if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
                    reply.push_str(l);
                    reply.push_str("\r\n");
                } else if name == "To" {
                    reply.push_str(l);
                    reply.push_str(";tag=uas\r\n");
                }
            }
            reply.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(reply.as_bytes(), from);
        }
        seen
    })
}

/// DNS failover in tm (RFC 3263 §4.3, OpenSIPS `do_dns_failover`): a 503 from the first SRV
/// target sends the request on to the next; `t_relay("no-dns-failover")` does not.
#[test]
fn t_relay_fails_over_to_the_next_srv_target_on_503() {
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (p1, p2) = (
        first.local_addr().unwrap().port(),
        second.local_addr().unwrap().port(),
    );
    let zone = Zone::new()
        .add("_sip._udp.gw.test", Data::Srv(10, 0, p1, "a.gw.test"))
        .add("_sip._udp.gw.test", Data::Srv(20, 0, p2, "b.gw.test"))
        .add("a.gw.test", Data::A(LOCAL))
        .add("b.gw.test", Data::A(LOCAL));
    let server = TestDns::start(zone, Mode::Normal);
    let port = free_port();
    let rsips = Rsips::start(
        "dnsfo",
        &server,
        port,
        &format!(
            "socket=udp:127.0.0.1:{port}\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
             loadmodule \"tm.so\"\nloadmodule \"sipmsgops.so\"\n\
             route {{\n  if (is_method(\"ACK\")) exit;\n  $du = \"sip:gw.test\";\n\
               if ($rU == \"nofo\") t_relay(\"no-dns-failover\"); else t_relay();\n}}\n"
        ),
        &format!("listening on udp:127.0.0.1:{port}"),
    );
    let rsips_log = || rsips.log();
    // First call: 503 from a.gw.test (its INVITE and the ACK), then 200 from b.gw.test.
    let busy = answering(first, 503, 4);
    let ok = answering(second, 200, 1);
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cport = uac.local_addr().unwrap().port();
    let call = |user: &str| invite(user).replace("127.0.0.1:9;", &format!("127.0.0.1:{cport};"));
    uac.send_to(call("fo").as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 65_535];
    let final_reply = |uac: &UdpSocket, buf: &mut [u8]| loop {
        let (n, _) = uac
            .recv_from(buf)
            .unwrap_or_else(|e| panic!("no final reply: {e}\n{}", rsips_log()));
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 100") {
            break r;
        }
    };
    let r = final_reply(&uac, &mut buf);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert_eq!(ok.join().unwrap(), ["INVITE sip:fo@127.0.0.1 SIP/2.0"]);
    // Second call, without failover: the 503 goes upstream (as 500, OpenSIPS' translation).
    uac.send_to(call("nofo").as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let r = final_reply(&uac, &mut buf);
    assert!(r.starts_with("SIP/2.0 500 "), "{r}");
    let seen = busy.join().unwrap();
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("INVITE ")).count(),
        2,
        "{seen:?}"
    );
}
