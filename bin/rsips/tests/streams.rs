//! End to end over the stream transports on 127.0.0.1 and ::1: TCP (replies on the same
//! connection, CRLF keepalives, connection reuse for forwarding, misbehaving peers, idle lifetime,
//! 1,000 concurrent connections), TLS with a test CA made by `openssl` in the test (and a
//! certificate reload on SIGHUP), WS and WSS driven by the `tungstenite` WebSocket client, and
//! PROXY protocol v1 and v2 headers naming the client.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server process; killed if a test fails before stopping it.
struct Rsips {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Rsips {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsips {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

fn free_port(host: &str) -> u16 {
    common::free_port_on(host)
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rsips-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts rsips with `cfg` (where `PORT` stands for a free port) and waits until `probe`
/// (`proto`, the port's host) accepts a TCP connection.
fn start(name: &str, host: &str, cfg: &str) -> Rsips {
    let port = free_port(host.trim_start_matches('[').trim_end_matches(']'));
    let dir = test_dir(name);
    let file = dir.join("t.cfg");
    std::fs::write(&file, cfg.replace("PORT", &port.to_string())).unwrap();
    let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Rsips { child, port, dir };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let log = server.log();
        let listening = ["tcp:", "tls:", "ws:", "wss:"]
            .iter()
            .any(|p| log.contains(&format!("listening on {p}")));
        if listening && TcpStream::connect((bare, port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsips did not start:\n{}", server.log());
}

const MODULES: &str = "loadmodule \"proto_udp.so\"\nloadmodule \"proto_tcp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n";

/// Answers OPTIONS with 200 and headers naming what rsips saw.
const ECHO: &str = r#"route {
    append_to_reply("X-Proto: $socket_in(proto)\r\nX-Source: $si:$sp\r\n");
    sl_send_reply(200, "OK");
}"#;

fn options(transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\n\
         CSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads one SIP message (headers and a Content-Length body) from a stream; `None` on close or
/// after `timeout`.
fn read_message(s: &mut impl Read, pending: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 4]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (n.eq_ignore_ascii_case("content-length") || n == "l")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if pending.len() >= end + 4 + len {
                let msg: Vec<u8> = pending.drain(..end + 4 + len).collect();
                return Some(String::from_utf8_lossy(&msg).into_owned());
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

fn connect(host: &str, port: u16) -> TcpStream {
    let s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Whether the server closed `s` within `limit` (bounded).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn tcp_replies_on_the_connection_and_answers_crlf_keepalives() {
    let server = start(
        "tcp-basic",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\ntcp_workers=2\n{MODULES}{ECHO}"),
    );
    let mut s = connect("127.0.0.1", server.port);
    // A double-CRLF ping gets a single CRLF pong (RFC 5626 §3.5.1).
    s.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    // Two requests, the first split across writes, the second pipelined behind it.
    let (a, b) = (options("TCP", "tcp-a"), options("TCP", "tcp-b"));
    s.write_all(&a.as_bytes()[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(format!("{}{b}", &a[40..]).as_bytes()).unwrap();
    let mut pending = Vec::new();
    let mut replies = [
        read_message(&mut s, &mut pending).unwrap(),
        read_message(&mut s, &mut pending).unwrap(),
    ];
    replies.sort_by_key(|r| header(r, "Call-ID").unwrap_or("").to_owned());
    let local = s.local_addr().unwrap();
    for (r, id) in replies.iter().zip(["tcp-a", "tcp-b"]) {
        assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
        assert_eq!(header(r, "Call-ID"), Some(id));
        assert_eq!(header(r, "X-Proto"), Some("tcp"));
        assert_eq!(header(r, "X-Source"), Some(local.to_string().as_str()));
        assert_eq!(
            header(r, "Via"),
            Some(format!("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{id}").as_str())
        );
    }
}

#[test]
fn misbehaving_tcp_peers_are_closed_without_disturbing_others() {
    let server = start(
        "tcp-bad",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\ntcp_workers=2\ntcp_max_msg_time=1\n{MODULES}{ECHO}"),
    );
    let port = server.port;
    let mut healthy = connect("127.0.0.1", port);
    let mut pending = Vec::new();
    let mut ask = |s: &mut TcpStream, id: &str| {
        s.write_all(options("TCP", id).as_bytes()).unwrap();
        let r = read_message(s, &mut pending).unwrap_or_default();
        assert!(r.starts_with("SIP/2.0 200 OK"), "{id}: {r}");
    };
    ask(&mut healthy, "before");

    // A header section without Content-Length can never be framed on a stream.
    let mut garbage = connect("127.0.0.1", port);
    garbage
        .write_all(b"HELLO there\r\nX: y\r\n\r\nmore garbage")
        .unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(3)));
    ask(&mut healthy, "after-garbage");

    // Bytes without a message end, past the header limit.
    let mut flood = connect("127.0.0.1", port);
    let junk = vec![b'a'; 80 * 1024];
    let _ = flood.write_all(&junk);
    assert!(closed_within(&mut flood, Duration::from_secs(3)));
    ask(&mut healthy, "after-flood");

    // Half a message, then silence: closed after tcp_max_msg_time (1 s).
    let mut stall = connect("127.0.0.1", port);
    let start = Instant::now();
    stall
        .write_all(&options("TCP", "stall").as_bytes()[..60])
        .unwrap();
    assert!(closed_within(&mut stall, Duration::from_secs(4)));
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "not before the limit"
    );
    ask(&mut healthy, "after-stall");
    assert!(
        server.log().contains("tcp_max_msg_time"),
        "{}",
        server.log()
    );
}

#[test]
fn idle_connections_close_after_tcp_connection_lifetime() {
    let server = start(
        "tcp-life",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\ntcp_connection_lifetime=1\n{MODULES}{ECHO}"),
    );
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(options("TCP", "life").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut s, &mut pending).is_some());
    let start = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(4)));
    assert!(start.elapsed() >= Duration::from_millis(800));
}

/// A UAS on a TCP listener: accepts connections, answers every request with 200, counts the
/// connections and records the requests.
fn tcp_uas(listener: TcpListener) -> Arc<std::sync::Mutex<(usize, Vec<String>)>> {
    let seen = Arc::new(std::sync::Mutex::new((0usize, Vec::new())));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut conn) = conn else { return };
            record.lock().unwrap().0 += 1;
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                while let Some(req) = read_message(&mut conn, &mut pending) {
                    let mut reply = String::from("SIP/2.0 200 OK\r\n");
                    for l in req.lines().skip(1).take_while(|l| !l.is_empty()) {
                        let name = l.split(':').next().unwrap_or("").trim();
                        if ["Via", "From", "To", "Call-ID", "CSeq"]
                            .iter()
                            .any(|h| h.eq_ignore_ascii_case(name))
                        {
                            reply.push_str(l);
                            reply.push_str("\r\n");
                        }
                    }
                    reply.push_str("Content-Length: 0\r\n\r\n");
                    record.lock().unwrap().1.push(req);
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    seen
}

#[test]
fn forward_reuses_one_tcp_connection_and_relays_replies_back() {
    let uas = TcpListener::bind("127.0.0.1:0").unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let seen = tcp_uas(uas);
    let route = format!(
        "route {{\n  $du = \"sip:127.0.0.1:{uas_port};transport=tcp\";\n  if (!forward()) sl_send_reply(500, \"Forward Failed\");\n}}"
    );
    let server = start(
        "tcp-fwd",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ndisable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    // UDP in, TCP out, and the replies back over UDP per Via.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cport = c.local_addr().unwrap().port();
    for id in ["fwd-1", "fwd-2", "fwd-3"] {
        let req = options("UDP", id).replace("127.0.0.1:9;", &format!("127.0.0.1:{cport};"));
        c.send_to(req.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
        let mut buf = [0u8; 8192];
        let (n, _) = c.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!("{id}: no reply: {e}\n{}", server.log());
        });
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
        assert_eq!(header(&r, "Call-ID"), Some(id));
        assert_eq!(r.matches("Via:").count(), 1, "our Via is removed: {r}");
    }
    let (conns, reqs) = seen.lock().unwrap().clone();
    assert_eq!(conns, 1, "one connection reused for every request");
    assert_eq!(reqs.len(), 3);
    let top = header(&reqs[0], "Via").unwrap();
    assert!(
        top.starts_with(&format!(
            "SIP/2.0/TCP 127.0.0.1:{};branch=z9hG4bK",
            server.port
        )),
        "{top}"
    );

    // TCP in, TCP out, and back over the client's connection (the `i=` Via parameter).
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(options("TCP", "fwd-tcp").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "Call-ID"), Some("fwd-tcp"));
    let (conns, reqs) = seen.lock().unwrap().clone();
    assert_eq!(conns, 1);
    let relayed = reqs.last().unwrap();
    // OpenSIPS names the connection in its own Via (`i=`); the client's Via only gets
    // `received`, and so does the Via the client sees in the reply.
    let vias: Vec<&str> = relayed.lines().filter(|l| l.starts_with("Via:")).collect();
    assert!(
        vias.len() == 2 && vias[0].contains(";i=") && !vias[1].contains(";i="),
        "our Via names the client's connection: {relayed}"
    );
    assert!(!r.contains(";i="), "{r}");

    // A datagram without Content-Length gets one on its way out over TCP (RFC 3261 §18.3):
    // the body is what is left of the datagram, and the stream needs its length.
    let no_cl = "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnocl\r\n\
                 From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: nocl\r\n\
                 CSeq: 8 MESSAGE\r\nMax-Forwards: 70\r\n\r\nhello";
    c.send_to(no_cl.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let message = loop {
        let found = seen
            .lock()
            .unwrap()
            .1
            .iter()
            .find(|r| r.starts_with("MESSAGE "))
            .cloned();
        if let Some(m) = found {
            break m;
        }
        assert!(Instant::now() < deadline, "no MESSAGE\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        message.contains("\r\nContent-Length: 5\r\n") && message.ends_with("\r\n\r\nhello"),
        "{message}"
    );
}

#[test]
fn a_failed_tcp_connect_is_reported_and_the_server_keeps_serving() {
    let closed = free_port("127.0.0.1");
    let route = format!(
        "route {{\n  if ($rU == \"fwd\") {{ forward(\"tcp:127.0.0.1:{closed}\"); exit; }}\n  sl_send_reply(200, \"OK\");\n}}"
    );
    let server = start(
        "tcp-fail",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ndisable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let req = options("UDP", "fail").replace("sip:bob@", "sip:fwd@");
    c.send_to(req.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("ConnectFailed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server
            .log()
            .contains(&format!("tcp send to 127.0.0.1:{closed}: ConnectFailed")),
        "{}",
        server.log()
    );
    let cport = c.local_addr().unwrap().port();
    let after = options("UDP", "after").replace("127.0.0.1:9;", &format!("127.0.0.1:{cport};"));
    c.send_to(after.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = c
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
}

#[test]
fn a_thousand_concurrent_tcp_connections() {
    let server = start(
        "tcp-1000",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\ntcp_workers=4\n{MODULES}{ECHO}"),
    );
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| connect("127.0.0.1", server.port))
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(options("TCP", &format!("c{i}")).as_bytes())
            .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let mut pending = Vec::new();
        let r = read_message(s, &mut pending).unwrap_or_else(|| panic!("connection {i}"));
        assert_eq!(header(&r, "Call-ID"), Some(format!("c{i}").as_str()));
    }
}

#[test]
fn tcp_over_ipv6() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here");
        return;
    }
    let server = start(
        "tcp6",
        "[::1]",
        &format!("socket=tcp:[::1]:PORT\n{MODULES}{ECHO}"),
    );
    let mut s = connect("::1", server.port);
    s.write_all(options("TCP", "v6").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap();
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    let local = s.local_addr().unwrap();
    // `$si` as OpenSIPS writes an IPv6 address: upper-case groups, no `::` compression.
    assert_eq!(
        header(&r, "X-Source"),
        Some(format!("{}:{}", engine::pv::ip_text(local.ip()), local.port()).as_str())
    );
    assert_eq!(engine::pv::ip_text(local.ip()), "0:0:0:0:0:0:0:1");
}

#[test]
fn proxy_protocol_v1_and_v2_headers_name_the_client() {
    // As OpenSIPS: `$si`/`$sp` stay the proxy's, `$proxy_protocol(...)` names the client, the
    // header is optional, and a UDP datagram may carry one too.
    let route = r#"route {
    append_to_reply("X-Source: $si:$sp\r\nX-Client: $proxy_protocol(src_ip):$proxy_protocol(src_port)\r\n");
    sl_send_reply(200, "OK");
}"#;
    let server = start(
        "tcp-proxy",
        "127.0.0.1",
        &format!(
            "socket=tcp:127.0.0.1:PORT allow_proxy_protocol
socket=udp:127.0.0.1:PORT allow_proxy_protocol
{MODULES}{route}"
        ),
    );
    // v1 text header.
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(b"PROXY TCP4 198.51.100.7 127.0.0.1 40123 5060\r\n")
        .unwrap();
    s.write_all(options("TCP", "pp1").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    let tcp_peer = s.local_addr().unwrap();
    assert_eq!(header(&r, "X-Client"), Some("198.51.100.7:40123"), "{r}");
    assert_eq!(
        header(&r, "X-Source"),
        Some(tcp_peer.to_string().as_str()),
        "{r}"
    );
    // v2 binary header (IPv6 client) in the same write as the request.
    let src: SocketAddr = "[2001:db8::5]:41000".parse().unwrap();
    let dst: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    let mut v2 = transport::proxy_protocol::encode_v2(
        transport::proxy_protocol::Command::Proxy,
        transport::proxy_protocol::Transport::Stream,
        src,
        dst,
        &[],
    )
    .unwrap();
    v2.extend_from_slice(options("TCP", "pp2").as_bytes());
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(&v2).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert_eq!(
        header(&r, "X-Client"),
        Some("2001:DB8:0:0:0:0:0:5:41000"),
        "{r}"
    );
    // A connection without the header is plain SIP.
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(options("TCP", "pp-none").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(
        r.starts_with("SIP/2.0 200 OK") && header(&r, "X-Client") == Some("<null>:<null>"),
        "{r}"
    );
    // A datagram with a v1 header: taken off, the client named.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cport = c.local_addr().unwrap().port();
    let dgram = format!(
        "PROXY TCP4 198.51.100.9 127.0.0.1 40999 5060\r\n{}",
        options("UDP", "pp-udp").replace("127.0.0.1:9;", &format!("127.0.0.1:{cport};"))
    );
    c.send_to(dgram.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = c
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(header(&r, "X-Client"), Some("198.51.100.9:40999"), "{r}");
}

/// A test CA and a server certificate for 127.0.0.1/::1/localhost, made with `openssl`.
struct Pki {
    dir: PathBuf,
    ca: common::TestCa,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_owned(),
            ca: common::TestCa::new(dir, "rsips test CA"),
        };
        pki.issue("server", "rsips server one");
        pki
    }

    /// Issues `name.pem`/`name.key` signed by the CA with common name `cn`.
    fn issue(&self, name: &str, cn: &str) {
        self.issue_for(name, cn, "DNS:localhost");
    }

    /// Issues `name.pem`/`name.key` for 127.0.0.1, ::1 and the extra SAN entries `san`.
    fn issue_for(&self, name: &str, cn: &str, san: &str) {
        let next = format!("{name}-next");
        self.ca
            .issue(&next, cn, &format!("IP:127.0.0.1,IP:::1,{san}"));
        // Replace both files at once, as an operator's deploy would.
        for ext in ["key", "pem"] {
            std::fs::rename(
                self.dir.join(format!("{next}.{ext}")),
                self.dir.join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.dir.join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    fn tls_modparams(&self) -> String {
        format!(
            "loadmodule \"tls_mgm.so\"\nloadmodule \"tls_wolfssl.so\"\n\
             modparam(\"tls_mgm\", \"server_domain\", \"default\")\n\
             modparam(\"tls_mgm\", \"match_ip_address\", \"[default]*\")\n\
             modparam(\"tls_mgm\", \"verify_cert\", \"[default]0\")\n\
             modparam(\"tls_mgm\", \"require_cert\", \"[default]0\")\n\
             modparam(\"tls_mgm\", \"tls_method\", \"[default]TLSv1_2-\")\n\
             modparam(\"tls_mgm\", \"certificate\", \"[default]{}\")\n\
             modparam(\"tls_mgm\", \"private_key\", \"[default]{}\")\n\
             modparam(\"tls_mgm\", \"ca_list\", \"[default]{}\")\n",
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        )
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(config: &Arc<rustls::ClientConfig>, port: u16) -> Tls {
    let conn = rustls::ClientConnection::new(
        Arc::clone(config),
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, connect("127.0.0.1", port))
}

/// The common name in the DER certificate the server presented (a plain search is enough for
/// the names this test issues).
fn presented_cn(tls: &Tls) -> String {
    let der = tls.conn.peer_certificates().unwrap()[0].to_vec();
    for cn in ["rsips server one", "rsips server two", "rsips server three"] {
        if der.windows(cn.len()).any(|w| w == cn.as_bytes()) {
            return cn.to_owned();
        }
    }
    "?".to_owned()
}

#[test]
fn tls_with_a_test_ca_and_certificate_reload_on_sighup() {
    let dir = test_dir("pki");
    let pki = Pki::new(&dir);
    let mi_port = free_port("127.0.0.1");
    let server = start(
        "tls",
        "127.0.0.1",
        &format!(
            "socket=tls:127.0.0.1:PORT\nloadmodule \"proto_tls.so\"\n{MODULES}{}\
             loadmodule \"mi_datagram.so\"\n\
             modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{mi_port}\")\n{ECHO}",
            pki.tls_modparams()
        ),
    );
    let config = pki.client_config();
    let mut tls = tls_connect(&config, server.port);
    tls.write_all(options("TLS", "tls-1").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut tls, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Proto"), Some("tls"));
    assert_eq!(presented_cn(&tls), "rsips server one");

    // A broken key file and SIGHUP: the reload fails and the old certificate stays in use.
    std::fs::write(
        dir.join("server.key.bak"),
        std::fs::read(dir.join("server.key")).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("server.key"), b"not a key").unwrap();
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    hup(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("reload failed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("reload failed"), "{}", server.log());
    let again = tls_connect(&config, server.port);
    let mut again = again;
    again.write_all(options("TLS", "tls-2").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut again, &mut pending).is_some());
    assert_eq!(presented_cn(&again), "rsips server one");

    // A new certificate and SIGHUP: new connections get it, without a restart.
    pki.issue("server", "rsips server two");
    hup(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("certificates reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fresh = tls_connect(&config, server.port);
    fresh.write_all(options("TLS", "tls-3").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut fresh, &mut pending).is_some());
    assert_eq!(presented_cn(&fresh), "rsips server two");
    // The connection made before the reload keeps working.
    tls.write_all(options("TLS", "tls-4").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut tls, &mut pending).is_some());

    // The same over the MI: `tls_mgm:reload` after a new certificate, and `tls_mgm:list`.
    pki.issue("server", "rsips server three");
    let reply = mi_datagram(
        mi_port,
        r#"{"jsonrpc":"2.0","method":"tls_mgm:reload","id":1}"#,
    );
    assert_eq!(reply, r#"{"jsonrpc":"2.0","result":"OK","id":1}"#);
    let mut third = tls_connect(&config, server.port);
    third.write_all(options("TLS", "tls-5").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut third, &mut pending).is_some());
    assert_eq!(presented_cn(&third), "rsips server three");
    std::fs::write(dir.join("server.key"), b"not a key").unwrap();
    let reply = mi_datagram(mi_port, r#"{"jsonrpc":"2.0","method":"tls_reload","id":2}"#);
    assert!(
        reply.starts_with(
            r#"{"jsonrpc":"2.0","error":{"code":500,"message":"Failed to reload","data":"#
        ),
        "{reply}"
    );
    let reply = mi_datagram(
        mi_port,
        r#"{"jsonrpc":"2.0","method":"tls_mgm:list","id":3}"#,
    );
    let expected = format!(
        r#"{{"jsonrpc":"2.0","result":{{"Domains":[{{"name":"default","type":"TLS_DOMAIN_SRV","IP ADDRESS FILTERS":["*"],"SIP DOMAIN FILTERS":["*"],"METHOD":"TLSv1_2-TLSv1_3","VERIFY_CERT":false,"REQ_CLI_CERT":false,"CRL_CHECKALL":false,"CERT_FILE":"{}","CRL_DIR":"","CA_FILE":"{}","CA_DIR":"","PKEY_FILE":"{}","CIPHER_LIST":"","DH_PARAMS_FILE":"","EC_CURVE":""}}]}},"id":3}}"#,
        pki.path("server.pem"),
        pki.path("ca.pem"),
        pki.path("server.key"),
    );
    assert_eq!(reply, expected);
}

/// One JSON-RPC request over `mi_datagram` and its reply.
fn mi_datagram(port: u16, request: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(request.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn ws_request(url: &str) -> tungstenite::handshake::client::Request {
    let mut req = ws_request_without_origin(url);
    req.headers_mut()
        .insert("Origin", "http://127.0.0.1".parse().unwrap());
    req
}

fn ws_request_without_origin(url: &str) -> tungstenite::handshake::client::Request {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    req
}

fn ws_exchange<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>, id: &str) -> String {
    ws.send(tungstenite::Message::text(options("WS", id)))
        .unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

#[test]
fn ws_and_wss_with_a_websocket_client_library() {
    let dir = test_dir("pki-ws");
    let pki = Pki::new(&dir);
    let wss_port = free_port("127.0.0.1");
    let server = start(
        "ws",
        "127.0.0.1",
        &format!(
            "socket=ws:127.0.0.1:PORT\nsocket=wss:127.0.0.1:{wss_port}\nloadmodule \"proto_ws.so\"\nloadmodule \"proto_wss.so\"\n{MODULES}{}{ECHO}",
            pki.tls_modparams()
        ),
    );
    // WS.
    let tcp = connect("127.0.0.1", server.port);
    let (mut ws, resp) =
        tungstenite::client(ws_request(&format!("ws://127.0.0.1:{}/", server.port)), tcp)
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap()),
        Some("sip")
    );
    let r = ws_exchange(&mut ws, "ws-1");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Proto"), Some("ws"));
    // A ping frame is answered with a pong.
    ws.send(tungstenite::Message::Ping(b"hi".to_vec().into()))
        .unwrap();
    let r = ws_exchange(&mut ws, "ws-2");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    ws.close(None).unwrap();

    // WSS: TLS first, then the upgrade.
    let tls = tls_connect(&pki.client_config(), wss_port);
    let (mut wss, _) =
        tungstenite::client(ws_request(&format!("wss://127.0.0.1:{wss_port}/")), tls)
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let r = ws_exchange(&mut wss, "wss-1");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Proto"), Some("wss"));

    // A client that does not offer the `sip` subprotocol is refused.
    use tungstenite::client::IntoClientRequest;
    let plain = format!("ws://127.0.0.1:{}/", server.port)
        .into_client_request()
        .unwrap();
    let tcp = connect("127.0.0.1", server.port);
    assert!(tungstenite::client(plain, tcp).is_err());
    // Nor one without Origin (proto_ws `require_origin`, on by default)...
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let tcp = connect("127.0.0.1", server.port);
    assert!(tungstenite::client(ws_request_without_origin(&url), tcp).is_err());
    drop(server);
    // ... unless `require_origin` is 0.
    let server = start(
        "ws-no-origin",
        "127.0.0.1",
        &format!(
            "socket=ws:127.0.0.1:PORT\nloadmodule \"proto_ws.so\"\nmodparam(\"proto_ws\", \"require_origin\", 0)\n{MODULES}{ECHO}"
        ),
    );
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let tcp = connect("127.0.0.1", server.port);
    let (mut ws, _) = tungstenite::client(ws_request_without_origin(&url), tcp)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(ws_exchange(&mut ws, "ws-no-origin").starts_with("SIP/2.0 200 OK"));
}

/// OpenSIPS' TCP socket options: keepalive on by default (with `tcp_keepidle` applied), and
/// `tcp_crlf_pingpong=0` answering no CRLF ping.
#[test]
fn tcp_keepalive_is_on_and_crlf_pongs_can_be_turned_off() {
    let server = start(
        "keepalive",
        "127.0.0.1",
        &format!(
            "socket=tcp:127.0.0.1:PORT\ntcp_keepidle=33\nmodparam(\"proto_tcp\", \"tcp_crlf_pingpong\", 0)\n{MODULES}{ECHO}"
        ),
    );
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(options("TCP", "ka").as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut s, &mut pending).is_some());
    // The server's end of the connection has a keepalive timer (ss -o shows it).
    let out = Command::new("ss")
        .args(["-tno", "state", "established"])
        .arg(format!("( sport = :{} )", server.port))
        .output()
        .expect("ss (iproute2)");
    let ss = String::from_utf8_lossy(&out.stdout);
    assert!(ss.contains("timer:(keepalive,3"), "{ss}");
    // No pong for a ping.
    s.write_all(b"\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(s.read(&mut byte).is_err(), "no CRLF pong");
}

fn udp_receiver(host: &str) -> (UdpSocket, u16) {
    let s = UdpSocket::bind((host, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn recv_text(s: &UdpSocket) -> String {
    let mut buf = [0u8; 8192];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn bond_sockets_pick_the_member_by_protocol_and_address_family() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here");
        return;
    }
    let (v4, v4_port) = udp_receiver("127.0.0.1");
    let (v6, v6_port) = udp_receiver("::1");
    let v6_sock = free_port("::1");
    let route = format!(
        r#"route {{
    if ($rU == "v4") $du = "sip:127.0.0.1:{v4_port}";
    else $du = "sip:[::1]:{v6_port}";
    if (socket_belongs_to_bond($socket_in, "edge")) append_hf("X-In-Bond: yes\r\n");
    $socket_out = "bond:edge";
    forward();
}}"#
    );
    let server = start(
        "bond",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\nsocket=udp:[::1]:{v6_sock}\n\
             socket=bond:edge {{\"udp:127.0.0.1:PORT\", \"tcp:127.0.0.1:PORT\", \"udp:[::1]:{v6_sock}\"}}\n\
             disable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (user, rx, via) in [
        ("v4", &v4, format!("SIP/2.0/UDP 127.0.0.1:{};", server.port)),
        ("v6", &v6, format!("SIP/2.0/UDP [::1]:{v6_sock};")),
    ] {
        let req = options("UDP", user).replace("sip:bob@", &format!("sip:{user}@"));
        c.send_to(req.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
        let got = recv_text(rx);
        let top = header(&got, "Via").unwrap();
        assert!(top.starts_with(&via), "{user}: {top}\n{}", server.log());
        assert_eq!(header(&got, "X-In-Bond"), Some("yes"));
    }
}

#[test]
fn a_bond_member_that_is_not_a_socket_is_refused_at_start() {
    let dir = test_dir("bond-bad");
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "socket=udp:127.0.0.1:5060\nsocket=bond:b {{\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5999\"}}\n{MODULES}route {{ exit; }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bond member `tcp:127.0.0.1:5999` is not a defined socket")
            && err.contains(":2:"),
        "{err}"
    );
}

/// A client whose connection is reused for requests to its Via address: by the Via `alias`
/// parameter with `tcp_accept_aliases`, or by `force_tcp_alias()` in the script.
fn alias_case(globals: &str, via_param: &str, call: &str) {
    let unreachable = free_port("127.0.0.1");
    let route = format!(
        r#"route {{
    if ($socket_in(proto) == "tcp") {{ {call} sl_send_reply(200, "OK"); exit; }}
    forward("tcp:127.0.0.1:{unreachable}");
}}"#
    );
    let server = start(
        "alias",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\n{globals}disable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let mut s = connect("127.0.0.1", server.port);
    let register = options("TCP", "alias-reg").replace(
        "127.0.0.1:9;",
        &format!("127.0.0.1:{unreachable}{via_param};"),
    );
    s.write_all(register.as_bytes()).unwrap();
    let mut pending = Vec::new();
    assert!(
        read_message(&mut s, &mut pending)
            .unwrap()
            .starts_with("SIP/2.0 200")
    );
    // A request for the client's advertised address arrives over UDP: it must come down the
    // existing connection (nothing listens on that port).
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(
        options("UDP", "alias-in").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let got = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(
        got.starts_with("OPTIONS sip:bob@127.0.0.1 SIP/2.0"),
        "{got}"
    );
    assert_eq!(header(&got, "Call-ID"), Some("alias-in"));
}

#[test]
fn via_alias_with_tcp_accept_aliases_reuses_the_connection() {
    alias_case("tcp_accept_aliases=1\n", ";alias", "");
}

#[test]
fn force_tcp_alias_reuses_the_connection() {
    alias_case("", "", "force_tcp_alias();");
}

#[test]
fn tcp_accept_aliases_2_aliases_without_the_via_asking() {
    alias_case("tcp_accept_aliases=2\n", "", "");
}

/// A second connection from the same address cannot take over an alias the first holds
/// (OpenSIPS: "possible port hijack attempt").
#[test]
fn an_alias_stays_with_the_connection_that_took_it_first() {
    let unreachable = free_port("127.0.0.1");
    let route = format!(
        r#"route {{
    if ($socket_in(proto) == "tcp") {{ sl_send_reply(200, "OK"); exit; }}
    forward("tcp:127.0.0.1:{unreachable}");
}}"#
    );
    let server = start(
        "alias-hijack",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ntcp_accept_aliases=1\n{MODULES}{route}"
        ),
    );
    let register = |id: &str| {
        options("TCP", id).replace("127.0.0.1:9;", &format!("127.0.0.1:{unreachable};alias;"))
    };
    let (mut first, mut second) = (
        connect("127.0.0.1", server.port),
        connect("127.0.0.1", server.port),
    );
    let (mut p1, mut p2) = (Vec::new(), Vec::new());
    first.write_all(register("alias-a").as_bytes()).unwrap();
    assert!(read_message(&mut first, &mut p1).is_some());
    second.write_all(register("alias-b").as_bytes()).unwrap();
    assert!(read_message(&mut second, &mut p2).is_some());
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(
        options("UDP", "alias-which").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let got = read_message(&mut first, &mut p1).unwrap_or_else(|| panic!("{}", server.log()));
    assert_eq!(header(&got, "Call-ID"), Some("alias-which"));
    assert!(
        server.log().contains("possible port hijack attempt"),
        "{}",
        server.log()
    );
}

#[test]
fn proxy_protocol_pv_and_advertised_address_and_send() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    let route = format!(
        r#"route {{
    if ($socket_in(proto) == "tcp") {{
        append_to_reply("X-PP: $proxy_protocol(src_ip) $proxy_protocol(src_port) $proxy_protocol(dst_ip) $proxy_protocol(dst_port) $proxy_protocol(af)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }}
    if ($rU == "raw") {{ send("udp:127.0.0.1:{rx_port}", "X-Sent: raw\r\n"); exit; }}
    append_hf("X-Socket: $socket_in(advertised_ip) $socket_in(advertised_port) $socket_in(tag) $socket_in(anycast)\r\n");
    forward("udp:127.0.0.1:{rx_port}");
}}"#
    );
    let server = start(
        "pp-pv",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT as 203.0.113.9:5080 tag edge1 anycast\nsocket=tcp:127.0.0.1:PORT proxy_protocol\n\
             disable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(b"PROXY TCP4 198.51.100.7 192.0.2.1 40123 5060\r\n")
        .unwrap();
    s.write_all(options("TCP", "pp-pv").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert_eq!(
        header(&r, "X-PP"),
        Some("198.51.100.7 40123 192.0.2.1 5060 INET"),
        "{r}"
    );
    // forward(): our Via names the advertised address of the sending socket.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(options("UDP", "adv").as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let got = recv_text(&rx);
    let top = header(&got, "Via").unwrap();
    assert!(
        top.starts_with("SIP/2.0/UDP 203.0.113.9:5080;branch="),
        "{top}"
    );
    // send(): the request as received plus the given header, no Via of ours.
    let raw = options("UDP", "raw").replace("sip:bob@", "sip:raw@");
    c.send_to(raw.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let got = recv_text(&rx);
    assert_eq!(got.matches("Via:").count(), 1, "{got}");
    assert_eq!(header(&got, "X-Sent"), Some("raw"));
    assert_eq!(
        got.replace("X-Sent: raw\r\n", ""),
        raw,
        "otherwise byte for byte the received request"
    );
}

#[test]
fn an_interface_name_listens_on_each_of_its_addresses() {
    let v6 = TcpListener::bind("[::1]:0").is_ok();
    let server = start(
        "iface",
        "127.0.0.1",
        &format!("socket=tcp:lo:PORT\n{MODULES}{ECHO}"),
    );
    let mut hosts = vec!["127.0.0.1"];
    if v6 {
        hosts.push("::1");
    }
    for host in hosts {
        let mut s = connect(host, server.port);
        s.write_all(options("TCP", "iface").as_bytes()).unwrap();
        let mut pending = Vec::new();
        let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{host}"));
        assert!(r.starts_with("SIP/2.0 200 OK"), "{host}: {r}");
    }
}

#[test]
fn reuse_port_connects_from_the_listening_port_and_tos_marks_udp() {
    // The TCP side: a UAS records the source port of rsips' connection.
    let uas = TcpListener::bind("127.0.0.1:0").unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let (peer_tx, peer_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut conn, peer)) = uas.accept() {
            let _ = peer_tx.send(peer);
            let mut pending = Vec::new();
            let _ = read_message(&mut conn, &mut pending);
        }
    });
    // The UDP side: a Python receiver reports the TOS byte of the datagram (IP_RECVTOS).
    let (probe_port, tos_file) = (free_port("127.0.0.1"), test_dir("tos").join("tos"));
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)\ns.bind(('127.0.0.1', {probe_port}))\n\
         s.settimeout(10)\nd, anc, _, _ = s.recvmsg(4096, 64)\n\
         open('{}', 'w').write(str([c[2][0] for c in anc if c[1] == socket.IP_TOS]))\n",
        tos_file.display()
    );
    let mut python = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .expect("python3");
    let route = format!(
        r#"route {{
    if ($rU == "tcp") forward("tcp:127.0.0.1:{uas_port}");
    else forward("udp:127.0.0.1:{probe_port}");
}}"#
    );
    let server = start(
        "reuse",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT tos 184 use_workers 1\nsocket=tcp:127.0.0.1:PORT reuse_port\n\
             disable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = options("UDP", "reuse").replace("sip:bob@", "sip:tcp@");
    c.send_to(tcp.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let peer = peer_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("no connection\n{}", server.log()));
    assert_eq!(
        peer.port(),
        server.port,
        "reuse_port: from the listening port"
    );
    // Let the receiver bind, then send until it has reported (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tos_file.exists() && Instant::now() < deadline {
        c.send_to(options("UDP", "tos").as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    // The receiver exits after writing (or after its own 10 s timeout).
    let _ = python.wait();
    assert_eq!(
        std::fs::read_to_string(&tos_file).unwrap_or_default(),
        "[184]"
    );
}

#[test]
fn t_new_request_sends_a_request_of_its_own() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    let route = format!(
        r#"route {{
    # A body must start with its content type and a space: this one is refused.
    if (t_new_request("MESSAGE", "sip:bob@127.0.0.1:{rx_port}", "sip:rsips@example.com", "sip:bob@example.com", "no-content-type")) {{
        sl_send_reply(500, "Bad body accepted");
        exit;
    }}
    t_new_request("MESSAGE", "sip:bob@127.0.0.1:{rx_port}", "RSIPS sip:rsips@example.com", "sip:bob@example.com", "text/plain hello there", "ctx-42");
    sl_send_reply(200, "OK");
}}
local_route {{
    append_hf("X-Local-Route: $rm\r\n");
    append_hf("X-Ctx: $avp(uac_ctx)\r\n");
}}"#
    );
    let server = start(
        "newreq",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\nloadmodule \"tm.so\"\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // rport: the reply comes back to this socket.
    c.send_to(
        options("UDP", "newreq")
            .replacen(";branch", ";rport;branch", 1)
            .as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = c.recv(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let got = recv_text(&rx);
    assert!(
        got.starts_with(&format!("MESSAGE sip:bob@127.0.0.1:{rx_port} SIP/2.0\r\n")),
        "{got}"
    );
    assert_eq!(header(&got, "Content-Type"), Some("text/plain"));
    assert!(got.ends_with("\r\n\r\nhello there"), "{got}");
    assert!(
        header(&got, "From")
            .unwrap()
            .starts_with("RSIPS <sip:rsips@example.com>;tag="),
        "the display name is what comes before the last space: {got}"
    );
    assert_eq!(header(&got, "To"), Some("<sip:bob@example.com>"));
    assert_eq!(
        header(&got, "X-Ctx"),
        Some("ctx-42"),
        "$avp(uac_ctx): {got}"
    );
    assert_eq!(header(&got, "CSeq"), Some("1 MESSAGE"));
    assert_eq!(
        header(&got, "X-Local-Route"),
        Some("MESSAGE"),
        "local_route ran: {got}"
    );
}

/// A server running `route` (which calls t_replicate), and a client socket that has sent it a
/// `method` request (Call-ID `call`), with a 700 ms read timeout.
fn replicating_server(name: &str, route: &str, call: &str, method: &str) -> (Rsips, UdpSocket) {
    let server = start(
        name,
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\nloadmodule \"tm.so\"\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let cport = c.local_addr().unwrap().port();
    let req = options("UDP", call)
        .replace("OPTIONS", method)
        .replace("127.0.0.1:9;", &format!("127.0.0.1:{cport};"));
    c.send_to(req.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    (server, c)
}

#[test]
fn t_replicate_copies_the_request_and_absorbs_the_replies() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    let route = format!(
        r#"route {{
    t_replicate("sip:127.0.0.1:{rx_port}");
    sl_send_reply(200, "Registered here");
}}"#
    );
    let (server, c) = replicating_server("replicate", &route, "repl", "REGISTER");
    // The copy: our Via on top of the client's.
    let (got, from) = {
        let mut buf = [0u8; 8192];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    };
    assert!(
        got.starts_with("REGISTER sip:bob@127.0.0.1 SIP/2.0\r\n"),
        "{got}"
    );
    assert_eq!(got.matches("Via:").count(), 2, "{got}");
    // The replica answers; that answer is absorbed, the client sees only rsips' own reply.
    let mut reply = String::from("SIP/2.0 200 Replica OK\r\n");
    for l in got.lines().filter(|l| {
        ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
    }) {
        reply.push_str(l);
        reply.push_str("\r\n");
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    rx.send_to(reply.as_bytes(), from).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok((n, _)) = c.recv_from(&mut buf) {
        seen.push(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(
        seen,
        vec!["SIP/2.0 200 Registered here"],
        "{}",
        server.log()
    );
}

// A replicated INVITE is a client transaction of its own: the replica's 2xx is ACKed by tm
// (as for any INVITE rsips sends itself) and never reaches the caller.
#[test]
fn t_replicate_of_an_invite_acks_the_replicas_2xx() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    let route = format!(
        r#"route {{
    if (is_method("ACK")) exit;
    t_replicate("sip:127.0.0.1:{rx_port}");
    sl_send_reply(404, "Not here");
}}"#
    );
    let (server, c) = replicating_server("replicate-invite", &route, "repinv", "INVITE");
    let mut buf = [0u8; 8192];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        got.starts_with("INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"),
        "{got}"
    );
    let mut reply = String::from("SIP/2.0 200 Replica OK\r\n");
    for l in got.lines() {
        if ["Via:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        } else if l.starts_with("To:") {
            reply.push_str(l);
            reply.push_str(";tag=replica\r\n");
        }
    }
    reply.push_str(&format!(
        "Contact: <sip:replica@127.0.0.1:{rx_port}>\r\nContent-Length: 0\r\n\r\n"
    ));
    rx.send_to(reply.as_bytes(), from).unwrap();
    let (n, _) = rx.recv_from(&mut buf).unwrap();
    let ack = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        ack.starts_with(&format!("ACK sip:replica@127.0.0.1:{rx_port} SIP/2.0\r\n")),
        "{ack}"
    );
    assert!(ack.contains(";tag=replica"), "{ack}");
    let mut seen = Vec::new();
    while let Ok((n, _)) = c.recv_from(&mut buf) {
        seen.push(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(seen, vec!["SIP/2.0 404 Not here"], "{}", server.log());
}

#[test]
fn send_proxy_protocol_starts_outgoing_connections_with_a_v1_header_naming_the_client() {
    let uas = TcpListener::bind("127.0.0.1:0").unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = uas.accept() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while !got.windows(21).any(|w| w == b"Content-Length: 0\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(got);
        }
    });
    let route = format!("route {{ forward(\"tcp:127.0.0.1:{uas_port}\"); }}");
    let server = start(
        "send-pp",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT send_proxy_protocol\ndisable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(
        options("UDP", "sendpp").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let (header, used) = transport::proxy_protocol::parse(&got)
        .unwrap()
        .unwrap_or_else(|| panic!("no PROXY header: {:?}", String::from_utf8_lossy(&got)));
    // v1 (what OpenSIPS reads), naming the request's client and the socket it reached.
    assert_eq!(header.version, 1);
    assert_eq!(header.source, Some(c.local_addr().unwrap()));
    assert_eq!(header.destination.unwrap().port(), server.port);
    assert!(got[used..].starts_with(b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"));
}

#[test]
fn tcp_max_connections_refuses_the_one_too_many() {
    let server = start(
        "maxconn",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\ntcp_max_connections=3\n{MODULES}{ECHO}"),
    );
    // start() probed with a connection that is gone by now: wait until the server forgot it.
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..3 {
        let mut s = connect("127.0.0.1", server.port);
        s.write_all(options("TCP", &format!("max{i}")).as_bytes())
            .unwrap();
        let mut pending = Vec::new();
        assert!(
            read_message(&mut s, &mut pending).is_some(),
            "connection {i}"
        );
        held.push(s);
    }
    let mut extra = connect("127.0.0.1", server.port);
    let _ = extra.write_all(options("TCP", "max-extra").as_bytes());
    assert!(
        closed_within(&mut extra, Duration::from_secs(3)),
        "the fourth is refused"
    );
    assert!(
        server.log().contains("tcp_max_connections (3) reached"),
        "{}",
        server.log()
    );
    // Closing one makes room again.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect("127.0.0.1", server.port);
    again
        .write_all(options("TCP", "max-again").as_bytes())
        .unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut again, &mut pending).is_some());
}

#[test]
fn a_proxy_protocol_header_comes_before_the_tls_handshake() {
    let dir = test_dir("pki-pp");
    let pki = Pki::new(&dir);
    let server = start(
        "tls-pp",
        "127.0.0.1",
        &format!(
            "socket=tls:127.0.0.1:PORT allow_proxy_protocol\nloadmodule \"proto_tls.so\"\n{MODULES}{}{ECHO}",
            pki.tls_modparams()
        ),
    );
    let mut tcp = connect("127.0.0.1", server.port);
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(b"PROXY TCP4 198.51.100.9 127.0.0.1 40999 5061\r\n")
        .unwrap();
    let conn = rustls::ClientConnection::new(
        pki.client_config(),
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(options("TLS", "pp-tls").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut tls, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    // The header was read before the handshake; `$si` stays the TCP peer (OpenSIPS).
    assert_eq!(
        header(&r, "X-Source"),
        Some(peer.to_string().as_str()),
        "{r}"
    );
    assert_eq!(header(&r, "X-Proto"), Some("tls"));
}

/// A TLS client naming `sni`, optionally with a client certificate (`client.pem`/`client.key`).
fn tls_client_for(pki: &Pki, sni: &str, with_cert: bool, port: u16) -> Result<Tls, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_cert {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.dir.join("client.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(pki.dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect("127.0.0.1", port));
    tls.write_all(options("TLS", "sni").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    read_message(&mut tls, &mut pending).ok_or("no reply")?;
    Ok(tls)
}

#[test]
fn tls_server_domains_by_sni_and_require_cert() {
    let dir = test_dir("pki-sni");
    let pki = Pki::new(&dir);
    pki.issue_for("one", "rsips server one", "DNS:one.example");
    pki.issue_for("two", "rsips server two", "DNS:two.example");
    pki.issue_for("client", "a client", "DNS:client.example");
    let p = |f: &str| pki.path(f);
    let tls = format!(
        "loadmodule \"tls_mgm.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"one\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[one]*\")\n\
         modparam(\"tls_mgm\", \"match_sip_domain\", \"[one]one.example\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[one]0\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[one]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[one]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[one]{}\")\n\
         modparam(\"tls_mgm\", \"server_domain\", \"two\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[two]*\")\n\
         modparam(\"tls_mgm\", \"match_sip_domain\", \"[two]two.example\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[two]1\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[two]1\")\n\
         modparam(\"tls_mgm\", \"ca_list\", \"[two]{}\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[two]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[two]{}\")\n",
        p("one.pem"),
        p("one.key"),
        p("ca.pem"),
        p("two.pem"),
        p("two.key"),
    );
    let server = start(
        "tls-sni",
        "127.0.0.1",
        &format!("socket=tls:127.0.0.1:PORT\nloadmodule \"proto_tls.so\"\n{MODULES}{tls}{ECHO}"),
    );
    let one = tls_client_for(&pki, "one.example", false, server.port).unwrap();
    assert_eq!(presented_cn(&one), "rsips server one");
    // Domain two requires a client certificate signed by its ca_list.
    assert!(tls_client_for(&pki, "two.example", false, server.port).is_err());
    let two = tls_client_for(&pki, "two.example", true, server.port)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(presented_cn(&two), "rsips server two");
}

#[test]
fn reply_bodies_and_uri_headers() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    let route = format!(
        r#"route {{
    if ($rU == "fwd") {{
        append_urihf("X-Original-Uri: <", ">\r\n");
        forward("udp:127.0.0.1:{rx_port}");
        exit;
    }}
    append_to_reply("Content-Type: text/plain\r\n");
    # The last call wins (OpenSIPS replaces the reply body).
    append_body_to_reply("dropped");
    append_body_to_reply("hello there");
    sl_send_reply(200, "OK");
}}"#
    );
    let server = start(
        "bodies",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ndisable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(options("TCP", "body").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap();
    assert_eq!(header(&r, "Content-Type"), Some("text/plain"), "{r}");
    assert_eq!(header(&r, "Content-Length"), Some("11"), "{r}");
    assert!(r.ends_with("\r\n\r\nhello there"), "{r}");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fwd = options("UDP", "urihf").replace("sip:bob@", "sip:fwd@");
    c.send_to(fwd.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let got = recv_text(&rx);
    assert_eq!(
        header(&got, "X-Original-Uri"),
        Some("<sip:fwd@127.0.0.1>"),
        "{got}"
    );
}

// OpenSIPS lists a module's statistics only when the script loads the module.
#[test]
fn statistics_of_modules_not_loaded_are_not_listed() {
    let mi_port = free_port("127.0.0.1");
    let server = start(
        "nostats",
        "127.0.0.1",
        &format!(
            "socket=tcp:127.0.0.1:PORT\nloadmodule \"proto_tcp.so\"\nloadmodule \"mi_datagram.so\"\n\
             modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{mi_port}\")\n\
             route {{ drop; }}\n"
        ),
    );
    let all = mi_datagram(
        mi_port,
        r#"{"jsonrpc":"2.0","method":"get_statistics","params":[["all"]],"id":1}"#,
    );
    assert!(all.contains("\"core:rcv_requests\":0"), "{all}");
    assert!(!all.contains("\"tm:") && !all.contains("\"sl:"), "{all}");
    let which = mi_datagram(mi_port, r#"{"jsonrpc":"2.0","method":"which","id":2}"#);
    assert!(
        !which.contains("tm:") && !which.contains("tls_mgm:"),
        "{which}"
    );
    drop(server);
}

// OpenSIPS' E_CORE_TCP_DISCONNECT: a closed connection runs event_route[E_CORE_TCP_DISCONNECT]
// with the peer as src and our socket as dst.
#[test]
fn a_closed_connection_raises_e_core_tcp_disconnect() {
    let server = start(
        "disconnect",
        "127.0.0.1",
        &format!(
            "socket=tcp:127.0.0.1:PORT\n{MODULES}{ECHO}\n\
             event_route[E_CORE_TCP_DISCONNECT] {{\n\
                 xlog(\"L_NOTICE\", \"DISCONNECT $param(proto) $param(src_ip):$param(src_port) -> $param(dst_ip):$param(dst_port)\\n\");\n\
             }}\n"
        ),
    );
    let mut c = connect("127.0.0.1", server.port);
    let cport = c.local_addr().unwrap().port();
    c.write_all(options("TCP", "disc-1").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut c, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    let want = format!(
        "DISCONNECT tcp 127.0.0.1:{cport} -> 127.0.0.1:{}",
        server.port
    );
    // (start()'s own probe connection has already raised one.)
    assert!(!server.log().contains(&want), "{}", server.log());
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !server.log().contains(&want) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains(&want), "{}", server.log());
}

// `exec_msg_threshold` (µs): a message handled more slowly is logged and raises
// E_CORE_THRESHOLD (source, time, extra), as OpenSIPS' receive path does. 1 µs: every message.
#[test]
fn exec_msg_threshold_raises_e_core_threshold() {
    let server = start(
        "threshold",
        "127.0.0.1",
        &format!(
            "exec_msg_threshold=1\nsocket=tcp:127.0.0.1:PORT\n{MODULES}{ECHO}\n\
             event_route[E_CORE_THRESHOLD] {{\n\
                 if ($param(time) > 1) $var(t) = \"yes\"; else $var(t) = \"no\";\n\
                 xlog(\"L_NOTICE\", \"SLOW [$param(source)] over=$var(t) start=$(param(extra){{s.substr,0,7}})\\n\");\n\
             }}\n"
        ),
    );
    let mut c = connect("127.0.0.1", server.port);
    c.write_all(options("TCP", "slow-1").as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut c, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !server.log().contains("SLOW [") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(
        log.contains("threshold exceeded : msg processing took too long - "),
        "{log}"
    );
    assert!(
        log.contains("SLOW [msg processing] over=yes start=OPTIONS"),
        "{log}"
    );
}

// OpenSIPS 4.0 `tcp_close_conn(ipport)` and MI `tcp:close`: the connection to a peer (or by id)
// is closed; nothing matching is -1 / null, a bad description -2 / 400.
#[test]
fn tcp_close_conn_and_mi_tcp_close_close_a_peers_connection() {
    let mi_port = free_port("127.0.0.1");
    let server = start(
        "tcpclose",
        "127.0.0.1",
        &format!(
            "socket=tcp:127.0.0.1:PORT\n{MODULES}loadmodule \"mi_datagram.so\"\n\
             modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{mi_port}\")\n\
             route {{\n\
                 $var(rc) = 0;\n\
                 if ($hdr(X-Close) != NULL) {{ tcp_close_conn(\"$hdr(X-Close)\"); $var(rc) = $rc; }}\n\
                 append_to_reply(\"X-Rc: $var(rc)\\r\\n\");\n\
                 sl_send_reply(200, \"OK\");\n\
             }}\n"
        ),
    );
    let ask = |c: &mut TcpStream, close: &str, id: &str| -> Option<String> {
        let req = options("TCP", id).replace(
            "Content-Length: 0\r\n",
            &format!("X-Close: {close}\r\nContent-Length: 0\r\n"),
        );
        c.write_all(req.as_bytes()).ok()?;
        let mut pending = Vec::new();
        read_message(c, &mut pending)
    };
    // Another client's connection, closed by this one's request.
    let mut victim = connect("127.0.0.1", server.port);
    let vport = victim.local_addr().unwrap().port();
    victim
        .write_all(options("TCP", "victim").as_bytes())
        .unwrap();
    let mut pending = Vec::new();
    assert!(read_message(&mut victim, &mut pending).is_some());
    let mut c = connect("127.0.0.1", server.port);
    let r = ask(&mut c, &format!("tcp:127.0.0.1:{vport}"), "close-1").unwrap();
    assert_eq!(header(&r, "X-Rc"), Some("1"), "{r}");
    let mut buf = [0u8; 16];
    victim
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(
        matches!(victim.read(&mut buf), Ok(0) | Err(_)),
        "the victim's connection is closed"
    );
    let r = ask(&mut c, "127.0.0.1:9", "close-2").unwrap();
    assert_eq!(header(&r, "X-Rc"), Some("-1"), "{r}");
    let r = ask(&mut c, "not a peer", "close-3").unwrap();
    assert_eq!(header(&r, "X-Rc"), Some("-2"), "{r}");
    // The MI: close the asking client itself.
    let cport = c.local_addr().unwrap().port();
    let reply = mi_datagram(
        mi_port,
        &format!(
            r#"{{"jsonrpc":"2.0","method":"tcp:close","params":["127.0.0.1:{cport}"],"id":1}}"#
        ),
    );
    assert_eq!(reply, r#"{"jsonrpc":"2.0","result":"OK","id":1}"#);
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    let reply = mi_datagram(
        mi_port,
        r#"{"jsonrpc":"2.0","method":"tcp:close","params":["127.0.0.1:9"],"id":2}"#,
    );
    assert_eq!(reply, r#"{"jsonrpc":"2.0","result":null,"id":2}"#);
    let reply = mi_datagram(
        mi_port,
        r#"{"jsonrpc":"2.0","method":"tcp:close","params":["bogus"],"id":3}"#,
    );
    assert!(
        reply.contains(r#""code":400,"message":"Bad tcp connection""#),
        "{reply}"
    );
}

// set_via_handling("reply-to-via"): the reply goes to the top Via's sent-by even when the
// request asked for rport (which would send it back to the source).
#[test]
fn set_via_handling_reply_to_via_answers_the_via_address() {
    let server = start(
        "replytovia",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\n{MODULES}\
             route {{\n\
                 if ($rU == \"via\") set_via_handling(\"reply-to-via\");\n\
                 sl_send_reply(200, \"OK\");\n\
             }}\n"
        ),
    );
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&source, &other] {
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
    }
    let other_port = other.local_addr().unwrap().port();
    let request = |user: &str, call: &str| {
        options("UDP", call)
            .replace("sip:bob@127.0.0.1", &format!("sip:{user}@127.0.0.1"))
            .replace(
                "127.0.0.1:9;branch",
                &format!("127.0.0.1:{other_port};rport;branch"),
            )
    };
    let mut buf = [0u8; 4096];
    // Without the flag, rport sends the reply back to the source.
    source
        .send_to(
            request("plain", "rtv-1").as_bytes(),
            ("127.0.0.1", server.port),
        )
        .unwrap();
    let (n, _) = source.recv_from(&mut buf).expect("reply at the source");
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    // With it, to the Via's address.
    source
        .send_to(
            request("via", "rtv-2").as_bytes(),
            ("127.0.0.1", server.port),
        )
        .unwrap();
    let (n, _) = other.recv_from(&mut buf).expect("reply at the Via address");
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    assert!(source.recv_from(&mut buf).is_err(), "nothing at the source");
}

// The messages of one connection are handled in the order they came, whatever the number of
// TCP workers (as an OpenSIPS connection is held by one worker at a time): 200 requests sent
// back to back leave in order. Before, workers took them from one shared queue and a 200 OK
// could overtake the 180 sent just before it.
#[test]
fn one_connections_messages_keep_their_order_across_workers() {
    let (rx, rx_port) = udp_receiver("127.0.0.1");
    // Room for the whole burst: the default buffer holds fewer than 200 datagrams (the kernel
    // counts ~1 KiB of overhead each), and on a busy machine this thread may read late.
    socket2::SockRef::from(&rx)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    let route = format!(r#"route {{ forward("udp:127.0.0.1:{rx_port}"); }}"#);
    let server = start(
        "order",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ntcp_workers=4\ndisable_stateless_fwd=no\n{MODULES}{route}"
        ),
    );
    let mut s = connect("127.0.0.1", server.port);
    let mut burst = String::new();
    for i in 0..200 {
        burst.push_str(&options("TCP", "order").replace("CSeq: 7 ", &format!("CSeq: {i} ")));
    }
    s.write_all(burst.as_bytes()).unwrap();
    let got: Vec<String> = (0..200)
        .map(|_| {
            header(&recv_text(&rx), "CSeq")
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("{i} OPTIONS")).collect();
    assert_eq!(got, want);
}

/// OpenSIPS bounds a stream message as a whole (64 KiB), not its header section apart: a
/// 20 KB header section is served.
#[test]
fn a_large_header_section_within_the_message_limit_is_served() {
    let server = start(
        "big-head",
        "127.0.0.1",
        &format!("socket=tcp:127.0.0.1:PORT\n{MODULES}{ECHO}"),
    );
    let big = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let req = options("TCP", "big-head").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{big}"),
    );
    let mut s = connect("127.0.0.1", server.port);
    s.write_all(req.as_bytes()).unwrap();
    let mut pending = Vec::new();
    let r = read_message(&mut s, &mut pending).unwrap_or_else(|| panic!("{}", server.log()));
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
}

/// `tcp_no_new_conn_bflag`: a branch with the flag may only go out on an open connection; with
/// none to the destination nothing is opened and the send fails.
#[test]
fn tcp_no_new_conn_bflag_opens_no_connection() {
    let uas = TcpListener::bind("127.0.0.1:0").unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    uas.set_nonblocking(true).unwrap();
    let route = format!(
        "route {{\n  if ($rU == \"nonew\") setbflag(\"NONEW\");\n  forward(\"tcp:127.0.0.1:{uas_port}\");\n}}"
    );
    let server = start(
        "no-new-conn",
        "127.0.0.1",
        &format!(
            "socket=udp:127.0.0.1:PORT\nsocket=tcp:127.0.0.1:PORT\ntcp_no_new_conn_bflag=NONEW\n{MODULES}{route}"
        ),
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |user: &str| {
        let req = options("UDP", user).replace("sip:bob@", &format!("sip:{user}@"));
        c.send_to(req.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    };
    send("nonew");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("no new one allowed") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(uas.accept().is_err(), "no connection was opened");
    // Without the flag the connection is opened.
    send("plain");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if uas.accept().is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}
