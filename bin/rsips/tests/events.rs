//! The Event Interface's transports end to end: subscribers registered by `subscribe_event()`
//! and by MI `evi:subscribe` (the real `opensips-cli` and raw JSON-RPC over HTTP) receive the
//! events the script, MI and a module (pike) raise — over UDP and a Unix datagram socket
//! (`event_datagram`), a kept-open TCP connection (`event_stream`) and a file
//! (`event_flatstore`) — with OpenSIPS' payloads, expiry, listing, rotation and errors.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CFG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "pike.so"
loadmodule "event_route.so"
loadmodule "event_datagram.so"
loadmodule "event_stream.so"
loadmodule "event_flatstore.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "mi_fifo.so"
modparam("httpd", "port", HTTP)
modparam("mi_fifo", "fifo_name", "FIFO")
modparam("pike", "sampling_time_unit", 30)
modparam("pike", "reqs_density_per_unit", 2)
modparam("event_flatstore", "delimiter", ";")

startup_route {
    subscribe_event("E_SCRIPT", "udp:127.0.0.1:SCRIPTUDP");
}

route {
    if ($si == "127.0.0.2") {
        pike_check_req();
        drop;
    }
    $avp(n) = "who";
    $avp(v) = $fU;
    $avp(n) = "count";
    $avp(v) = 3;
    if (!raise_event("E_SCRIPT", $avp(n), $avp(v)))
        xlog("L_ERR", "raise failed\n");
    sl_send_reply(200, "OK");
}

event_route[E_SCRIPT] {
    xlog("L_NOTICE", "route saw who=$param(who)\n");
}
"#;

struct Server {
    _rsips: common::Kill,
    dir: PathBuf,
    port: u16,
    http: u16,
    fifo: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    /// One JSON-RPC request over HTTP; the response body.
    fn mi(&self, body: &str) -> String {
        common::mi_http(self.http, body)
    }

    /// An OPTIONS from `from_user` on `sock`; waits for the 200.
    fn options(&self, sock: &UdpSocket, from_user: &str, n: u32) {
        let local = sock.local_addr().unwrap();
        let msg = format!(
            "OPTIONS sip:p@127.0.0.1:{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-ev-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{from_user}@127.0.0.1>;tag=f{n}\r\n\
             To: <sip:p@127.0.0.1>\r\n\
             Call-ID: ev-{n}-{}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            self.port, self.port
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", self.port))
            .unwrap();
        if local.ip().to_string() == "127.0.0.1" {
            let mut buf = vec![0u8; 65535];
            let got = sock.recv(&mut buf).expect("a reply to the OPTIONS");
            assert!(buf[..got].starts_with(b"SIP/2.0 200 OK"));
        }
    }
}

fn start(name: &str, script_udp: u16) -> Server {
    let [port, http] = common::free_ports::<2>();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CFG.replace("SCRIPTUDP", &script_udp.to_string())
            .replace("PORT", &port.to_string())
            .replace("HTTP", &http.to_string())
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    Server {
        _rsips: rsips,
        dir,
        port,
        http,
        fifo,
    }
}

fn udp_listener() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn datagram(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).expect("an event datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads from `conn` until `want` JSON texts were received back to back (no separator).
fn json_texts(conn: &mut TcpStream, want: usize) -> Vec<String> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let texts = split_json(&got);
        if texts.len() >= want {
            return texts;
        }
        let n = conn.read(&mut buf).expect("event_stream data");
        assert!(n > 0, "the connection closed after {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Splits concatenated JSON objects (strings in them hold no braces here).
fn split_json(text: &str) -> Vec<String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    out.push(text[start..=i].to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn subscribers_on_every_transport_receive_the_events() {
    let (script_udp, script_port) = udp_listener();
    let s = start("evi", script_port);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // The startup_route's subscription: the script's event as a JSON-RPC notification, its
    // parameters newest AVP first, an integer as a JSON number; the event_route runs too.
    s.options(&client, "alice", 1);
    assert_eq!(
        datagram(&script_udp),
        r#"{"jsonrpc":"2.0","method":"E_SCRIPT","params":{"count":3,"who":"alice"}}"#
    );
    wait_for("the event_route ran", || {
        s.log().contains("route saw who=alice")
    });

    // Subscribers through the real opensips-cli: a TCP peer with its own method, a file, a
    // Unix datagram socket.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let flat = s.dir.join("events.log");
    let unix_path = s.dir.join("ev.sock");
    let unix = UnixDatagram::bind(&unix_path).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (socket, expire) in [
        (format!("tcp:127.0.0.1:{tcp_port}/on_script"), "60"),
        (format!("flatstore:{}", flat.display()), "120"),
        (format!("unix:{}", unix_path.display()), "300"),
    ] {
        let (ok, out) =
            common::opensips_cli(&s.fifo, &["event_subscribe", "E_SCRIPT", &socket, expire]);
        assert!(ok && out.contains("OK"), "{socket}: {out}");
    }

    // Listed newest first; the script's never expires, the MI ones count down; the
    // event_route last.
    let list = s.mi(r#"{"jsonrpc":"2.0","method":"evi:subscribers","params":["E_SCRIPT"],"id":1}"#);
    let sockets: Vec<&str> = list
        .match_indices("\"socket\":\"")
        .map(|(i, _)| {
            let rest = &list[i + 10..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        sockets,
        [
            format!("unix:{}", unix_path.display()).as_str(),
            &format!("flatstore:{}", flat.display()),
            &format!("tcp:127.0.0.1:{tcp_port}/on_script"),
            &format!("udp:127.0.0.1:{script_port}"),
            "route:E_SCRIPT",
        ],
        "{list}"
    );
    assert!(
        list.starts_with(r#"{"jsonrpc":"2.0","result":{"Event":{"name":"E_SCRIPT","id":"#),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            r#"{{"socket":"udp:127.0.0.1:{script_port}","expire":"never"}}"#
        )),
        "{list}"
    );
    assert!(list.contains(r#""expire":60,"ttl":"#), "{list}");
    let one = s.mi(&format!(
        r#"{{"jsonrpc":"2.0","method":"subscribers_list","params":["E_SCRIPT","udp:127.0.0.1:{script_port}"],"id":2}}"#
    ));
    assert!(one.contains(r#""Subscriber":{"socket":"udp:"#), "{one}");

    // The next event reaches all of them.
    s.options(&client, "bob", 2);
    let params = r#""params":{"count":3,"who":"bob"}}"#;
    assert_eq!(
        datagram(&script_udp),
        format!(r#"{{"jsonrpc":"2.0","method":"E_SCRIPT",{params}"#)
    );
    let mut buf = vec![0u8; 65535];
    let n = unix.recv(&mut buf).expect("the Unix datagram");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!(r#"{{"jsonrpc":"2.0","method":"E_SCRIPT",{params}"#)
    );
    let mut conn = common::accept_within(&tcp);
    assert_eq!(
        json_texts(&mut conn, 1),
        [format!(
            r#"{{"jsonrpc":"2.0","method":"on_script",{params}"#
        )]
    );
    wait_for("the flatstore line", || read(&flat) == "E_SCRIPT;3;bob\n");

    // Two more on the same connection, back to back; MI raises reach the subscribers too.
    s.options(&client, "carol", 3);
    let raised =
        s.mi(r#"{"jsonrpc":"2.0","method":"evi:raise","params":["E_SCRIPT",["x;y","z"]],"id":3}"#);
    assert_eq!(raised, r#"{"jsonrpc":"2.0","result":"OK","id":3}"#);
    assert_eq!(
        json_texts(&mut conn, 2),
        [
            r#"{"jsonrpc":"2.0","method":"on_script","params":{"count":3,"who":"carol"}}"#,
            r#"{"jsonrpc":"2.0","method":"on_script","params":["x;y","z"]}"#,
        ]
    );
    // The delimiter inside a value becomes a space.
    wait_for("the flatstore lines", || {
        read(&flat) == "E_SCRIPT;3;bob\nE_SCRIPT;3;carol\nE_SCRIPT;x y;z\n"
    });

    // The peer closes the connection: the next event opens a new one.
    drop(conn);
    s.options(&client, "dave", 4);
    let mut conn = common::accept_within(&tcp);
    assert_eq!(
        json_texts(&mut conn, 1),
        [r#"{"jsonrpc":"2.0","method":"on_script","params":{"count":3,"who":"dave"}}"#]
    );

    // logrotate: the file is moved, MI rotate reopens it by name.
    let moved = s.dir.join("events.log.1");
    std::fs::rename(&flat, &moved).unwrap();
    let rotated = s.mi(&format!(
        r#"{{"jsonrpc":"2.0","method":"event_flatstore:rotate","params":["{}"],"id":4}}"#,
        flat.display()
    ));
    assert_eq!(rotated, r#"{"jsonrpc":"2.0","result":"OK","id":4}"#);
    s.options(&client, "erin", 5);
    wait_for("the reopened file", || read(&flat) == "E_SCRIPT;3;erin\n");
    assert!(read(&moved).ends_with("E_SCRIPT;3;dave\n"));
    let unknown =
        s.mi(r#"{"jsonrpc":"2.0","method":"evi_flat_rotate","params":["/nowhere/x.log"],"id":5}"#);
    assert!(
        unknown.contains(r#""code":400,"message":"File not found""#),
        "{unknown}"
    );

    // Expire 0 through MI unsubscribes: gone a second later, and it gets nothing more.
    let unsub = s.mi(&format!(
        r#"{{"jsonrpc":"2.0","method":"evi:subscribe","params":["E_SCRIPT","unix:{}",0],"id":6}}"#,
        unix_path.display()
    ));
    assert_eq!(unsub, r#"{"jsonrpc":"2.0","result":"OK","id":6}"#);
    // Drain what arrived meanwhile, then wait out the second.
    unix.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while unix.recv(&mut buf).is_ok() {}
    std::thread::sleep(Duration::from_millis(2100));
    let list =
        s.mi(r#"{"jsonrpc":"2.0","method":"subscribers_list","params":["E_SCRIPT"],"id":7}"#);
    assert!(!list.contains("unix:"), "{list}");
    s.options(&client, "frank", 6);
    // (The script's subscriber got every event meanwhile; the last one is frank's.)
    while !datagram(&script_udp).contains("frank") {}
    assert!(
        unix.recv(&mut buf).is_err(),
        "the unsubscribed socket got an event"
    );
    assert!(!s.log().contains("raise failed"), "{}", s.log());
}

#[test]
fn a_module_event_reaches_an_mi_subscriber() {
    let (events, events_port) = udp_listener();
    let (_script, script_port) = udp_listener();
    let s = start("evi-pike", script_port);
    let reply = s.mi(&format!(
        r#"{{"jsonrpc":"2.0","method":"evi:subscribe","params":{{"event":"E_PIKE_BLOCKED","socket":"udp:localhost:{events_port}"}},"id":1}}"#
    ));
    assert_eq!(reply, r#"{"jsonrpc":"2.0","result":"OK","id":1}"#);
    // The MI default expire is an hour.
    let list = s.mi(r#"{"jsonrpc":"2.0","method":"subscribers_list","id":2}"#);
    assert!(
        list.contains(r#"{"name":"E_PIKE_BLOCKED","id":"#)
            && list.contains(&format!(
                r#""Subscribers":[{{"socket":"udp:localhost:{events_port}","expire":3600,"ttl":"#
            )),
        "{list}"
    );
    // 127.0.0.2 floods the pike check until it is blocked.
    let flooder = UdpSocket::bind("127.0.0.2:0").unwrap();
    for n in 0..12 {
        s.options(&flooder, "flood", 100 + n);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        datagram(&events),
        r#"{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"127.0.0.2"}}"#
    );
}

#[test]
fn bad_subscriptions_get_mi_errors_and_script_failures() {
    let (_script, script_port) = udp_listener();
    let s = start("evi-bad", script_port);
    let bad = "\"code\":400,\"message\":\"Bad parameter value\"";
    for params in [
        r#"["E_NOT_PUBLISHED","udp:127.0.0.1:9"]"#,
        r#"["E_SCRIPT","udp:127.0.0.1"]"#,
        r#"["E_SCRIPT","udp:127.0.0.1:0"]"#,
        r#"["E_SCRIPT","rabbitmq:127.0.0.1/x"]"#,
        r#"["E_SCRIPT","no-protocol"]"#,
        r#"["E_SCRIPT","flatstore:/no/such/dir/x.log"]"#,
    ] {
        let r = s.mi(&format!(
            r#"{{"jsonrpc":"2.0","method":"evi:subscribe","params":{params},"id":1}}"#
        ));
        assert!(r.contains(bad), "{params}: {r}");
    }
    let r = s.mi(
        r#"{"jsonrpc":"2.0","method":"evi:subscribe","params":["E_SCRIPT","udp:127.0.0.1:9",-1],"id":2}"#,
    );
    assert!(
        r.contains(r#""code":-32602,"message":"Invalid params","data":"Negative expire value""#),
        "{r}"
    );
    let r = s.mi(r#"{"jsonrpc":"2.0","method":"evi:subscribers","params":["E_NOPE"],"id":3}"#);
    assert!(
        r.contains(r#""code":404,"message":"Event not published""#),
        "{r}"
    );
    let r = s.mi(
        r#"{"jsonrpc":"2.0","method":"evi:subscribers","params":["E_SCRIPT","udp:127.0.0.1:1"],"id":4}"#,
    );
    assert!(
        r.contains(r#""code":404,"message":"Subscriber does not exist""#),
        "{r}"
    );
    // The server still serves.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    s.options(&client, "after", 1);
    // A stream subscriber nobody listens for: its events are dropped (logged, the peer left
    // alone a while), and the messages raising them are answered as before.
    let closed = common::free_port();
    let r = s.mi(&format!(
        r#"{{"jsonrpc":"2.0","method":"evi:subscribe","params":["E_SCRIPT","tcp:127.0.0.1:{closed}"],"id":5}}"#
    ));
    assert_eq!(r, r#"{"jsonrpc":"2.0","result":"OK","id":5}"#);
    for n in 2..6 {
        s.options(&client, "unheard", n);
    }
    wait_for("the refused connection logged", || {
        s.log()
            .contains(&format!("cannot connect to 127.0.0.1:{closed}"))
    });
    assert_eq!(
        s.log()
            .matches(&format!("cannot connect to 127.0.0.1:{closed}"))
            .count(),
        1,
        "{}",
        s.log()
    );
}

#[test]
fn flatstore_options_rsips_lacks_stop_the_start() {
    let err = common::refused_start(
        "evi-rotate",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"event_flatstore.so\"\n\
         modparam(\"event_flatstore\", \"rotate_period\", 60)\nroute { exit; }\n",
    );
    assert!(
        err.contains("event_flatstore: `rotate_period` is not available in rsips yet"),
        "{err}"
    );
}

const REGISTRAR: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "event_datagram.so"
startup_route {
    subscribe_event("E_UL_AOR_INSERT", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_UL_CONTACT_INSERT", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_UL_CONTACT_UPDATE", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_UL_CONTACT_DELETE", "udp:127.0.0.1:EVPORT");
    subscribe_event("E_UL_AOR_DELETE", "udp:127.0.0.1:EVPORT");
}
route {
    save("location");
}
"#;

#[test]
fn usrloc_changes_raise_their_events() {
    let (events, ev_port) = udp_listener();
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-evi-ul-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        REGISTRAR
            .replace("EVPORT", &ev_port.to_string())
            .replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp"));
    let ua = common::Peer::new();
    let register = |cseq: u32, expires: u32| {
        ua.send(
            port,
            &format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-ul-{cseq}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:alice@127.0.0.1>;tag=a\r\n\
                 To: <sip:alice@127.0.0.1>\r\n\
                 Call-ID: ul-events\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 User-Agent: evtest\r\n\
                 Contact: <sip:alice@127.0.0.1:{p}>;expires={expires}\r\n\
                 Content-Length: 0\r\n\r\n",
                p = ua.port
            ),
        );
        assert!(ua.recv("the 200 to REGISTER").starts_with("SIP/2.0 200 OK"));
    };
    register(1, 60);
    assert_eq!(
        datagram(&events),
        r#"{"jsonrpc":"2.0","method":"E_UL_AOR_INSERT","params":{"domain":"location","aor":"alice@127.0.0.1"}}"#
    );
    let insert = datagram(&events);
    assert!(
        insert.starts_with(&format!(
            r#"{{"jsonrpc":"2.0","method":"E_UL_CONTACT_INSERT","params":{{"domain":"location","aor":"alice@127.0.0.1","uri":"sip:alice@127.0.0.1:{}","received":"","path":"","qval":-1,"user_agent":"evtest","socket":"udp:127.0.0.1:{port}","bflags":0,"expires":"#,
            ua.port
        )) && insert.ends_with(r#","callid":"ul-events","cseq":1,"attr":"","latency":0,"shtag":""}}"#),
        "{insert}"
    );
    register(2, 60);
    assert!(datagram(&events).contains(r#""method":"E_UL_CONTACT_UPDATE""#));
    register(3, 0);
    assert!(datagram(&events).contains(r#""method":"E_UL_CONTACT_DELETE""#));
    assert_eq!(
        datagram(&events),
        r#"{"jsonrpc":"2.0","method":"E_UL_AOR_DELETE","params":{"domain":"location","aor":"alice@127.0.0.1"}}"#
    );
}
